//! Loading tests: defaults, the shipped file, file and environment layering, and error
//! messages for unknown keys and malformed values. Environment variables are injected as
//! pairs; no test touches the process environment.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::*;
use crate::schema::*;
use crate::units::{ByteSize, Duration};

/// A TOML file in the temp directory, removed on drop. Names are unique per test.
struct TempToml(PathBuf);

impl TempToml {
    fn new(test: &str, contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "switchyard-config-{}-{test}.toml",
            std::process::id()
        ));
        fs::write(&path, contents).expect("write temp config");
        TempToml(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempToml {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/switchyard.toml")
}

/// The error text for `toml`, which must fail to load.
fn toml_error(toml: &str) -> String {
    match from_toml_str(toml) {
        Ok(c) => panic!("expected an error for {toml:?}, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn env_error(pairs: &[(&str, &str)]) -> String {
    match load_from(None, env(pairs)) {
        Ok(c) => panic!("expected an error for {pairs:?}, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} not in error:\n{text}");
    }
}

#[test]
fn defaults_are_the_documented_values() {
    let c = Config::default();
    assert_eq!(c.node.name, "switchyard@127.0.0.1");
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.mqtt.max_packet_size, ByteSize(1_048_576));
    assert_eq!(c.mqtt.session_expiry_interval, Duration::from_secs(7200));
    assert_eq!(c.mqtt.retry_interval, None);
    assert_eq!(c.mqtt.server_keepalive, None);
    assert_eq!(c.mqtt.await_rel_timeout, Duration::from_secs(300));
    assert_eq!(
        c.listeners.tcp.default.bind,
        "0.0.0.0:1883".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(c.listeners.ws.default.bind.port(), 8083);
    assert_eq!(c.listeners.ssl.default.bind.port(), 8883);
    assert_eq!(c.listeners.wss.default.bind.port(), 8084);
    assert!(!c.listeners.ssl.default.enable && !c.listeners.wss.default.enable);
    assert_eq!(c.gateway.mqttsn.listeners.udp.default.bind.port(), 1884);
    assert_eq!(c.gateway.coap.listeners.udp.default.bind.port(), 5683);
    assert_eq!(c.gateway.lwm2m.listeners.udp.default.bind.port(), 5783);
    assert_eq!(c.dashboard.listeners.http.bind.port(), 18083);
    assert_eq!(c.sys_topics.sys_msg_interval, Some(Duration::from_secs(60)));
    assert_eq!(c.authorization.no_match, AuthzDecision::Allow);
    assert_eq!(c.authorization.deny_action, DenyAction::Ignore);
    assert_eq!(c.validate().map_err(|e| e.to_string()), Ok(()));
}

#[test]
fn no_file_no_env_loads_the_defaults() {
    // The crate directory holds no config/switchyard.toml, so None means defaults only.
    assert_eq!(resolve_path(None).expect("resolve"), None);
    assert_eq!(load_from(None, no_env()).expect("load"), Config::default());
}

#[test]
fn shipped_file_equals_defaults() {
    let path = shipped_path();
    assert_eq!(
        load_from(Some(&path), no_env()).expect("load shipped"),
        Config::default()
    );
    // Read without figment's default layer too: the file alone must be complete and exact.
    let text = fs::read_to_string(&path).expect("read shipped");
    assert_eq!(
        toml::from_str::<Config>(&text).expect("parse"),
        Config::default()
    );
}

/// Collects every leaf key path of a TOML table.
fn leaf_keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => leaf_keys(inner, &format!("{path}."), out),
            _ => out.push(path),
        }
    }
}

#[test]
fn shipped_file_lists_every_key() {
    let shipped: toml::Table = fs::read_to_string(shipped_path())
        .expect("read shipped")
        .parse()
        .expect("shipped is TOML");
    let printed: toml::Table = to_toml(&Config::default()).parse().expect("printed");
    let (mut shipped_keys, mut printed_keys) = (Vec::new(), Vec::new());
    leaf_keys(&shipped, "", &mut shipped_keys);
    leaf_keys(&printed, "", &mut printed_keys);
    shipped_keys.sort();
    printed_keys.sort();
    assert_eq!(shipped_keys, printed_keys);
    assert!(printed_keys.len() > 60, "{}", printed_keys.len());
}

