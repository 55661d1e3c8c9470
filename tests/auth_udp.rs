//! Authentication and ACL on the UDP gateways against the real binary: MQTT-SN with
//! `clientinfo_override` credentials (CONNACK 0x80 on failure, PUBACK/SUBACK 0x80 on ACL deny,
//! docs/mqtt-sn.md §2.4) and CoAP with `username`/`password` queries (connection create 4.00
//! `Login Failed: <reason>`, connectionless 4.01, ACL deny 4.01, docs/coap.md §3.4–§3.9).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod mqttsn_client;

use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet as CoapPacket, RequestType};
use common::{temp_dir, Broker};
use mqttsn_client::SnClient;
use switchyard_mqttsn::codec::{Packet, TopicIdType};
use tokio::net::UdpSocket;

const USERS: &str =
    "user_id,password,is_superuser\ndev1,sn-secret,false\ndev3,other,false\nalice,alice-pw,false\n";

const ACL: &str = r##"
[[rule]]
permission = "allow"
action = "all"
topics = ["sn/${clientid}/#", "coap/${username}/#"]

[[rule]]
permission = "deny"
action = "all"
topics = ["#"]
"##;

fn start(extra: &str) -> Broker {
    let dir = temp_dir("auth-udp");
    let users = dir.join("users.csv");
    std::fs::write(&users, USERS).unwrap();
    let acl = dir.join("acl.toml");
    std::fs::write(&acl, ACL).unwrap();
    Broker::start_with(&format!(
        "[authentication]\nallow_anonymous = false\nbootstrap_file = \"{}\"\npassword_hash_algorithm = \"pbkdf2_sha256\"\n\n[authorization]\nfile = \"{}\"\n\n[gateway.lwm2m]\nenable = false\n{extra}",
        users.display(),
        acl.display()
    ))
}

async fn sn_connack(gw: SocketAddr, id: &str) -> (SnClient, Packet) {
    let sn = SnClient::new(gw, id).await;
    sn.send(&sn.connect_packet(true, false, 30)).await;
    let p = sn.expect("CONNACK").await;
    (sn, p)
}

#[tokio::test]
async fn mqttsn_authenticates_with_clientinfo_override_and_applies_the_acl() {
    let broker = start(
        "[gateway.mqttsn]\nenable_authn = true\n\n[gateway.mqttsn.clientinfo_override]\nusername = \"${clientid}\"\npassword = \"sn-secret\"\n",
    );
    let gw = broker.listener("mqttsn:udp:default");
    // Unknown user (anonymous off) and a known user with another password: 0x80.
    let (_, p) = sn_connack(gw, "dev2").await;
    assert_eq!(p, Packet::ConnAck { rc: 0x80 });
    let (_, p) = sn_connack(gw, "dev3").await;
    assert_eq!(p, Packet::ConnAck { rc: 0x80 });
    // A bootstrap user whose password the template gives: accepted.
    let (mut sn, p) = sn_connack(gw, "dev1").await;
    assert_eq!(p, Packet::ConnAck { rc: 0 });

    // ACL: own subtree allowed; anything else 0x80 in SUBACK and PUBACK.
    assert_eq!(sn.subscribe_name("sn/dev1/in/#", 1).await.2, 0);
    assert_eq!(sn.subscribe_name("sn/dev2/#", 1).await.2, 0x80);
    let (own, _) = sn.register("sn/dev1/t").await;
    assert_eq!(sn.publish(TopicIdType::Normal, own, 1, "ok").await, 0);
    let (other, _) = sn.register("elsewhere/t").await;
    assert_eq!(sn.publish(TopicIdType::Normal, other, 1, "no").await, 0x80);
    assert!(broker.log_contains("authentication failed"));
}

#[tokio::test]
async fn mqttsn_without_enable_authn_connects_anonymously() {
    let broker = start("");
    let gw = broker.listener("mqttsn:udp:default");
    let (_, p) = sn_connack(gw, "anyone").await;
    assert_eq!(p, Packet::ConnAck { rc: 0 });
}

/// One CoAP request (CON) and its response code and payload.
async fn coap(
    addr: SocketAddr,
    method: RequestType,
    path: &[&str],
    query: &[&str],
    body: &str,
) -> (String, String) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut p = CoapPacket::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = 7;
    p.set_token(vec![1, 2, 3, 4]);
    for seg in path {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p.payload = body.as_bytes().to_vec();
    sock.send_to(&p.to_bytes().unwrap(), addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
        .await
        .expect("CoAP response in time")
        .unwrap();
    let r = CoapPacket::from_bytes(&buf[..n]).unwrap();
    (
        r.header.get_code(),
        String::from_utf8_lossy(&r.payload).into_owned(),
    )
}

#[tokio::test]
async fn coap_connectionless_requests_need_valid_credentials_and_pass_the_acl() {
    let broker = start("[gateway.coap]\nenable_authn = true\n");
    let addr = broker.listener("coap:udp:default");
    let ok = ["clientid=c1", "username=alice", "password=alice-pw"];
    let (code, _) = coap(
        addr,
        RequestType::Post,
        &["ps", "coap", "alice", "t"],
        &ok,
        "hi",
    )
    .await;
    assert_eq!(code, "2.04");
    let bad = ["clientid=c2", "u=alice", "p=wrong"];
    let (code, _) = coap(
        addr,
        RequestType::Post,
        &["ps", "coap", "alice", "t"],
        &bad,
        "hi",
    )
    .await;
    assert_eq!(code, "4.01");
    let (code, _) = coap(
        addr,
        RequestType::Post,
        &["ps", "coap", "alice", "t"],
        &["clientid=c3"],
        "x",
    )
    .await;
    assert_eq!(code, "4.01", "anonymous off");
    // ACL: another user's topic is 4.01 (docs/coap.md §3.9).
    let (code, _) = coap(
        addr,
        RequestType::Post,
        &["ps", "coap", "bob", "t"],
        &ok,
        "no",
    )
    .await;
    assert_eq!(code, "4.01");
}

#[tokio::test]
async fn coap_connection_create_login_failed() {
    let broker = start("[gateway.coap]\nenable_authn = true\nconnection_required = true\n");
    let addr = broker.listener("coap:udp:default");
    let bad = ["clientid=c1", "username=alice", "password=nope"];
    let (code, body) = coap(addr, RequestType::Post, &["mqtt", "connection"], &bad, "").await;
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("4.00", "Login Failed: bad_username_or_password")
    );
    let ok = ["clientid=c1", "username=alice", "password=alice-pw"];
    let (code, token) = coap(addr, RequestType::Post, &["mqtt", "connection"], &ok, "").await;
    assert_eq!(code, "2.01");
    assert!(!token.is_empty());
}
