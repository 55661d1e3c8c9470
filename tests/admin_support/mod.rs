//! Shared by the admin API tests: a reqwest client that logs in (and changes the forced
//! password) and small waits on `/api/v5/clients`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crate::common::Broker;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

pub const NEW_PWD: &str = "correct-horse-9";

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub token: String,
}

impl Api {
    pub fn new(broker: &Broker) -> Api {
        Api {
            base: format!("http://{}", broker.listener("dashboard:http:default")),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            token: String::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn login(&self, user: &str, pwd: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url("/api/v5/login"))
            .json(&json!({ "username": user, "password": pwd }))
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// An API client for the dashboard listening at `addr` (host:port), not logged in.
    pub fn at(addr: &str) -> Api {
        Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            token: String::new(),
        }
    }

    /// [`Api::ready`] for the dashboard at `addr` (a node started by `common::node`).
    pub async fn ready_at(addr: &str) -> Api {
        Self::become_ready(Api::at(addr)).await
    }

    /// Logs in with the password [`Api::ready`] set (a restarted node keeps it).
    pub async fn login_at(addr: &str) -> Api {
        let mut api = Api::at(addr);
        let (s, v) = api.login("admin", NEW_PWD).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        api.token = v["token"].as_str().unwrap().to_owned();
        api
    }

    /// Logs in as the default admin and changes the password: a token that may do anything.
    pub async fn ready(broker: &Broker) -> Api {
        Self::become_ready(Api::new(broker)).await
    }

    async fn become_ready(mut api: Api) -> Api {
        let (s, v) = api.login("admin", "public").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        api.token = v["token"].as_str().unwrap().to_owned();
        let (s, v) = api
            .send(
                "POST",
                "/api/v5/users/admin/change_pwd",
                Some(json!({ "old_pwd": "public", "new_pwd": NEW_PWD })),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        api
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let s = r.status();
        let text = r.text().await.unwrap_or_default();
        (
            s,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send("GET", path, None).await
    }
}

pub async fn wait_for_client(api: &Api, id: &str) -> Value {
    for _ in 0..100 {
        let (s, v) = api.get(&format!("/api/v5/clients/{id}")).await;
        if s == StatusCode::OK && v["connected"] == json!(true) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("client {id} never showed up in /api/v5/clients");
}
