//! JWT checks with tokens made here (and the spec's worked example, §6).

use super::*;
use crate::authn::{Authenticator, AuthnSettings, Credentials};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "switchyard-jwt-secret-0123456789";
const SPEC_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjbGllbnRpZCI6ImRldi0xIiwidXNlcm5hbWUiOiJkZXYtMSIsImV4cCI6NDEwMjQ0NDgwMCwiYWNsIjpbeyJwZXJtaXNzaW9uIjoiYWxsb3ciLCJhY3Rpb24iOiJwdWJsaXNoIiwidG9waWMiOiJkZXYvZGV2LTEvIyJ9XX0._UgZ_HZTYa41vmZ8svV9mWgmLSGwDKBFiBV_vVai5DI";

fn hmac(extra: Value) -> Jwt {
    let mut c = json!({"algorithm": "hmac-based", "secret": SECRET,
        "verify_claims": {"clientid": "${clientid}"}});
    if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
        o.extend(e);
    }
    let c: JwtConfig = serde_json::from_value(c).unwrap_or_else(|e| panic!("{e}"));
    Jwt::new(&c).unwrap_or_else(|e| panic!("{e}"))
}

fn check(j: &Jwt, client_id: &str, token: &str) -> Outcome {
    let builtin = Arc::new(Authenticator::in_memory(AuthnSettings::default()));
    let req = Request {
        creds: Credentials {
            client_id,
            username: Some(client_id),
            password: Some(token.as_bytes()),
            peer_ip: None,
            listener_authn_enabled: true,
        },
        builtin: &builtin,
    };
    j.decide(&req, SystemTime::now())
}

fn hs256(claims: Value, secret: &[u8]) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_spec_token_verifies_with_its_acl() {
    let j = hmac(json!({}));
    match check(&j, "dev-1", SPEC_TOKEN) {
        Outcome::Ok(g) => {
            assert!(!g.superuser);
            assert_eq!(g.acl.map(|a| a.len()), Some(1));
            assert!(g.expire_at.is_some());
        }
        other => panic!("{other:?}"),
    }
    // Base64 secret gives the same key.
    let j = hmac(
        json!({"secret": "c3dpdGNoeWFyZC1qd3Qtc2VjcmV0LTAxMjM0NTY3ODk=",
        "secret_base64_encoded": true}),
    );
    assert!(matches!(check(&j, "dev-1", SPEC_TOKEN), Outcome::Ok(_)));
    // verify_claims: another client id is refused.
    let j = hmac(json!({}));
    assert_eq!(
        check(&j, "dev-2", SPEC_TOKEN),
        Outcome::Error(DenyReason::BadCredentials)
    );
}

#[test]
fn bad_signatures_are_ignored_bad_claims_refused() {
    let j = hmac(json!({}));
    let far = 4_102_444_800u64;
    let wrong_key = hs256(json!({"clientid": "c", "exp": far}), b"another secret");
    assert!(matches!(check(&j, "c", &wrong_key), Outcome::Ignore(_)));
    // alg: none.
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"clientid":"c"}"#)
    );
    assert!(matches!(check(&j, "c", &none), Outcome::Ignore(_)));
    assert!(matches!(check(&j, "c", "not a token"), Outcome::Ignore(_)));
    assert!(matches!(check(&j, "c", ""), Outcome::Ignore(_)));
    let expired = hs256(json!({"clientid": "c", "exp": 1000}), SECRET.as_bytes());
    assert_eq!(
        check(&j, "c", &expired),
        Outcome::Error(DenyReason::BadCredentials)
    );
    let early = hs256(json!({"clientid": "c", "nbf": far}), SECRET.as_bytes());
    assert_eq!(
        check(&j, "c", &early),
        Outcome::Error(DenyReason::BadCredentials)
    );
    let string_exp = hs256(
        json!({"clientid": "c", "exp": far.to_string()}),
        SECRET.as_bytes(),
    );
    assert!(matches!(check(&j, "c", &string_exp), Outcome::Ok(_)));
    let missing = hs256(json!({"exp": far}), SECRET.as_bytes());
    assert_eq!(
        check(&j, "c", &missing),
        Outcome::Error(DenyReason::BadCredentials)
    );
    let su = hs256(
        json!({"clientid": "c", "is_superuser": true}),
        SECRET.as_bytes(),
    );
    assert!(matches!(
        check(&j, "c", &su),
        Outcome::Ok(Grant {
            superuser: true,
            ..
        })
    ));
    let bad_acl = hs256(json!({"clientid": "c", "acl": 5}), SECRET.as_bytes());
    assert_eq!(
        check(&j, "c", &bad_acl),
        Outcome::Error(DenyReason::BadCredentials)
    );
}

