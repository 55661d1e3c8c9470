//! Authenticator: the decision table, both algorithms, bootstrap import of both CSV types,
//! persistence in the state store, the store's feed, the import of the legacy file, user CRUD.

use super::*;
use crate::hash::{derive, to_hex};
use std::sync::Arc;
use switchyard_state::{Change, Feed, SqliteState, StateStore, StateView};

fn memory_state() -> SharedState {
    Arc::new(SqliteState::in_memory().expect("in-memory state"))
}

fn settings(allow_anonymous: bool) -> AuthnSettings {
    AuthnSettings {
        allow_anonymous,
        ..AuthnSettings::default()
    }
}

fn creds<'a>(username: Option<&'a str>, password: Option<&'a [u8]>) -> Credentials<'a> {
    Credentials {
        client_id: "c1",
        username,
        password,
        peer_ip: None,
        listener_authn_enabled: true,
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "switchyard-auth-{name}-{}-{}",
            std::process::id(),
            hash::new_salt()
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

const ALLOW: AuthResult = AuthResult::Allow { superuser: false };

#[test]
fn known_user_needs_the_right_password_even_with_anonymous_allowed() {
    for alg in [HashAlgorithm::Argon2, HashAlgorithm::Pbkdf2Sha256] {
        let a = Authenticator::in_memory(AuthnSettings {
            algorithm: alg,
            ..settings(true)
        });
        a.add_user("alice", "s3cret", false).expect("add");
        assert_eq!(
            a.authenticate(&creds(Some("alice"), Some(b"s3cret"))),
            ALLOW
        );
        assert_eq!(
            a.authenticate(&creds(Some("alice"), Some(b"wrong"))),
            AuthResult::Deny(DenyReason::BadCredentials),
            "{alg:?}"
        );
        assert_eq!(
            a.authenticate(&creds(Some("alice"), None)),
            AuthResult::Deny(DenyReason::BadCredentials)
        );
        // Unknown users and no credentials are anonymous: allowed here.
        assert_eq!(a.authenticate(&creds(Some("bob"), Some(b"x"))), ALLOW);
        assert_eq!(a.authenticate(&creds(None, None)), ALLOW);
    }
}

#[test]
fn anonymous_off_refuses_unknown_and_missing_credentials() {
    let a = Authenticator::in_memory(settings(false));
    a.add_user("alice", "pw", true).expect("add");
    assert_eq!(
        a.authenticate(&creds(Some("alice"), Some(b"pw"))),
        AuthResult::Allow { superuser: true }
    );
    assert_eq!(
        a.authenticate(&creds(None, None)),
        AuthResult::Deny(DenyReason::NotAuthorized)
    );
    assert_eq!(
        a.authenticate(&creds(Some("bob"), Some(b"pw"))),
        AuthResult::Deny(DenyReason::BadCredentials)
    );
    // A listener with enable_authn = false lets everyone in.
    let mut c = creds(None, None);
    c.listener_authn_enabled = false;
    assert_eq!(a.authenticate(&c), ALLOW);
}

#[test]
fn user_id_type_clientid_keys_by_client_id() {
    let a = Authenticator::in_memory(AuthnSettings {
        user_id_type: UserIdType::Clientid,
        algorithm: HashAlgorithm::Pbkdf2Sha256,
        ..settings(false)
    });
    a.add_user("c1", "pw", false).expect("add");
    assert_eq!(a.authenticate(&creds(Some("anyone"), Some(b"pw"))), ALLOW);
    assert_eq!(
        a.authenticate(&creds(None, Some(b"nope"))),
        AuthResult::Deny(DenyReason::BadCredentials)
    );
}

#[test]
fn crud() {
    let a = Authenticator::in_memory(AuthnSettings {
        algorithm: HashAlgorithm::Pbkdf2Sha256,
        ..settings(false)
    });
    a.add_user("u1", "a", false).expect("add");
    assert!(matches!(
        a.add_user("u1", "b", false),
        Err(AuthError::AlreadyExists(_))
    ));
    assert!(matches!(
        a.add_user("", "b", false),
        Err(AuthError::EmptyUserId)
    ));
    let info = a.update_user("u1", Some("b"), Some(true)).expect("update");
    assert!(info.is_superuser);
    assert_eq!(
        a.authenticate(&creds(Some("u1"), Some(b"a"))),
        AuthResult::Deny(DenyReason::BadCredentials)
    );
    assert_eq!(
        a.authenticate(&creds(Some("u1"), Some(b"b"))),
        AuthResult::Allow { superuser: true }
    );
    assert_eq!(
        a.list_users(),
        vec![UserInfo {
            user_id: "u1".into(),
            is_superuser: true
        }]
    );
    assert!(matches!(
        a.update_user("nobody", None, Some(true)),
        Err(AuthError::NotFound(_))
    ));
    a.delete_user("u1").expect("delete");
    assert!(a.get_user("u1").is_none());
    assert!(matches!(a.delete_user("u1"), Err(AuthError::NotFound(_))));
}

#[test]
fn plain_bootstrap_is_hashed_persisted_and_never_overwrites() {
    let dir = TempDir::new("plain");
    let csv = dir.0.join("users.csv");
    std::fs::write(
        &csv,
        "user_id,password,is_superuser\nalice,pw-a,false\nroot,pw-r,true\n",
    )
    .expect("write");
    let data = dir.0.join("data");
    let s = AuthnSettings {
        data_dir: Some(data.clone()),
        bootstrap_file: Some(csv.clone()),
        ..settings(false)
    };
    let state: SharedState = Arc::new(SqliteState::open(&data).expect("state"));
    let a = Authenticator::open(s.clone(), state.clone()).expect("open");
    assert_eq!(a.authenticate(&creds(Some("alice"), Some(b"pw-a"))), ALLOW);
    assert_eq!(
        a.authenticate(&creds(Some("root"), Some(b"pw-r"))),
        AuthResult::Allow { superuser: true }
    );
    // The store holds hashes, never the passwords.
    let stored = format!("{:?}", state.list(USERS_KIND).expect("list"));
    assert!(
        !stored.contains("pw-a") && stored.contains("alice"),
        "{stored}"
    );
    // A password changed at run time survives a restart with the same bootstrap file.
    a.update_user("alice", Some("new"), None).expect("update");
    drop((a, state));
    let state: SharedState = Arc::new(SqliteState::open(&data).expect("reopen state"));
    let a = Authenticator::open(s, state).expect("reopen");
    assert_eq!(a.authenticate(&creds(Some("alice"), Some(b"new"))), ALLOW);
    assert_eq!(
        a.authenticate(&creds(Some("alice"), Some(b"pw-a"))),
        AuthResult::Deny(DenyReason::BadCredentials)
    );
}

#[test]
fn hash_bootstrap_for_both_algorithms() {
    for alg in [HashAlgorithm::Argon2, HashAlgorithm::Pbkdf2Sha256] {
        let salt = "0123456789abcdef";
        let h = to_hex(&derive(alg, b"devpass", salt.as_bytes()).expect("hash"));
        let a = Authenticator::in_memory(AuthnSettings {
            algorithm: alg,
            bootstrap_type: BootstrapType::Hash,
            ..settings(false)
        });
        let csv = format!("user_id,password_hash,salt,is_superuser\ndev1,{h},{salt},false\n");
        assert_eq!(a.import_csv(&csv, BootstrapType::Hash).expect("import"), 1);
        assert_eq!(
            a.authenticate(&creds(Some("dev1"), Some(b"devpass"))),
            ALLOW
        );
        assert_eq!(
            a.authenticate(&creds(Some("dev1"), Some(b"devpasS"))),
            AuthResult::Deny(DenyReason::BadCredentials),
            "{alg:?}"
        );
        // Importing again adds nothing.
        assert_eq!(a.import_csv(&csv, BootstrapType::Hash).expect("import"), 0);
    }
    let a = Authenticator::in_memory(settings(false));
    let bad = "user_id,password_hash,salt\nx,nothex,salt\n";
    assert!(a.import_csv(bad, BootstrapType::Hash).is_err());
}

#[test]
fn missing_bootstrap_file_is_an_error_and_corrupt_db_too() {
    let dir = TempDir::new("missing");
    let s = AuthnSettings {
        data_dir: Some(dir.0.clone()),
        bootstrap_file: Some(dir.0.join("nope.csv")),
        ..settings(true)
    };
    let e = Authenticator::open(s, memory_state()).expect_err("must fail");
    assert!(e.to_string().contains("nope.csv"), "{e}");
    std::fs::write(dir.0.join(LEGACY_USERS_FILE), "{not json").expect("write");
    let e = Authenticator::open(
        AuthnSettings {
            data_dir: Some(dir.0.clone()),
            ..settings(true)
        },
        memory_state(),
    )
    .expect_err("must fail");
    assert!(matches!(e, AuthError::Corrupt { .. }), "{e}");
}

#[test]
fn debug_output_hides_hashes() {
    let a = Authenticator::in_memory(settings(true));
    a.add_user("alice", "pw", false).expect("add");
    let text = format!("{a:?}");
    let salt_shown = a.users.read().values().any(|r| text.contains(&r.salt));
    assert!(!salt_shown && !text.contains("password_hash"), "{text}");
}

/// A verified password is remembered (no second hash), but never past a password change or a
/// delete, and a wrong password is always refused.
#[test]
fn verified_passwords_are_remembered_only_while_the_user_is_unchanged() {
    let a = Authenticator::in_memory(settings(false));
    a.add_user("dev", "right", false).expect("add");
    let ok = AuthResult::Allow { superuser: false };
    let bad = AuthResult::Deny(DenyReason::BadCredentials);
    assert_eq!(a.authenticate(&creds(Some("dev"), Some(b"right"))), ok);
    assert_eq!(
        a.authenticate(&creds(Some("dev"), Some(b"right"))),
        ok,
        "from the cache"
    );
    assert_eq!(a.authenticate(&creds(Some("dev"), Some(b"wrong"))), bad);
    assert_eq!(a.authenticate(&creds(Some("dev"), Some(b"right"))), ok);
    a.update_user("dev", Some("new"), None).expect("update");
    assert_eq!(
        a.authenticate(&creds(Some("dev"), Some(b"right"))),
        bad,
        "old password"
    );
    assert_eq!(a.authenticate(&creds(Some("dev"), Some(b"new"))), ok);
    a.update_user("dev", None, Some(true)).expect("superuser");
    assert_eq!(
        a.authenticate(&creds(Some("dev"), Some(b"new"))),
        AuthResult::Allow { superuser: true },
        "the flag comes from the user, not the cache"
    );
    a.delete_user("dev").expect("delete");
    assert_eq!(a.authenticate(&creds(Some("dev"), Some(b"new"))), bad);
    a.add_user("dev", "new", false).expect("re-add");
    assert_eq!(a.authenticate(&creds(Some("dev"), Some(b"new"))), ok);
}

/// A user file of an earlier version, with one PBKDF2 user `dev1` / `devpass` (superuser).
fn legacy_file(dir: &Path) {
    let salt = "0123456789abcdef";
    let h = to_hex(&derive(HashAlgorithm::Pbkdf2Sha256, b"devpass", salt.as_bytes()).expect("h"));
    let text = format!(
        r#"{{"users": {{"dev1": {{"algorithm": "pbkdf2_sha256", "password_hash": "{h}",
            "salt": "{salt}", "is_superuser": true}}}}}}"#
    );
    std::fs::write(dir.join(LEGACY_USERS_FILE), text).expect("write");
}

