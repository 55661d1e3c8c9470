//! A flood of CoAP connection creates with wrong passwords never stalls the gateway: password
//! hashes run on the clients' own tasks through the bounded blocking pool, not on the socket
//! task that serves every CoAP client. While 200 creates are being checked, another client's
//! publish is answered before the flood's last refusal (the order is asserted, not a duration).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use common::{temp_dir, Broker};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

const FLOOD: u16 = 200;

fn request(mid: u16, path: &[&str], query: &[String]) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(mid.to_be_bytes().to_vec());
    for seg in path {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p.to_bytes().unwrap()
}

/// The next response (not an empty ACK) on `sock`: (message id or token, code, payload).
async fn response(sock: &UdpSocket) -> (Vec<u8>, String, String) {
    let mut buf = [0u8; 2048];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(60), sock.recv(&mut buf))
            .await
            .expect("a CoAP response within 60 s")
            .unwrap();
        let p = Packet::from_bytes(&buf[..n]).unwrap();
        if matches!(p.header.code, MessageClass::Response(_)) {
            return (
                p.get_token().to_vec(),
                p.header.get_code(),
                String::from_utf8_lossy(&p.payload).into_owned(),
            );
        }
    }
}

async fn socket(to: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.connect(to).await.unwrap();
    s
}

#[tokio::test]
async fn wrong_password_flood_does_not_stall_other_coap_clients() {
    let dir = temp_dir("coap-flood");
    let users = dir.join("users.csv");
    std::fs::write(
        &users,
        "user_id,password,is_superuser\nalice,alice-pw,false\n",
    )
    .unwrap();
    let broker = Broker::start_with(&format!(
        "[authentication]\nallow_anonymous = false\nbootstrap_file = \"{}\"\n\n\
         [gateway.coap]\nenable_authn = true\nconnection_required = true\n",
        users.display()
    ));
    let gw = broker.listener("coap:udp:default");

    // A client that logged in before the flood.
    let good = socket(gw).await;
    let login = ["clientid=good", "username=alice", "password=alice-pw"].map(String::from);
    good.send(&request(1, &["mqtt", "connection"], &login))
        .await
        .unwrap();
    let (_, code, token) = response(&good).await;
    assert_eq!(code, "2.01", "{token}");

    // 200 creates with a wrong password, all at once.
    let flood = socket(gw).await;
    for i in 0..FLOOD {
        let q = [
            format!("clientid=flood{i}"),
            "username=alice".into(),
            "password=wrong".into(),
        ];
        flood
            .send(&request(1000 + i, &["mqtt", "connection"], &q))
            .await
            .unwrap();
    }
    // Then the logged-in client publishes.
    let publish = ["clientid=good".to_owned(), format!("token={token}")];
    good.send(&request(2, &["ps", "sensors", "t"], &publish))
        .await
        .unwrap();

    let mut refused_before_publish = 0u16;
    let mut refused = 0u16;
    let mut published_at: Option<u16> = None;
    while refused < FLOOD || published_at.is_none() {
        tokio::select! {
            r = response(&flood), if refused < FLOOD => {
                let (_, code, payload) = r;
                assert_eq!(code, "4.00", "{payload}");
                assert!(payload.starts_with("Login Failed"), "{payload}");
                refused += 1;
            }
            r = response(&good), if published_at.is_none() => {
                let (_, code, payload) = r;
                assert_eq!(code, "2.04", "{payload}");
                refused_before_publish = refused;
                published_at = Some(refused);
            }
        }
    }
    assert!(
        refused_before_publish < FLOOD,
        "the publish was answered only after all {FLOOD} refusals: the flood stalled the gateway"
    );
    assert!(broker.log_contains("authentication failed"));
}
