//! The authorization sources with a real HTTP service run here (axum): each answer of the reply
//! contract, the synchronous path that never waits, a client's query/accept round, the cache
//! with and without caching; and the sources' management as the REST API drives it, with the
//! API-state store taking precedence and its feed applied.

use super::*;
use crate::authz::{Action, ClientCtx, Decision, DenyAction};
use crate::AuthzSettings;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::QoS;
use switchyard_state::{SharedState, SqliteState};

type Seen = Arc<Mutex<Vec<Value>>>;

async fn authz(State(seen): State<Seen>, Json(body): Json<Value>) -> Response {
    seen.lock().push(body.clone());
    let topic = body["topic"].as_str().unwrap_or_default().to_owned();
    match topic.split('/').next().unwrap_or_default() {
        "allow" => Json(json!({"result": "allow"})).into_response(),
        "deny" => Json(json!({"result": "deny"})).into_response(),
        "nocontent" => StatusCode::NO_CONTENT.into_response(),
        "ignore" => Json(json!({"result": "ignore"})).into_response(),
        "error" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "silent" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        _ => Json(json!({"other": 1})).into_response(),
    }
}

async fn service() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let app = Router::new()
        .route("/authz", post(authz))
        .with_state(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

fn http_source(addr: SocketAddr) -> Value {
    json!({"type": "http", "method": "post", "url": format!("http://{addr}/authz"),
        "body": {"topic": "${topic}", "action": "${action}", "clientid": "${clientid}"},
        "request_timeout": "300ms"})
}

/// The file source's rules: `file/#` allowed, `ignore/#` allowed, `deny/#` allowed (so only
/// the HTTP source can deny it).
fn file_source() -> Value {
    json!({"type": "file", "rules": "[[rule]]\npermission = \"allow\"\naction = \"all\"\ntopics = [\"file/#\", \"ignore/#\", \"deny/#\"]\n"})
}

fn settings(no_match: Decision, cache: bool) -> AuthzSettings {
    AuthzSettings {
        no_match,
        deny_action: DenyAction::Ignore,
        cache: crate::AclCacheSettings {
            enable: cache,
            ..crate::AclCacheSettings::default()
        },
    }
}

fn ctx() -> ClientCtx {
    ClientCtx {
        client_id: "c1".into(),
        username: None,
        peer_ip: None,
        superuser: false,
    }
}

fn publish(topic: &str) -> Action<'_> {
    Action::Publish {
        topic,
        qos: QoS::AtLeastOnce,
        retain: false,
    }
}

