//! Banned clients and flapping detection, checked at connect on every protocol before
//! authentication (so a reconnect loop never reaches the authentication back-end).
//!
//! Owns: the banned list (by client id, username or peer host — an address or a CIDR block),
//! durable in the API-state store (kind [`BANNED_KIND`], key `<as>/<who>`) and served from an
//! in-memory view the store's feed keeps current; the per-client-id connect counter that bans a
//! client connecting more than `max_count` times within `window_time` for `ban_time`.
//! Must not know: any protocol. A gateway asks [`Banned::check_connect`] and maps a ban onto its
//! refusal (MQTT 5 CONNACK 0x8A, MQTT 3.x 0x05, MQTT-SN 0x80, CoAP and LwM2M 4.00).
//! Invariants: an expired ban never refuses anyone (it is dropped lazily and by the API list);
//! the flapping counter keeps at most `max_count + 1` timestamps per client id and forgets ids
//! whose window passed, so it cannot grow without bound.

use ipnet::IpNet;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchyard_state::{Change, SharedState, StateError, StateView};
use thiserror::Error;

/// The API-state kind of ban entries.
pub const BANNED_KIND: &str = "banned";

/// What a ban matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BanKind {
    /// A client id.
    Clientid,
    /// A username.
    Username,
    /// A peer address or CIDR block.
    Peerhost,
}

impl BanKind {
    /// The name EMQX's API uses (`as`).
    pub fn as_str(self) -> &'static str {
        match self {
            BanKind::Clientid => "clientid",
            BanKind::Username => "username",
            BanKind::Peerhost => "peerhost",
        }
    }

    /// Parses `as`.
    pub fn parse(s: &str) -> Option<BanKind> {
        match s {
            "clientid" => Some(BanKind::Clientid),
            "username" => Some(BanKind::Username),
            "peerhost" => Some(BanKind::Peerhost),
            _ => None,
        }
    }
}

/// One ban, as stored and as the API shows it (times in seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanEntry {
    /// What `who` is.
    #[serde(rename = "as")]
    pub kind: BanKind,
    /// The client id, username, address or CIDR block.
    pub who: String,
    /// Why (free text; `"flapping"` for automatic bans).
    pub reason: String,
    /// Who banned: `"api"`, `"flapping"`.
    pub by: String,
    /// When the ban began.
    pub at: u64,
    /// When it ends; `None` = never.
    pub until: Option<u64>,
}

impl BanEntry {
    fn key(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.who)
    }

    /// Whether the ban is over at `now` (Unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        self.until.is_some_and(|u| u <= now)
    }
}

/// Why a ban could not be added or removed.
#[derive(Debug, Error)]
pub enum BanError {
    /// `who` is not an address or CIDR block for a `peerhost` ban, or is empty.
    #[error("invalid ban: {0}")]
    Invalid(String),
    /// The store refused the write.
    #[error(transparent)]
    State(#[from] StateError),
}

/// `flapping_detect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlappingSettings {
    /// Whether connects are counted at all.
    pub enable: bool,
    /// More connects than this within `window` bans the client id.
    pub max_count: u32,
    /// The counting window.
    pub window: Duration,
    /// How long the automatic ban lasts.
    pub ban_time: Duration,
}

impl Default for FlappingSettings {
    fn default() -> Self {
        FlappingSettings {
            enable: false,
            max_count: 15,
            window: Duration::from_secs(60),
            ban_time: Duration::from_secs(300),
        }
    }
}

