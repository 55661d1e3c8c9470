//! The CoAP request API (docs/coap.md §3.10) against the real binary: a device in connection
//! mode (a UDP socket speaking coap-lite) answers the requests the gateway sends it on behalf of
//! `POST /api/v5/gateways/coap/clients/{clientid}/request`, piggybacked or as a separate
//! response, and the API returns EMQX's shape; unknown clients, bad bodies and a silent device
//! give 404, 400 and 504.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use admin_support::{wait_for_client, Api};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use common::Broker;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// What the device saw of one request.
#[derive(Debug)]
struct Seen {
    method: String,
    path: Vec<String>,
    token: Vec<u8>,
    content_format: Option<Vec<u8>>,
    payload: Vec<u8>,
    confirmable: bool,
}

async fn recv_packet(sock: &UdpSocket) -> Packet {
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
        .await
        .expect("datagram in time")
        .unwrap();
    Packet::from_bytes(&buf[..n]).unwrap()
}

/// CON POST /mqtt/connection; returns the connection token.
async fn connect(sock: &UdpSocket, client_id: &str) -> String {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = 1;
    p.set_token(vec![9, 9]);
    p.add_option(CoapOption::UriPath, b"mqtt".to_vec());
    p.add_option(CoapOption::UriPath, b"connection".to_vec());
    for q in [
        format!("clientid={client_id}"),
        "username=u1".into(),
        "password=p1".into(),
    ] {
        p.add_option(CoapOption::UriQuery, q.into_bytes());
    }
    sock.send(&p.to_bytes().unwrap()).await.unwrap();
    let r = recv_packet(sock).await;
    assert_eq!(r.header.get_code(), "2.01", "{r:?}");
    String::from_utf8(r.payload).unwrap()
}

fn response(code: ResponseType, token: &[u8], payload: &[u8]) -> Packet {
    let mut r = Packet::new();
    r.header.code = MessageClass::Response(code);
    r.set_token(token.to_vec());
    r.payload = payload.to_vec();
    r
}