#[test]
fn defaults_round_trip_through_to_toml() {
    let text = to_toml(&Config::default());
    assert!(text.contains("max_packet_size = \"1MB\""), "{text}");
    assert!(text.contains("retry_interval = \"off\""), "{text}");
    assert!(text.contains("session_expiry_interval = \"2h\""), "{text}");
    assert_eq!(from_toml_str(&text).expect("parse"), Config::default());
}

#[test]
fn changed_config_round_trips_through_to_toml() {
    let mut c = Config::default();
    c.mqtt.retry_interval = Some(Duration::from_millis(1_500));
    c.mqtt.server_keepalive = Some(Duration::from_secs(90));
    c.mqtt.max_packet_size = ByteSize(1000);
    c.mqtt.keepalive_multiplier = 2.25;
    c.mqtt.shared_subscription_strategy = SharedSubscriptionStrategy::HashClientid;
    c.sys_topics.sys_msg_interval = None;
    c.listeners.tcp.default.bind = "[::1]:0".parse().expect("addr");
    c.listeners.ssl.default.enable = true;
    c.listeners.ssl.default.certfile = PathBuf::from("certs/cert.pem");
    c.listeners.ssl.default.keyfile = PathBuf::from("certs/key.pem");
    c.log.format = LogFormat::Json;
    let text = to_toml(&c);
    assert!(text.contains("strategy = \"hash_clientid\""), "{text}");
    assert!(text.contains("bind = \"[::1]:0\""), "{text}");
    assert_eq!(from_toml_str(&text).expect("parse"), c);
}

#[test]
fn one_key_overrides_only_that_key() {
    let file = TempToml::new("one-key", "[mqtt]\nmax_inflight = 7\n");
    let c = load_from(Some(file.path()), no_env()).expect("load");
    let mut expected = Config::default();
    expected.mqtt.max_inflight = 7;
    assert_eq!(c, expected);
}

#[test]
fn partial_gateway_listener_keeps_the_gateway_port() {
    let c =
        from_toml_str("[gateway.coap.listeners.udp.default]\nmax_connections = 5\n").expect("load");
    assert_eq!(c.gateway.coap.listeners.udp.default.max_connections, 5);
    assert_eq!(c.gateway.coap.listeners.udp.default.bind.port(), 5683);
}

