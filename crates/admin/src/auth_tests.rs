//! The admin store: the forced password change, login throttling, API keys, and the API-state
//! store behind them (what is stored, the feed, the import of the legacy `admin.json`).

use super::*;
use std::sync::Arc;
use switchyard_state::{Change, SqliteState, StateView};

fn memory_state() -> SharedState {
    Arc::new(SqliteState::in_memory().expect("in-memory state"))
}

fn open(state: SharedState, legacy_dir: Option<&Path>) -> AuthStore {
    AuthStore::open(
        state,
        legacy_dir,
        "admin",
        "public",
        Duration::from_secs(60),
        3,
    )
    .expect("open")
}

fn store() -> AuthStore {
    open(memory_state(), None)
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "sy-admin-auth-{tag}-{}-{}",
            std::process::id(),
            random_hex(4)
        ));
        std::fs::create_dir_all(&p).expect("mkdir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn default_admin_must_change_password_and_the_store_has_no_clear_text() {
    let state = memory_state();
    let s = open(state.clone(), None);
    let ip: IpAddr = [127, 0, 0, 1].into();
    let login = s.login(ip, "admin", "public").expect("login");
    assert!(login.must_change_password);
    s.change_password("admin", "public", "s3cret-pass", Some(&login.token))
        .expect("change");
    let stored = format!("{:?}", state.list(ADMIN_USERS_KIND).expect("list"));
    assert!(!stored.contains("public") && !stored.contains("s3cret-pass"));
    assert!(stored.contains("$argon2"), "{stored}");
    assert!(matches!(
        s.check_token(&login.token),
        Some(Principal::User {
            must_change_password: false,
            ..
        })
    ));
    assert!(s.login(ip, "admin", "public").is_err());
    assert!(
        !s.login(ip, "admin", "s3cret-pass")
            .expect("login")
            .must_change_password
    );
}

#[test]
fn failed_logins_are_throttled_per_ip() {
    let s = store();
    let ip: IpAddr = [10, 0, 0, 1].into();
    for _ in 0..3 {
        assert_eq!(
            s.login(ip, "admin", "nope")
                .err()
                .map(|e| e.status.as_u16()),
            Some(401)
        );
    }
    let e = s
        .login(ip, "admin", "public")
        .err()
        .map(|e| e.status.as_u16());
    assert_eq!(e, Some(429));
    assert!(s.login([10, 0, 0, 2].into(), "admin", "public").is_ok());
}

#[test]
fn api_keys_check_their_secret() {
    let s = store();
    let k = s.add_api_key("ci", "", true).expect("key");
    let key = k["api_key"].as_str().unwrap_or_default().to_owned();
    let secret = k["api_secret"].as_str().unwrap_or_default().to_owned();
    assert!(s.check_api_key(&key, &secret).is_some());
    assert!(s.check_api_key(&key, "wrong").is_none());
    s.delete_api_key("ci").expect("delete");
    assert!(s.check_api_key(&key, &secret).is_none());
}

