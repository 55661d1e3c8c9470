//! Checks that run after extraction: numeric ranges the types cannot express, and rules across
//! keys (TLS listeners need certificates, two enabled listeners cannot share a port). Every
//! problem is collected, not just the first, each as "key: must be ..., got ...". Listener
//! rules walk [`Config::protocols`], so every protocol's listeners get the same checks.
//! [`Config::warnings`] lists what is valid but probably a mistake; it never stops start-up.

use std::net::SocketAddr;
use std::path::Path;

use crate::error::{ConfigError, Issue};
use crate::schema::{Config, ListenerView, MqttConfig, TlsOptions, TlsVerify};
use crate::units::{ByteSize, Duration};

/// MQTT's largest packet: a 256MB remaining length plus header, rounded to the unit
/// (MQTT-2.2.3, variable byte integer of at most 268,435,455).
const MAX_PACKET_SIZE: u64 = 256 * ByteSize::MB;
/// MQTT 5 Session Expiry Interval is a four-byte count of seconds (MQTT-3.1.2.11.2).
const MAX_SESSION_EXPIRY_SECS: u64 = u32::MAX as u64;
/// MQTT 5 Server Keep Alive is a two-byte count of seconds (MQTT-3.2.2.3.14).
const MAX_SERVER_KEEPALIVE_SECS: u64 = u16::MAX as u64;

impl Config {
    /// Checks ranges and cross-key rules; `Err` lists every problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        check_node_and_log(self, &mut issues);
        check_mqtt(&self.mqtt, &mut issues);
        check_off_durations(self, &mut issues);
        let listeners = listeners(self);
        check_listeners(self, &listeners, &mut issues);
        self.gateway.mqttsn.check(&mut issues);
        self.check_ops(&mut issues);
        let (tcp, udp) = binds(self, &listeners);
        check_bind_conflicts("TCP", &tcp, &mut issues);
        check_bind_conflicts("UDP", &udp, &mut issues);
        match issues.is_empty() {
            true => Ok(()),
            false => Err(ConfigError::Invalid(issues)),
        }
    }
}

fn check_node_and_log(c: &Config, issues: &mut Vec<Issue>) {
    let name_ok = matches!(c.node.name.split_once('@'),
        Some((name, host)) if !name.is_empty() && !host.is_empty() && !host.contains('@'));
    if !name_ok {
        issues.push(Issue::new(
            "node.name",
            format!("must be name@host, got {:?}", c.node.name),
        ));
    }
    if c.node.data_dir.as_os_str().is_empty() {
        issues.push(Issue::new("node.data_dir", "must not be empty"));
    }
    if c.log.level.trim().is_empty() {
        issues.push(Issue::new(
            "log.level",
            "must be error|warn|info|debug|trace or a tracing filter directive, got \"\"",
        ));
    }
    let f = &c.log.file;
    if f.enable && f.path.as_os_str().is_empty() {
        issues.push(Issue::new("log.file.path", "must not be empty"));
    }
    if f.max_size.bytes() < ByteSize::KB {
        issues.push(Issue::new(
            "log.file.max_size",
            format!("must be at least 1KB, got {}", f.max_size),
        ));
    }
    if !(1..=128).contains(&f.rotation_count) {
        issues.push(Issue::new(
            "log.file.rotation_count",
            format!("must be 1..=128, got {}", f.rotation_count),
        ));
    }
}

