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