#[test]
fn the_legacy_file_is_imported_once_into_an_empty_store_and_renamed() {
    let dir = TempDir::new("legacy");
    legacy_file(&dir.0);
    let state = memory_state();
    let s = AuthnSettings {
        data_dir: Some(dir.0.clone()),
        ..settings(false)
    };
    let a = Authenticator::open(s.clone(), state.clone()).expect("open");
    assert_eq!(
        a.authenticate(&creds(Some("dev1"), Some(b"devpass"))),
        AuthResult::Allow { superuser: true }
    );
    assert_eq!(state.list(USERS_KIND).expect("list").len(), 1);
    assert!(!dir.0.join(LEGACY_USERS_FILE).exists());
    assert!(dir.0.join("authn_users.json.imported").exists());

    // A store that already has users leaves a legacy file alone.
    legacy_file(&dir.0);
    let other = memory_state();
    other
        .put(
            USERS_KIND,
            "someone",
            &serde_json::json!({"algorithm": "argon2",
            "password_hash": "00", "salt": "s", "is_superuser": false}),
        )
        .expect("put");
    let b = Authenticator::open(s, other).expect("open");
    assert!(b.get_user("dev1").is_none());
    assert!(dir.0.join(LEGACY_USERS_FILE).exists());
}

#[test]
fn a_document_that_is_not_a_user_fails_the_start() {
    let state = memory_state();
    state
        .put(USERS_KIND, "x", &serde_json::json!({"nope": 1}))
        .expect("put");
    let e = Authenticator::open(settings(false), state).expect_err("must fail");
    assert!(matches!(e, AuthError::State(_)), "{e}");
}