fn check_mqtt(m: &MqttConfig, issues: &mut Vec<Issue>) {
    let mut range = |key: &str, ok: bool, allowed: &str, got: String| {
        if !ok {
            issues.push(Issue::new(
                format!("mqtt.{key}"),
                format!("must be {allowed}, got {got}"),
            ));
        }
    };
    let size = m.max_packet_size;
    range(
        "max_packet_size",
        (1..=MAX_PACKET_SIZE).contains(&size.bytes()),
        "1B..=256MB",
        size.to_string(),
    );
    range(
        "max_clientid_len",
        m.max_clientid_len >= 23,
        "23..=65535",
        m.max_clientid_len.to_string(),
    );
    range(
        "max_qos_allowed",
        m.max_qos_allowed <= 2,
        "0..=2",
        m.max_qos_allowed.to_string(),
    );
    range(
        "session_expiry_interval",
        m.session_expiry_interval.as_secs() <= MAX_SESSION_EXPIRY_SECS,
        "at most 4294967295s",
        m.session_expiry_interval.to_string(),
    );
    range(
        "max_inflight",
        m.max_inflight >= 1,
        "1..=65535",
        m.max_inflight.to_string(),
    );
    range(
        "await_rel_timeout",
        !m.await_rel_timeout.is_zero(),
        "greater than 0s",
        m.await_rel_timeout.to_string(),
    );
    range(
        "idle_timeout",
        !m.idle_timeout.is_zero(),
        "greater than 0s",
        m.idle_timeout.to_string(),
    );
    // Written so NaN fails too.
    let multiplier_ok = m.keepalive_multiplier.is_finite() && m.keepalive_multiplier >= 1.0;
    range(
        "keepalive_multiplier",
        multiplier_ok,
        ">= 1.0 (and finite)",
        m.keepalive_multiplier.to_string(),
    );
    let keepalives = [
        ("server_keepalive", m.server_keepalive),
        ("max_keepalive", m.max_keepalive),
    ];
    for (key, keepalive) in keepalives {
        if let Some(keepalive) = keepalive {
            range(
                key,
                (1..=MAX_SERVER_KEEPALIVE_SECS).contains(&keepalive.as_secs()),
                "1s..=65535s or \"off\"",
                keepalive.to_string(),
            );
        }
    }
}

impl Config {
    /// Settings that are valid but probably not what was meant; start-up goes on and the
    /// binary logs each one. Today: a TLS listener given a certificate or key but left
    /// disabled (`enable = true` is the switch; the files alone start nothing).
    pub fn warnings(&self) -> Vec<Issue> {
        let https = &self.dashboard.listeners.https;
        let mut tls: Vec<(String, bool, SocketAddr, TlsOptions)> = listeners(self)
            .into_iter()
            .filter_map(|(_, l)| {
                let o = l.tls?;
                Some((l.key, l.enable, l.bind, o))
            })
            .collect();
        tls.push((
            "dashboard.listeners.https".to_owned(),
            https.enable,
            https.bind,
            https.tls(),
        ));
        tls.into_iter()
            .filter(|(_, enable, _, o)| {
                let has_files =
                    !o.certfile.as_os_str().is_empty() || !o.keyfile.as_os_str().is_empty();
                !enable && has_files
            })
            .map(|(prefix, _, bind, _)| {
                let message = format!(
                    "listener {prefix}: certfile/keyfile are set but the listener is not \
                     enabled, so nothing listens on {bind}; set {prefix}.enable = true to start \
                     it"
                );
                Issue::new(prefix, message)
            })
            .collect()
    }
}

/// `Some(0s)` cannot come from a file (0 reads as off) but can be built in code; it would
/// mean "fire continuously", so it is refused rather than silently treated as off.
fn check_off_durations(c: &Config, issues: &mut Vec<Issue>) {
    let off_able: [(&str, Option<Duration>); 5] = [
        ("mqtt.retry_interval", c.mqtt.retry_interval),
        ("mqtt.server_keepalive", c.mqtt.server_keepalive),
        ("mqtt.max_keepalive", c.mqtt.max_keepalive),
        ("sys_topics.sys_msg_interval", c.sys_topics.sys_msg_interval),
        (
            "sys_topics.sys_heartbeat_interval",
            c.sys_topics.sys_heartbeat_interval,
        ),
    ];
    for (key, value) in off_able {
        if value.is_some_and(Duration::is_zero) {
            issues.push(Issue::new(
                key,
                "must be greater than 0s, or \"off\" to disable",
            ));
        }
    }
}

/// Every protocol listener with whether it binds at start (its section and itself enabled).
fn listeners(c: &Config) -> Vec<(bool, ListenerView)> {
    c.protocols()
        .into_iter()
        .flat_map(|p| {
            let enable = p.enable;
            p.listeners
                .into_iter()
                .map(move |l| (enable && l.enable, l))
        })
        .collect()
}

