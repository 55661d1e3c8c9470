//! Bus events as rule columns: which FROM topic an event answers to, and its fields under
//! EMQX's names (spec §2.5). Every protocol's events look alike here; `proto_name` tells them
//! apart.
//!
//! Owns: the mapping from the bus's values to EMQX's columns, and a small directory of
//! connected clients (username, peer, protocol) so a message event can name its publisher's
//! username and peer — the bus's `Message` carries only the client id.
//! Must not know: any protocol's wire details.

use parking_lot::RwLock;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use switchyard_bus::{BusEvent, ClientInfo, Delivery};
use switchyard_core::{CloseReason, Message};

/// The event topics a rule's FROM may name, with their `rule_test` event types.
pub const EVENTS: &[(&str, &str)] = &[
    ("$events/message_delivered", "message_delivered"),
    ("$events/message_acked", "message_acked"),
    ("$events/message_dropped", "message_dropped"),
    ("$events/client_connected", "client_connected"),
    ("$events/client_disconnected", "client_disconnected"),
    ("$events/session_subscribed", "session_subscribed"),
    ("$events/session_unsubscribed", "session_unsubscribed"),
];

/// The event topic of a `rule_test` event type (`None`: message publish or unknown).
pub fn event_topic(event_type: &str) -> Option<&'static str> {
    EVENTS
        .iter()
        .find(|(_, t)| *t == event_type)
        .map(|(topic, _)| *topic)
}

/// What a message event says about a connected client.
#[derive(Debug, Clone)]
struct ClientMeta {
    username: Option<String>,
    peer: Option<std::net::SocketAddr>,
}

/// Connected clients by client id, kept from connect/disconnect events. Client ids of two
/// protocols' namespaces may collide; the latest connect wins (only the username and peer of a
/// message event can be wrong then).
#[derive(Debug, Default)]
pub struct Directory {
    clients: RwLock<HashMap<String, ClientMeta>>,
}

impl Directory {
    fn connected(&self, info: &ClientInfo) {
        self.clients.write().insert(
            info.client_id.as_str().to_string(),
            ClientMeta {
                username: info.username.clone(),
                peer: info.peer,
            },
        );
    }

    fn disconnected(&self, info: &ClientInfo) {
        self.clients.write().remove(info.client_id.as_str());
    }

    fn get(&self, client_id: &str) -> Option<ClientMeta> {
        self.clients.read().get(client_id).cloned()
    }
}

/// Message ids: 32 hex characters, unique per node run (time of start + a counter).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn message_id() -> String {
    let start = ms(SystemTime::now()) as u64;
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("{start:016X}{n:016X}")
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// EMQX's name for a close reason (`client_disconnected.reason`).
pub fn disconnect_reason(r: &CloseReason) -> &'static str {
    match r {
        CloseReason::ClientDisconnect | CloseReason::ClientDisconnectWithWill => "normal",
        CloseReason::PeerClosed | CloseReason::Io(_) => "tcp_closed",
        CloseReason::KeepaliveTimeout => "keepalive_timeout",
        CloseReason::Takeover => "takenover",
        CloseReason::ServerShutdown => "shutdown",
        CloseReason::Kicked => "kicked",
        CloseReason::Malformed(_) => "malformed_packet",
        CloseReason::ProtocolError(_) => "protocol_error",
        CloseReason::PacketTooLarge => "frame_too_large",
        CloseReason::ConnectTimeout => "idle_timeout",
        CloseReason::NotAuthorized => "not_authorized",
        CloseReason::InternalError(_) => "internal_error",
    }
}

/// MQTT 5 properties, printable, under EMQX's names.
fn props(m: &Message) -> Value {
    let mut out = Map::new();
    if let Some(p) = &m.properties {
        if let Some(v) = p.payload_format_indicator {
            out.insert("Payload-Format-Indicator".into(), json!(v));
        }
        if let Some(v) = p.message_expiry_interval {
            out.insert("Message-Expiry-Interval".into(), json!(v));
        }
        if let Some(v) = &p.content_type {
            out.insert("Content-Type".into(), json!(v.to_string()));
        }
        if let Some(v) = &p.response_topic {
            out.insert("Response-Topic".into(), json!(v.to_string()));
        }
        if let Some(v) = &p.correlation_data {
            out.insert(
                "Correlation-Data".into(),
                json!(String::from_utf8_lossy(v).into_owned()),
            );
        }
        if !p.user_properties.is_empty() {
            let mut up = Map::new();
            for (k, v) in &p.user_properties {
                up.insert(k.to_string(), json!(v.to_string()));
            }
            out.insert("User-Property".into(), Value::Object(up));
        }
    }
    Value::Object(out)
}

