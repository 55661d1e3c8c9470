//! Validation tests: ranges, TLS rules and listener port conflicts, built in code.

use std::path::PathBuf;

use super::*;

/// The issues `c` fails with, as "key: message" lines.
fn issues(c: &Config) -> Vec<String> {
    match c.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e.issues().iter().map(ToString::to_string).collect(),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

#[test]
fn defaults_are_valid() {
    assert_eq!(issues(&Config::default()), Vec::<String>::new());
}

#[test]
fn every_problem_is_reported() {
    let mut c = Config::default();
    c.node.name = "nohost@".to_owned();
    c.log.level = " ".to_owned();
    c.mqtt.max_inflight = 0;
    c.mqtt.max_qos_allowed = 3;
    c.mqtt.max_clientid_len = 22;
    c.mqtt.max_packet_size = ByteSize(0);
    c.mqtt.keepalive_multiplier = f64::NAN;
    c.mqtt.idle_timeout = Duration::ZERO;
    c.mqtt.await_rel_timeout = Duration::ZERO;
    assert_eq!(
        issues(&c),
        [
            "node.name: must be name@host, got \"nohost@\"",
            "log.level: must be error|warn|info|debug|trace or a tracing filter directive, \
             got \"\"",
            "mqtt.max_packet_size: must be 1B..=256MB, got 0B",
            "mqtt.max_clientid_len: must be 23..=65535, got 22",
            "mqtt.max_qos_allowed: must be 0..=2, got 3",
            "mqtt.max_inflight: must be 1..=65535, got 0",
            "mqtt.await_rel_timeout: must be greater than 0s, got 0s",
            "mqtt.idle_timeout: must be greater than 0s, got 0s",
            "mqtt.keepalive_multiplier: must be >= 1.0 (and finite), got NaN",
        ]
    );
    assert!(matches!(c.validate(), Err(ConfigError::Invalid(_))));
}

#[test]
fn protocol_width_limits() {
    let mut c = Config::default();
    c.mqtt.max_packet_size = ByteSize(256 * ByteSize::MB);
    c.mqtt.session_expiry_interval = Duration::from_secs(u64::from(u32::MAX));
    c.mqtt.server_keepalive = Some(Duration::from_secs(65_535));
    assert_eq!(issues(&c), Vec::<String>::new());

    c.mqtt.max_packet_size = ByteSize(256 * ByteSize::MB + 1);
    c.mqtt.session_expiry_interval = Duration::from_secs(u64::from(u32::MAX) + 1);
    c.mqtt.server_keepalive = Some(Duration::from_secs(65_536));
    assert_eq!(
        issues(&c),
        [
            "mqtt.max_packet_size: must be 1B..=256MB, got 268435457B",
            "mqtt.session_expiry_interval: must be at most 4294967295s, got 4294967296s",
            "mqtt.server_keepalive: must be 1s..=65535s or \"off\", got 65536s",
        ]
    );
}

#[test]
fn zero_is_not_a_valid_on_duration() {
    let mut c = Config::default();
    c.mqtt.retry_interval = Some(Duration::ZERO);
    c.sys_topics.sys_heartbeat_interval = Some(Duration::ZERO);
    let found = issues(&c);
    assert!(found.contains(
        &"mqtt.retry_interval: must be greater than 0s, or \"off\" to disable".to_owned()
    ));
    assert!(found
        .iter()
        .any(|i| i.starts_with("sys_topics.sys_heartbeat_interval:")));
}

#[test]
fn enabled_tls_listener_needs_certificates() {
    let mut c = Config::default();
    c.listeners.ssl.default.enable = true;
    c.listeners.ssl.default.verify = TlsVerify::VerifyPeer;
    let found = issues(&c);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("listeners.ssl.default.certfile: must be a PEM file path"));
    assert!(found[1].starts_with("listeners.ssl.default.keyfile:"));
    assert!(found[2].contains("cacertfile") && found[2].contains("verify_peer"));

    c.listeners.ssl.default.certfile = PathBuf::from("cert.pem");
    c.listeners.ssl.default.keyfile = PathBuf::from("key.pem");
    c.listeners.ssl.default.cacertfile = PathBuf::from("ca.pem");
    c.listeners.ssl.default.fail_if_no_peer_cert = true;
    assert_eq!(issues(&c), Vec::<String>::new());
}

#[test]
fn fail_if_no_peer_cert_needs_verify_peer() {
    let mut c = Config::default();
    let wss = &mut c.listeners.wss.default;
    wss.enable = true;
    wss.certfile = PathBuf::from("cert.pem");
    wss.keyfile = PathBuf::from("key.pem");
    wss.fail_if_no_peer_cert = true;
    let found = issues(&c);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("listeners.wss.default.fail_if_no_peer_cert: must be false"));
}