/// Admins and keys outlive the store object: a second one on the same store (a restart) has
/// them, and does not create the default admin again.
#[test]
fn admins_and_keys_are_in_the_store() {
    let state = memory_state();
    let s = open(state.clone(), None);
    s.add_user("ops", "ops-password-1", "night shift")
        .expect("add");
    let k = s.add_api_key("ci", "deploys", true).expect("key");
    let key = k["api_key"].as_str().unwrap_or_default().to_owned();
    let secret = k["api_secret"].as_str().unwrap_or_default().to_owned();
    drop(s);
    let s = open(state.clone(), None);
    let names: Vec<String> = s
        .users()
        .iter()
        .map(|u| u["username"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["admin", "ops"]);
    assert!(s
        .login([127, 0, 0, 1].into(), "ops", "ops-password-1")
        .is_ok());
    assert!(s.check_api_key(&key, &secret).is_some());
    let stored = format!("{:?}", state.list(API_KEYS_KIND).expect("list"));
    assert!(!stored.contains(&secret), "{stored}");
    s.delete_user("ops").expect("delete");
    assert_eq!(state.list(ADMIN_USERS_KIND).expect("list").len(), 1);
    assert!(s.delete_user("admin").is_err(), "the last admin stays");
}

/// What another writer of the same store does reaches this view through `apply`; applying is
/// idempotent and never makes the view older than the store.
#[test]
fn changes_from_the_feed_update_the_view() {
    let state = memory_state();
    let mut feed = state.changes();
    let here = open(state.clone(), None);
    let there = open(state.clone(), None);
    let k = there.add_api_key("ci", "", true).expect("key");
    let key = k["api_key"].as_str().unwrap_or_default().to_owned();
    let secret = k["api_secret"].as_str().unwrap_or_default().to_owned();
    there.add_user("ops", "ops-password-1", "").expect("add");
    let changes: Vec<Change> = std::iter::from_fn(|| feed.try_recv().ok()).collect();
    // The default admin (created by `here`, then found by `there`), the key, the user.
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(here.check_api_key(&key, &secret).is_none());
    for c in &changes {
        here.apply(c).expect("apply");
        here.apply(c).expect("apply twice");
    }
    assert!(here.check_api_key(&key, &secret).is_some());
    let ip: IpAddr = [127, 0, 0, 1].into();
    let login = here.login(ip, "ops", "ops-password-1").expect("login");
    there.delete_api_key("ci").expect("delete");
    there.delete_user("ops").expect("delete");
    for c in std::iter::from_fn(|| feed.try_recv().ok()) {
        here.apply(&c).expect("apply");
    }
    assert!(here.check_api_key(&key, &secret).is_none());
    assert!(
        here.check_token(&login.token).is_none(),
        "a removed admin's token ends"
    );
    // A stale change replayed after the delete leaves the key deleted.
    here.apply(&changes[1]).expect("stale");
    assert!(here.check_api_key(&key, &secret).is_none());
    // Resync reads everything again.
    there.add_api_key("ci2", "", true).expect("key");
    here.resync().expect("resync");
    assert_eq!(here.api_keys().len(), 1);
}

#[test]
fn the_legacy_file_is_imported_once_and_renamed() {
    let dir = TempDir::new("legacy");
    let secret = "s3cr3t";
    let legacy = serde_json::json!({
        "users": [{
            "username": "root",
            "password_hash": hash_password("root-password").expect("hash"),
            "must_change_password": false,
            "description": "from before",
            "created_at": 1
        }],
        "api_keys": [{
            "name": "ci",
            "api_key": "abcd",
            "secret_hash": hash_secret("abcd", secret),
            "enable": true,
            "desc": "",
            "created_at": 2
        }]
    });
    std::fs::write(dir.0.join(LEGACY_ADMIN_FILE), legacy.to_string()).expect("write");
    let state = memory_state();
    let s = open(state.clone(), Some(&dir.0));
    assert!(s
        .login([127, 0, 0, 1].into(), "root", "root-password")
        .is_ok());
    assert!(
        s.login([127, 0, 0, 2].into(), "admin", "public").is_err(),
        "no default admin"
    );
    assert!(s.check_api_key("abcd", secret).is_some());
    assert!(!dir.0.join(LEGACY_ADMIN_FILE).exists());
    assert!(dir.0.join("admin.json.imported").exists());

    // A store that already has admins and keys leaves a legacy file alone.
    std::fs::write(dir.0.join(LEGACY_ADMIN_FILE), legacy.to_string()).expect("write");
    let other = memory_state();
    let first = open(other.clone(), None);
    first.add_api_key("mine", "", true).expect("key");
    let s = open(other, Some(&dir.0));
    assert!(s
        .login([127, 0, 0, 1].into(), "root", "root-password")
        .is_err());
    assert!(s.check_api_key("abcd", secret).is_none());

    std::fs::write(dir.0.join(LEGACY_ADMIN_FILE), "{not json").expect("write");
    let e = AuthStore::open(
        memory_state(),
        Some(&dir.0),
        "admin",
        "public",
        Duration::from_secs(60),
        3,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains(LEGACY_ADMIN_FILE), "{e}");
}