fn peer_fields(c: &mut Cols, peer: Option<std::net::SocketAddr>) {
    c.put("peerhost", || {
        peer.map_or(Value::Null, |p| json!(p.ip().to_string()))
    });
    c.put("peername", || {
        peer.map_or(Value::Null, |p| json!(p.to_string()))
    });
}

/// Username and peer of a connected client, looked up only when a rule reads them.
fn who(c: &Cols, dir: &Directory, client_id: Option<&str>) -> Option<ClientMeta> {
    if c.wants("username") || c.wants("peerhost") || c.wants("peername") || c.wants("from_username")
    {
        client_id.and_then(|id| dir.get(id))
    } else {
        None
    }
}

fn username(meta: &Option<ClientMeta>) -> Value {
    meta.as_ref()
        .and_then(|m| m.username.clone())
        .map_or(Value::Null, Value::from)
}

fn message_fields(c: &mut Cols, m: &Message, dir: &Directory) {
    let publisher = m.origin.as_ref().map(|o| o.client_id.as_str());
    let meta = who(c, dir, publisher);
    c.put("id", || json!(message_id()));
    c.put("topic", || json!(m.topic.as_str()));
    c.put("qos", || json!(m.qos.as_u8()));
    c.put("flags", || json!({"retain": m.retain, "dup": false}));
    c.put("retain", || json!(m.retain));
    // Rule values are text: a binary payload is kept with invalid UTF-8 replaced.
    c.put("payload", || {
        json!(String::from_utf8_lossy(&m.payload).into_owned())
    });
    c.put("pub_props", || props(m));
    c.put("publish_received_at", || json!(ms(m.timestamp)));
    c.put("clientid", || publisher.map_or(Value::Null, Value::from));
    c.put("username", || username(&meta));
    peer_fields(c, meta.and_then(|m| m.peer));
}

fn delivery_fields(c: &mut Cols, client_id: &str, d: &Delivery, dir: &Directory) {
    let publisher = d.message.origin.as_ref().map(|o| o.client_id.as_str());
    let from_meta = if c.wants("from_username") {
        publisher.and_then(|p| dir.get(p))
    } else {
        None
    };
    message_fields(c, &d.message, dir);
    c.put("from_clientid", || {
        publisher.map_or(Value::Null, Value::from)
    });
    c.put("from_username", || username(&from_meta));
    c.put("qos", || json!(d.qos.as_u8()));
    c.put("clientid", || json!(client_id));
    let meta = who(c, dir, Some(client_id));
    c.put("username", || username(&meta));
    peer_fields(c, meta.and_then(|m| m.peer));
}

fn client_fields(c: &mut Cols, i: &ClientInfo) {
    c.put("clientid", || json!(i.client_id.as_str()));
    c.put("username", || {
        i.username.clone().map(Value::from).unwrap_or(Value::Null)
    });
    peer_fields(c, i.peer);
    c.put("sockname", || Value::Null);
    c.put("proto_name", || json!(i.proto_name));
    c.put("proto_ver", || json!(i.proto_ver));
    c.put("connected_at", || json!(ms(i.connected_at)));
}

/// Columns under construction: only those some rule reads are computed.
struct Cols<'a> {
    map: Map<String, Value>,
    want: &'a dyn Fn(&str) -> bool,
}

impl Cols<'_> {
    fn wants(&self, k: &str) -> bool {
        (self.want)(k)
    }

    fn put(&mut self, k: &str, v: impl FnOnce() -> Value) {
        if (self.want)(k) {
            self.map.insert(k.to_string(), v());
        }
    }
}