/// Answers every request: GET → 2.05 "hello-get"; POST/PUT → 2.04 echoing the payload;
/// DELETE → 2.02; token "sep" → empty ACK, then a separate CON 2.05 "later"; token "silent"
/// → nothing at all.
async fn device(sock: Arc<UdpSocket>, seen: mpsc::UnboundedSender<Seen>) {
    let mut next_mid = 0x4000u16;
    loop {
        let p = recv_packet(&sock).await;
        let MessageClass::Request(method) = p.header.code else {
            continue; // an ACK to our separate response
        };
        let token = p.get_token().to_vec();
        let path: Vec<String> = p
            .get_option(CoapOption::UriPath)
            .map(|l| {
                l.iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let content_format = p
            .get_option(CoapOption::ContentFormat)
            .and_then(|l| l.front().cloned());
        let _ = seen.send(Seen {
            method: format!("{method:?}"),
            path,
            token: token.clone(),
            content_format,
            payload: p.payload.clone(),
            confirmable: p.header.get_type() == MessageType::Confirmable,
        });
        let mid = p.header.message_id;
        if token == b"silent" {
            continue;
        }
        if token == b"sep" {
            let mut ack = Packet::new();
            ack.header.set_type(MessageType::Acknowledgement);
            ack.header.message_id = mid;
            sock.send(&ack.to_bytes().unwrap()).await.unwrap();
            // Deliberate: a separate response comes some time after the empty ACK (RFC 7252
            // §5.2.2), so the gateway has to hold the acknowledged exchange open meanwhile
            // rather than get the ACK and the response back to back.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut r = response(ResponseType::Content, &token, b"later");
            r.header.set_type(MessageType::Confirmable);
            r.header.message_id = next_mid;
            next_mid = next_mid.wrapping_add(1);
            sock.send(&r.to_bytes().unwrap()).await.unwrap();
            continue;
        }
        let mut r = match method {
            RequestType::Get => response(ResponseType::Content, &token, b"hello-get"),
            RequestType::Delete => response(ResponseType::Deleted, &token, b""),
            _ => {
                let mut body = b"echo:".to_vec();
                body.extend_from_slice(&p.payload);
                response(ResponseType::Changed, &token, &body)
            }
        };
        r.header.set_type(MessageType::Acknowledgement);
        r.header.message_id = mid;
        sock.send(&r.to_bytes().unwrap()).await.unwrap();
    }
}

async fn next_seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the device got a request")
        .expect("device running")
}

const PATH: &str = "/api/v5/gateways/coap/clients/dev-req-1/request";

async fn request(api: &Api, body: Value) -> (StatusCode, Value) {
    api.send("POST", PATH, Some(body)).await
}

#[tokio::test]
async fn rest_requests_reach_the_device_and_return_its_response() {
    let broker = Broker::start_with("[gateway.coap]\nconnection_required = true\n");
    let api = Api::ready(&broker).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(broker.listener("coap:udp:default"))
        .await
        .unwrap();
    let token = connect(&sock, "dev-req-1").await;
    assert!(!token.is_empty());
    wait_for_client(&api, "dev-req-1").await;
    let sock = Arc::new(sock);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dev = tokio::spawn(device(sock.clone(), tx));

    // GET with a Uri-Path (our `uri` extension) and text/plain.
    let (s, v) = request(
        &api,
        json!({"token": "t1", "method": "get", "uri": "sensors/temp",
               "content_type": "text/plain", "payload": "", "timeout": "5s"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["token"], "t1", "{v}");
    assert_eq!(v["method"], "{ok,content}", "{v}");
    assert_eq!(v["payload"], "hello-get", "{v}");
    assert!(v["id"].is_u64(), "{v}");
    let got = next_seen(&mut rx).await;
    assert_eq!(got.method, "Get");
    assert_eq!(got.path, vec!["sensors".to_owned(), "temp".to_owned()]);
    assert_eq!(got.token, b"t1");
    assert!(got.confirmable, "a CON request (docs/coap.md §3.10)");
    assert_eq!(
        got.content_format,
        Some(Vec::new()),
        "text/plain is Content-Format 0"
    );
    assert!(got.payload.is_empty());

    // POST with application/json and no `uri`: no Uri-Path, as EMQX.
    let (s, v) = request(
        &api,
        json!({"token": "t2", "method": "post", "content_type": "application/json",
               "payload": "{\"on\":true}", "timeout": "5s"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["method"], "{ok,changed}", "{v}");
    assert_eq!(v["payload"], "echo:{\"on\":true}", "{v}");
    assert_eq!(v["token"], "t2", "{v}");
    let got = next_seen(&mut rx).await;
    assert_eq!(got.method, "Post");
    assert!(got.path.is_empty(), "{got:?}");
    assert_eq!(got.content_format, Some(vec![50]));
    assert_eq!(got.payload, b"{\"on\":true}");

    // PUT with octet-stream: base64 both ways.
    let (s, v) = request(
        &api,
        json!({"token": "t3", "method": "put", "content_type": "application/octet-stream",
               "payload": "AAH/", "timeout": "5s"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["payload"], "ZWNobzoAAf8=",
        "base64 of echo:\\0\\1\\xff: {v}"
    );
    let got = next_seen(&mut rx).await;
    assert_eq!(got.method, "Put");
    assert_eq!(got.payload, vec![0, 1, 255]);

    // A separate response (empty ACK first).
    let (s, v) = request(
        &api,
        json!({"token": "sep", "method": "get", "timeout": "5s"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["payload"], "later", "{v}");
    assert_eq!(v["method"], "{ok,content}", "{v}");
    next_seen(&mut rx).await;

    // A device that never answers: 504 after the timeout.
    let (s, v) = request(
        &api,
        json!({"token": "silent", "method": "get", "timeout": "1s"}),
    )
    .await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert_eq!(v["code"], "CLIENT_NOT_RESPONSE", "{v}");
    next_seen(&mut rx).await;

    // Bad input and unknown clients.
    let (s, v) = request(&api, json!({"method": "patch", "timeout": "1s"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = request(&api, json!({"method": "get", "content_type": "image/png"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/gateways/coap/clients/nobody/request",
            Some(json!({"method": "get", "timeout": "1s"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["code"], "CLIENT_NOT_FOUND", "{v}");

    // The LwM2M helpers on the same route still answer (no such LwM2M client here).
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/gateways/lwm2m/clients/nobody/read?path=/3/0/0",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // After the device disconnects it is no longer found.
    dev.abort();
    let mut del = Packet::new();
    del.header.set_type(MessageType::Confirmable);
    del.header.code = MessageClass::Request(RequestType::Delete);
    del.header.message_id = 2;
    del.set_token(vec![7]);
    del.add_option(CoapOption::UriPath, b"mqtt".to_vec());
    del.add_option(CoapOption::UriPath, b"connection".to_vec());
    for q in ["clientid=dev-req-1".to_owned(), format!("token={token}")] {
        del.add_option(CoapOption::UriQuery, q.into_bytes());
    }
    sock.send(&del.to_bytes().unwrap()).await.unwrap();
    let mut gone = false;
    for _ in 0..100 {
        let (s, _) = request(&api, json!({"method": "get", "timeout": "1s"})).await;
        if s == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "a disconnected client is still found");
}

/// The API follows a restart of the gateway: clients of the new instance are reachable, those
/// of the stopped one are not found.
#[tokio::test]
async fn requests_follow_a_gateway_restart() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let addr = broker.listener("coap:udp:default");
    let path = "/api/v5/gateways/coap/clients/dev-restart/request";
    let body = json!({"token": "r1", "method": "get", "timeout": "5s"});

    let old = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    old.connect(addr).await.unwrap();
    connect(&old, "dev-restart").await;
    for enable in ["false", "true"] {
        let (s, v) = api
            .send(
                "PUT",
                &format!("/api/v5/gateways/coap/enable/{enable}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    let (s, v) = api.send("POST", path, Some(body.clone())).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the stopped instance's client: {v}"
    );

    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(addr).await.unwrap();
    connect(&sock, "dev-restart").await;
    let sock = Arc::new(sock);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dev = tokio::spawn(device(sock, tx));
    let (s, v) = api.send("POST", path, Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["payload"], "hello-get", "{v}");
    assert_eq!(next_seen(&mut rx).await.token, b"r1");
    dev.abort();
}