#[test]
fn disabled_tls_listener_is_not_checked() {
    let mut c = Config::default();
    c.listeners.ssl.default.verify = TlsVerify::VerifyPeer;
    c.listeners.ssl.default.fail_if_no_peer_cert = true;
    assert_eq!(issues(&c), Vec::<String>::new());
}

#[test]
fn listener_shape_rules() {
    let mut c = Config::default();
    c.listeners.ws.default.path = "mqtt".to_owned();
    c.gateway.coap.listeners.udp.default.max_connections = 0;
    assert_eq!(
        issues(&c),
        [
            "gateway.coap.listeners.udp.default.max_connections: must be at least 1, got 0",
            "listeners.ws.default.path: must start with '/', got \"mqtt\"",
        ]
    );
}

#[test]
fn tcp_listeners_cannot_share_a_port() {
    let mut c = Config::default();
    c.listeners.ws.default.bind = addr("127.0.0.1:1883");
    c.dashboard.listeners.http.bind = addr("0.0.0.0:8083");
    assert_eq!(
        issues(&c),
        [
            "listeners.ws.default.bind: TCP address 127.0.0.1:1883 is already used by \
             listeners.tcp.default.bind",
        ]
    );
    // Disabling the first listener removes the conflict; the dashboard then clashes with
    // nothing either, since ws moved off 8083.
    c.listeners.tcp.default.enable = false;
    assert_eq!(issues(&c), Vec::<String>::new());
}

#[test]
fn udp_gateways_cannot_share_a_port() {
    let mut c = Config::default();
    c.gateway.lwm2m.listeners.udp.default.bind = addr("0.0.0.0:5683");
    assert_eq!(
        issues(&c),
        [
            "gateway.lwm2m.listeners.udp.default.bind: UDP address 0.0.0.0:5683 is already \
             used by gateway.coap.listeners.udp.default.bind",
        ]
    );
    // TCP and UDP port spaces are separate: MQTT on TCP 5683 is fine.
    c.gateway.lwm2m.enable = false;
    c.listeners.tcp.default.bind = addr("0.0.0.0:5683");
    assert_eq!(issues(&c), Vec::<String>::new());
}

#[test]
fn port_zero_and_distinct_addresses_do_not_conflict() {
    let mut c = Config::default();
    for bind in [
        &mut c.listeners.tcp.default.bind,
        &mut c.listeners.ws.default.bind,
        &mut c.dashboard.listeners.http.bind,
    ] {
        *bind = addr("127.0.0.1:0");
    }
    assert_eq!(issues(&c), Vec::<String>::new());

    assert!(!overlaps(addr("127.0.0.1:1883"), addr("127.0.0.2:1883")));
    assert!(!overlaps(addr("[::]:1883"), addr("127.0.0.1:1883")));
    assert!(overlaps(addr("[::]:1883"), addr("[::1]:1883")));
    assert!(overlaps(addr("127.0.0.1:1883"), addr("0.0.0.0:1883")));
}

#[test]
fn max_keepalive_is_a_two_byte_count_of_seconds() {
    let mut c = Config::default();
    assert_eq!(c.mqtt.max_keepalive, None, "off by default");
    c.mqtt.max_keepalive = Some(Duration::from_secs(65_535));
    assert_eq!(issues(&c), Vec::<String>::new());
    c.mqtt.max_keepalive = Some(Duration::from_secs(65_536));
    assert_eq!(
        issues(&c),
        ["mqtt.max_keepalive: must be 1s..=65535s or \"off\", got 65536s"]
    );
    c.mqtt.max_keepalive = Some(Duration::ZERO);
    assert!(issues(&c).contains(
        &"mqtt.max_keepalive: must be greater than 0s, or \"off\" to disable".to_owned()
    ));
}

#[test]
fn conn_burst_needs_a_conn_rate() {
    let mut c = Config::default();
    for l in [
        c.listeners.tcp.default.max_conn_rate,
        c.listeners.ws.default.max_conn_rate,
        c.listeners.ssl.default.max_conn_rate,
        c.listeners.wss.default.max_conn_rate,
    ] {
        assert_eq!(
            l, 0,
            "stream listeners are unlimited by default, as in EMQX 5"
        );
    }
    assert_eq!(c.gateway.coap.listeners.udp.default.max_conn_rate, 1000);
    c.listeners.ws.default.max_conn_burst = 50;
    assert_eq!(
        issues(&c),
        ["listeners.ws.default.max_conn_burst: must be 0 while \
             listeners.ws.default.max_conn_rate is 0 (unlimited), got 50; set max_conn_rate \
             to pace new connections"]
    );
    c.listeners.ws.default.max_conn_rate = 10;
    assert_eq!(issues(&c), Vec::<String>::new());
}

