//! The MQTT protocol state machine for one connection, sans-I/O: packets in
//! (`handle_packet`), packets out (`take_outbound`), with `now` passed in. The driver owns the
//! socket and the timers; the bus owns routing and sessions.
//!
//! States: `Connecting` until CONNECT has been accepted and the session opened, then
//! `Connected` until exactly one [`CloseReason`] is recorded. Every protocol violation maps to
//! the spec clause it breaks and, for MQTT 5, to the DISCONNECT reason code sent before closing.

mod auth;
pub mod codes;
mod connect;
mod deliver;
mod publish;
mod subscribe;
mod violation;

pub use connect::ConnectDecision;

use crate::codec::{Disconnect, Packet, ProtocolVersion};
use crate::settings::MqttSettings;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use switchyard_bus::{Attachment, BusHandle, ClientInfo, Keepalive, Namespace, Session};
use switchyard_core::{CloseReason, Message, TopicName};
pub use violation::Violation;

/// Client-id namespace shared by every MQTT listener (TCP, TLS, WebSocket).
pub const NAMESPACE: Namespace = Namespace("mqtt");

/// The will as received in CONNECT, published on an abnormal close.
#[derive(Debug, Clone)]
pub(crate) struct Will {
    pub(crate) message: Message,
    /// MQTT 5 Will Delay Interval.
    pub(crate) delay: std::time::Duration,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Channel {
    pub(crate) bus: BusHandle,
    pub(crate) settings: Arc<MqttSettings>,
    pub(crate) peer: SocketAddr,
    pub(crate) version: ProtocolVersion,
    pub(crate) info: Option<Arc<ClientInfo>>,
    pub(crate) session: Option<Session>,
    /// The hold on the session while it is open: control events, and the one finish.
    pub(crate) attachment: Option<Attachment>,
    pub(crate) will: Option<Will>,
    pub(crate) keepalive: Keepalive,
    /// The `now` of the latest input from the driver: the channel never reads the clock itself
    /// (sans-I/O), so steps that need the time deep inside (the will's ACL check at close, a
    /// resend's remaining expiry) use this.
    pub(crate) clock: Instant,
    /// MQTT 5: the Server Keep Alive CONNACK announces (the server chose the keepalive).
    pub(crate) server_keep_alive: Option<u16>,
    pub(crate) outbound: Vec<Packet>,
    pub(crate) close: Option<CloseReason>,
    /// MQTT 5: aliases the client set for its publishes (MQTT 5 §3.3.2.3.4).
    pub(crate) inbound_aliases: HashMap<u16, TopicName>,
    /// MQTT 5: the client's Maximum Packet Size; larger deliveries are dropped (MQTT-3.1.2-25).
    pub(crate) client_max_packet: Option<usize>,
    /// MQTT 5: CONNECT had no (or a zero) session expiry (MQTT-3.14.2-2).
    pub(crate) connect_expiry_zero: bool,
    /// MQTT 5: the session expiry the client asked for, to tell it when we chose another.
    pub(crate) requested_expiry: u32,
    /// MQTT 5: the client id we assigned to an empty one (MQTT-3.2.2-16).
    pub(crate) assigned_id: Option<String>,
    /// MQTT 5: aliases we assigned to topics we send (MQTT 5 §3.3.2.3.4), at most the client's
    /// Topic Alias Maximum.
    pub(crate) outbound_aliases: HashMap<TopicName, u16>,
    /// MQTT 5: the client's Topic Alias Maximum (0 = no aliases toward it).
    pub(crate) client_alias_max: u16,
    /// MQTT 5: the client asked for reason strings on failures (Request Problem Information).
    pub(crate) problem_info: bool,
    /// The client certificate's Common Name, when the listener uses it as the username.
    pub(crate) cert_username: Option<String>,
    /// The ACL as it applies to this client (set once authenticated), with its cache.
    pub(crate) acl: Option<switchyard_auth::ClientAcl>,
    /// The verdict of the chain of authenticators, reached by the driver before CONNECT is
    /// handled (see `auth.rs`).
    pub(crate) verdict: Option<switchyard_auth::Verdict>,
    /// `mqtt.max_publish_rate`, when set.
    pub(crate) publish_rate: Option<switchyard_auth::RateLimiter>,
}

impl Channel {
    /// A channel for a freshly accepted connection.
    pub fn new(
        bus: BusHandle,
        settings: Arc<MqttSettings>,
        peer: SocketAddr,
        now: Instant,
    ) -> Self {
        Channel {
            bus,
            settings,
            peer,
            version: ProtocolVersion::V311,
            info: None,
            session: None,
            attachment: None,
            will: None,
            keepalive: Keepalive::new(0, 1.5, now),
            clock: now,
            server_keep_alive: None,
            outbound: Vec::new(),
            close: None,
            inbound_aliases: HashMap::new(),
            client_max_packet: None,
            connect_expiry_zero: true,
            requested_expiry: 0,
            assigned_id: None,
            outbound_aliases: HashMap::new(),
            client_alias_max: 0,
            problem_info: true,
            cert_username: None,
            acl: None,
            verdict: None,
            publish_rate: None,
        }
    }

