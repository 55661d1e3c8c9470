//! The worked examples of shared/specs/emqx-auth-api.md §8.3, which were computed with Python's
//! `hashlib` and `bcrypt`, plus EMQX's own test vectors.

use super::*;

const PW: &[u8] = b"public";
const SALT: &str = "e3f2a1b0c9d8e7f6a5b4c3d2e1f00112";

fn ok(alg: &PasswordHash, pw: &[u8], salt: Option<&str>, stored: &str) -> bool {
    alg.verify(pw, salt, stored).unwrap_or(false)
}

fn simple(name: &str, pos: &str) -> PasswordHash {
    serde_json::from_value(serde_json::json!({"name": name, "salt_position": pos}))
        .unwrap_or_else(|e| panic!("{name}/{pos}: {e}"))
}

#[test]
fn simple_algorithms_match_the_spec_table() {
    let table = [
        ("plain", "public", "e3f2a1b0c9d8e7f6a5b4c3d2e1f00112public", "publice3f2a1b0c9d8e7f6a5b4c3d2e1f00112"),
        ("md5", "4c9184f37cff01bcdc32dc486ec36961", "73247072a5ec08163576cafa7241ac56", "1fc6a4a2f7af167fe116a52f22d85865"),
        ("sha", "61c9b2b17db77a27841bbeeabff923448b0f6388", "4d776d2fdef86d4e75a298baffe6d1876b609e66", "1314b0a528dc256a1486f7ffdc9ce162c0b678ca"),
        ("sha256", "efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7", "be9f24d729851909030cf545f755db6a67e5d4c17b4c7400b96ff48c6bcf29f4", "e269f79a5035eb3b50c9bc1129ddc24494cee3fe828be62c9d563f04cfa741d5"),
        ("sha512", "d32997e9747b65a3ecf65b82533a4c843c4e16dd30cf371e8c81ab60a341de00051da422d41ff29c55695f233a1e06fac8b79aeb0a4d91ae5d3d18c8e09b8c73", "8c4da6e1f265343203cdc295cfaf238a65252984b8e635a61c6c6108d781a24b2d7d74dd3e757761b3d0bd1b170ef91cda1641c47aa30c13dcdf7b11637711e6", "9de1598eb0d301a339fdb47fcf72acfc7602f37fcdbad81e603a841c12562c2783cfed004beadf11114cab33d319a2c2ecc30d98aa55c11af0f39174d641104d"),
    ];
    for (name, disable, prefix, suffix) in table {
        for (pos, stored) in [("disable", disable), ("prefix", prefix), ("suffix", suffix)] {
            let alg = simple(name, pos);
            assert!(ok(&alg, PW, Some(SALT), stored), "{name}/{pos}");
            assert!(
                !ok(&alg, b"publix", Some(SALT), stored),
                "{name}/{pos} wrong password"
            );
            if name != "plain" {
                // Upper-case stored hex matches too (EMQX's suite checks it).
                assert!(
                    ok(&alg, PW, Some(SALT), &stored.to_ascii_uppercase()),
                    "{name}/{pos} upper"
                );
            }
        }
    }
}

#[test]
fn emqx_suite_vectors() {
    let salt = Some("salt");
    assert!(ok(
        &simple("md5", "disable"),
        b"password",
        salt,
        "5f4dcc3b5aa765d61d8327deb882cf99"
    ));
    assert!(ok(
        &simple("md5", "prefix"),
        b"password",
        salt,
        "67a1e09bb1f83f5007dc119c14d663aa"
    ));
    assert!(ok(
        &simple("sha", "prefix"),
        b"password",
        salt,
        "59b3e8d637cf97edbe2384cf59cb7453dfe30789"
    ));
    assert!(ok(
        &simple("sha256", "suffix"),
        b"password",
        salt,
        "7a37b85c8918eac19a9089c0fa5a2ab4dce3f90528dcdeec108b23ddf3607b99"
    ));
    assert!(ok(&simple("sha512", "suffix"), b"password", salt, "fa6a2185b3e0a9a85ef41ffb67ef3c1fb6f74980f8ebf970e4e72e353ed9537d593083c201dfd6e43e1c8a7aac2bc8dbb119c7dfb7d4b8f131111395bd70e97f"));
    assert!(ok(
        &simple("sha256", "prefix"),
        b"sha256",
        salt,
        "ac63a624e7074776d677dd61a003b8c803eb11db004d0ec6ae032a5d7c9c5caf"
    ));
    let pbkdf2 = PasswordHash::Pbkdf2 {
        mac_fun: MacFun::Sha,
        iterations: 2,
        dk_length: Some(32),
    };
    assert!(ok(
        &pbkdf2,
        b"password",
        Some("ATHENA.MIT.EDUraeburn"),
        "01dbee7f4a9e243e988b62c73cda935da05378b93244ec8f48a99e61ad799d86"
    ));
}