#[test]
fn tls_files_on_a_disabled_listener_are_a_warning() {
    let mut c = Config::default();
    assert_eq!(c.warnings(), Vec::new());
    c.listeners.ssl.default.certfile = PathBuf::from("cert.pem");
    c.listeners.ssl.default.keyfile = PathBuf::from("key.pem");
    c.dashboard.listeners.https.keyfile = PathBuf::from("key.pem");
    let keys: Vec<String> = c.warnings().into_iter().map(|w| w.key).collect();
    assert_eq!(keys, ["listeners.ssl.default", "dashboard.listeners.https"]);
    assert!(c.warnings()[0]
        .message
        .contains("set listeners.ssl.default.enable = true"));
    assert_eq!(issues(&c), Vec::<String>::new(), "a warning, not an error");
    c.listeners.ssl.default.enable = true;
    c.dashboard.listeners.https.keyfile = PathBuf::new();
    assert_eq!(c.warnings(), Vec::new());
}

/// The errors loading `toml` gives, as "key: message" lines (empty when it loads).
fn load_issues(toml: &str) -> Vec<String> {
    match crate::from_toml_str(toml) {
        Ok(_) => Vec::new(),
        Err(e) => e.issues().iter().map(ToString::to_string).collect(),
    }
}

/// Every protocol's listeners get the same checks, each issue naming the listener's own key:
/// an address that does not parse, no connections allowed, a burst without a rate, and a port
/// another listener of the same transport holds.
#[test]
fn every_listener_of_every_protocol_gets_the_same_checks() {
    let all = Config::default().protocols();
    assert!(all.len() >= 4, "mqtt and the gateways: {all:?}");
    for p in &all {
        for l in &p.listeners {
            let key = &l.key;
            let found = load_issues(&format!("[{key}]\nbind = \"not-an-address\"\n"));
            assert!(
                found.iter().any(|i| i.starts_with(&format!("{key}.bind:"))),
                "{key}: {found:?}"
            );
            let found = load_issues(&format!("[{key}]\nmax_connections = 0\n"));
            assert_eq!(
                found,
                [format!("{key}.max_connections: must be at least 1, got 0")]
            );
            let found = load_issues(&format!("[{key}]\nmax_conn_rate = 0\nmax_conn_burst = 5\n"));
            assert_eq!(found.len(), 1, "{key}: {found:?}");
            assert!(found[0].starts_with(&format!("{key}.max_conn_burst: must be 0")));
        }
    }
    // A bind clash with another enabled listener of the same transport, for each listener that
    // starts by default: it takes the port of the first other one in its port space.
    let c = Config::default();
    let starting: Vec<(bool, ListenerView)> = c
        .protocols()
        .into_iter()
        .flat_map(|p| {
            let on = p.enable;
            p.listeners.into_iter().map(move |l| (on && l.enable, l))
        })
        .filter(|(on, _)| *on)
        .collect();
    for (_, l) in &starting {
        let Some((_, other)) = starting
            .iter()
            .find(|(_, o)| o.key != l.key && (o.kind == "udp") == (l.kind == "udp"))
        else {
            continue;
        };
        let toml = format!("[{}]\nbind = \"{}\"\n", l.key, other.bind);
        let found = load_issues(&toml);
        assert_eq!(found.len(), 1, "{toml}: {found:?}");
        assert!(
            found[0].starts_with(&format!("{}.bind:", l.key))
                || found[0].starts_with(&format!("{}.bind:", other.key)),
            "{toml}: {found:?}"
        );
    }
}

/// UDP listeners take `max_conn_burst` too, defaulting to the rate.
#[test]
fn udp_listeners_have_a_burst_that_defaults_to_the_rate() {
    let c = Config::default();
    let udp = &c.gateway.mqttsn.listeners.udp.default;
    assert_eq!((udp.max_conn_rate, udp.max_conn_burst), (1000, 0));
    let c = crate::from_toml_str(
        "[gateway.coap.listeners.udp.default]\nmax_conn_rate = 10\nmax_conn_burst = 50\n",
    )
    .expect("valid");
    let coap = c.protocol("coap").expect("coap");
    let view = coap.listener("udp").expect("udp");
    assert_eq!((view.max_conn_rate, view.max_conn_burst), (10, 50));
}

#[test]
fn log_file_limits() {
    let mut c = Config::default();
    c.log.file.enable = true;
    c.log.file.path = PathBuf::new();
    c.log.file.max_size = ByteSize(1023);
    c.log.file.rotation_count = 0;
    assert_eq!(
        issues(&c),
        [
            "log.file.path: must not be empty",
            "log.file.max_size: must be at least 1KB, got 1023B",
            "log.file.rotation_count: must be 1..=128, got 0",
        ]
    );
    c.log.file.path = PathBuf::from("log/x.log");
    c.log.file.max_size = ByteSize(ByteSize::KB);
    c.log.file.rotation_count = 128;
    assert_eq!(issues(&c), Vec::<String>::new());
    c.log.file.rotation_count = 129;
    assert_eq!(
        issues(&c),
        ["log.file.rotation_count: must be 1..=128, got 129"]
    );
}
