//! The chain's memory of answers, so a back-end is not asked again and again for the same
//! credentials (issue 18 §5; EMQX has no such cache).
//!
//! Owns: entries keyed by a SHA-256 over a per-process random key, the authenticator id, the
//! client id, the username and the password (each length-prefixed): the password is never
//! stored, and a key cannot be computed outside this process. Two uses: the result cache of the
//! network back-ends (`[authentication.cache]`, bounded, with a TTL; only real answers — ok or
//! error — are kept, never an ignore caused by a timeout), and the hand-over of a verdict the
//! asynchronous path reached to a synchronous check of the same credentials right after it
//! ([`HANDOVER`]). Invariants: bounded ([`Cache::max`] entries; when full, expired entries go,
//! then the whole map starts over); an entry is used only before its expiry.

use crate::backend::Outcome;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an answer is kept for a synchronous check that follows the asynchronous one, when
/// the result cache is off or its TTL is shorter.
pub(crate) const HANDOVER: Duration = Duration::from_secs(10);

/// `[authentication.cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Reuse the network back-ends' answers.
    pub enable: bool,
    /// Most answers kept.
    pub max_size: usize,
    /// How long an answer is reused.
    pub ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            enable: true,
            max_size: 100_000,
            ttl: Duration::from_secs(30),
        }
    }
}

struct Entry {
    outcome: Outcome,
    /// Until when the result cache may use it.
    cache_until: Option<Instant>,
    /// Until when a synchronous check may use it.
    until: Instant,
}

/// See the module doc.
pub(crate) struct Cache {
    key: [u8; 32],
    settings: CacheSettings,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("settings", &self.settings)
            .field("entries", &self.entries.lock().len())
            .finish()
    }
}

fn put_field(h: &mut Sha256, v: &[u8]) {
    h.update((v.len() as u64).to_be_bytes());
    h.update(v);
}

impl Cache {
    pub(crate) fn new(settings: CacheSettings) -> Self {
        Cache {
            key: rand::random(),
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn max(&self) -> usize {
        self.settings.max_size.max(1024)
    }

    /// The keyed digest of one check.
    pub(crate) fn key(
        &self,
        backend: &str,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        put_field(&mut h, backend.as_bytes());
        put_field(&mut h, client_id.as_bytes());
        match username {
            Some(u) => put_field(&mut h, u.as_bytes()),
            None => h.update([0xff]),
        }
        match password {
            Some(p) => put_field(&mut h, p),
            None => h.update([0xff]),
        }
        h.finalize().into()
    }

    /// A result-cache hit (only when the cache is on).
    pub(crate) fn cached(&self, key: &[u8; 32], now: Instant) -> Option<Outcome> {
        if !self.settings.enable {
            return None;
        }
        let entries = self.entries.lock();
        let e = entries.get(key)?;
        e.cache_until
            .filter(|u| now < *u)
            .map(|_| e.outcome.clone())
    }

    /// An answer a synchronous check may use (result cache or hand-over).
    pub(crate) fn recent(&self, key: &[u8; 32], now: Instant) -> Option<Outcome> {
        let entries = self.entries.lock();
        entries
            .get(key)
            .filter(|e| now < e.until)
            .map(|e| e.outcome.clone())
    }

    /// Remembers a network back-end's real answer.
    pub(crate) fn put(&self, key: [u8; 32], outcome: &Outcome, now: Instant) {
        if !outcome.cacheable() {
            return;
        }
        let cache_until = self.settings.enable.then(|| now + self.settings.ttl);
        let until = cache_until.map_or(now + HANDOVER, |u| u.max(now + HANDOVER));
        let mut entries = self.entries.lock();
        if entries.len() >= self.max() && !entries.contains_key(&key) {
            entries.retain(|_, e| now < e.until);
            if entries.len() >= self.max() {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                outcome: outcome.clone(),
                cache_until,
                until,
            },
        );
    }

    /// Forgets everything (the chain changed).
    pub(crate) fn clear(&self) {
        self.entries.lock().clear();
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::DenyReason;

    #[test]
    fn keyed_bounded_and_expiring() {
        let c = Cache::new(CacheSettings {
            enable: true,
            max_size: 2,
            ttl: Duration::from_secs(30),
        });
        let now = Instant::now();
        let k = c.key("http", "c", Some("u"), Some(b"p"));
        assert_ne!(k, c.key("http", "c", Some("u"), Some(b"q")));
        assert_ne!(k, c.key("pg", "c", Some("u"), Some(b"p")));
        assert_ne!(
            c.key("x", "ab", Some("c"), None),
            c.key("x", "a", Some("bc"), None)
        );
        c.put(k, &Outcome::Ignore("timeout"), now);
        assert_eq!(c.cached(&k, now), None);
        let deny = Outcome::Error(DenyReason::NotAuthorized);
        c.put(k, &deny, now);
        assert_eq!(c.cached(&k, now), Some(deny.clone()));
        assert_eq!(c.cached(&k, now + Duration::from_secs(31)), None);
        for i in 0..3000u32 {
            let k = c.key("http", &i.to_string(), None, None);
            c.put(k, &deny, now);
        }
        assert!(c.len() <= 1024);
        let off = Cache::new(CacheSettings {
            enable: false,
            ..CacheSettings::default()
        });
        off.put(k, &deny, now);
        assert_eq!(off.cached(&k, now), None);
        assert_eq!(off.recent(&k, now), Some(deny));
        assert_eq!(off.recent(&k, now + HANDOVER), None);
    }
}