#[test]
fn config_errors() {
    for bad in [
        json!({"algorithm": "hmac-based"}),
        json!({"algorithm": "hmac-based", "secret": "***", "secret_base64_encoded": true}),
        json!({"algorithm": "public-key", "public_key": "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----"}),
        json!({"algorithm": "hmac-based", "secret": "s", "verify_claims": {"exp": "1"}}),
        json!({}),
    ] {
        let c: JwtConfig = serde_json::from_value(bad.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert!(Jwt::new(&c).is_err(), "{bad}");
    }
    let list: JwtConfig = serde_json::from_value(json!({"algorithm": "hmac-based", "secret": "s",
        "verify_claims": [{"name": "username", "value": "${username}"}]}))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(Jwt::new(&list).is_ok());
}

/// An EC P-256 key pair: (private PKCS#8 PEM, public PEM, JWK).
fn ec_key(kid: &str) -> (String, String, Value) {
    let kp = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let raw = kp.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65])});
    (kp.serialize_pem(), kp.public_key_pem(), jwk)
}

fn es256(claims: Value, private_pem: &str) -> String {
    let key = EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn es256_public_key() {
    let (private, public, _) = ec_key("k");
    let c: JwtConfig = serde_json::from_value(json!({"algorithm": "public-key",
        "public_key": public}))
    .unwrap_or_else(|e| panic!("{e}"));
    let j = Jwt::new(&c).unwrap_or_else(|e| panic!("{e}"));
    let token = es256(json!({"sub": "x"}), &private);
    assert!(matches!(check(&j, "c", &token), Outcome::Ok(_)));
    let (other, _, _) = ec_key("o");
    assert!(matches!(
        check(&j, "c", &es256(json!({}), &other)),
        Outcome::Ignore(_)
    ));
    // An HMAC token signed with the public key's text must not verify (algorithm confusion).
    let confused = hs256(json!({}), public.as_bytes());
    assert!(matches!(check(&j, "c", &confused), Outcome::Ignore(_)));
}

/// Whether `token` verifies within 25 s (a JWKS refresh is due).
async fn verifies_soon(j: &Jwt, token: &str) -> bool {
    for _ in 0..250 {
        if matches!(check(j, "c", token), Outcome::Ok(_)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A JWKS endpoint served here: fetched at creation, kept when a refresh fails, replaced when
/// it rotates (one refresh is 10 s, the shortest `refresh_interval`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_fetch_failure_and_rotation() {
    use axum::routing::get;
    let (k1, _, jwk1) = ec_key("k1");
    let (k2, _, jwk2) = ec_key("k2");
    let served: Arc<RwLock<Option<Value>>> = Arc::new(RwLock::new(Some(json!({"keys": [jwk1]}))));
    let s2 = served.clone();
    let app = axum::Router::new().route(
        "/jwks",
        get(move || {
            let s = s2.clone();
            async move {
                match s.read().clone() {
                    Some(v) => v.to_string(),
                    None => "not json".to_owned(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let c: JwtConfig = serde_json::from_value(json!({"use_jwks": true,
        "endpoint": format!("http://{addr}/jwks"), "refresh_interval": 1}))
    .unwrap_or_else(|e| panic!("{e}"));
    let j = Jwt::new(&c).unwrap_or_else(|e| panic!("{e}"));
    let t1 = es256(json!({"clientid": "c"}), &k1);
    let t2 = es256(json!({"clientid": "c"}), &k2);
    assert!(verifies_soon(&j, &t1).await, "first fetch");
    assert!(matches!(check(&j, "c", &t2), Outcome::Ignore(_)));
    // The endpoint breaks: the last good set stays.
    *served.write() = None;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(matches!(check(&j, "c", &t1), Outcome::Ok(_)));
    // Rotation: the new key verifies, the old one no longer does.
    *served.write() = Some(json!({"keys": [jwk2]}));
    assert!(verifies_soon(&j, &t2).await, "rotated");
    assert!(matches!(check(&j, "c", &t1), Outcome::Ignore(_)));
}
