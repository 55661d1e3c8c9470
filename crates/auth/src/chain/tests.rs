//! The chain with real back-ends: an HTTP auth service run here (axum), JWTs made here, the
//! built-in database; and the chain's management as the REST API drives it.

use super::*;
use crate::authn::AuthnSettings;
use crate::HashAlgorithm;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::time::Duration;
use switchyard_state::SqliteState;

/// What the test service saw and how it answers.
#[derive(Default)]
struct Service {
    seen: Mutex<Vec<Value>>,
}

async fn auth(State(svc): State<Arc<Service>>, Json(body): Json<Value>) -> Response {
    svc.seen.lock().push(body.clone());
    let user = body["username"].as_str().unwrap_or_default().to_owned();
    match user.as_str() {
        "allow" => Json(json!({"result": "allow"})).into_response(),
        "root" => Json(json!({"result": "allow", "is_superuser": true})).into_response(),
        "deny" => Json(json!({"result": "deny"})).into_response(),
        "nocontent" => StatusCode::NO_CONTENT.into_response(),
        "acl" => Json(json!({"result": "allow", "acl": [
            {"permission": "allow", "action": "publish", "topic": "dev/${clientid}/#"}]}))
        .into_response(),
        "silent" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        "error" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => Json(json!({"result": "ignore"})).into_response(),
    }
}

