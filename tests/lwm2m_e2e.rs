//! The LwM2M gateway end to end against the real binary: the simulated device of
//! `switchyard_lwm2m::sim` (the one `examples/lwm2m_device.rs` runs) on one side, rumqttc on the
//! MQTT side. Checks the exact JSON of docs/lwm2m.md for register/update events, every
//! operation and observe/notify, and our fixes of EMQX's bugs (docs/lwm2m.md §4.13: non-empty
//! tokens, timeouts, retransmission, 4.00 for unknown commands, takeover from a new address).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mqtt::{text, Client};
use common::Broker;
use rumqttc::QoS;
use serde_json::{json, Value};
use std::time::Duration;
use switchyard_lwm2m::sim::{Device, SimValue};

const WAIT: Duration = Duration::from_secs(5);

fn broker(extra: &str) -> Broker {
    let xml = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/lwm2m_xml");
    Broker::start_with(&format!(
        "[gateway.lwm2m]\nxml_dir = \"{}\"\nack_timeout = \"200ms\"\n{extra}",
        xml.display()
    ))
}

async fn setup(b: &Broker, ep: &str) -> (Client, Device) {
    let mut mqtt = Client::connect(b.mqtt_addr(), &format!("app-{ep}")).await;
    mqtt.subscribe(&format!("lwm2m/{ep}/up/#"), QoS::AtLeastOnce)
        .await;
    let dev = Device::bind(b.listener("lwm2m:udp:default"), ep)
        .await
        .unwrap();
    (mqtt, dev)
}

async fn event(mqtt: &mut Client, what: &str) -> (String, Value) {
    let p = mqtt.expect_publish(what).await;
    let v: Value = serde_json::from_str(&text(&p)).unwrap_or_else(|e| panic!("{what}: {e}"));
    (p.topic.clone(), v)
}

