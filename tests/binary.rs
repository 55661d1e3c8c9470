//! The `switchyard` binary as an operator sees it: CLI, config loading and printing, startup
//! errors, the ready file, signals, and the `$SYS` version topic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::mqtt::{text, Client};
use common::{bin, config_toml, run_with_timeout, temp_dir, wait_child, Broker};
use rumqttc::QoS;

const CLI_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the binary with `args` in an empty temp dir (so no `config/switchyard.toml` is picked
/// up from the working directory) and `env`; returns (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = temp_dir("cli");
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(&dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (status, out, err) = run_with_timeout(&mut cmd, CLI_TIMEOUT);
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.unwrap_or_else(|| {
        panic!("{args:?} did not finish within {CLI_TIMEOUT:?}\nstdout:\n{out}\nstderr:\n{err}")
    });
    (status.code(), out, err)
}

/// The value of `key` in `[section]` of a TOML document, as written (quotes included).
fn toml_value(doc: &str, section: &str, key: &str) -> Option<String> {
    let header = format!("[{section}]");
    let mut in_section = false;
    for line in doc.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_section = t == header;
            continue;
        }
        if in_section {
            if let Some((k, v)) = t.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().to_owned());
                }
            }
        }
    }
    None
}

fn write_config(extra: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir("cfg");
    let path = dir.join("test.toml");
    std::fs::write(&path, extra).unwrap();
    (dir, path)
}

#[test]
fn harness_ready_file_parser_and_toml_merge() {
    let m = common::parse_ready_file(
        r#"{"listeners": {"mqtt:tcp:default": "127.0.0.1:40123", "mqtt:ws:default":"127.0.0.1:1"}}"#,
    )
    .unwrap();
    assert_eq!(m["mqtt:tcp:default"].port(), 40123);
    assert_eq!(m.len(), 2);
    assert!(common::parse_ready_file("{").is_none());
    let merged = common::merge_toml("[a]\nx = 1\ny = 2\n", "[a]\ny = 3\n[b]\nz = 4\n");
    assert!(merged.contains("x = 1") && merged.contains("y = 3") && !merged.contains("y = 2"));
    assert!(merged.contains("[b]\nz = 4"));
}

#[test]
fn help_lists_the_interface() {
    let (code, out, err) = run(&["--help"], &[]);
    assert_eq!(
        code,
        Some(0),
        "--help failed\nstdout:\n{out}\nstderr:\n{err}"
    );
    for word in ["--config", "--ready-file", "print-config"] {
        assert!(out.contains(word), "--help does not mention {word}:\n{out}");
    }
}

#[test]
fn print_config_prints_the_defaults_as_toml() {
    let (code, out, err) = run(&["print-config"], &[]);
    assert_eq!(code, Some(0), "print-config failed\nstderr:\n{err}");
    assert!(
        out.contains("[listeners.tcp.default]"),
        "no [listeners.tcp.default]:\n{out}"
    );
    assert_eq!(
        toml_value(&out, "listeners.tcp.default", "bind").as_deref(),
        Some("\"0.0.0.0:1883\""),
        "default MQTT bind:\n{out}"
    );
    assert!(out.contains("[mqtt]"), "no [mqtt]:\n{out}");
}

