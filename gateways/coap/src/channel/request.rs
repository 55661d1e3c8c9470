//! Reading a pub/sub request: which resource (docs/coap.md §3.3), which query parameters with their
//! short aliases, and the checks on their values. Pure functions, no state.

use crate::transport::wire::{self, code};
use coap_lite::{CoapOption, Packet};
use switchyard_core::QoS;

/// The resources of the gateway (docs/coap.md §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `/mqtt/connection`.
    Connection,
    /// `/ps/{topic}`, percent-decoded.
    PubSub(String),
}

/// Query parameters (docs/coap.md §3.3), already percent-decoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    /// `clientid` / `c`.
    pub clientid: Option<String>,
    /// `token` / `t`.
    pub token: Option<String>,
    /// `username` / `u`.
    pub username: Option<String>,
    /// `password` / `p`.
    pub password: Option<String>,
    /// `qos` / `q`, unchecked.
    pub qos: Option<String>,
    /// `retain` / `r`, unchecked.
    pub retain: Option<String>,
    /// `expiry`, unchecked.
    pub expiry: Option<String>,
    /// `nl`, unchecked.
    pub nl: Option<String>,
    /// `rh`, unchecked.
    pub rh: Option<String>,
    /// The client proved its identity in a DTLS-PSK handshake: `username` is that identity and
    /// no password is checked (docs/coap.md, DTLS).
    pub dtls_proven: bool,
}

impl Query {
    /// Applies what a DTLS handshake proved: its username (a PSK identity, or a certificate's
    /// CN where the listener maps it) replaces the query's, and a PSK identity needs no
    /// password. Nothing changes over plain UDP.
    pub fn apply_peer(&mut self, identity: Option<&switchyard_net::PeerIdentity>) {
        let Some(id) = identity else { return };
        if let Some(user) = id.username() {
            self.username = Some(user.to_owned());
        }
        if id.is_psk() {
            self.password = None;
            self.dtls_proven = true;
        }
    }
}

/// A request refused before it reached a handler: the code and diagnostic payload.
pub type Refusal = (u8, &'static str);

/// Reads the query; parts that are not `k=v` are dropped (as EMQX does).
pub fn query(p: &Packet) -> Result<Query, Refusal> {
    let parts = wire::uri_query(p).map_err(|()| (code::BAD_REQUEST, "query is not UTF-8"))?;
    let mut q = Query::default();
    for part in parts {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = Some(wire::percent_decode(v));
        match k {
            "clientid" | "c" => q.clientid = v,
            "token" | "t" => q.token = v,
            "username" | "u" => q.username = v,
            "password" | "p" => q.password = v,
            "qos" | "q" => q.qos = v,
            "retain" | "r" => q.retain = v,
            "expiry" => q.expiry = v,
            "nl" => q.nl = v,
            "rh" => q.rh = v,
            _ => {}
        }
    }
    Ok(q)
}

/// The resource a request addresses.
pub fn resource(p: &Packet) -> Result<Resource, Refusal> {
    let path = wire::uri_path(p).map_err(|()| (code::BAD_REQUEST, "path is not UTF-8"))?;
    match path.first().map(String::as_str) {
        Some("ps") if path.len() > 1 => {
            let topic = wire::percent_decode(&path[1..].join("/"));
            if topic.is_empty() {
                Err((code::BAD_REQUEST, "invalid topic"))
            } else {
                Ok(Resource::PubSub(topic))
            }
        }
        Some("ps") => Err((code::BAD_REQUEST, "invalid topic")),
        Some("mqtt") if path.len() == 2 && path[1] == "connection" => Ok(Resource::Connection),
        _ => Err((code::BAD_REQUEST, "unknown resource")),
    }
}

/// `qos=0|1|2`.
pub fn parse_qos(v: &str) -> Result<QoS, Refusal> {
    match v {
        "0" => Ok(QoS::AtMostOnce),
        "1" => Ok(QoS::AtLeastOnce),
        "2" => Ok(QoS::ExactlyOnce),
        _ => Err((code::BAD_REQUEST, "invalid qos")),
    }
}

/// `retain=true|false`.
pub fn parse_bool(v: &str, what: &'static str) -> Result<bool, Refusal> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err((code::BAD_REQUEST, what)),
    }
}

/// `expiry=<seconds>`.
pub fn parse_expiry(v: &str) -> Result<u32, Refusal> {
    v.parse::<u32>()
        .map_err(|_| (code::BAD_REQUEST, "invalid expiry"))
}

/// The Observe option of a GET: `Ok(None)` without one.
pub fn observe(p: &Packet) -> Result<Option<u32>, Refusal> {
    match wire::uint_option(p, CoapOption::Observe) {
        None => Ok(None),
        Some(Ok(v)) if v <= 1 => Ok(Some(v)),
        Some(_) => Err((code::BAD_REQUEST, "invalid observe value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(path: &[&str], query: &[&str]) -> Packet {
        let mut p = Packet::new();
        for s in path {
            p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
        }
        for s in query {
            p.add_option(CoapOption::UriQuery, s.as_bytes().to_vec());
        }
        p
    }

    #[test]
    fn resources() {
        assert_eq!(
            resource(&packet(&["ps", "a", "%23"], &[])),
            Ok(Resource::PubSub("a/#".into()))
        );
        assert_eq!(
            resource(&packet(&["ps", "", "abc"], &[])),
            Ok(Resource::PubSub("/abc".into()))
        );
        assert!(resource(&packet(&["ps"], &[])).is_err());
        assert!(resource(&packet(&["other"], &[])).is_err());
        assert!(resource(&packet(&["mqtt", "x"], &[])).is_err());
        assert_eq!(
            resource(&packet(&["mqtt", "connection"], &[])),
            Ok(Resource::Connection)
        );
    }

    #[test]
    fn query_aliases() {
        let q = query(&packet(
            &[],
            &["c=dev1", "t=42", "u=bob", "p=pw", "q=1", "r=true", "junk"],
        ))
        .unwrap_or_default();
        assert_eq!(q.clientid.as_deref(), Some("dev1"));
        assert_eq!(q.token.as_deref(), Some("42"));
        assert_eq!(q.username.as_deref(), Some("bob"));
        assert_eq!(q.password.as_deref(), Some("pw"));
        assert_eq!(q.qos.as_deref(), Some("1"));
        assert_eq!(q.retain.as_deref(), Some("true"));
        assert!(parse_qos("3").is_err());
        assert!(parse_bool("yes", "invalid retain").is_err());
        assert!(parse_expiry("-1").is_err());
        assert_eq!(parse_expiry("60"), Ok(60));
    }
}