/// Publishes a command, lets the device answer it, returns the response event.
async fn command(mqtt: &mut Client, dev: &mut Device, ep: &str, cmd: Value) -> Value {
    let n = dev.seen.len();
    mqtt.publish(
        &format!("lwm2m/{ep}/dn/dm"),
        QoS::AtLeastOnce,
        false,
        cmd.to_string().as_bytes(),
    )
    .await;
    assert!(
        dev.serve_until_seen(n + 1, WAIT).await,
        "device never saw {cmd}"
    );
    let (topic, v) = event(mqtt, &cmd.to_string()).await;
    assert_eq!(topic, format!("lwm2m/{ep}/up/resp"));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_operations_update_deregister() {
    let b = broker("");
    let ep = "urn:oma:lwm2m:oma:3";
    let (mut mqtt, mut dev) = setup(&b, ep).await;
    dev.register_query = vec!["lt=345".into(), "lwm2m=1".into(), "apn=psm".into()];
    dev.links = "</1>, </2>, </3>, </4>, </5>".into();
    assert_eq!(dev.register().await, Some(0x41), "2.01 Created");
    let (topic, v) = event(&mut mqtt, "register").await;
    assert_eq!(topic, format!("lwm2m/{ep}/up/resp"));
    assert_eq!(
        v,
        json!({"msgType":"register","data":{"alternatePath":"/","ep":ep,"lt":345,"lwm2m":"1","apn":"psm","objectList":["/1","/2","/3","/4","/5"]}})
    );

    // read (text, no Accept)
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"requestID":1,"cacheID":1,"msgType":"read","data":{"path":"/3/0/0"}}),
    )
    .await;
    assert_eq!(
        v,
        json!({"requestID":1,"cacheID":1,"msgType":"read","data":{"reqPath":"/3/0/0","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/0","value":"Switchyard"}]}})
    );
    let seen = dev.seen.last().unwrap();
    assert_eq!(seen.accept, None);
    assert!(!seen.token.is_empty(), "commands carry a token");
    // read of an instance (TLV) typed through the XML
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":2,"msgType":"read","data":{"path":"/3303/0"}}),
    )
    .await;
    assert_eq!(
        v["data"]["content"],
        json!([{"path":"/3303/0/5700","value":21.5},{"path":"/3303/0/5701","value":"Cel"}])
    );
    // read asking for SenML JSON
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":3,"msgType":"read","data":{"path":"/3/0/9","format":"senml-json"}}),
    )
    .await;
    assert_eq!(dev.seen.last().unwrap().accept, Some(110));
    assert_eq!(v["data"]["content"], json!([{"path":"/3/0/9","value":87}]));
    // discover
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":4,"msgType":"discover","data":{"path":"/3303/0"}}),
    )
    .await;
    assert_eq!(
        v["data"]["content"],
        json!(["</3303/0>", "</3303/0/5700>", "</3303/0/5701>"])
    );
    // single write: PUT, TLV, signed integer
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":5,"msgType":"write","data":{"path":"/3/0/13","type":"Time","value":200}}),
    )
    .await;
    assert_eq!(
        v,
        json!({"reqID":5,"msgType":"write","data":{"reqPath":"/3/0/13","code":"2.04","codeMsg":"changed"}})
    );
    let seen = dev.seen.last().unwrap();
    assert_eq!((seen.method, seen.content_format), (3, Some(11542)));
    assert_eq!(seen.payload, vec![0xC2, 0x0D, 0x00, 0xC8]);
    assert_eq!(dev.value(3, 0, 13), Some(&SimValue::Int(200)));
    // batch write: POST on the instance
    let v = command(&mut mqtt, &mut dev, ep, json!({"reqID":6,"msgType":"write","data":{"basePath":"/3303/0","content":[{"path":"5700","type":"Float","value":"-3.5"},{"path":"5701","type":"String","value":"K"}]}})).await;
    assert_eq!(v["data"]["code"], json!("2.04"));
    assert_eq!(dev.seen.last().unwrap().method, 2);
    assert_eq!(dev.value(3303, 0, 5700), Some(&SimValue::Float(-3.5)));
    // execute
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":7,"msgType":"execute","data":{"path":"/3/0/4","args":"2,7"}}),
    )
    .await;
    assert_eq!(
        v["data"],
        json!({"reqPath":"/3/0/4","code":"2.04","codeMsg":"changed"})
    );
    assert_eq!(dev.seen.last().unwrap().payload, b"2,7");
    // write-attr
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":8,"msgType":"write-attr","data":{"path":"/3/0/9","pmin":"1","pmax":"5"}}),
    )
    .await;
    assert_eq!(v["data"]["code"], json!("2.04"));
    assert_eq!(dev.seen.last().unwrap().query, vec!["pmin=1", "pmax=5"]);
    // create / delete
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":9,"msgType":"create","data":{"basePath":"/19","content":[]}}),
    )
    .await;
    assert_eq!(v["data"]["codeMsg"], json!("created"));
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":10,"msgType":"delete","data":{"path":"/19/0"}}),
    )
    .await;
    assert_eq!(v["data"]["codeMsg"], json!("deleted"));
    // device error passed through
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":11,"msgType":"read","data":{"path":"/3/0/99"}}),
    )
    .await;
    assert_eq!(
        v["data"],
        json!({"reqPath":"/3/0/99","code":"4.04","codeMsg":"not_found"})
    );
    // unknown msgType: 4.00 with keys echoed, nothing sent to the device
    let n = dev.seen.len();
    mqtt.publish(
        &format!("lwm2m/{ep}/dn/dm"),
        QoS::AtLeastOnce,
        false,
        br#"{"reqID":12,"msgType":"reboot-now","data":{"path":"/3/0"}}"#,
    )
    .await;
    let (_, v) = event(&mut mqtt, "rejected").await;
    assert_eq!(
        v,
        json!({"reqID":12,"msgType":"reboot-now","data":{"reqPath":"/3/0","code":"4.00","codeMsg":"bad_request"}})
    );
    assert_eq!(dev.seen.len(), n);

    // update: merged data
    assert_eq!(
        dev.update(&["lt=789"], Some("</1/0>,</2/0>")).await,
        Some(0x44),
        "2.04"
    );
    let (_, v) = event(&mut mqtt, "update").await;
    assert_eq!(
        v,
        json!({"msgType":"update","data":{"alternatePath":"/","ep":ep,"lt":789,"lwm2m":"1","apn":"psm","objectList":["/1/0","/2/0"]}})
    );
    // de-register: 2.02 and no event; a later Update is 4.04
    assert_eq!(dev.deregister().await, Some(0x42));
    mqtt.expect_no_publish(Duration::from_millis(500), "de-register publishes nothing")
        .await;
    assert_eq!(dev.update(&[], None).await, Some(0x84));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_notify_cancel_with_alternate_path() {
    let b = broker("");
    let ep = "obs1";
    let (mut mqtt, mut dev) = setup(&b, ep).await;
    assert_eq!(dev.register().await, Some(0x41));
    event(&mut mqtt, "register").await;
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":1,"msgType":"observe","data":{"path":"/3303/0/5700"}}),
    )
    .await;
    assert_eq!(
        v,
        json!({"reqID":1,"msgType":"observe","data":{"reqPath":"/3303/0/5700","code":"2.05","codeMsg":"content","content":[{"path":"/3303/0/5700","value":21.5}]}})
    );
    let token = dev.seen.last().unwrap().token.clone();
    assert_eq!(dev.seen.last().unwrap().observe, Some(0));
    for (i, (val, con)) in [(22.0, true), (22.5, false)].into_iter().enumerate() {
        dev.set_value(3303, 0, 5700, SimValue::Float(val));
        assert!(dev.notify("/3303/0/5700", con).await);
        dev.serve_for(Duration::from_millis(100)).await;
        let (topic, v) = event(&mut mqtt, "notify").await;
        assert_eq!(topic, format!("lwm2m/{ep}/up/notify"));
        assert_eq!(
            v,
            json!({"reqID":1,"msgType":"notify","seqNum":i + 1,"data":{"reqPath":"/3303/0/5700","code":"2.05","codeMsg":"content","content":[{"path":"/3303/0/5700","value":val}]}})
        );
    }
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":2,"msgType":"cancel-observe","data":{"path":"/3303/0/5700"}}),
    )
    .await;
    assert_eq!(v["msgType"], json!("cancel-observe"));
    assert_eq!(v["data"]["code"], json!("2.05"));
    let seen = dev.seen.last().unwrap();
    assert_eq!((seen.observe, seen.token.clone()), (Some(1), token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternate_path_prefixes_commands() {
    let b = broker("");
    let ep = "alt1";
    let (mut mqtt, mut dev) = setup(&b, ep).await;
    dev.links = r#"</lwm2m>;rt="oma.lwm2m";ct=11543,</lwm2m/1/0>,</lwm2m/3/0>"#.into();
    assert_eq!(dev.register().await, Some(0x41));
    let (_, v) = event(&mut mqtt, "register").await;
    assert_eq!(v["data"]["alternatePath"], json!("/lwm2m"));
    assert_eq!(v["data"]["objectList"], json!(["/1/0", "/3/0"]));
    let n = dev.seen.len();
    mqtt.publish(
        &format!("lwm2m/{ep}/dn/dm"),
        QoS::AtLeastOnce,
        false,
        br#"{"msgType":"read","data":{"path":"/3/0/0"}}"#,
    )
    .await;
    assert!(dev.serve_until_seen(n + 1, WAIT).await);
    assert_eq!(dev.seen.last().unwrap().path, "/lwm2m/3/0/0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_request_is_retransmitted_and_ignored_one_times_out() {
    let b = broker("max_retransmit = 2\n");
    let ep = "lossy1";
    let (mut mqtt, mut dev) = setup(&b, ep).await;
    assert_eq!(dev.register().await, Some(0x41));
    event(&mut mqtt, "register").await;
    // The first transmission is lost; the retransmission (after ~200-300 ms) is answered.
    dev.drop_next = 1;
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"reqID":1,"msgType":"read","data":{"path":"/3/0/1"}}),
    )
    .await;
    assert_eq!(
        v["data"]["content"],
        json!([{"path":"/3/0/1","value":"sim-lwm2m"}])
    );
    // A device that ignores a request: coap_timeout after the retransmissions, then the next
    // queued command goes out.
    dev.mute = true;
    for id in [2, 3] {
        let cmd = json!({"reqID":id,"msgType":"read","data":{"path":"/3/0/2"}});
        mqtt.publish(
            &format!("lwm2m/{ep}/dn/dm"),
            QoS::AtLeastOnce,
            false,
            cmd.to_string().as_bytes(),
        )
        .await;
    }
    // 200ms × (1+2+4) × up to 1.5 ≈ 2.1 s of retransmissions.
    let deadline = tokio::time::Instant::now() + WAIT;
    while dev.ignored < 3 && tokio::time::Instant::now() < deadline {
        dev.serve_for(Duration::from_millis(50)).await;
    }
    assert_eq!(dev.ignored, 3, "1 send + 2 retransmissions");
    dev.mute = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut got = None;
    while got.is_none() && tokio::time::Instant::now() < deadline {
        dev.serve_for(Duration::from_millis(100)).await;
        if let Some(p) = mqtt.next_publish(Duration::from_millis(50)).await {
            got = Some(serde_json::from_str::<Value>(&text(&p)).unwrap());
        }
    }
    assert_eq!(
        got,
        Some(json!({"reqID":2,"msgType":"coap_timeout","data":{"path":"/3/0/2"}}))
    );
    // The next command went out (retransmitted to a now-answering device) and is answered.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut got = None;
    while got.is_none() && tokio::time::Instant::now() < deadline {
        dev.serve_for(Duration::from_millis(100)).await;
        if let Some(p) = mqtt.next_publish(Duration::from_millis(50)).await {
            got = Some(serde_json::from_str::<Value>(&text(&p)).unwrap());
        }
    }
    let got = got.expect("the next command's response");
    assert_eq!(got["reqID"], json!(3));
    assert_eq!(got["data"]["code"], json!("2.05"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_from_a_new_port_takes_over() {
    let b = broker("");
    let ep = "mover1";
    let (mut mqtt, mut old) = setup(&b, ep).await;
    assert_eq!(old.register().await, Some(0x41));
    event(&mut mqtt, "register").await;
    let mut new = Device::bind(b.listener("lwm2m:udp:default"), ep)
        .await
        .unwrap();
    assert_ne!(new.local_addr().unwrap(), old.local_addr().unwrap());
    assert_eq!(new.register().await, Some(0x41));
    let (_, v) = event(&mut mqtt, "register again").await;
    assert_eq!(v["msgType"], json!("register"));
    let v = command(
        &mut mqtt,
        &mut new,
        ep,
        json!({"reqID":1,"msgType":"read","data":{"path":"/3/0/0"}}),
    )
    .await;
    assert_eq!(v["data"]["code"], json!("2.05"));
    old.serve_for(Duration::from_millis(200)).await;
    assert!(old.seen.is_empty(), "commands go to the new address only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_mode_and_lifetime_expiry() {
    let b = broker("qmode_time_window = \"1s\"\nlifetime_min = \"1s\"\n");
    let ep = "sleepy1";
    let (mut mqtt, mut dev) = setup(&b, ep).await;
    dev.register_query = vec!["lt=3".into(), "lwm2m=1.1".into(), "b=UQ".into()];
    assert_eq!(dev.register().await, Some(0x41));
    event(&mut mqtt, "register").await;
    // Letting time pass is the point: the device has been silent for longer than
    // qmode_time_window (1 s), so the gateway takes it as asleep and holds commands.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for id in 1..=2 {
        let cmd = json!({"reqID":id,"msgType":"read","data":{"path":"/3/0/0"}});
        mqtt.publish(
            &format!("lwm2m/{ep}/dn/dm"),
            QoS::AtLeastOnce,
            false,
            cmd.to_string().as_bytes(),
        )
        .await;
    }
    dev.serve_for(Duration::from_millis(500)).await;
    assert!(dev.seen.is_empty(), "held while the device sleeps");
    assert_eq!(dev.update(&[], None).await, Some(0x44));
    event(&mut mqtt, "update").await;
    assert!(dev.serve_until_seen(2, WAIT).await, "flushed on Update");
    let ids: Vec<Value> = vec![
        event(&mut mqtt, "r1").await.1["reqID"].clone(),
        event(&mut mqtt, "r2").await.1["reqID"].clone(),
    ];
    assert_eq!(ids, vec![json!(1), json!(2)]);
    // Lifetime 3 s: silent for longer, the registration is gone. Letting time pass is the
    // point: the lifetime plus a margin.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(dev.update(&[], None).await, Some(0x84), "expired: 4.04");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_are_refused() {
    let b = broker("");
    let mut dev = Device::bind(b.listener("lwm2m:udp:default"), "bad1")
        .await
        .unwrap();
    dev.register_query = vec!["lt=30".into(), "lwm2m=8.3".into()];
    assert_eq!(dev.register().await, Some(0x80));
    dev.register_query = vec!["lwm2m=1.0".into()];
    assert_eq!(dev.register().await, Some(0x80));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_definitions_when_the_default_xml_dir_is_absent() {
    // The harness runs the binary in a temp dir, where config/lwm2m_xml does not exist.
    let b = Broker::start_with("");
    assert!(b.log_contains("using the built-in object definitions"));
    let ep = "builtin1";
    let (mut mqtt, mut dev) = setup(&b, ep).await;
    assert_eq!(dev.register().await, Some(0x41));
    event(&mut mqtt, "register").await;
    let v = command(
        &mut mqtt,
        &mut dev,
        ep,
        json!({"msgType":"read","data":{"path":"/3/0/9"}}),
    )
    .await;
    assert_eq!(v["data"]["content"], json!([{"path":"/3/0/9","value":87}]));
}

#[test]
fn start_up_errors() {
    // An enabled DTLS listener with neither a certificate nor pre-shared keys cannot start.
    let dtls = Broker::try_start(
        "[gateway.lwm2m.listeners.dtls.default]\nenable = true\nbind = \"127.0.0.1:0\"\n",
        &[],
    );
    let err = dtls.err().unwrap_or_default();
    assert!(err.contains("psk_authentication"), "{err}");
    let missing = Broker::try_start("[gateway.lwm2m]\nxml_dir = \"/nonexistent/xml\"\n", &[]);
    let err = missing.err().unwrap_or_default();
    assert!(err.contains("gateway.lwm2m.xml_dir"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_checks_imei_and_password_with_the_authenticator() {
    let dir = common::temp_dir("lwm2m-authn");
    let users = dir.join("users.csv");
    std::fs::write(
        &users,
        "user_id,password,is_superuser\nimei-0001,right-pw,false\n",
    )
    .unwrap();
    let b = broker(&format!(
        "[authentication]\nallow_anonymous = false\nbootstrap_file = \"{}\"\n[gateway.lwm2m]\nenable_authn = true\n",
        users.display()
    ));
    let addr = b.listener("lwm2m:udp:default");
    let mut good = Device::bind(addr, "authn-good").await.unwrap();
    good.register_query = vec![
        "lt=30".into(),
        "lwm2m=1.0".into(),
        "imei=imei-0001".into(),
        "password=right-pw".into(),
    ];
    assert_eq!(
        good.register().await,
        Some(0x41),
        "right imei/password: 2.01 Created"
    );
    let mut bad = Device::bind(addr, "authn-bad").await.unwrap();
    bad.register_query = vec![
        "lt=30".into(),
        "lwm2m=1.0".into(),
        "imei=imei-0001".into(),
        "password=wrong".into(),
    ];
    assert_eq!(
        bad.register().await,
        Some(0x80),
        "wrong password: 4.00 Login Failed"
    );
    let mut anon = Device::bind(addr, "authn-anon").await.unwrap();
    anon.register_query = vec!["lt=30".into(), "lwm2m=1.0".into()];
    assert_eq!(
        anon.register().await,
        Some(0x80),
        "no imei with anonymous off: 4.00"
    );
    assert!(b.log_contains("LwM2M register refused"));
}