#[test]
fn print_config_reflects_file_and_env_override() {
    let (dir, path) = write_config(
        "[mqtt]\nmax_inflight = 17\n\n[listeners.tcp.default]\nbind = \"127.0.0.1:1111\"\n",
    );
    let path_s = path.to_str().unwrap();

    let (code, out, err) = run(&["print-config", "--config", path_s], &[]);
    assert_eq!(code, Some(0), "stderr:\n{err}");
    assert_eq!(
        toml_value(&out, "mqtt", "max_inflight").as_deref(),
        Some("17"),
        "{out}"
    );
    assert_eq!(
        toml_value(&out, "listeners.tcp.default", "bind").as_deref(),
        Some("\"127.0.0.1:1111\""),
        "{out}"
    );
    // Keys the file does not mention keep their defaults.
    assert_eq!(
        toml_value(&out, "listeners.ws.default", "bind").as_deref(),
        Some("\"0.0.0.0:8083\""),
        "{out}"
    );

    // The environment beats the file.
    let (code, out, err) = run(
        &["print-config", "--config", path_s],
        &[("SWITCHYARD_LISTENERS__TCP__DEFAULT__BIND", "127.0.0.1:2222")],
    );
    assert_eq!(code, Some(0), "stderr:\n{err}");
    assert_eq!(
        toml_value(&out, "listeners.tcp.default", "bind").as_deref(),
        Some("\"127.0.0.1:2222\""),
        "env override not applied:\n{out}"
    );
    assert_eq!(
        toml_value(&out, "mqtt", "max_inflight").as_deref(),
        Some("17"),
        "{out}"
    );

    // And without a file.
    let (code, out, _) = run(&["print-config"], &[("SWITCHYARD_MQTT__MAX_INFLIGHT", "9")]);
    assert_eq!(code, Some(0));
    assert_eq!(
        toml_value(&out, "mqtt", "max_inflight").as_deref(),
        Some("9"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// print-config's output is a valid config that loads to the same config.
#[test]
fn print_config_output_round_trips() {
    let (code, first, err) = run(&["print-config"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let (dir, path) = write_config(&first);
    let (code, second, err) = run(&["print-config", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "printed config does not load back:\n{err}");
    assert_eq!(first, second);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_config_key_is_an_error_naming_the_key() {
    let (dir, path) = write_config("[mqtt]\nno_such_key = 1\n");
    let path_s = path.to_str().unwrap();
    let (code, out, err) = run(&["print-config", "--config", path_s], &[]);
    assert!(
        code.is_some() && code != Some(0),
        "print-config accepted an unknown key:\n{out}"
    );
    assert!(
        err.contains("no_such_key"),
        "stderr does not name the key:\n{err}"
    );

    // The broker itself refuses to start, and says why.
    let ready = dir.join("ready.json");
    let (code, out, err) = run(
        &["--config", path_s, "--ready-file", ready.to_str().unwrap()],
        &[],
    );
    assert!(
        code.is_some() && code != Some(0),
        "broker started with an unknown key\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        err.contains("no_such_key") || out.contains("no_such_key"),
        "the error does not name the key\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        !ready.exists(),
        "ready file written by a broker that failed to start"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_config_file_is_an_error() {
    let (code, _out, err) = run(
        &["print-config", "--config", "/nonexistent/switchyard.toml"],
        &[],
    );
    assert!(
        code.is_some() && code != Some(0),
        "a missing --config file must be an error"
    );
    assert!(
        err.contains("/nonexistent/switchyard.toml"),
        "error should name the file:\n{err}"
    );
}

#[test]
fn port_in_use_fails_with_a_clear_message() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = temp_dir("inuse");
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        config_toml(
            &dir,
            &format!("[listeners.tcp.default]\nbind = \"127.0.0.1:{port}\"\n"),
        ),
    )
    .unwrap();
    let ready = dir.join("ready.json");
    let (code, out, err) = run(
        &[
            "--config",
            config.to_str().unwrap(),
            "--ready-file",
            ready.to_str().unwrap(),
        ],
        &[],
    );
    let all = format!("{out}\n{err}");
    assert!(
        code.is_some() && code != Some(0),
        "broker must exit non-zero when its port is taken\n{all}"
    );
    assert!(
        all.contains(&port.to_string()) && all.to_lowercase().contains("in use"),
        "the error must name the address and say it is in use\n{all}"
    );
    assert!(
        !ready.exists(),
        "ready file written although a listener failed to bind"
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ready_file_and_log_list_every_listener() {
    let broker = Broker::start();
    let listeners = broker.listeners().clone();
    assert!(
        listeners.contains_key("mqtt:tcp:default"),
        "ready file lacks mqtt:tcp:default: {listeners:?}"
    );
    for (name, addr) in &listeners {
        assert_eq!(
            name.split(':').count(),
            3,
            "listener key {name:?} is not proto:type:name"
        );
        assert!(
            addr.ip().is_loopback(),
            "{name} bound {addr}, config says 127.0.0.1"
        );
        assert_ne!(
            addr.port(),
            0,
            "{name}: the ready file must hold the bound port"
        );
        assert!(
            broker.log_contains(&addr.to_string()),
            "the log does not mention {name} at {addr}\n{}",
            broker.log_excerpt()
        );
    }
    TcpStream::connect_timeout(&broker.mqtt_addr(), Duration::from_secs(5))
        .expect("the MQTT listener accepts connections");
}

/// `[listeners.ws.default]` is enabled by default (browsers on 8083), so the
/// harness's config (which only moves it to port 0) must bring it up.
#[test]
fn websocket_listener_is_bound_by_default() {
    let broker = Broker::start();
    assert!(
        broker.listeners().contains_key("mqtt:ws:default"),
        "ready file lacks mqtt:ws:default: {:?}\n{}",
        broker.listeners(),
        broker.log_excerpt()
    );
    TcpStream::connect_timeout(&broker.listener("mqtt:ws:default"), Duration::from_secs(5))
        .expect("the WebSocket listener accepts connections");
}

#[test]
fn disabled_listener_is_not_bound() {
    let broker = Broker::start_with("[listeners.ws.default]\nenable = false\n");
    assert!(
        !broker.listeners().contains_key("mqtt:ws:default"),
        "ws listener disabled but listed: {:?}",
        broker.listeners()
    );
    assert!(broker.listeners().contains_key("mqtt:tcp:default"));
}

#[tokio::test]
async fn sigterm_with_connected_clients_exits_zero() {
    let mut broker = Broker::start();
    let mut c = Client::connect(broker.mqtt_addr(), "sigterm-client").await;
    c.subscribe("t", QoS::AtLeastOnce).await;
    let status = broker.stop(Duration::from_secs(5));
    let status =
        status.unwrap_or_else(|| panic!("no exit within 5 s of SIGTERM\n{}", broker.log_excerpt()));
    assert!(
        status.success(),
        "SIGTERM must exit 0, got {status}\n{}",
        broker.log_excerpt()
    );
    assert!(
        c.wait_closed(Duration::from_secs(5)).await.is_some(),
        "client connection still open after the broker exited"
    );
}

#[test]
fn sigint_exits_zero() {
    let mut broker = Broker::start();
    let _conn = TcpStream::connect(broker.mqtt_addr()).unwrap();
    let status = broker.signal_and_wait("INT", Duration::from_secs(5));
    let status =
        status.unwrap_or_else(|| panic!("no exit within 5 s of SIGINT\n{}", broker.log_excerpt()));
    assert!(
        status.success(),
        "SIGINT must exit 0, got {status}\n{}",
        broker.log_excerpt()
    );
}

/// Two brokers with the same config file but different data dirs run side by side (nothing
/// is bound on a fixed port).
#[test]
fn two_brokers_run_side_by_side() {
    let a = Broker::start();
    let b = Broker::start();
    assert_ne!(a.mqtt_addr(), b.mqtt_addr());
}

#[tokio::test]
async fn sys_version_is_retained() {
    let broker = Broker::start();
    let mut c = Client::connect(broker.mqtt_addr(), "sys-reader").await;
    c.subscribe("$SYS/brokers/+/version", QoS::AtMostOnce).await;
    let p = c
        .expect_publish("retained $SYS/brokers/<node>/version")
        .await;
    assert!(
        p.topic.starts_with("$SYS/brokers/") && p.topic.ends_with("/version"),
        "topic {:?}",
        p.topic
    );
    assert!(p.retain, "the version must be a retained message");
    assert!(
        text(&p).contains(env!("CARGO_PKG_VERSION")),
        "version payload {:?} does not contain {}",
        text(&p),
        env!("CARGO_PKG_VERSION")
    );
}

/// The broker runs with no config file at all on its defaults, here moved off the well-known
/// ports via the environment alone.
#[test]
fn runs_from_environment_only() {
    let dir = temp_dir("envonly");
    let ready = dir.join("ready.json");
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["--ready-file", ready.to_str().unwrap()])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    for var in [
        "SWITCHYARD_LISTENERS__TCP__DEFAULT__BIND",
        "SWITCHYARD_LISTENERS__WS__DEFAULT__BIND",
        "SWITCHYARD_LISTENERS__SSL__DEFAULT__BIND",
        "SWITCHYARD_LISTENERS__WSS__DEFAULT__BIND",
        "SWITCHYARD_GATEWAY__MQTTSN__LISTENERS__UDP__DEFAULT__BIND",
        "SWITCHYARD_GATEWAY__COAP__LISTENERS__UDP__DEFAULT__BIND",
        "SWITCHYARD_GATEWAY__LWM2M__LISTENERS__UDP__DEFAULT__BIND",
        "SWITCHYARD_DASHBOARD__LISTENERS__HTTP__BIND",
    ] {
        cmd.env(var, "127.0.0.1:0");
    }
    cmd.env("SWITCHYARD_NODE__DATA_DIR", dir.join("data"));
    let mut child = cmd.spawn().unwrap();
    let ok = common::wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&ready)
            .ok()
            .and_then(|t| common::parse_ready_file(&t))
            .is_some()
    });
    let exited = child.try_wait().ok().flatten();
    common::send_signal(child.id(), "TERM");
    let status = wait_child(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
    }
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    assert!(
        ok,
        "no ready file from env-only config (exited early: {exited:?})\n{log}"
    );
    let text = std::fs::read_to_string(&ready).unwrap();
    let map = common::parse_ready_file(&text).unwrap();
    assert!(map["mqtt:tcp:default"].ip().is_loopback(), "{text}");
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "{status:?}\n{log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