/// What another writer of the same store (another node, once replicated) does reaches this
/// authenticator's view through `apply`; applying is idempotent and never makes the view older.
#[test]
fn changes_from_the_feed_update_the_view() {
    let state = memory_state();
    let mut feed = state.changes();
    let s = AuthnSettings {
        algorithm: HashAlgorithm::Pbkdf2Sha256,
        ..settings(false)
    };
    let here = Authenticator::open(s.clone(), state.clone()).expect("open");
    let there = Authenticator::open(s, state.clone()).expect("open");
    there.add_user("u", "pw", false).expect("add");
    there.update_user("u", Some("pw2"), None).expect("update");
    let changes: Vec<Change> = std::iter::from_fn(|| feed.try_recv().ok()).collect();
    assert_eq!(changes.len(), 2);
    // The first (older) change already brings the latest document.
    here.apply(&changes[0]).expect("apply");
    assert_eq!(
        here.authenticate(&creds(Some("u"), Some(b"pw2"))),
        ALLOW,
        "the store's latest, not the change's"
    );
    assert_eq!(
        here.authenticate(&creds(Some("u"), Some(b"pw"))),
        AuthResult::Deny(DenyReason::BadCredentials)
    );
    here.apply(&changes[1]).expect("apply again");
    assert_eq!(here.list_users().len(), 1);
    there.delete_user("u").expect("delete");
    let deleted = feed.try_recv().expect("delete change");
    assert_eq!(deleted.value, None);
    here.apply(&deleted).expect("apply delete");
    assert_eq!(
        here.authenticate(&creds(Some("u"), Some(b"pw2"))),
        AuthResult::Deny(DenyReason::BadCredentials)
    );
    // A stale change replayed after the delete leaves the user deleted.
    here.apply(&changes[0]).expect("stale");
    assert!(here.get_user("u").is_none());
    // Other kinds are not ours.
    state
        .put("api_keys", "u", &serde_json::json!({}))
        .expect("put");
    here.apply(&Change {
        kind: "api_keys".into(),
        key: "u".into(),
        value: Some(serde_json::json!({})),
    })
    .expect("ignored");
    assert!(here.get_user("u").is_none());
}

