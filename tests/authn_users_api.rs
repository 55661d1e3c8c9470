//! The built-in user database over EMQX's REST API
//! (`/api/v5/authentication/password_based:built_in_database/users`, see
//! EMQX 5.8's REST contract) against the real binary: a user created there logs in over
//! MQTT at once, a changed password or a deleted user stops working at once, and the answers
//! have EMQX's shapes and status codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use admin_support::Api;
use common::mqtt::{options, Client};
use common::Broker;
use reqwest::StatusCode;
use serde_json::{json, Value};

const USERS: &str = "/api/v5/authentication/password_based:built_in_database/users";

fn start() -> Broker {
    Broker::start_with(
        "[authentication]\nallow_anonymous = false\npassword_hash_algorithm = \"pbkdf2_sha256\"\n\
         [gateway.lwm2m]\nenable = false\n",
    )
}

/// Connects over MQTT 3.1.1 with credentials; `Err` carries why it was refused.
async fn mqtt_login(broker: &Broker, id: &str, user: &str, pw: &str) -> Result<Client, String> {
    let mut o = options(broker.mqtt_addr(), id);
    o.set_credentials(user, pw);
    Client::try_connect_with(o).await
}

#[tokio::test]
async fn a_user_created_over_the_api_logs_in_over_mqtt_at_once() {
    let broker = start();
    let api = Api::ready(&broker).await;

    let (s, v) = api.get(USERS).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"], json!([]));
    assert_eq!(v["meta"]["count"], json!(0));

    let refused = mqtt_login(&broker, "dev-1", "sensor-1", "s3cret").await;
    assert!(refused.is_err(), "unknown user with anonymous off");

    let new = json!({ "user_id": "sensor-1", "password": "s3cret", "is_superuser": false });
    let (s, v) = api.send("POST", USERS, Some(new.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v, json!({ "user_id": "sensor-1", "is_superuser": false }));

    let client = mqtt_login(&broker, "dev-1", "sensor-1", "s3cret")
        .await
        .expect("the new user logs in right away");
    client.disconnect().await;
    assert!(mqtt_login(&broker, "dev-1b", "sensor-1", "wrong")
        .await
        .is_err());

    let (s, v) = api.send("POST", USERS, Some(new)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], json!("ALREADY_EXISTS"));

    let (s, v) = api.get(&format!("{USERS}/sensor-1")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({ "user_id": "sensor-1", "is_superuser": false }));

    // A new password replaces the old one at once, for the next login.
    let (s, v) = api
        .send(
            "PUT",
            &format!("{USERS}/sensor-1"),
            Some(json!({ "password": "n3w", "is_superuser": true })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({ "user_id": "sensor-1", "is_superuser": true }));
    assert!(mqtt_login(&broker, "dev-2", "sensor-1", "s3cret")
        .await
        .is_err());
    mqtt_login(&broker, "dev-3", "sensor-1", "n3w")
        .await
        .expect("the new password works")
        .disconnect()
        .await;

    let (s, _) = api.send("DELETE", &format!("{USERS}/sensor-1"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(mqtt_login(&broker, "dev-4", "sensor-1", "n3w")
        .await
        .is_err());
    let (s, v) = api.get(&format!("{USERS}/sensor-1")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["code"], json!("NOT_FOUND"));
    let (s, _) = api.send("DELETE", &format!("{USERS}/sensor-1"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn listing_pages_and_filters_and_bad_requests() {
    let broker = start();
    let api = Api::ready(&broker).await;
    for (id, su) in [("a-1", false), ("a-2", true), ("b-1", false)] {
        let body = json!({ "user_id": id, "password": "pw", "is_superuser": su });
        let (s, v) = api.send("POST", USERS, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // is_superuser may be left out: false.
    let (s, v) = api
        .send(
            "POST",
            USERS,
            Some(json!({ "user_id": "c-1", "password": "pw" })),
        )
        .await;
    assert_eq!(
        (s, &v["is_superuser"]),
        (StatusCode::CREATED, &json!(false))
    );

    let ids = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["user_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (s, v) = api.get(&format!("{USERS}?page=2&limit=2")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), ["b-1", "c-1"]);
    assert_eq!(v["meta"]["page"], json!(2));
    assert_eq!(v["meta"]["limit"], json!(2));
    assert_eq!(v["meta"]["count"], json!(4));
    let (_, v) = api.get(&format!("{USERS}?like_user_id=a-")).await;
    assert_eq!(ids(&v), ["a-1", "a-2"]);
    let (_, v) = api.get(&format!("{USERS}?is_superuser=true")).await;
    assert_eq!(ids(&v), ["a-2"]);
    // The id may come percent-encoded.
    let (s, v) = api
        .get("/api/v5/authentication/password_based%3Abuilt_in_database/users/a-2")
        .await;
    assert_eq!((s, &v["is_superuser"]), (StatusCode::OK, &json!(true)));

    let (s, v) = api.get(&format!("{USERS}?page=0")).await;
    assert_eq!(
        (s, &v["code"]),
        (StatusCode::BAD_REQUEST, &json!("INVALID_PARAMETER"))
    );
    let (s, v) = api
        .send("POST", USERS, Some(json!({ "user_id": "no-password" })))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = api
        .send(
            "POST",
            USERS,
            Some(json!({ "user_id": "", "password": "pw" })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = api
        .send("PUT", &format!("{USERS}/a-1"), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = api
        .send(
            "PUT",
            &format!("{USERS}/nobody"),
            Some(json!({ "is_superuser": true })),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // Only the built-in database has users (EMQX's "User error").
    let (s, v) = api
        .get("/api/v5/authentication/password_based:http/users")
        .await;
    assert_eq!(
        (s, &v["code"]),
        (StatusCode::BAD_REQUEST, &json!("BAD_REQUEST"))
    );
    // Like every management route, it needs a token.
    let r = api.http.get(api.url(USERS)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