/// The banned list and the flapping counter.
#[derive(Debug)]
pub struct Banned {
    state: Option<SharedState>,
    entries: RwLock<BTreeMap<(BanKind, String), BanEntry>>,
    /// Parsed `peerhost` bans, for the per-connect check.
    nets: RwLock<Vec<(IpNet, BanEntry)>>,
    flapping: FlappingSettings,
    connects: Mutex<HashMap<String, VecDeque<Instant>>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn parse_net(who: &str) -> Option<IpNet> {
    who.parse::<IpNet>()
        .ok()
        .or_else(|| who.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Banned {
    /// An empty list kept in memory only (tests, and the default `Security`).
    pub fn in_memory(flapping: FlappingSettings) -> Banned {
        Banned {
            state: None,
            entries: RwLock::new(BTreeMap::new()),
            nets: RwLock::new(Vec::new()),
            flapping,
            connects: Mutex::new(HashMap::new()),
        }
    }

    /// The list in `state`, loaded now.
    pub fn open(state: SharedState, flapping: FlappingSettings) -> Result<Banned, StateError> {
        let b = Banned {
            state: Some(state),
            ..Banned::in_memory(flapping)
        };
        b.reload()?;
        Ok(b)
    }

    fn reload(&self) -> Result<(), StateError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let mut map = BTreeMap::new();
        for (key, doc) in state.list(BANNED_KIND)? {
            match serde_json::from_value::<BanEntry>(doc) {
                Ok(e) => {
                    map.insert((e.kind, e.who.clone()), e);
                }
                Err(error) => tracing::warn!(key, %error, "unreadable ban entry skipped"),
            }
        }
        self.replace(map);
        Ok(())
    }

    fn replace(&self, map: BTreeMap<(BanKind, String), BanEntry>) {
        let nets = map
            .values()
            .filter(|e| e.kind == BanKind::Peerhost)
            .filter_map(|e| parse_net(&e.who).map(|n| (n, e.clone())))
            .collect();
        *self.entries.write() = map;
        *self.nets.write() = nets;
    }

    fn refresh_nets(&self) {
        let map = self.entries.read().clone();
        self.replace(map);
    }

    /// The ban that refuses this client now, if any.
    pub fn check(
        &self,
        client_id: &str,
        username: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Option<BanEntry> {
        let now = unix_now();
        let live = |e: &BanEntry| !e.expired(now);
        {
            let entries = self.entries.read();
            if entries.is_empty() {
                return None;
            }
            let by_id = entries.get(&(BanKind::Clientid, client_id.to_owned()));
            if let Some(e) = by_id.filter(|e| live(e)) {
                return Some(e.clone());
            }
            if let Some(u) = username {
                if let Some(e) = entries
                    .get(&(BanKind::Username, u.to_owned()))
                    .filter(|e| live(e))
                {
                    return Some(e.clone());
                }
            }
        }
        let ip = peer?;
        self.nets
            .read()
            .iter()
            .find(|(net, e)| net.contains(&ip) && live(e))
            .map(|(_, e)| e.clone())
    }

    /// The connect-time check: the ban that refuses this client, if any; otherwise the connect
    /// is counted for flapping detection, which may ban the client id now. Refused attempts
    /// are not counted, so a banned client is let in when its ban ends.
    pub fn check_connect(
        &self,
        client_id: &str,
        username: Option<&str>,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Option<BanEntry> {
        if let Some(ban) = self.check(client_id, username, peer) {
            return Some(ban);
        }
        if self.flapping.enable && !client_id.is_empty() {
            self.count_connect(client_id, now);
            return self.check(client_id, username, peer);
        }
        None
    }

    fn count_connect(&self, client_id: &str, now: Instant) {
        let f = self.flapping;
        let flapping = {
            let mut connects = self.connects.lock();
            // Forget ids whose window passed, so the table stays bounded by the ids that
            // connected within one window.
            if connects.len() > 10_000 {
                connects.retain(|_, q| {
                    q.back()
                        .is_some_and(|t| now.saturating_duration_since(*t) < f.window)
                });
            }
            let q = connects.entry(client_id.to_owned()).or_default();
            while q
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= f.window)
            {
                q.pop_front();
            }
            q.push_back(now);
            let over = q.len() > f.max_count as usize;
            if over {
                q.clear();
            }
            over
        };
        if flapping {
            let at = unix_now();
            let entry = BanEntry {
                kind: BanKind::Clientid,
                who: client_id.to_owned(),
                reason: "flapping".into(),
                by: "flapping".into(),
                at,
                until: Some(at.saturating_add(f.ban_time.as_secs().max(1))),
            };
            tracing::warn!(
                client_id,
                max_count = f.max_count,
                window_secs = f.window.as_secs(),
                ban_secs = f.ban_time.as_secs(),
                "flapping detected: client id banned"
            );
            FLAPPING_BANS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(error) = self.add(entry) {
                tracing::error!(client_id, %error, "cannot store the flapping ban");
            }
        }
    }

    /// Adds (or replaces) a ban; durable when this returns.
    pub fn add(&self, entry: BanEntry) -> Result<(), BanError> {
        if entry.who.is_empty() {
            return Err(BanError::Invalid("who is empty".into()));
        }
        if entry.kind == BanKind::Peerhost && parse_net(&entry.who).is_none() {
            return Err(BanError::Invalid(format!(
                "peerhost {:?} is not an address or CIDR block",
                entry.who
            )));
        }
        if let Some(state) = &self.state {
            let doc = serde_json::to_value(&entry)
                .map_err(|e| BanError::Invalid(format!("cannot encode: {e}")))?;
            state.put(BANNED_KIND, &entry.key(), &doc)?;
        }
        self.entries
            .write()
            .insert((entry.kind, entry.who.clone()), entry);
        self.refresh_nets();
        Ok(())
    }

    /// Removes a ban; whether there was one.
    pub fn remove(&self, kind: BanKind, who: &str) -> Result<bool, BanError> {
        if let Some(state) = &self.state {
            state.delete(BANNED_KIND, &format!("{}/{who}", kind.as_str()))?;
        }
        let had = self
            .entries
            .write()
            .remove(&(kind, who.to_owned()))
            .is_some();
        self.refresh_nets();
        Ok(had)
    }

    /// Every live ban, ordered by kind and who; expired ones are removed on the way.
    pub fn list(&self) -> Vec<BanEntry> {
        let now = unix_now();
        let expired: Vec<BanEntry> = self
            .entries
            .read()
            .values()
            .filter(|e| e.expired(now))
            .cloned()
            .collect();
        for e in expired {
            if let Err(error) = self.remove(e.kind, &e.who) {
                tracing::warn!(who = e.who, %error, "cannot drop an expired ban");
            }
        }
        self.entries.read().values().cloned().collect()
    }

    /// Automatic flapping bans so far (all instances), for metrics.
    pub fn flapping_bans() -> u64 {
        FLAPPING_BANS.load(std::sync::atomic::Ordering::Relaxed)
    }
}

static FLAPPING_BANS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl StateView for Banned {
    fn name(&self) -> &'static str {
        BANNED_KIND
    }

    fn apply(&self, change: &Change) -> Result<(), StateError> {
        if change.kind != BANNED_KIND {
            return Ok(());
        }
        // Re-read the whole (small) list: idempotent, and never older than the store.
        self.reload()
    }

    fn resync(&self) -> Result<(), StateError> {
        self.reload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use switchyard_state::SqliteState;

    fn ban(kind: BanKind, who: &str, until: Option<u64>) -> BanEntry {
        BanEntry {
            kind,
            who: who.into(),
            reason: "test".into(),
            by: "api".into(),
            at: unix_now(),
            until,
        }
    }

    #[test]
    fn bans_by_client_id_username_and_cidr_and_expire() {
        let b = Banned::in_memory(FlappingSettings::default());
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(b.check("c", None, ip("10.0.0.1")).is_none());
        b.add(ban(BanKind::Clientid, "bad-id", None))
            .unwrap_or_else(|e| panic!("{e}"));
        b.add(ban(BanKind::Username, "mallory", None))
            .unwrap_or_else(|e| panic!("{e}"));
        b.add(ban(BanKind::Peerhost, "192.168.7.0/24", None))
            .unwrap_or_else(|e| panic!("{e}"));
        b.add(ban(BanKind::Clientid, "gone", Some(1)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(b.check("bad-id", None, None).is_some());
        assert!(b.check("x", Some("mallory"), None).is_some());
        assert!(b.check("x", None, ip("192.168.7.99")).is_some());
        assert!(b.check("x", Some("alice"), ip("192.168.8.1")).is_none());
        assert!(b.check("gone", None, None).is_none(), "expired ban");
        assert!(b.add(ban(BanKind::Peerhost, "not-an-ip", None)).is_err());
        assert_eq!(
            b.list().len(),
            3,
            "the expired one is dropped from the list"
        );
        assert!(b.remove(BanKind::Username, "mallory").unwrap_or(false));
        assert!(b.check("x", Some("mallory"), None).is_none());
    }

    #[test]
    fn flapping_bans_the_client_id_after_max_count_connects_in_the_window() {
        let f = FlappingSettings {
            enable: true,
            max_count: 3,
            window: Duration::from_secs(60),
            ban_time: Duration::from_secs(300),
        };
        let b = Banned::in_memory(f);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(b
                .check_connect("loop", None, None, t0 + Duration::from_secs(i))
                .is_none());
        }
        // Spread out connects do not count together.
        let later = t0 + Duration::from_secs(120);
        assert!(b.check_connect("slow", None, None, t0).is_none());
        assert!(b.check_connect("slow", None, None, later).is_none());
        let banned = b.check_connect("loop", None, None, t0 + Duration::from_secs(4));
        let e = banned.unwrap_or_else(|| panic!("the fourth connect within a minute is banned"));
        assert_eq!((e.reason.as_str(), e.kind), ("flapping", BanKind::Clientid));
        assert!(e.until.is_some());
        assert!(b.check("slow", None, None).is_none());
    }

    #[test]
    fn bans_persist_in_the_state_store_and_follow_its_feed() {
        let state: SharedState =
            Arc::new(SqliteState::in_memory().unwrap_or_else(|e| panic!("{e}")));
        let a = Banned::open(state.clone(), FlappingSettings::default())
            .unwrap_or_else(|e| panic!("{e}"));
        a.add(ban(BanKind::Clientid, "x", None))
            .unwrap_or_else(|e| panic!("{e}"));
        // A second view of the same store (another node, or a restart) sees it.
        let b = Banned::open(state.clone(), FlappingSettings::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(b.check("x", None, None).is_some());
        a.remove(BanKind::Clientid, "x")
            .unwrap_or_else(|e| panic!("{e}"));
        let change = Change {
            kind: BANNED_KIND.into(),
            key: "clientid/x".into(),
            value: None,
        };
        b.apply(&change).unwrap_or_else(|e| panic!("{e}"));
        assert!(b.check("x", None, None).is_none());
    }
}