#[test]
fn resync_reloads_the_whole_view() {
    let state = memory_state();
    let s = AuthnSettings {
        algorithm: HashAlgorithm::Pbkdf2Sha256,
        ..settings(false)
    };
    let here = Authenticator::open(s.clone(), state.clone()).expect("open");
    here.add_user("old", "pw", false).expect("add");
    let there = Authenticator::open(s, state.clone()).expect("open");
    there.delete_user("old").expect("delete");
    there.add_user("new", "pw", true).expect("add");
    here.resync().expect("resync");
    let ids: Vec<String> = here.list_users().into_iter().map(|u| u.user_id).collect();
    assert_eq!(ids, ["new"]);
}

fn refused() -> StateError {
    StateError::Dir {
        path: "read-only".into(),
        error: std::io::Error::other("read-only store"),
    }
}

/// A store that refuses every write.
#[derive(Debug)]
struct ReadOnly(SqliteState);

impl StateStore for ReadOnly {
    fn get(&self, kind: &str, key: &str) -> Result<Option<serde_json::Value>, StateError> {
        self.0.get(kind, key)
    }
    fn put(&self, _: &str, _: &str, _: &serde_json::Value) -> Result<(), StateError> {
        Err(refused())
    }
    fn put_many(&self, _: &str, _: &[(String, serde_json::Value)]) -> Result<(), StateError> {
        Err(refused())
    }
    fn delete(&self, _: &str, _: &str) -> Result<bool, StateError> {
        Err(refused())
    }
    fn list(&self, kind: &str) -> Result<Vec<(String, serde_json::Value)>, StateError> {
        self.0.list(kind)
    }
    fn changes(&self) -> Feed {
        self.0.changes()
    }
}

#[test]
fn a_write_the_store_refuses_leaves_the_view_unchanged() {
    let state: SharedState = Arc::new(ReadOnly(SqliteState::in_memory().expect("state")));
    let a = Authenticator::open(settings(false), state).expect("open");
    assert!(matches!(
        a.add_user("u", "pw", false),
        Err(AuthError::State(_))
    ));
    assert!(a.get_user("u").is_none());
    let csv = "user_id,password,is_superuser\nalice,pw-a,false\n";
    assert!(a.import_csv(csv, BootstrapType::Plain).is_err());
    assert!(a.list_users().is_empty());
}
