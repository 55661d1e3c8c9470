//! Authenticator: the decision table, both algorithms, bootstrap import of both CSV types,
//! persistence, user CRUD.

use super::*;
use crate::hash::{derive, to_hex};

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
    let s = AuthnSettings {
        data_dir: Some(dir.0.join("data")),
        bootstrap_file: Some(csv.clone()),
        ..settings(false)
    };
    let a = Authenticator::open(s.clone()).expect("open");
    assert_eq!(a.authenticate(&creds(Some("alice"), Some(b"pw-a"))), ALLOW);
    assert_eq!(
        a.authenticate(&creds(Some("root"), Some(b"pw-r"))),
        AuthResult::Allow { superuser: true }
    );
    // The file holds hashes, never the passwords.
    let stored = std::fs::read_to_string(dir.0.join("data").join(USERS_FILE)).expect("read");
    assert!(
        !stored.contains("pw-a") && stored.contains("alice"),
        "{stored}"
    );
    // A password changed at run time survives a restart with the same bootstrap file.
    a.update_user("alice", Some("new"), None).expect("update");
    drop(a);
    let a = Authenticator::open(s).expect("reopen");
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
    let e = Authenticator::open(s).expect_err("must fail");
    assert!(e.to_string().contains("nope.csv"), "{e}");
    std::fs::write(dir.0.join(USERS_FILE), "{not json").expect("write");
    let e = Authenticator::open(AuthnSettings {
        data_dir: Some(dir.0.clone()),
        ..settings(true)
    })
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