async fn serve(svc: Arc<Service>, addr: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let app = Router::new().route("/auth", post(auth)).with_state(svc);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

fn http(addr: SocketAddr) -> Value {
    json!({"mechanism": "password_based", "backend": "http", "method": "post",
        "url": format!("http://{addr}/auth"), "request_timeout": "500ms",
        "body": {"username": "${username}", "password": "${password}", "clientid": "${clientid}"}})
}

fn builtin(anonymous: bool) -> Arc<Authenticator> {
    let a = Authenticator::in_memory(AuthnSettings {
        allow_anonymous: anonymous,
        algorithm: HashAlgorithm::Pbkdf2Sha256,
        ..AuthnSettings::default()
    });
    a.add_user("local", "pw", false)
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(a)
}

fn creds(user: &str, pw: &str) -> OwnedCredentials {
    OwnedCredentials {
        client_id: format!("c-{user}"),
        username: Some(user.to_owned()),
        password: Some(pw.as_bytes().to_vec()),
        peer_ip: None,
        listener_authn_enabled: true,
    }
}

fn chain(configs: Vec<Value>, state: Option<SharedState>) -> Chain {
    Chain::open(configs, CacheSettings::default(), state).unwrap_or_else(|e| panic!("{e}"))
}

fn allowed(v: &Verdict) -> Option<bool> {
    match v.result {
        AuthResult::Allow { superuser } => Some(superuser),
        AuthResult::Deny(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_then_builtin() {
    let svc = Arc::new(Service::default());
    let (addr, _srv) = serve(
        svc.clone(),
        "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    let c = chain(vec![http(addr), builtin_default()], None);
    let b = builtin(false);
    assert_eq!(
        allowed(&c.authenticate(&b, &creds("allow", "x")).await),
        Some(false)
    );
    assert_eq!(
        allowed(&c.authenticate(&b, &creds("root", "x")).await),
        Some(true)
    );
    assert_eq!(
        allowed(&c.authenticate(&b, &creds("nocontent", "x")).await),
        Some(false)
    );
    let denied = c.authenticate(&b, &creds("deny", "x")).await;
    assert_eq!(denied.result, AuthResult::Deny(DenyReason::NotAuthorized));
    assert_eq!(denied.by.as_deref(), Some("password_based:http"));
    // Ignored by HTTP, accepted by the built-in database next.
    let local = c.authenticate(&b, &creds("local", "pw")).await;
    assert_eq!(local.by.as_deref(), Some(BUILT_IN_ID));
    // A 500 is ignore; then unknown to the built-in database; anonymous off refuses.
    let nobody = c.authenticate(&b, &creds("error", "x")).await;
    assert_eq!(nobody.result, AuthResult::Deny(DenyReason::BadCredentials));
    assert_eq!(nobody.by, None);
    let acl = c.authenticate(&b, &creds("acl", "x")).await;
    assert!(acl.grant.acl.is_some());
    let s = c
        .status("password_based:http")
        .unwrap_or_else(|| panic!("status"));
    assert_eq!((s.success, s.failed), (4, 1));
    assert_eq!(s.status, "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_attempts_arrive_as_plain_values() {
    let svc = Arc::new(Service::default());
    let (addr, _srv) = serve(
        svc.clone(),
        "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    let c = chain(vec![http(addr)], None);
    let b = builtin(false);
    let long = "x".repeat(10_000);
    for (user, pw) in [
        ("' OR 1=1 --", "\"},{\"x\":1"),
        ("a%00b", "p\u{0}w"),
        (long.as_str(), "${username}"),
    ] {
        let v = c.authenticate(&b, &creds(user, pw)).await;
        assert!(matches!(v.result, AuthResult::Deny(_)), "{user}");
        let seen = svc
            .seen
            .lock()
            .pop()
            .unwrap_or_else(|| panic!("no request"));
        assert_eq!(seen["username"], json!(user));
        assert_eq!(seen["password"], json!(pw));
        assert_eq!(seen.as_object().map(|o| o.len()), Some(3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_without_delaying_others() {
    let svc = Arc::new(Service::default());
    let (addr, _srv) = serve(
        svc.clone(),
        "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    let c = Arc::new(chain(vec![http(addr), builtin_default()], None));
    let b = builtin(true);
    // Many silent checks in flight, then a normal one: it is answered at once.
    let mut silent = Vec::new();
    for i in 0..20 {
        let (c, b) = (c.clone(), b.clone());
        silent.push(tokio::spawn(async move {
            let mut cr = creds("silent", "x");
            cr.client_id = format!("s{i}");
            let t = Instant::now();
            let v = c.authenticate(&b, &cr).await;
            (v, t.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Instant::now();
    let v = c.authenticate(&b, &creds("allow", "x")).await;
    assert_eq!(allowed(&v), Some(false));
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    for s in silent {
        let (v, took) = s.await.unwrap_or_else(|e| panic!("{e}"));
        // Ignored after the timeout; anonymous on lets it in.
        assert_eq!(v.by, None);
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
    let s = c
        .status("password_based:http")
        .unwrap_or_else(|| panic!("status"));
    assert_eq!(s.timeouts, 20);
    assert_eq!(s.nomatch, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_then_back() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = probe.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(probe);
    let c = chain(vec![http(addr)], None);
    let b = builtin(false);
    let down = c.authenticate(&b, &creds("allow", "x")).await;
    assert_eq!(down.by, None);
    assert_eq!(
        c.status("password_based:http").map(|s| s.status),
        Some("disconnected")
    );
    let svc = Arc::new(Service::default());
    let (_, _srv) = serve(svc, addr).await;
    let up = c.authenticate(&b, &creds("allow", "x")).await;
    assert_eq!(allowed(&up), Some(false));
    // The answer is cached: the next check does not reach the server.
    let again = c.authenticate(&b, &creds("allow", "x")).await;
    assert_eq!(allowed(&again), Some(false));
    let s = c
        .status("password_based:http")
        .unwrap_or_else(|| panic!("status"));
    assert_eq!((s.cache_hits, s.status), (1, "connected"));
    // The synchronous path takes the network answer from the cache, and ignores otherwise.
    let now = c.authenticate_now(&b, &creds("allow", "x").as_credentials());
    assert_eq!(allowed(&now), Some(false));
    let unseen = c.authenticate_now(&b, &creds("root", "x").as_credentials());
    assert_eq!(unseen.by, None);
}

#[tokio::test]
async fn default_chain_is_the_builtin_database() {
    let c = Chain::default();
    let b = builtin(false);
    assert!(c.is_local());
    assert_eq!(c.list().len(), 1);
    assert_eq!(
        allowed(&c.authenticate(&b, &creds("local", "pw")).await),
        Some(false)
    );
    let bad = c.authenticate(&b, &creds("local", "nope")).await;
    assert_eq!(bad.result, AuthResult::Deny(DenyReason::BadCredentials));
    let anon = OwnedCredentials {
        username: None,
        password: None,
        ..creds("x", "y")
    };
    let v = c.authenticate(&b, &anon).await;
    assert_eq!(v.result, AuthResult::Deny(DenyReason::NotAuthorized));
    assert_eq!(
        allowed(&c.authenticate(&builtin(true), &anon).await),
        Some(false)
    );
    // Same answers on the synchronous path.
    assert_eq!(
        c.authenticate_now(&b, &creds("local", "nope").as_credentials())
            .result,
        AuthResult::Deny(DenyReason::BadCredentials)
    );
}

#[tokio::test]
async fn managed_through_the_api_and_stored() {
    let state: SharedState = Arc::new(SqliteState::in_memory().unwrap_or_else(|e| panic!("{e}")));
    let jwt = json!({"mechanism": "jwt", "algorithm": "hmac-based", "secret": "s3cret"});
    let c = chain(vec![], Some(state.clone()));
    let shown = c.create(&jwt).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shown["secret"], json!(MASK));
    assert!(matches!(c.create(&jwt), Err(ChainError::AlreadyExists(_))));
    let ids = |c: &Chain| -> Vec<String> {
        c.list()
            .iter()
            .map(|v| v["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(ids(&c), vec![BUILT_IN_ID, "jwt"]);
    c.move_to("jwt", "front").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&c), vec!["jwt", BUILT_IN_ID]);
    c.move_to("jwt", &format!("after:{BUILT_IN_ID}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&c), vec![BUILT_IN_ID, "jwt"]);
    assert!(matches!(
        c.move_to("jwt", "before:"),
        Err(ChainError::Invalid(_))
    ));
    assert!(matches!(
        c.move_to("jwt", "before:nope"),
        Err(ChainError::NotFound(_))
    ));
    assert!(matches!(
        c.move_to("nope", "front"),
        Err(ChainError::NotFound(_))
    ));
    c.reorder(&["jwt".into(), BUILT_IN_ID.into()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&c), vec!["jwt", BUILT_IN_ID]);
    assert!(c.reorder(&["jwt".into()]).is_err());
    assert!(c
        .reorder(&["jwt".into(), BUILT_IN_ID.into(), "x".into()])
        .is_err());
    // PUT with the mask keeps the secret; switching type is refused.
    let mut edit = c.get("jwt").unwrap_or_else(|| panic!("get"));
    edit["acl_claim_name"] = json!("rules");
    c.update("jwt", &edit).unwrap_or_else(|e| panic!("{e}"));
    let http_body = json!({"mechanism": "password_based", "backend": "http", "method": "get", "url": "http://x/"});
    assert!(matches!(
        c.update("jwt", &http_body),
        Err(ChainError::Invalid(_))
    ));
    // A second chain on the same store (a restart) sees the stored chain, not the file's.
    let file = vec![builtin_default()];
    let again = chain(file, Some(state.clone()));
    assert_eq!(ids(&again), vec!["jwt", BUILT_IN_ID]);
    let stored = state
        .get(AUTHENTICATORS_KIND, CHAIN_KEY)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("stored"));
    assert_eq!(stored["authenticators"][0]["secret"], json!("s3cret"));
    assert_eq!(
        stored["authenticators"][0]["acl_claim_name"],
        json!("rules")
    );
    // A change written elsewhere reaches this chain through the feed.
    c.delete("jwt").unwrap_or_else(|e| panic!("{e}"));
    c.delete("jwt").unwrap_or_else(|e| panic!("{e}"));
    again
        .apply(&Change {
            kind: AUTHENTICATORS_KIND.into(),
            key: CHAIN_KEY.into(),
            value: None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&again), vec![BUILT_IN_ID]);
    c.delete(BUILT_IN_ID).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        c.delete(BUILT_IN_ID),
        Err(ChainError::NotFound(_))
    ));
    // An empty chain: anonymous decides.
    let v = c.authenticate(&builtin(false), &creds("local", "pw")).await;
    assert_eq!(v.by, None);
    assert!(matches!(v.result, AuthResult::Deny(_)));
}

#[test]
fn a_broken_file_chain_is_an_error() {
    let err = Chain::open(
        vec![json!({"mechanism": "password_based", "backend": "nope"})],
        CacheSettings::default(),
        None,
    );
    assert!(matches!(err, Err(ChainError::Invalid(m)) if m.contains("authenticators[0]")));
    let dup = Chain::open(
        vec![builtin_default(), builtin_default()],
        CacheSettings::default(),
        None,
    );
    assert!(matches!(dup, Err(ChainError::AlreadyExists(_))));
}
