//! LwM2M and MQTT-SN over DTLS-PSK against the real binary, with the client side of
//! `switchyard_net::dtls` (the simulated LwM2M device's DTLS mode, and a few MQTT-SN messages
//! over a `DtlsClient`), the DTLS identity as the username (mountpoint `${username}`, and a
//! certificate's CN in an ACL with coap-client-openssl), and the listener's limits: 200
//! concurrent handshakes all served, and a ClientHello flood from many addresses held to
//! `max_handshakes` while an established peer is still served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use bytes::{Bytes, BytesMut};
use common::mqtt::{text, Client};
use common::{require_program, run_with_timeout, temp_dir, Broker};
use rumqttc::QoS;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use switchyard_lwm2m::sim::Device;
use switchyard_mqttsn::codec::{self, Connect, Flags, Packet, Publish, SnQos, TopicIdType};
use switchyard_net::dtls::client::{client_hello, ClientAuth, DtlsClient};

const WAIT: Duration = Duration::from_secs(10);
const KEY: &str = "0123456789abcdef";

/// PSK on, keys `dev-a`, `dev-b` and `ep-1`, and the DTLS listeners of `gateways` enabled.
fn psk_broker(dir: &Path, gateways: &[&str], extra: &str) -> Broker {
    let file = dir.join("psk.txt");
    std::fs::write(&file, format!("dev-a:{KEY}\ndev-b:{KEY}\nep-1:{KEY}\n")).unwrap();
    let xml = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/lwm2m_xml");
    let mut toml = format!(
        "[psk_authentication]\nenable = true\ninit_file = \"{}\"\n\
         [gateway.lwm2m]\nxml_dir = \"{}\"\n",
        file.display(),
        xml.display()
    );
    for g in gateways {
        toml.push_str(&format!(
            "[gateway.{g}.listeners.dtls.default]\nenable = true\nbind = \"127.0.0.1:0\"\n"
        ));
    }
    Broker::start_with(&common::merge_toml(&toml, extra))
}