fn check_listeners(c: &Config, listeners: &[(bool, ListenerView)], issues: &mut Vec<Issue>) {
    for (_, l) in listeners {
        if l.max_connections == 0 {
            issues.push(Issue::new(
                format!("{}.max_connections", l.key),
                "must be at least 1, got 0",
            ));
        }
    }
    check_conn_rates(listeners, issues);
    for (_, l) in listeners {
        if let Some(path) = l.ws_path.as_deref().filter(|p| !p.starts_with('/')) {
            issues.push(Issue::new(
                format!("{}.path", l.key),
                format!("must start with '/', got {path:?}"),
            ));
        }
    }
    for (_, l) in listeners {
        if let Some(tls) = l.tls.as_ref().filter(|_| l.enable) {
            check_tls(&l.key, tls, issues);
        }
        if let Some(dtls) = l.dtls.as_ref().filter(|_| l.enable) {
            crate::schema::dtls_check(&l.key, dtls, &c.psk_authentication, issues);
        }
    }
    let https = &c.dashboard.listeners.https;
    if https.enable {
        check_tls("dashboard.listeners.https", &https.tls(), issues);
    }
}

/// A burst without a rate would silently do nothing: say so instead.
fn check_conn_rates(listeners: &[(bool, ListenerView)], issues: &mut Vec<Issue>) {
    for (_, l) in listeners {
        let (prefix, rate, burst) = (&l.key, l.max_conn_rate, l.max_conn_burst);
        if rate == 0 && burst != 0 {
            issues.push(Issue::new(
                format!("{prefix}.max_conn_burst"),
                format!(
                    "must be 0 while {prefix}.max_conn_rate is 0 (unlimited), got {burst}; \
                     set max_conn_rate to pace new connections"
                ),
            ));
        }
    }
}

/// Rules for an enabled TLS listener.
fn check_tls(prefix: &str, tls: &TlsOptions, issues: &mut Vec<Issue>) {
    let mut require = |key: &str, path: &Path, why: &str| {
        if path.as_os_str().is_empty() {
            issues.push(Issue::new(
                format!("{prefix}.{key}"),
                format!("must be a PEM file path {why}, got \"\""),
            ));
        }
    };
    require("certfile", &tls.certfile, "when the listener is enabled");
    require("keyfile", &tls.keyfile, "when the listener is enabled");
    if tls.verify == TlsVerify::VerifyPeer {
        require(
            "cacertfile",
            &tls.cacertfile,
            "when verify = \"verify_peer\"",
        );
    }
    if tls.fail_if_no_peer_cert && tls.verify == TlsVerify::VerifyNone {
        issues.push(Issue::new(
            format!("{prefix}.fail_if_no_peer_cert"),
            "must be false unless verify = \"verify_peer\" (no certificate is requested)",
        ));
    }
}

/// `(key, address)` of each bind in one port space.
type Binds = Vec<(String, SocketAddr)>;

/// The binds of every listener that starts with the node, by port space: stream listeners
/// (the dashboard's included) share TCP's, datagram listeners UDP's.
fn binds(c: &Config, listeners: &[(bool, ListenerView)]) -> (Binds, Binds) {
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for (_, l) in listeners.iter().filter(|(starts, _)| *starts) {
        // DTLS runs over UDP: it shares the UDP port space.
        let space = if matches!(l.kind, "udp" | "dtls") {
            &mut udp
        } else {
            &mut tcp
        };
        space.push((format!("{}.bind", l.key), l.bind));
    }
    let http = &c.dashboard.listeners.http;
    let https = &c.dashboard.listeners.https;
    for (enable, key, addr) in [
        (http.enable, "dashboard.listeners.http.bind", http.bind),
        (https.enable, "dashboard.listeners.https.bind", https.bind),
    ] {
        if enable {
            tcp.push((key.to_owned(), addr));
        }
    }
    (tcp, udp)
}

/// Two sockets of one protocol collide on the same port when their addresses are equal or
/// either is the unspecified address of the same family. Port 0 never collides: the OS
/// picks a free port (tests bind everything to port 0).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn check_bind_conflicts(proto: &str, binds: &[(String, SocketAddr)], issues: &mut Vec<Issue>) {
    for (i, (key, addr)) in binds.iter().enumerate() {
        if let Some((other, _)) = binds[..i].iter().find(|(_, prev)| overlaps(*prev, *addr)) {
            issues.push(Issue::new(
                key.as_str(),
                format!("{proto} address {addr} is already used by {other}"),
            ));
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
