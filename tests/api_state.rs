//! State made through the REST API lives in the API-state store (`<data_dir>/state.db`) against
//! the real binary: a built-in user, an API key and the admin's changed password survive a
//! SIGKILL and a restart on the same data directory; the JSON files of earlier versions
//! (`authn_users.json`, `admin.json`) are imported on the first start and renamed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use admin_support::{Api, NEW_PWD};
use common::mqtt::{options, Client};
use common::node::Node;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

const USERS: &str = "/api/v5/authentication/password_based:built_in_database/users";

const CONFIG: &str = "[authentication]\nallow_anonymous = false\n\
    password_hash_algorithm = \"pbkdf2_sha256\"\n[gateway.lwm2m]\nenable = false\n";

/// A client of the node's current dashboard listener, not logged in.
fn api(node: &Node) -> Api {
    Api {
        base: format!("http://{}", node.listener("dashboard:http:default")),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        token: String::new(),
    }
}

/// Logs in as `user`; the token, and whether a password change is still required.
async fn login(api: &mut Api, user: &str, pwd: &str) -> Result<bool, Value> {
    let (s, v) = api.login(user, pwd).await;
    if s != StatusCode::OK {
        return Err(v);
    }
    api.token = v["token"].as_str().unwrap().to_owned();
    Ok(v["must_change_password"] == json!(true))
}

/// Connects over MQTT 3.1.1 with credentials; `Err` carries why it was refused.
async fn mqtt_login(addr: SocketAddr, id: &str, user: &str, pw: &str) -> Result<Client, String> {
    let mut o = options(addr, id);
    o.set_credentials(user, pw);
    Client::try_connect_with(o).await
}

/// `GET /api/v5/clients` with HTTP Basic `key:secret`.
async fn with_key(api: &Api, key: &str, secret: &str) -> StatusCode {
    api.http
        .get(api.url("/api/v5/clients"))
        .basic_auth(key, Some(secret))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn users_and_api_keys_survive_sigkill() {
    let mut node = Node::with_config("api-state-kill", CONFIG);
    let mqtt = node.start();
    let mut a = api(&node);
    assert_eq!(login(&mut a, "admin", "public").await, Ok(true));
    let (s, v) = a
        .send(
            "POST",
            "/api/v5/users/admin/change_pwd",
            Some(json!({ "old_pwd": "public", "new_pwd": NEW_PWD })),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let user = json!({ "user_id": "sensor-1", "password": "s3cret", "is_superuser": false });
    let (s, v) = a.send("POST", USERS, Some(user)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, key) = a
        .send("POST", "/api/v5/api_key", Some(json!({ "name": "ci" })))
        .await;
    assert_eq!(s, StatusCode::OK, "{key}");
    let (k, secret) = (
        key["api_key"].as_str().unwrap().to_owned(),
        key["api_secret"].as_str().unwrap().to_owned(),
    );
    mqtt_login(mqtt, "dev-1", "sensor-1", "s3cret")
        .await
        .expect("logs in before the kill")
        .disconnect()
        .await;
    assert_eq!(with_key(&a, &k, &secret).await, StatusCode::OK);

    node.kill();
    let data = node.data_dir();
    assert!(data.join("state.db").exists());
    for old in ["admin.json", "authn_users.json"] {
        assert!(!data.join(old).exists(), "{old} is no longer written");
    }

    let mqtt = node.start();
    mqtt_login(mqtt, "dev-2", "sensor-1", "s3cret")
        .await
        .expect("the built-in user logs in after the restart");
    assert!(
        mqtt_login(mqtt, "dev-3", "sensor-1", "wrong")
            .await
            .is_err(),
        "and only with its password"
    );
    let mut a = api(&node);
    assert_eq!(with_key(&a, &k, &secret).await, StatusCode::OK);
    assert_eq!(
        with_key(&a, &k, "wrong").await,
        StatusCode::UNAUTHORIZED,
        "the key still checks its secret"
    );
    assert!(login(&mut a, "admin", "public").await.is_err());
    assert_eq!(login(&mut a, "admin", NEW_PWD).await, Ok(false));
    let (s, v) = a.get(USERS).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"],
        json!([{ "user_id": "sensor-1", "is_superuser": false }])
    );
    let (_, keys) = a.get("/api/v5/api_key").await;
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
}

/// PBKDF2-SHA256 of `legacy-device-pw` with salt `0123456789abcdef` (4096 rounds, 32 bytes).
const DEVICE_HASH: &str = "b0f676ab69d4f79ee4b5fdd29659e6a0f3cdbd4df43a31c149ad3e730bb536fc";
/// argon2id (PHC) of `legacy-admin-pw`.
const ADMIN_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bGVnYWN5LXNhbHQtMDAwMQ$2H2CsUPJCVfWQxy7ByDSOcGq086DHhr/1+v14Bhie2U";
/// BLAKE2b-512 of `0a1b2c3d4e5f6071`, a zero byte, `legacy-api-secret`.
const KEY_HASH: &str = "84b284102fa3a1dc8bcf05bf9267a0c99337d5b1385bbb3dfda93d879f492f2a\
                        49c24ef5f3a6e7e204502fe54b5918f84557ed19b2ca240570ee0411ac63d9e2";

#[tokio::test]
async fn the_files_of_earlier_versions_are_imported_on_the_first_start() {
    let mut node = Node::with_config("api-state-legacy", CONFIG);
    let data = node.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let users = json!({ "users": { "dev-legacy": {
        "algorithm": "pbkdf2_sha256",
        "password_hash": DEVICE_HASH,
        "salt": "0123456789abcdef",
        "is_superuser": true
    }}});
    std::fs::write(data.join("authn_users.json"), users.to_string()).unwrap();
    let admin = json!({
        "users": [{
            "username": "root",
            "password_hash": ADMIN_HASH,
            "must_change_password": false,
            "description": "from before",
            "created_at": 1_700_000_000_000u64
        }],
        "api_keys": [{
            "name": "legacy-ci",
            "api_key": "0a1b2c3d4e5f6071",
            "secret_hash": KEY_HASH,
            "enable": true,
            "desc": "",
            "created_at": 1_700_000_000_000u64
        }]
    });
    std::fs::write(data.join("admin.json"), admin.to_string()).unwrap();

    let mqtt = node.start();
    let log = node.log();
    assert!(
        log.contains("built-in users imported into the state store"),
        "{log}"
    );
    assert!(
        log.contains("dashboard admins and API keys imported into the state store"),
        "{log}"
    );
    for old in ["admin.json", "authn_users.json"] {
        assert!(!data.join(old).exists(), "{old} renamed");
        assert!(
            data.join(format!("{old}.imported")).exists(),
            "{old}.imported"
        );
    }
    mqtt_login(mqtt, "dev-1", "dev-legacy", "legacy-device-pw")
        .await
        .expect("the imported user logs in")
        .disconnect()
        .await;
    let mut a = api(&node);
    assert_eq!(
        with_key(&a, "0a1b2c3d4e5f6071", "legacy-api-secret").await,
        StatusCode::OK
    );
    assert!(
        login(&mut a, "admin", "public").await.is_err(),
        "no default admin next to imported ones"
    );
    assert_eq!(login(&mut a, "root", "legacy-admin-pw").await, Ok(false));

    // A second start imports nothing again: the store has them.
    node.kill();
    let mqtt = node.start();
    assert!(!node.log().contains("imported into the state store"));
    assert!(mqtt_login(mqtt, "dev-2", "dev-legacy", "legacy-device-pw")
        .await
        .is_ok());
}