fn psk(identity: &str) -> ClientAuth {
    ClientAuth::Psk {
        identity: identity.as_bytes().to_vec(),
        key: KEY.as_bytes().to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lwm2m_register_and_read_over_dtls_psk() {
    let dir = temp_dir("dtls-lwm2m");
    let b = psk_broker(&dir, &["lwm2m"], "");
    let ep = "ep-1";
    let mut mqtt = Client::connect(b.mqtt_addr(), "app").await;
    mqtt.subscribe(&format!("lwm2m/{ep}/up/#"), QoS::AtLeastOnce)
        .await;
    let mut dev = Device::bind_dtls(b.listener("lwm2m:dtls:default"), ep, ep, KEY.as_bytes())
        .await
        .expect("DTLS-PSK handshake");
    assert_eq!(dev.register().await, Some(0x41), "2.01 Created over DTLS");
    let reg = mqtt.expect_publish("register event").await;
    let v: Value = serde_json::from_str(&text(&reg)).unwrap();
    assert_eq!(v["msgType"], "register");
    assert_eq!(v["data"]["ep"], ep);

    let n = dev.seen.len();
    let cmd = json!({"reqID":7,"msgType":"read","data":{"path":"/3/0/0"}});
    mqtt.publish(
        &format!("lwm2m/{ep}/dn/dm"),
        QoS::AtLeastOnce,
        false,
        cmd.to_string().as_bytes(),
    )
    .await;
    assert!(
        dev.serve_until_seen(n + 1, WAIT).await,
        "the read reached the device"
    );
    // Another PSK identity naming the same endpoint cannot take the registration over.
    let mut other = Device::bind_dtls(
        b.listener("lwm2m:dtls:default"),
        ep,
        "dev-a",
        KEY.as_bytes(),
    )
    .await
    .expect("handshake as dev-a");
    assert_eq!(other.register().await, Some(0x83), "4.03 Forbidden");
    let resp = mqtt.expect_publish("read response").await;
    let v: Value = serde_json::from_str(&text(&resp)).unwrap();
    assert_eq!(
        v["data"]["content"],
        json!([{"path":"/3/0/0","value":"Switchyard"}]),
        "{v}"
    );
    assert_eq!(dev.deregister().await, Some(0x42), "2.02 Deleted");

    // A wrong key never gets to register.
    let wrong = Device::bind_dtls(b.listener("lwm2m:dtls:default"), ep, ep, b"wrong").await;
    assert!(wrong.is_err(), "a wrong key completed a handshake");
}

/// A few MQTT-SN messages over one DTLS association.
struct SnOverDtls(DtlsClient);

impl SnOverDtls {
    async fn connect(server: SocketAddr, identity: &str, client_id: &str) -> SnOverDtls {
        let c = DtlsClient::connect(server, &psk(identity), None, WAIT)
            .await
            .expect("handshake");
        let mut sn = SnOverDtls(c);
        let ack = sn
            .call(Packet::Connect(Connect {
                flags: Flags {
                    clean_session: true,
                    ..Flags::default()
                },
                protocol_id: 1,
                duration: 60,
                client_id: Bytes::copy_from_slice(client_id.as_bytes()),
            }))
            .await;
        assert_eq!(ack, Packet::ConnAck { rc: 0 }, "CONNACK accepted");
        sn
    }

    async fn send(&mut self, p: Packet) {
        let mut out = BytesMut::new();
        codec::encode(&p, &mut out).unwrap();
        self.0.send(&out).await.unwrap();
    }

    async fn recv(&mut self) -> Packet {
        let d = self.0.recv(WAIT).await.expect("an MQTT-SN answer");
        codec::decode(&Bytes::from(d)).unwrap()
    }

    async fn call(&mut self, p: Packet) -> Packet {
        self.send(p).await;
        self.recv().await
    }

    async fn register(&mut self, topic: &str) -> u16 {
        let r = self
            .call(Packet::Register {
                topic_id: 0,
                msg_id: 1,
                topic_name: Bytes::copy_from_slice(topic.as_bytes()),
            })
            .await;
        match r {
            Packet::RegAck {
                topic_id, rc: 0, ..
            } => topic_id,
            other => panic!("REGACK expected, got {other:?}"),
        }
    }

    async fn publish_q1(&mut self, topic_id: u16, data: &str) {
        let p = Packet::Publish(Publish {
            flags: Flags {
                qos: SnQos::Q1,
                topic_id_type: TopicIdType::Normal,
                ..Flags::default()
            },
            topic_id,
            msg_id: 2,
            data: Bytes::copy_from_slice(data.as_bytes()),
        });
        match self.call(p).await {
            Packet::PubAck { rc: 0, .. } => {}
            other => panic!("PUBACK expected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn mqttsn_over_dtls_both_directions_with_the_psk_identity_as_username() {
    let dir = temp_dir("dtls-mqttsn");
    // The mountpoint shows which username the gateway used: the PSK identity.
    let b = psk_broker(
        &dir,
        &["mqttsn"],
        "[gateway.mqttsn]\nmountpoint = \"${username}/\"\n",
    );
    let server = b.listener("mqttsn:dtls:default");
    let mut sub = Client::connect(b.mqtt_addr(), "sub").await;
    sub.subscribe("dev-a/#", QoS::AtLeastOnce).await;
    let mut sn = SnOverDtls::connect(server, "dev-a", "sn-1").await;
    let id = sn.register("up/temp").await;
    sn.publish_q1(id, "21.5").await;
    let p = sub.expect_publish("the SN publish").await;
    assert_eq!(
        (p.topic.as_str(), text(&p).as_str()),
        ("dev-a/up/temp", "21.5")
    );

    // MQTT → MQTT-SN over the same association.
    let r = sn
        .call(Packet::Subscribe(codec::Subscribe {
            flags: Flags {
                qos: SnQos::Q0,
                ..Flags::default()
            },
            msg_id: 3,
            topic: codec::SubTopic::Name(Bytes::from_static(b"down/cmd")),
        }))
        .await;
    let Packet::SubAck {
        rc: 0, topic_id, ..
    } = r
    else {
        panic!("SUBACK expected, got {r:?}");
    };
    let mut pubr = Client::connect(b.mqtt_addr(), "pub").await;
    pubr.publish("dev-a/down/cmd", QoS::AtMostOnce, false, b"on")
        .await;
    match sn.recv().await {
        Packet::Publish(p) => assert_eq!((p.topic_id, &p.data[..]), (topic_id, &b"on"[..])),
        other => panic!("PUBLISH expected, got {other:?}"),
    }

    // The subscriber to dev-a/# saw that MQTT publish too.
    assert_eq!(sub.expect_publish("down/cmd").await.topic, "dev-a/down/cmd");

    // Another identity lands under its own prefix.
    let mut sub_b = Client::connect(b.mqtt_addr(), "sub-b").await;
    sub_b.subscribe("dev-b/#", QoS::AtLeastOnce).await;
    let mut sn_b = SnOverDtls::connect(server, "dev-b", "sn-2").await;
    let id = sn_b.register("up/temp").await;
    sn_b.publish_q1(id, "19").await;
    assert_eq!(sub_b.expect_publish("dev-b").await.topic, "dev-b/up/temp");
    sub.expect_no_publish(Duration::from_millis(200), "dev-a sees nothing of dev-b")
        .await;
    // dev-b cannot rebind dev-a's client to itself by naming its client id in a PINGREQ.
    sn_b.send(Packet::PingReq {
        client_id: Some(Bytes::from_static(b"sn-1")),
    })
    .await;
    assert!(
        sn_b.0.recv(Duration::from_millis(300)).await.is_err(),
        "no PINGRESP for another identity's client"
    );
    let pong = sn.call(Packet::PingReq { client_id: None }).await;
    assert_eq!(pong, Packet::PingResp, "dev-a's client is still its own");
}

/// A CoAP CON POST to `/ps/<topic>` over `c`; the response code.
async fn coap_post(c: &mut DtlsClient, mid: u16, topic: &str, body: &str) -> u8 {
    coap_post_as(c, mid, topic, None, body).await
}

/// [`coap_post`] naming a client id (`?clientid=`).
async fn coap_post_as(
    c: &mut DtlsClient,
    mid: u16,
    topic: &str,
    client_id: Option<&str>,
    body: &str,
) -> u8 {
    let mut p = coap_lite::Packet::new();
    p.header.set_type(coap_lite::MessageType::Confirmable);
    p.header.code = coap_lite::MessageClass::Request(coap_lite::RequestType::Post);
    p.header.message_id = mid;
    p.set_token(mid.to_be_bytes().to_vec());
    p.add_option(coap_lite::CoapOption::UriPath, b"ps".to_vec());
    for seg in topic.split('/') {
        p.add_option(coap_lite::CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    if let Some(id) = client_id {
        let q = format!("clientid={id}");
        p.add_option(coap_lite::CoapOption::UriQuery, q.into_bytes());
    }
    p.payload = body.as_bytes().to_vec();
    c.send(&p.to_bytes().unwrap()).await.unwrap();
    loop {
        let d = c.recv(WAIT).await.expect("a CoAP response");
        let r = coap_lite::Packet::from_bytes(&d).unwrap();
        if r.header.message_id == mid {
            return u8::from(r.header.code);
        }
    }
}

const CHANGED: u8 = 0x44;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_handshakes_are_all_served() {
    let dir = temp_dir("dtls-200");
    let b = psk_broker(&dir, &["coap"], "");
    let server = b.listener("coap:dtls:default");
    let mut sub = Client::connect(b.mqtt_addr(), "sub").await;
    sub.subscribe("load/#", QoS::AtMostOnce).await;
    let tasks: Vec<_> = (0..200u16)
        .map(|i| {
            tokio::spawn(async move {
                let mut c =
                    DtlsClient::connect(server, &psk("dev-a"), None, Duration::from_secs(60))
                        .await
                        .unwrap_or_else(|e| panic!("handshake {i}: {e}"));
                coap_post(&mut c, i + 1, &format!("load/{i}"), "x").await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), CHANGED);
    }
    let got = sub.publishes_for(Duration::from_millis(500)).await;
    let mut topics: Vec<String> = got.iter().map(|p| p.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    assert_eq!(topics.len(), 200, "every client's publish arrived");
}

/// The value of `switchyard_dtls_<name>{listener="coap:dtls:default"}`.
async fn dtls_metric(api: &admin_support::Api, name: &str) -> u64 {
    let (_, text) = api.get("/api/v5/prometheus/stats").await;
    let text = text.as_str().unwrap_or_default().to_owned();
    let prefix = format!("switchyard_dtls_{name}{{listener=\"coap:dtls:default\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hello_flood_is_held_to_max_handshakes_while_peers_are_served() {
    let dir = temp_dir("dtls-flood");
    let b = psk_broker(
        &dir,
        &["coap"],
        "[gateway.coap.listeners.dtls.default]\nmax_handshakes = 20\nmax_conn_rate = 0\n\
         [gateway.coap.listeners.dtls.default.dtls_options]\nhandshake_timeout = \"4s\"\n",
    );
    let server = b.listener("coap:dtls:default");
    let api = admin_support::Api::ready(&b).await;
    let mut sub = Client::connect(b.mqtt_addr(), "sub").await;
    sub.subscribe("flood/#", QoS::AtMostOnce).await;
    let mut peer = DtlsClient::connect(server, &psk("dev-a"), None, WAIT)
        .await
        .expect("an established peer");
    assert_eq!(coap_post(&mut peer, 1, "flood/before", "x").await, CHANGED);

    // 300 ClientHellos from 300 addresses (ports), none of which goes on.
    let hello = client_hello(server, b"flooder").unwrap();
    let mut sockets = Vec::new();
    for _ in 0..300 {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&hello, server).await.unwrap();
        sockets.push(s);
    }
    // Wait (bounded) until every ClientHello was seen: kept or refused.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let held = dtls_metric(&api, "handshaking").await;
        let refused = dtls_metric(&api, "handshakes_refused").await;
        if held + refused >= 300 {
            assert_eq!(held, 20, "held to max_handshakes");
            assert_eq!(refused, 280);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "held {held} refused {refused}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The established peer is still served during the flood.
    assert_eq!(coap_post(&mut peer, 2, "flood/during", "y").await, CHANGED);
    // The gateways API shows the DTLS listener with its peers (the established one and the
    // flood's 20 in handshake).
    let (_, gw) = api.get("/api/v5/gateways/coap").await;
    let dtls = gw["listeners"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["type"] == "dtls"))
        .cloned()
        .unwrap_or_else(|| panic!("no DTLS listener in {gw}"));
    assert_eq!(dtls["id"], "coap:dtls:default");
    assert_eq!(dtls["running"], true);
    assert_eq!(dtls["dtls_peers"], 21, "{dtls}");
    assert_eq!(dtls["dtls_handshaking"], 20, "{dtls}");
    let listed = dtls["dtls_peer_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed.len(), 1, "the one established peer: {dtls}");
    assert_eq!(listed[0]["identity"], "dev-a");
    assert_eq!(listed[0]["auth"], "psk");
    assert_eq!(
        listed[0]["peer"],
        peer.local_addr()
            .map(|a| format!("127.0.0.1:{}", a.port()))
            .unwrap()
    );
    let got = sub.publishes_for(Duration::from_millis(300)).await;
    assert!(got.iter().any(|p| p.topic == "flood/during"));
    // A newcomer is refused while the table is full...
    let refused =
        DtlsClient::connect(server, &psk("dev-b"), None, Duration::from_millis(800)).await;
    assert!(refused.is_err(), "a 21st handshake was taken");
    // ...and served once the flood's handshakes time out.
    let deadline = tokio::time::Instant::now() + WAIT;
    while dtls_metric(&api, "handshaking").await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "flood never timed out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dtls_metric(&api, "handshakes_failed_timeout").await >= 20);
    let mut late = DtlsClient::connect(server, &psk("dev-b"), None, WAIT)
        .await
        .expect("served after the flood");
    assert_eq!(coap_post(&mut late, 3, "flood/after", "z").await, CHANGED);
}

#[tokio::test]
async fn a_certificate_cn_is_the_username_in_the_acl() {
    let prog = "coap-client-openssl";
    if !require_program(prog) {
        return;
    }
    let dir = temp_dir("dtls-cn-acl");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.to_string_lossy().into_owned()
    };
    let client = |cn: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        (
            write(&format!("{cn}.pem"), cert.pem()),
            write(&format!("{cn}.key"), key.serialize_pem()),
        )
    };
    let (good_cert, good_key) = client("good-cn");
    let (bad_cert, bad_key) = client("blocked-cn");
    let acl = write(
        "acl.toml",
        "[[rule]]\npermission = \"deny\"\naction = \"publish\"\nusername = \"blocked-cn\"\n\
         topics = [\"#\"]\n\n[[rule]]\npermission = \"allow\"\naction = \"all\"\ntopics = [\"#\"]\n"
            .into(),
    );
    let toml = format!(
        "[authorization]\nfile = \"{acl}\"\n\
         [gateway.coap.listeners.dtls.default]\nenable = true\nbind = \"127.0.0.1:0\"\n\
         peer_cert_as_username = \"cn\"\n\
         [gateway.coap.listeners.dtls.default.dtls_options]\n\
         certfile = \"{}\"\nkeyfile = \"{}\"\ncacertfile = \"{}\"\n\
         verify = \"verify_peer\"\nfail_if_no_peer_cert = true\n",
        write("server.pem", server_cert.pem()),
        write("server.key", server_key.serialize_pem()),
        write("ca.pem", ca.pem()),
    );
    let b = Broker::start_with(&toml);
    let port = b.listener("coap:dtls:default").port();
    let mut sub = Client::connect(b.mqtt_addr(), "sub").await;
    sub.subscribe("acl/#", QoS::AtMostOnce).await;
    let post = |cert: &str, key: &str, topic: &str| {
        let uri = format!("coaps://127.0.0.1:{port}/ps/{topic}");
        let mut cmd = std::process::Command::new(prog);
        cmd.args([
            "-v", "6", "-B", "10", "-m", "post", "-c", cert, "-j", key, "-e", "v", &uri,
        ]);
        let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(30));
        assert!(status.is_some(), "{prog} timed out\n{out}\n{err}");
        format!("{out}\n{err}")
    };
    let out = post(&good_cert, &good_key, "acl/good");
    assert!(out.contains("c:2.04"), "good-cn publishes\n{out}");
    assert_eq!(sub.expect_publish("good-cn").await.topic, "acl/good");
    let out = post(&bad_cert, &bad_key, "acl/bad");
    assert!(
        out.contains("c:4.01"),
        "blocked-cn is denied by its CN\n{out}"
    );
    sub.expect_no_publish(Duration::from_millis(300), "nothing from blocked-cn")
        .await;
}

#[tokio::test]
async fn a_client_id_is_not_usable_from_another_dtls_identity() {
    let dir = temp_dir("dtls-idmix");
    let b = psk_broker(&dir, &["coap"], "");
    let server = b.listener("coap:dtls:default");
    let mut sub = Client::connect(b.mqtt_addr(), "sub").await;
    sub.subscribe("mix/#", QoS::AtMostOnce).await;
    let mut a = DtlsClient::connect(server, &psk("dev-a"), None, WAIT)
        .await
        .unwrap();
    let mut other = DtlsClient::connect(server, &psk("dev-b"), None, WAIT)
        .await
        .unwrap();
    assert_eq!(
        coap_post_as(&mut a, 1, "mix/a", Some("shared"), "1").await,
        CHANGED
    );
    assert_eq!(sub.expect_publish("dev-a").await.topic, "mix/a");
    // dev-b names dev-a's client id: refused, nothing published as dev-a.
    assert_eq!(
        coap_post_as(&mut other, 2, "mix/b", Some("shared"), "2").await,
        0x83
    );
    sub.expect_no_publish(Duration::from_millis(300), "dev-b acting as dev-a")
        .await;
    // dev-a itself goes on.
    assert_eq!(
        coap_post_as(&mut a, 3, "mix/a2", Some("shared"), "3").await,
        CHANGED
    );
    assert_eq!(sub.expect_publish("dev-a again").await.topic, "mix/a2");
}

#[tokio::test]
async fn mqttsn_certificate_cn_as_username() {
    let dir = temp_dir("dtls-mqttsn-cn");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cn-dev");
    let client_cert = params.signed_by(&client_key, &ca, &ca_key).unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    let toml = format!(
        "[gateway.mqttsn]\nmountpoint = \"${{username}}/\"\n\
         [gateway.mqttsn.listeners.dtls.default]\nenable = true\nbind = \"127.0.0.1:0\"\n\
         peer_cert_as_username = \"cn\"\n\
         [gateway.mqttsn.listeners.dtls.default.dtls_options]\n\
         certfile = \"{}\"\nkeyfile = \"{}\"\ncacertfile = \"{}\"\n\
         verify = \"verify_peer\"\nfail_if_no_peer_cert = true\n",
        write("server.pem", server_cert.pem()),
        write("server.key", server_key.serialize_pem()),
        write("ca.pem", ca.pem()),
    );
    let b = Broker::start_with(&toml);
    let server = b.listener("mqttsn:dtls:default");
    let mut sub = Client::connect(b.mqtt_addr(), "sub").await;
    sub.subscribe("cn-dev/#", QoS::AtLeastOnce).await;
    let auth = ClientAuth::Certificate {
        cert_pem: Some((client_cert.pem(), client_key.serialize_pem())),
    };
    let c = DtlsClient::connect(server, &auth, None, WAIT)
        .await
        .expect("certificate handshake");
    let mut sn = SnOverDtls(c);
    let ack = sn
        .call(Packet::Connect(Connect {
            flags: Flags {
                clean_session: true,
                ..Flags::default()
            },
            protocol_id: 1,
            duration: 60,
            client_id: Bytes::from_static(b"sn-cert"),
        }))
        .await;
    assert_eq!(ack, Packet::ConnAck { rc: 0 });
    let id = sn.register("up").await;
    sn.publish_q1(id, "v").await;
    assert_eq!(sub.expect_publish("CN mountpoint").await.topic, "cn-dev/up");
    // Without a client certificate, no handshake.
    let none = ClientAuth::Certificate { cert_pem: None };
    assert!(
        DtlsClient::connect(server, &none, None, Duration::from_secs(3))
            .await
            .is_err()
    );
}