/// The event's FROM topic (a message topic for a publish) and its columns; `None` for what no
/// rule can see. Also keeps `dir` current.
pub fn columns(
    e: &BusEvent<'_>,
    dir: &Directory,
    node: &str,
    want: &dyn Fn(&str) -> bool,
) -> Option<(String, Map<String, Value>)> {
    let mut c = Cols {
        map: Map::new(),
        want,
    };
    let (topic, event) = match e {
        BusEvent::MessagePublish(m) => {
            message_fields(&mut c, m, dir);
            (m.topic.as_str().to_string(), "message.publish")
        }
        BusEvent::MessageDelivered {
            client_id,
            delivery,
        } => {
            delivery_fields(&mut c, client_id.as_str(), delivery, dir);
            ("$events/message_delivered".into(), "message.delivered")
        }
        BusEvent::MessageAcked {
            client_id,
            delivery,
        } => {
            delivery_fields(&mut c, client_id.as_str(), delivery, dir);
            c.put("puback_props", || json!({}));
            ("$events/message_acked".into(), "message.acked")
        }
        BusEvent::MessageDropped { message, reason } => {
            message_fields(&mut c, message, dir);
            c.put("reason", || json!(reason));
            ("$events/message_dropped".into(), "message.dropped")
        }
        BusEvent::ClientConnected(i) => {
            dir.connected(i);
            client_fields(&mut c, i);
            c.put("keepalive", || json!(i.keepalive));
            c.put("clean_start", || json!(i.clean_start));
            c.put("expiry_interval", || json!(i.expiry_interval));
            c.put("is_bridge", || json!(false));
            c.put("mountpoint", || Value::Null);
            c.put("conn_props", || json!({}));
            ("$events/client_connected".into(), "client.connected")
        }
        BusEvent::ClientDisconnected { info, reason } => {
            client_fields(&mut c, info);
            dir.disconnected(info);
            c.put("reason", || json!(disconnect_reason(reason)));
            c.put("disconnected_at", || json!(ms(SystemTime::now())));
            c.put("disconn_props", || json!({}));
            ("$events/client_disconnected".into(), "client.disconnected")
        }
        BusEvent::SessionSubscribed {
            client_id,
            filter,
            opts,
        } => {
            sub_fields(&mut c, client_id.as_str(), &filter.to_string(), dir);
            c.put("qos", || json!(opts.qos.as_u8()));
            c.put("sub_props", || json!({}));
            ("$events/session_subscribed".into(), "session.subscribed")
        }
        BusEvent::SessionUnsubscribed { client_id, filter } => {
            sub_fields(&mut c, client_id.as_str(), &filter.to_string(), dir);
            c.put("unsub_props", || json!({}));
            (
                "$events/session_unsubscribed".into(),
                "session.unsubscribed",
            )
        }
    };
    c.put("event", || json!(event));
    c.put("timestamp", || json!(ms(SystemTime::now())));
    c.put("node", || json!(node));
    Some((topic, c.map))
}

fn sub_fields(c: &mut Cols, client_id: &str, filter: &str, dir: &Directory) {
    let meta = who(c, dir, Some(client_id));
    c.put("clientid", || json!(client_id));
    c.put("username", || username(&meta));
    peer_fields(c, meta.and_then(|m| m.peer));
    c.put("topic", || json!(filter));
}

/// Example columns for `rule_test` (EMQX's `test_columns`), overlaid by the caller's context.
pub fn test_columns(event_type: &str, node: &str) -> Map<String, Value> {
    let now = ms(SystemTime::now());
    let mut c = json!({
        "clientid": "c_emqx", "username": "u_emqx", "peerhost": "127.0.0.1",
        "peername": "127.0.0.1:52918", "node": node, "timestamp": now,
    });
    let extra = match event_type {
        "client_connected" => json!({"event": "client.connected", "proto_name": "MQTT",
            "proto_ver": 5, "keepalive": 60, "clean_start": true, "expiry_interval": 3600,
            "is_bridge": false, "connected_at": now, "conn_props": {}, "mountpoint": null,
            "sockname": "0.0.0.0:1883"}),
        "client_disconnected" => json!({"event": "client.disconnected", "reason": "normal",
            "proto_name": "MQTT", "proto_ver": 5, "connected_at": now,
            "disconnected_at": now, "disconn_props": {}, "sockname": "0.0.0.0:1883"}),
        "session_subscribed" | "session_unsubscribed" => json!({
            "event": format!("session.{}", &event_type[8..]), "topic": "t/a", "qos": 1,
            "sub_props": {}, "unsub_props": {}}),
        _ => {
            json!({"event": format!("message.{}", event_type.strip_prefix("message_").unwrap_or("publish")),
            "id": message_id(), "topic": "t/a", "qos": 1, "flags": {"retain": false, "dup": false},
            "retain": false, "payload": "{\"msg\": \"hello\"}", "pub_props": {},
            "publish_received_at": now, "from_clientid": "c_emqx_1", "from_username": "u_emqx_1",
            "reason": "no_subscribers", "puback_props": {}})
        }
    };
    let mut out = c.as_object_mut().map(std::mem::take).unwrap_or_default();
    if let Value::Object(m) = extra {
        out.extend(m);
    }
    out
}

/// A shared directory.
pub type SharedDirectory = Arc<Directory>;
