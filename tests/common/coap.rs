//! One CoAP request over a fresh UDP socket, with coap-lite: for tests that need a CoAP answer
//! without libcoap or aiocoap (refusal codes, payloads).

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Sends one CON request and returns the response's code ("2.04") and payload as text.
pub async fn request(
    addr: SocketAddr,
    method: RequestType,
    path: &[&str],
    query: &[&str],
    body: &str,
) -> (String, String) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(method);
    p.header.message_id = rand_mid();
    p.set_token(vec![0x5a, 0x17]);
    for seg in path {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p.payload = body.as_bytes().to_vec();
    let bytes = p.to_bytes().expect("encode");
    sock.send_to(&bytes, addr).await.expect("send");
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
        .await
        .expect("CoAP response in time")
        .expect("recv");
    let r = Packet::from_bytes(&buf[..n]).expect("decode");
    (
        r.header.get_code(),
        String::from_utf8_lossy(&r.payload).into_owned(),
    )
}

/// A POST (`/ps/...` publish, `/mqtt/connection` create).
pub async fn post(addr: SocketAddr, path: &[&str], query: &[&str], body: &str) -> (String, String) {
    request(addr, RequestType::Post, path, query, body).await
}

fn rand_mid() -> u16 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| (d.subsec_nanos() & 0xffff) as u16)
}