#[test]
fn env_overrides_file() {
    let file = TempToml::new(
        "env-over-file",
        "[mqtt]\nmax_inflight = 5\nmax_awaiting_rel = 9\n\
         [listeners.tcp.default]\nbind = \"127.0.0.1:1999\"\n",
    );
    let vars = env(&[
        (
            "SWITCHYARD_LISTENERS__TCP__DEFAULT__BIND",
            "127.0.0.1:21883",
        ),
        ("SWITCHYARD_MQTT__MAX_INFLIGHT", "10"),
        ("SWITCHYARD_MQTT__SESSION_EXPIRY_INTERVAL", "30s"),
        ("SWITCHYARD_MQTT__AWAIT_REL_TIMEOUT", "45"),
        ("SWITCHYARD_MQTT__MAX_PACKET_SIZE", "64KB"),
        ("SWITCHYARD_MQTT__RETRY_INTERVAL", "5s"),
        ("SWITCHYARD_MQTT__KEEPALIVE_MULTIPLIER", "2.5"),
        ("SWITCHYARD_MQTT__SHARED_SUBSCRIPTION_STRATEGY", "sticky"),
        ("SWITCHYARD_SYS_TOPICS__SYS_MSG_INTERVAL", "infinity"),
        ("SWITCHYARD_GATEWAY__MQTTSN__ENABLE", "false"),
        ("switchyard_log__level", "debug"),
        // Not ours: ignored.
        ("PATH", "/usr/bin"),
        ("MQTT__MAX_INFLIGHT", "3"),
    ]);
    let c = load_from(Some(file.path()), vars).expect("load");
    assert_eq!(
        c.listeners.tcp.default.bind,
        "127.0.0.1:21883".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(c.mqtt.max_inflight, 10);
    assert_eq!(c.mqtt.max_awaiting_rel, 9, "file value not overridden");
    assert_eq!(c.mqtt.session_expiry_interval, Duration::from_secs(30));
    assert_eq!(c.mqtt.await_rel_timeout, Duration::from_secs(45));
    assert_eq!(c.mqtt.max_packet_size, ByteSize(65_536));
    assert_eq!(c.mqtt.retry_interval, Some(Duration::from_secs(5)));
    assert_eq!(c.mqtt.keepalive_multiplier, 2.5);
    assert_eq!(
        c.mqtt.shared_subscription_strategy,
        SharedSubscriptionStrategy::Sticky
    );
    assert_eq!(c.sys_topics.sys_msg_interval, None);
    assert!(!c.gateway.mqttsn.enable);
    assert_eq!(c.log.level, "debug");
}

/// The keys added for connection pacing and the keepalive cap are reachable from the
/// environment like every other key (the loader maps any key path generically).
#[test]
fn env_sets_conn_pacing_and_max_keepalive() {
    let vars = env(&[
        ("SWITCHYARD_LISTENERS__TCP__DEFAULT__MAX_CONN_RATE", "200"),
        ("SWITCHYARD_LISTENERS__TCP__DEFAULT__MAX_CONN_BURST", "50"),
        ("SWITCHYARD_LISTENERS__WSS__DEFAULT__MAX_CONN_RATE", "10"),
        ("SWITCHYARD_MQTT__MAX_KEEPALIVE", "60"),
    ]);
    let c = load_from(None, vars).expect("load");
    let tcp = &c.listeners.tcp.default;
    assert_eq!((tcp.max_conn_rate, tcp.max_conn_burst), (200, 50));
    let wss = &c.listeners.wss.default;
    assert_eq!((wss.max_conn_rate, wss.max_conn_burst), (10, 0));
    assert_eq!(c.mqtt.max_keepalive, Some(Duration::from_secs(60)));
    let c = load_from(None, env(&[("SWITCHYARD_MQTT__MAX_KEEPALIVE", "2m")])).expect("load");
    assert_eq!(c.mqtt.max_keepalive, Some(Duration::from_secs(120)));
    let c = load_from(None, env(&[("SWITCHYARD_MQTT__MAX_KEEPALIVE", "off")])).expect("load");
    assert_eq!(c.mqtt.max_keepalive, None);
}

#[test]
fn env_size_as_integer() {
    let c = load_from(None, env(&[("SWITCHYARD_MQTT__MAX_PACKET_SIZE", "4096")])).expect("load");
    assert_eq!(c.mqtt.max_packet_size, ByteSize(4096));
}

#[test]
fn env_unknown_key_names_key_and_variable() {
    let err = env_error(&[("SWITCHYARD_MQTT__MAX_INFLIGT", "3")]);
    assert_contains(
        &err,
        &[
            "mqtt.max_infligt",
            "unknown key",
            "SWITCHYARD_MQTT__MAX_INFLIGT",
        ],
    );
    let err = env_error(&[("SWITCHYARD_NOPE", "1")]);
    assert_contains(&err, &["nope: unknown key", "`mqtt`"]);
}

#[test]
fn env_bad_values_name_key_and_expectation() {
    let err = env_error(&[("SWITCHYARD_MQTT__MAX_INFLIGHT", "lots")]);
    assert_contains(
        &err,
        &["mqtt.max_inflight", "\"lots\"", "an integer 0..=65535"],
    );
    let err = env_error(&[("SWITCHYARD_MQTT__IDLE_TIMEOUT", "5x")]);
    assert_contains(
        &err,
        &[
            "mqtt.idle_timeout",
            "a duration like",
            "SWITCHYARD_MQTT__IDLE_TIMEOUT",
        ],
    );
    let err = env_error(&[("SWITCHYARD_MQTT__MAX_INFLIGHT", "0")]);
    assert_contains(&err, &["mqtt.max_inflight: must be 1..=65535, got 0"]);
}

#[test]
fn env_malformed_names_are_errors() {
    let err = env_error(&[("SWITCHYARD_MQTT____MAX_INFLIGHT", "3")]);
    assert_contains(
        &err,
        &["SWITCHYARD_MQTT____MAX_INFLIGHT", "empty key level"],
    );
    let err = env_error(&[
        ("SWITCHYARD_MQTT", "3"),
        ("SWITCHYARD_MQTT__MAX_INFLIGHT", "3"),
    ]);
    assert_contains(&err, &["mqtt", "both as a value and as a table"]);
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let err = toml_error("mqtt_extra = 1\n");
    assert_contains(&err, &["mqtt_extra: unknown key", "`node`"]);
    let err = toml_error("[mqt]\nmax_inflight = 3\n");
    assert_contains(&err, &["mqt: unknown key"]);
}

#[test]
fn unknown_nested_keys_are_errors() {
    let err = toml_error("[mqtt]\nmax_infligt = 3\n");
    assert_contains(&err, &["mqtt.max_infligt: unknown key", "`max_inflight`"]);
    let err = toml_error("[gateway.mqttsn.listeners.quic.default]\nbind = \"0.0.0.0:1885\"\n");
    assert_contains(
        &err,
        &["gateway.mqttsn.listeners.quic: unknown key", "`udp`"],
    );
    let err = toml_error("[listeners.tcp.defualt]\nbind = \"0.0.0.0:1885\"\n");
    assert_contains(&err, &["listeners.tcp.defualt: unknown key"]);
    let err = toml_error("[listeners.tcp.default]\ncertfile = \"x.pem\"\n");
    assert_contains(&err, &["listeners.tcp.default.certfile: unknown key"]);
}

#[test]
fn bad_values_name_key_and_expectation() {
    let cases: [(&str, &[&str]); 9] = [
        (
            "[listeners.tcp.default]\nbind = \"nope\"",
            &[
                "listeners.tcp.default.bind",
                "\"nope\"",
                "IP:port socket address",
            ],
        ),
        (
            "[listeners.ws.default]\nbind = 8083",
            &["listeners.ws.default.bind", "IP:port socket address"],
        ),
        (
            "[mqtt]\nmax_inflight = 0",
            &["mqtt.max_inflight: must be 1..=65535, got 0"],
        ),
        (
            "[mqtt]\nmax_inflight = 70000",
            &[
                "mqtt.max_inflight",
                "70000",
                "expected an integer 0..=65535",
            ],
        ),
        (
            "[mqtt]\nshared_subscription_strategy = \"fastest\"",
            &[
                "mqtt.shared_subscription_strategy",
                "\"fastest\"",
                "round_robin",
                "hash_clientid",
            ],
        ),
        (
            "[mqtt]\nsession_expiry_interval = \"5x\"",
            &[
                "mqtt.session_expiry_interval",
                "unknown unit \"x\"",
                "a duration like",
            ],
        ),
        (
            "[mqtt]\nmax_packet_size = \"1XB\"",
            &["mqtt.max_packet_size", "unknown unit \"XB\"", "a size like"],
        ),
        (
            "[mqtt]\nretain_available = \"yes\"",
            &["mqtt.retain_available", "bool"],
        ),
        (
            "[log]\nformat = \"xml\"",
            &["log.format", "\"xml\"", "`text` or `json`"],
        ),
    ];
    for (toml, parts) in cases {
        assert_contains(&toml_error(toml), parts);
    }
}

#[test]
fn file_errors_name_the_file() {
    let file = TempToml::new("bad-value", "[mqtt]\nmax_qos_allowed = \"two\"\n");
    let err = load_from(Some(file.path()), no_env()).expect_err("bad value");
    let issue = &err.issues()[0];
    assert_eq!(issue.key, "mqtt.max_qos_allowed");
    let origin = issue.origin.as_deref().unwrap_or_default();
    assert!(origin.contains("bad-value.toml"), "{origin}");
    assert!(matches!(err, ConfigError::Parse(_)));
}

#[test]
fn toml_syntax_error_is_reported() {
    let file = TempToml::new("syntax", "[mqtt\nmax_inflight = 3\n");
    let err = load_from(Some(file.path()), no_env()).expect_err("syntax");
    assert_contains(&err.to_string(), &["invalid configuration", "syntax.toml"]);
}

#[test]
fn explicit_missing_file_is_an_error() {
    let path = Path::new("/nonexistent/switchyard.toml");
    let err = load_from(Some(path), no_env()).expect_err("missing");
    assert!(matches!(err, ConfigError::NotFound(ref p) if p == path));
    assert_contains(
        &err.to_string(),
        &["/nonexistent/switchyard.toml", "not found"],
    );
}

#[test]
fn off_values_in_a_file() {
    let c = from_toml_str(
        "[sys_topics]\nsys_msg_interval = 0\nsys_heartbeat_interval = \"off\"\n\
         [mqtt]\nretry_interval = \"30s\"\nserver_keepalive = \"disabled\"\n",
    )
    .expect("load");
    assert_eq!(c.sys_topics.sys_msg_interval, None);
    assert_eq!(c.sys_topics.sys_heartbeat_interval, None);
    assert_eq!(c.mqtt.retry_interval, Some(Duration::from_secs(30)));
    assert_eq!(c.mqtt.server_keepalive, None);
}

#[test]
fn env_quoted_string_that_looks_like_a_number() {
    let c = load_from(None, env(&[("SWITCHYARD_NODE__DATA_DIR", "\"2024\"")])).expect("load");
    assert_eq!(c.node.data_dir, PathBuf::from("2024"));
    let err = env_error(&[("SWITCHYARD_NODE__DATA_DIR", "2024")]);
    assert_contains(&err, &["node.data_dir", "SWITCHYARD_NODE__DATA_DIR"]);
}

/// Lists of tables come from the environment in figment's inline syntax (the README's
/// auto-subscribe and rewrite examples).
#[test]
fn lists_of_tables_from_the_environment() {
    let vars = env(&[
        (
            "SWITCHYARD_AUTO_SUBSCRIBE__TOPICS",
            r#"[{topic="cmd/${clientid}",qos=1}]"#,
        ),
        (
            "SWITCHYARD_REWRITE",
            r#"[{action="publish",source_topic="x/#",re="^x/(.+)$",dest_topic="y/$1"}]"#,
        ),
    ]);
    let c = load_from(None, vars).expect("load");
    assert_eq!(c.auto_subscribe.topics.len(), 1);
    assert_eq!(c.auto_subscribe.topics[0].topic, "cmd/${clientid}");
    assert_eq!(c.auto_subscribe.topics[0].qos, 1);
    assert_eq!(c.rewrite.len(), 1);
    assert_eq!(c.rewrite[0].dest_topic, "y/$1");
    assert_eq!(c.rewrite[0].action, crate::RewriteAction::Publish);
}

/// `[[authorization.sources]]` from the file and from the environment (the README's example).
#[test]
fn authorization_sources_from_file_and_environment() {
    let vars = env(&[(
        "SWITCHYARD_AUTHORIZATION__SOURCES",
        r#"[{type="http",method="post",url="http://127.0.0.1:8080/authz"},{type="file"}]"#,
    )]);
    let c = load_from(None, vars).expect("load");
    assert_eq!(c.authorization.sources.len(), 2);
    assert_eq!(
        c.authorization.sources[0]
            .get("type")
            .and_then(|v| v.as_str()),
        Some("http")
    );
    assert!(Config::default().authorization.sources.is_empty());
}