fn open(sources: Vec<Value>, s: AuthzSettings, state: Option<SharedState>) -> Arc<Authorizer> {
    Arc::new(Authorizer::open(None, sources, s, state).unwrap_or_else(|e| panic!("{e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_source_answers_as_the_contract_says() {
    let (addr, seen) = service().await;
    let a = open(
        vec![http_source(addr), file_source()],
        settings(Decision::Deny, true),
        None,
    );
    assert!(a.has_network());
    let c = ctx();
    for (topic, want) in [
        ("allow/x", Decision::Allow),
        ("nocontent/x", Decision::Allow),
        ("deny/x", Decision::Deny),
        ("ignore/x", Decision::Allow), // → the file allows
        ("other/x", Decision::Deny),   // nomatch → the file has no rule → no_match
        ("error/x", Decision::Deny),   // 500 → nomatch
        ("silent/x", Decision::Deny),  // timeout → ignore → no_match
        ("file/x", Decision::Allow),
    ] {
        assert_eq!(a.decide(&c, &publish(topic), None).await, want, "{topic}");
    }
    let body = seen.lock()[0].clone();
    assert_eq!(
        body,
        json!({"topic": "allow/x", "action": "publish", "clientid": "c1"})
    );
    // The synchronous path never waits: the HTTP source is ignore there.
    let t = Instant::now();
    assert_eq!(a.check(&c, &publish("silent/y")), Decision::Deny);
    assert_eq!(
        a.check(&c, &publish("deny/y")),
        Decision::Allow,
        "the file's rule"
    );
    assert!(t.elapsed() < Duration::from_millis(100));
    let st = a.source_status("http").unwrap_or_else(|| panic!("status"));
    assert_eq!((st.allow, st.deny, st.timeouts), (2, 1, 1));
    assert!(st.ignore >= 3, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_queries_then_checks_from_its_answers() {
    let (addr, seen) = service().await;
    for cache in [true, false] {
        let a = open(
            vec![http_source(addr), file_source()],
            settings(Decision::Allow, cache),
            None,
        );
        let mut acl = a.client(ctx());
        let now = Instant::now();
        let deny = publish("deny/q");
        let q = acl.query(&[deny], now).unwrap_or_else(|| panic!("a query"));
        assert_eq!(q.len(), 1);
        acl.accept(q.run().await);
        assert!(acl.query(&[deny], now).is_none(), "answer held");
        assert_eq!(acl.check(&deny, now), Decision::Deny);
        // Cached: no new query; without the cache the answer was used once.
        assert_eq!(acl.query(&[deny], now).is_none(), cache);
        let asked = seen.lock().len();
        assert_eq!(
            acl.check(&deny, now),
            if cache {
                Decision::Deny
            } else {
                Decision::Allow
            }
        );
        assert_eq!(seen.lock().len(), asked, "check never asks the service");
        // Cleaning the cache asks again.
        a.clear_cache();
        assert!(acl.query(&[deny], now).is_some());
    }
    // A superuser or an authorizer without a network source never queries.
    let a = open(vec![file_source()], settings(Decision::Allow, true), None);
    assert!(a
        .client(ctx())
        .query(&[publish("deny/q")], Instant::now())
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_managed_and_stored() {
    let (addr, _) = service().await;
    let state: SharedState = Arc::new(SqliteState::in_memory().unwrap_or_else(|e| panic!("{e}")));
    let a = open(vec![], settings(Decision::Allow, true), Some(state.clone()));
    let kinds = |a: &Authorizer| -> Vec<String> {
        a.list_sources()
            .iter()
            .map(|s| s["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(kinds(&a), ["file"]);
    assert!(!a.has_network());
    a.create_source(&http_source(addr))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds(&a), ["http", "file"], "created at the front");
    assert!(a.has_network());
    assert!(matches!(
        a.create_source(&http_source(addr)),
        Err(SourceError::Duplicated(_))
    ));
    assert!(matches!(
        a.create_source(&json!({"type": "redis"})),
        Err(SourceError::Invalid(_))
    ));
    assert!(matches!(
        a.update_source("http", &file_source()),
        Err(SourceError::Invalid(_))
    ));
    a.move_source("http", "rear")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds(&a), ["file", "http"]);
    a.move_source("http", "before:file")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds(&a), ["http", "file"]);
    a.move_source("http", "after:file")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds(&a), ["file", "http"]);
    assert!(matches!(
        a.move_source("http", "up"),
        Err(SourceError::Invalid(_))
    ));
    assert!(matches!(
        a.move_source("x", "front"),
        Err(SourceError::NotFound(_))
    ));
    assert!(matches!(
        a.reorder_sources(&["http".into()]),
        Err(SourceError::Invalid(_))
    ));
    assert!(matches!(
        a.reorder_sources(&["http".into(), "x".into()]),
        Err(SourceError::NotFound(_))
    ));
    a.reorder_sources(&["http".into(), "file".into()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds(&a), ["http", "file"]);
    // Disabled: no network any more.
    let mut off = http_source(addr);
    off["enable"] = json!(false);
    a.update_source("http", &off)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!a.has_network());
    let s = a
        .put_settings(&json!({"no_match": "deny", "deny_action": "disconnect",
            "cache": {"enable": false, "max_size": 8, "ttl": "5s"}}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.no_match, s.cache.max_size), (Decision::Deny, 8));
    assert!(a.put_settings(&json!({"no_match": "maybe"})).is_err());
    assert!(a
        .put_settings(
            &json!({"no_match": "deny", "deny_action": "ignore", "cache": {"excludes": ["a"]}})
        )
        .is_err());

    // A new authorizer on the same store: the stored list and settings win over the config.
    let b = open(
        vec![file_source()],
        settings(Decision::Allow, true),
        Some(state.clone()),
    );
    assert_eq!(kinds(&b), ["http", "file"]);
    assert_eq!(b.settings().deny_action, DenyAction::Disconnect);
    // A change written elsewhere reaches it through the feed.
    a.delete_source("http").unwrap_or_else(|e| panic!("{e}"));
    let change = switchyard_state::Change {
        kind: AUTHZ_KIND.into(),
        key: SOURCES_KEY.into(),
        value: None,
    };
    b.apply(&change).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kinds(&b), ["file"]);
    assert!(matches!(
        a.delete_source("http"),
        Err(SourceError::NotFound(_))
    ));
}
