//! The MQTT-SN gateway against a client we did not write: PyPI's `mqtt-sn-12` command-line tools
//! (`mqtt_sn_pub`, `mqtt_sn_sub`; scripts/install-test-deps.sh installs them), with rumqttc on
//! the MQTT side.

mod common;

use common::mqtt::{text, Client};
use common::{require_program, run_with_timeout, Broker};
use rumqttc::QoS;
use std::process::{Command, Stdio};
use std::time::Duration;

const GW: &str = "mqttsn:udp:default";

#[tokio::test]
async fn mqtt_sn_pub_reaches_mqtt_at_qos_0_and_1_and_predefined() {
    if !require_program("mqtt_sn_pub") {
        return;
    }
    let broker =
        Broker::start_with("[gateway.mqttsn]\npredefined = [{ id = 7, topic = \"py/pre\" }]\n");
    let gw = broker.listener(GW);
    let mut sub = Client::connect(broker.mqtt_addr(), "mqtt-py-sub").await;
    sub.subscribe("py/#", QoS::AtLeastOnce).await;
    for (qos, args) in [
        ("0", vec!["-t", "py/up"]),
        ("1", vec!["-t", "py/up"]),
        ("1", vec!["-T", "7"]),
    ] {
        let payload = format!("hello-q{qos}-{}", args[0]);
        let mut cmd = Command::new("mqtt_sn_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &gw.port().to_string(), "-q", qos])
            .args([
                "-i",
                &format!("py-pub-{qos}"),
                "-m",
                &payload,
                "--timeout",
                "5",
            ])
            .args(&args);
        let (status, out, err) = tokio::task::spawn_blocking(move || {
            run_with_timeout(&mut cmd, Duration::from_secs(20))
        })
        .await
        .expect("join");
        assert!(
            status.is_some_and(|s| s.success()),
            "mqtt_sn_pub failed: {status:?}\n{out}\n{err}\n{}",
            broker.log_excerpt()
        );
        let p = sub.expect_publish("from mqtt_sn_pub").await;
        let want = if args[0] == "-T" { "py/pre" } else { "py/up" };
        assert_eq!((p.topic.as_str(), text(&p)), (want, payload));
    }
}

#[tokio::test]
async fn mqtt_sn_sub_receives_from_mqtt() {
    if !require_program("mqtt_sn_sub") {
        return;
    }
    let broker = Broker::start();
    let gw = broker.listener(GW);
    let dir = common::temp_dir("pysub");
    let out_path = dir.join("out");
    let err_path = dir.join("err");
    let out = std::fs::File::create(&out_path).expect("out file");
    let err = std::fs::File::create(&err_path).expect("err file");
    // -d: its debug log (stderr, one record at a time) says when the SUBACK arrived.
    let mut child = Command::new("mqtt_sn_sub")
        .args(["-h", "127.0.0.1", "-p", &gw.port().to_string(), "-q", "1"])
        .args([
            "-i",
            "py-sub",
            "-t",
            "py/down",
            "-1",
            "--timeout",
            "5",
            "-d",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn mqtt_sn_sub");
    let mqtt = Client::connect(broker.mqtt_addr(), "mqtt-py-pub").await;
    // Publish once the subscriber has its SUBACK; it exits after one message (-1).
    let subscribed = tokio::task::spawn_blocking({
        let err_path = err_path.clone();
        move || {
            common::wait_until(Duration::from_secs(20), || {
                std::fs::read_to_string(&err_path)
                    .is_ok_and(|e| e.contains("SUBACK return code: 0"))
            })
        }
    })
    .await
    .expect("join");
    let mut exited = None;
    if subscribed {
        mqtt.client
            .publish("py/down", QoS::AtLeastOnce, false, "to-sensor")
            .await
            .expect("publish");
        exited = tokio::task::spawn_blocking(move || {
            let status = common::wait_child(&mut child, Duration::from_secs(20));
            if status.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            status
        })
        .await
        .expect("join");
    } else {
        let _ = child.kill();
        let _ = child.wait();
    }
    let printed = std::fs::read_to_string(&out_path).unwrap_or_default();
    let debug = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        subscribed,
        "mqtt_sn_sub got no SUBACK\n{debug}\n{}",
        broker.log_excerpt()
    );
    assert!(
        exited.is_some_and(|s| s.success()),
        "mqtt_sn_sub did not exit after one message: {exited:?}\n{printed}\n{debug}\n{}",
        broker.log_excerpt()
    );
    assert!(printed.contains("to-sensor"), "{printed}");
}