#[test]
fn pbkdf2_matches_the_spec_table() {
    let cases = [
        (
            MacFun::Sha256,
            4096,
            None,
            "ecea05975fcd738abdccf2564df6c48fef68d49007e072c6eeee4cfdf1211cac",
        ),
        (
            MacFun::Sha512,
            1000,
            Some(32),
            "767e21028a8049f5b125274e425a3617e04b4cf01756f13148607cbcdc8da3a5",
        ),
        (
            MacFun::Sha,
            1000,
            None,
            "b49a00ff6f04eb212ac63631310690ab537ac5c2",
        ),
    ];
    for (mac_fun, iterations, dk_length, stored) in cases {
        let alg = PasswordHash::Pbkdf2 {
            mac_fun,
            iterations,
            dk_length,
        };
        assert!(ok(&alg, PW, Some(SALT), stored), "{mac_fun:?}");
        assert!(
            !ok(&alg, b"nope", Some(SALT), stored),
            "{mac_fun:?} wrong password"
        );
    }
}

#[test]
fn bcrypt_vectors_of_every_prefix() {
    let alg = PasswordHash::Bcrypt { salt_rounds: None };
    let b = "$2b$10$abcdefghijklmnopqrstuuqB133muLbebjZ9nczmeCmyhpAaUpSbK";
    assert!(ok(&alg, PW, None, b));
    assert!(ok(
        &alg,
        PW,
        Some("ignored"),
        &b.replacen("$2b$", "$2a$", 1)
    ));
    assert!(ok(&alg, PW, None, &b.replacen("$2b$", "$2y$", 1)));
    assert!(!ok(&alg, b"Public", None, b));
    assert!(!ok(&alg, PW, None, "not a bcrypt hash"));
    assert!(ok(
        &alg,
        b"password",
        None,
        "$2b$12$wtY3h20mUjjmeaClpqZVvehyw7F.V78F3rbK2xDkCzRTMi6pmfUB6"
    ));
    assert!(ok(
        &alg,
        b"bcrypt",
        None,
        "$2b$12$wtY3h20mUjjmeaClpqZVveDWGlHzCGsvuThMlneGHA7wVeFYyns2u"
    ));
}

#[test]
fn a_null_salt_is_an_error_only_where_a_salt_is_used() {
    assert_eq!(
        simple("sha256", "prefix").verify(PW, None, "x"),
        Err(PasswdError::SaltNotString)
    );
    assert!(ok(
        &simple("md5", "disable"),
        PW,
        None,
        "4c9184f37cff01bcdc32dc486ec36961"
    ));
}

#[test]
fn plain_compares_case_insensitively_as_emqx() {
    assert!(ok(&simple("plain", "disable"), b"Secret", None, "secret"));
}

#[test]
fn config_shapes() {
    let d: PasswordHash = serde_json::from_value(serde_json::json!({"name": "sha256"}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d, PasswordHash::default());
    let bad = serde_json::from_value::<PasswordHash>(serde_json::json!({"name": "sha256", "x": 1}));
    assert!(bad.is_err());
    let p: PasswordHash = serde_json::from_value(
        serde_json::json!({"name": "pbkdf2", "mac_fun": "sha256", "iterations": 0}),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.validate().is_err());
}