    /// Makes the TLS client certificate's Common Name the username of this connection.
    pub fn set_cert_username(&mut self, cn: Option<String>) {
        self.cert_username = cn;
    }

    /// The protocol version fixed by CONNECT.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    // info, session, control, close_reason, take_outbound, has_outbound: the accessors the
    // MQTT-SN channel offers too, defined once in the bus (inlined field reads).
    switchyard_bus::session_accessors!(Packet);

    /// Records the close reason (the first one wins: one reason per connection) and, for
    /// MQTT 5, queues the server's DISCONNECT with the matching reason code.
    pub fn fail(&mut self, reason: CloseReason) {
        let code = disconnect_code(&reason);
        self.fail_code(reason, code);
    }

    /// Closes for a protocol violation: its reason code on the wire (MQTT 5), its text in the
    /// close reason.
    pub(crate) fn violation(&mut self, v: Violation) {
        let code = v.reason_code();
        self.fail_code(v.close_reason(), Some(code));
    }

    /// Like [`Channel::fail`] with an explicit MQTT 5 reason code (e.g. 0x93 receive maximum
    /// exceeded), for violations more specific than their `CloseReason`.
    pub(crate) fn fail_code(&mut self, reason: CloseReason, code: Option<u8>) {
        if self.close.is_some() {
            return;
        }
        tracing::debug!(reason = %reason, "closing connection");
        if self.version.is_v5() && self.session.is_some() {
            if let Some(code) = code {
                self.outbound
                    .push(Packet::Disconnect(Disconnect::new(code)));
            }
        }
        self.close = Some(reason);
    }

    /// Handles one packet from the client after CONNECT.
    pub fn handle_packet(&mut self, packet: Packet, now: Instant) {
        self.clock = now;
        self.keepalive.on_packet(now);
        match packet {
            Packet::Publish(p) => self.handle_publish(p, now),
            Packet::PubAck(a) => self.handle_puback(a),
            Packet::PubRec(a) => self.handle_pubrec(a, now),
            Packet::PubRel(a) => self.handle_pubrel(a),
            Packet::PubComp(a) => self.handle_pubcomp(a),
            Packet::Subscribe(s) => self.handle_subscribe(s, now),
            Packet::Unsubscribe(u) => self.handle_unsubscribe(u),
            Packet::PingReq => self.outbound.push(Packet::PingResp),
            Packet::Disconnect(d) => self.handle_disconnect(d),
            Packet::Connect(_) => self.violation(Violation::SecondConnect),
            // No enhanced authentication method was agreed at CONNECT (MQTT 5 §4.12).
            Packet::Auth(_) => self.violation(Violation::AuthWithoutMethod),
            other => self.violation(Violation::ServerOnlyPacket(other.packet_type().name())),
        }
    }

