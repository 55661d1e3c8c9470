//! Passwords verified recently. Argon2 is slow on purpose (tens of milliseconds); a CoAP device
//! in connectionless mode sends its credentials with every request and many devices reconnect
//! often, so each would pay that on every message and stall the task that checks it. Only
//! successes are kept: one entry per user, holding a keyed SHA-256 digest of the password
//! (never the password; the key is random per process) and the stored hash it matched. An
//! entry counts only while the user's stored hash is unchanged (a password change or a deleted
//! and re-added user verifies again) and for [`TTL`]; failures always run the real check.
//!
//! Owns: the cache. Must not know: where users come from.

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a verified password is trusted without hashing again.
pub(crate) const TTL: Duration = Duration::from_secs(300);
/// Most users remembered; when full the cache starts over (bounded memory).
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    digest: [u8; 32],
    stored_hash: String,
    at: Instant,
}

/// See the module doc.
pub(crate) struct Verified {
    key: [u8; 32],
    entries: Mutex<HashMap<String, Entry>>,
}

impl Verified {
    pub(crate) fn new() -> Self {
        Verified {
            key: rand::random(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The keyed digest a password is remembered by.
    pub(crate) fn digest(&self, password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((password.len() as u64).to_be_bytes());
        h.update(password);
        h.finalize().into()
    }

    /// Whether the password of `digest` was verified against `stored_hash` for `user` within
    /// the TTL.
    pub(crate) fn hit(
        &self,
        user: &str,
        digest: &[u8; 32],
        stored_hash: &str,
        now: Instant,
    ) -> bool {
        let entries = self.entries.lock();
        entries.get(user).is_some_and(|e| {
            e.stored_hash == stored_hash
                && now.saturating_duration_since(e.at) < TTL
                && bool::from(e.digest.ct_eq(digest))
        })
    }

    /// Records a successful check.
    pub(crate) fn put(&self, user: &str, digest: [u8; 32], stored_hash: &str, now: Instant) {
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(user) {
            entries.clear();
        }
        entries.insert(
            user.to_owned(),
            Entry {
                digest,
                stored_hash: stored_hash.to_owned(),
                at: now,
            },
        );
    }

    /// Forgets a user (deleted or changed).
    pub(crate) fn forget(&self, user: &str) {
        self.entries.lock().remove(user);
    }
}