    fn handle_disconnect(&mut self, d: Disconnect) {
        if self.version.is_v5() {
            if let Some(expiry) = d.properties.session_expiry_interval {
                // MQTT-3.14.2-2: zero at CONNECT cannot become non-zero at DISCONNECT.
                if self.connect_expiry_zero && expiry != 0 {
                    return self.violation(Violation::SessionExpiryAfterZero);
                }
                if let Some(s) = self.session.as_mut() {
                    s.expiry = std::time::Duration::from_secs(u64::from(expiry))
                        .min(self.settings.session_expiry_interval);
                }
            }
            if d.reason_code == codes::v5::DISCONNECT_WITH_WILL {
                self.close = Some(CloseReason::ClientDisconnectWithWill);
                return;
            }
        }
        // MQTT-3.14.4-3: a normal DISCONNECT discards the will.
        if self.will.take().is_some() {
            if let Some(s) = &self.session {
                self.bus.set_will(s, None);
            }
        }
        if self.close.is_none() {
            self.close = Some(CloseReason::ClientDisconnect);
        }
    }

    /// Periodic work: keepalive, retries, expiry of unreleased QoS 2 ids.
    pub fn handle_tick(&mut self, now: Instant) {
        self.clock = now;
        if self.close.is_some() {
            return;
        }
        if self.keepalive.is_expired(now) {
            self.fail(CloseReason::KeepaliveTimeout);
            return;
        }
        self.resend_due(now);
        if let Some(s) = self.session.as_mut() {
            let expired = s.qos.expire_awaiting_rel(now);
            if expired > 0 {
                tracing::warn!(
                    expired,
                    "incoming QoS 2 messages never released; dropped their packet ids"
                );
                self.bus
                    .metrics()
                    .awaiting_rel_expired
                    .fetch_add(expired as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// When `handle_tick` must next run.
    pub fn next_deadline(&self) -> Option<Instant> {
        let keepalive = self.keepalive.deadline();
        let qos = self.session.as_ref().and_then(|s| s.qos.next_timeout());
        match (keepalive, qos) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends the connection: publishes the will if the reason calls for it, then the attachment
    /// returns the session to the bus (to a taker-over too), reports the disconnect, counts and
    /// logs the reason; a connection refused before its session opened is counted and logged as
    /// such. Returns the final reason.
    pub fn finish(&mut self) -> CloseReason {
        let reason = self.close.take().unwrap_or(CloseReason::PeerClosed);
        // Only a client whose session opened has a will (MQTT-3.1.2-8).
        if let Some(will) = self.will.take().filter(|_| self.attachment.is_some()) {
            if reason.publishes_will() {
                self.publish_will(will);
            }
        }
        let open = self.attachment.take().zip(self.session.take());
        self.bus.end_connection(open, &reason);
        reason
    }
}

impl Channel {
    /// Publishes the will now, or after its delay (MQTT 5 §3.1.3.2.2): the delayed will is
    /// cancelled if the client reconnects first, and never outlives the session.
    fn publish_will(&mut self, will: Will) {
        if !self.will_authorized(&will.message) {
            return;
        }
        let expiry = self.session.as_ref().map(|s| s.expiry).unwrap_or_default();
        let delay = will.delay.min(expiry);
        match (&self.info, delay.is_zero()) {
            (Some(info), false) => {
                self.bus
                    .publish_will_later(NAMESPACE, info.client_id.clone(), will.message, delay);
            }
            _ => {
                self.bus.publish(will.message);
            }
        }
    }

    /// A reason string for a failure, when the client has not opted out (MQTT-3.1.2-29).
    pub(crate) fn reason_string(&self, why: &str) -> Option<bytestring::ByteString> {
        (self.version.is_v5() && self.problem_info).then(|| bytestring::ByteString::from(why))
    }
}

/// The MQTT 5 DISCONNECT reason the server sends for a close it initiates.
fn disconnect_code(reason: &CloseReason) -> Option<u8> {
    use codes::v5::*;
    Some(match reason {
        CloseReason::KeepaliveTimeout => KEEP_ALIVE_TIMEOUT,
        CloseReason::Takeover => SESSION_TAKEN_OVER,
        CloseReason::ServerShutdown => SERVER_SHUTTING_DOWN,
        CloseReason::Kicked => ADMINISTRATIVE_ACTION,
        CloseReason::Malformed(_) => MALFORMED_PACKET,
        CloseReason::ProtocolError(_) => PROTOCOL_ERROR,
        CloseReason::PacketTooLarge => PACKET_TOO_LARGE,
        CloseReason::NotAuthorized => NOT_AUTHORIZED,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod auth_tests;

#[cfg(test)]
mod keepalive_tests;
