//! The MQTT-SN protocol state machine for one client, sans-I/O: packets in
//! ([`Channel::handle_packet`]), packets out ([`Channel::take_outbound`]), `now` passed in. The
//! driver owns the socket, the timers and the async session open; the bus owns routing and
//! sessions.
//!
//! States (MQTT-SN 1.2 §6.14, docs/mqtt-sn.md §2.6, §2.12): `Idle` until CONNECT;
//! `WillTopic`/`WillMsg` during the will handshake; `Opening` while the bus opens the session; then
//! `Connected`, `Asleep` (DISCONNECT with a duration) and `Awake` (PINGREQ with our client id while
//! asleep, until everything queued is delivered). Exactly one [`CloseReason`] ends the channel.
//!
//! Fixes over EMQX 5.8.9 (docs/mqtt-sn.md §2.17): QoS 1/2 downlinks and gateway REGISTERs are
//! retried every `retry_interval` up to `max_retries`; the sleep timer is 1.5 × the duration and
//! is cancelled by CONNECT (the driver's new channel takes the session over); DISCONNECT with a
//! duration while awake goes back to sleep; a lost sleeper's will is published; WILLMSGUPD
//! without a will answers 0x03; a retained message delivered on subscribe carries RETAIN; a
//! retransmitted QoS 2 PUBLISH is answered PUBREC again instead of PUBACK 0x03.

mod auth;
mod connect;
mod deliver;
mod publish;
#[cfg(test)]
mod tests;

pub(crate) use publish::publish_negqos;

use crate::codec::{rc, Packet};
use crate::registry::TopicRegistry;
use crate::settings::MqttSnSettings;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_bus::{
    Attachment, BusHandle, ClientInfo, Delivery, Keepalive, Namespace, OpenSession, Session,
};
use switchyard_core::{CloseReason, Message};

/// Client-id namespace of the MQTT-SN gateway: its client ids never collide with MQTT's.
pub const NAMESPACE: Namespace = Namespace("mqttsn");

/// Where the client is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Idle,
    WillTopic,
    WillMsg,
    Opening,
    Connected,
    /// Sleeping for `duration` seconds; lost at `deadline` (1.5 × duration).
    Asleep {
        duration: u16,
        deadline: Instant,
    },
    /// Woken by PINGREQ(client id): delivering what was queued, then back to sleep.
    Awake {
        duration: u16,
    },
}

/// The CONNECT being handled.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) client_id: String,
    pub(crate) clean_session: bool,
    pub(crate) duration: u16,
    pub(crate) will_topic: Option<(String, switchyard_core::QoS, bool)>,
}

/// A gateway REGISTER waiting for its REGACK (one at a time, docs/mqtt-sn.md §2.7).
#[derive(Debug, Clone)]
pub(crate) struct RegInflight {
    pub(crate) msg_id: u16,
    pub(crate) topic_id: u16,
    pub(crate) name: String,
    pub(crate) sent_at: Instant,
    pub(crate) retries: u32,
    /// Re-registration after PUBACK 0x02: resend the inflight PUBLISH on REGACK.
    pub(crate) resend_inflight: bool,
}

/// One client's protocol state.
#[derive(Debug)]
pub struct Channel {
    pub(crate) bus: BusHandle,
    pub(crate) settings: Arc<MqttSnSettings>,
    pub(crate) peer: SocketAddr,
    pub(crate) state: State,
    pub(crate) pending: Option<Pending>,
    pub(crate) open_request: Option<OpenSession>,
    /// Credentials the driver must check with the chain of authenticators (it has a network
    /// back-end) before the pending CONNECT goes on; see `auth.rs`.
    pub(crate) auth_request: Option<switchyard_auth::OwnedCredentials>,
    /// The chain's verdict for the pending CONNECT, once the driver has it.
    pub(crate) verdict: Option<switchyard_auth::Verdict>,
    pub(crate) info: Option<Arc<ClientInfo>>,
    pub(crate) session: Option<Session>,
    /// The hold on the session while it is open: control events, and the one finish.
    pub(crate) attachment: Option<Attachment>,
    pub(crate) will: Option<Message>,
    pub(crate) keepalive: Keepalive,
    pub(crate) handshake_deadline: Option<Instant>,
    pub(crate) mountpoint: String,
    /// The `now` of the latest input from the driver: the channel never reads the clock itself
    /// (sans-I/O), so checks made deep inside a step (ACL cache expiry, a REGISTER's send time)
    /// use this.
    pub(crate) clock: Instant,
    pub(crate) outbound: Vec<Packet>,
    pub(crate) close: Option<CloseReason>,
    /// Deliveries taken from the outbox but not yet sent (waiting on a REGISTER or credit).
    pub(crate) held: VecDeque<Delivery>,
    /// Names to REGISTER before any delivery (`subs_resume`).
    pub(crate) reg_queue: VecDeque<String>,
    pub(crate) reg_inflight: Option<RegInflight>,
    pub(crate) next_reg_msg_id: u16,
    /// Resends of the PUBLISH/PUBREL currently in flight.
    pub(crate) retries: u32,
    /// The in-flight QoS 1/2 message: (msg id, unmounted topic), for PUBACK 0x02.
    pub(crate) inflight_topic: Option<(u16, String)>,
    /// The session's dynamic topic ids, taken out of `Session::ext` while connected and put
    /// back before the session is released, so they survive resume and takeover
    /// (docs/mqtt-sn.md §2.5).
    pub(crate) topics: TopicRegistry,
    /// The ACL as it applies to this client, once authenticated.
    pub(crate) acl: Option<switchyard_auth::ClientAcl>,
    /// On a DTLS listener, what the client's handshake proved (see `connect.rs`).
    pub(crate) peer_identity: Option<switchyard_net::PeerIdentity>,
    /// The last inbound topic id resolved: (id type, id), client topic, mounted topic.
    pub(crate) last_topic: Option<(
        (crate::codec::TopicIdType, u16),
        String,
        switchyard_core::TopicName,
    )>,
}

impl Channel {
    /// A channel for a client whose first datagram (normally CONNECT) came from `peer`.
    pub fn new(
        bus: BusHandle,
        settings: Arc<MqttSnSettings>,
        peer: SocketAddr,
        now: Instant,
    ) -> Self {
        let handshake_deadline = Some(now + settings.idle_timeout);
        Channel {
            bus,
            settings,
            peer,
            state: State::Idle,
            pending: None,
            open_request: None,
            auth_request: None,
            verdict: None,
            info: None,
            session: None,
            attachment: None,
            will: None,
            keepalive: Keepalive::new(0, 1.5, now),
            handshake_deadline,
            mountpoint: String::new(),
            outbound: Vec::new(),
            close: None,
            held: VecDeque::new(),
            reg_queue: VecDeque::new(),
            reg_inflight: None,
            next_reg_msg_id: 0,
            retries: 0,
            inflight_topic: None,
            topics: TopicRegistry::default(),
            acl: None,
            peer_identity: None,
            last_topic: None,
            clock: now,
        }
    }

    /// What the client's DTLS handshake proved (`None` over plain UDP): its username replaces
    /// `clientinfo_override.username`, and a PSK identity needs no password.
    pub fn set_peer_identity(&mut self, identity: Option<switchyard_net::PeerIdentity>) {
        self.peer_identity = identity;
    }

    /// Where replies go: the source of the latest datagram (NAT rebinding follows the client).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    // info, session, control, close_reason, take_outbound, has_outbound: the accessors the
    // MQTT channel offers too, defined once in the bus (inlined field reads).
    switchyard_bus::session_accessors!(Packet);

    /// Whether the handshake is over (connected, asleep or awake).
    pub fn is_connected(&self) -> bool {
        matches!(
            self.state,
            State::Connected | State::Asleep { .. } | State::Awake { .. }
        )
    }

    /// Whether the client sleeps (deliveries wait in the outbox).
    pub fn is_asleep(&self) -> bool {
        matches!(self.state, State::Asleep { .. })
    }

    /// Whether a session waits to be opened (datagrams behind it wait too).
    pub fn open_request_pending(&self) -> bool {
        self.open_request.is_some()
    }

    /// A summary of what the driver acts on besides outbound packets and deadlines; when a
    /// datagram handled outside the driver changes it, the driver must be woken.
    pub fn fingerprint(&self) -> impl PartialEq {
        (
            std::mem::discriminant(&self.state),
            self.can_deliver(),
            self.held.len(),
            self.reg_queue.len(),
            self.reg_inflight.is_some(),
            self.open_request.is_some(),
        )
    }

    /// The session the driver must open now (after CONNECT, or after WILLMSG).
    pub fn take_open_request(&mut self) -> Option<OpenSession> {
        self.open_request.take()
    }

    /// Records the close reason (the first one wins) and, when `notify`, tells the client with
    /// DISCONNECT (MQTT-SN has no reason codes on DISCONNECT).
    pub fn fail(&mut self, reason: CloseReason, notify: bool) {
        if self.close.is_some() {
            return;
        }
        tracing::debug!(reason = %reason, "closing client");
        if notify && self.is_connected() {
            self.outbound.push(Packet::Disconnect { duration: None });
        }
        self.close = Some(reason);
    }

    /// Handles one datagram from the client, received from `from`.
    pub fn handle_packet(&mut self, packet: Packet, from: SocketAddr, now: Instant) {
        self.clock = now;
        if self.close.is_some() {
            return;
        }
        self.peer = from;
        self.keepalive.on_packet(now);
        #[cfg(test)]
        tests_fault::maybe_panic(self.info.as_deref(), &packet);
        match packet {
            Packet::Connect(c) => self.handle_connect(c),
            Packet::WillTopic(w) => self.handle_will_topic(w),
            Packet::WillMsg { msg } => self.handle_will_msg(msg),
            other if !self.is_connected() => {
                // docs/mqtt-sn.md §2.3: anything else before the handshake ends is dropped.
                tracing::debug!(packet = other.name(), "ignored before CONNACK");
            }
            Packet::Publish(p) => self.handle_publish(p, now),
            Packet::PubAck {
                topic_id,
                msg_id,
                rc,
            } => self.handle_puback(topic_id, msg_id, rc, now),
            Packet::PubRec { msg_id } => self.handle_pubrec(msg_id, now),
            Packet::PubRel { msg_id } => self.handle_pubrel(msg_id),
            Packet::PubComp { msg_id } => self.handle_pubcomp(msg_id),
            Packet::Register {
                msg_id, topic_name, ..
            } => self.handle_register(msg_id, &topic_name),
            Packet::RegAck {
                topic_id,
                msg_id,
                rc,
            } => self.handle_regack(topic_id, msg_id, rc, now),
            Packet::Subscribe(s) => self.handle_subscribe(s),
            Packet::Unsubscribe(s) => self.handle_unsubscribe(s),
            Packet::PingReq { client_id } => self.handle_pingreq(client_id, now),
            Packet::Disconnect { duration } => self.handle_disconnect(duration, now),
            Packet::WillTopicUpd(w) => self.handle_will_topic_upd(w),
            Packet::WillMsgUpd { msg } => self.handle_will_msg_upd(msg),
            other => {
                tracing::debug!(
                    packet = other.name(),
                    "gateway-to-client message from a client ignored"
                );
            }
        }
    }

    /// Periodic work: handshake timeout, keepalive, sleep timer, retries.
    pub fn handle_tick(&mut self, now: Instant) {
        self.clock = now;
        if self.close.is_some() {
            return;
        }
        match self.state {
            State::Idle | State::WillTopic | State::WillMsg => {
                if self.handshake_deadline.is_some_and(|d| now >= d) {
                    self.fail(CloseReason::ConnectTimeout, false);
                }
                return;
            }
            State::Opening => return,
            State::Asleep { deadline, .. } => {
                if now >= deadline {
                    // MQTT-SN 1.2 §6.14: a sleeper that does not wake in time is lost (its will
                    // is published; docs/mqtt-sn.md §2.17.6).
                    tracing::info!("sleeping client did not wake up in time");
                    self.fail(CloseReason::KeepaliveTimeout, false);
                }
                return;
            }
            State::Connected => {
                if self.keepalive.is_expired(now) {
                    self.fail(CloseReason::KeepaliveTimeout, true);
                    return;
                }
            }
            State::Awake { .. } => {}
        }
        self.retry_due(now);
        if let Some(s) = self.session.as_mut() {
            let expired = s.qos.expire_awaiting_rel(now);
            if expired > 0 {
                tracing::warn!(expired, "incoming QoS 2 messages never released");
            }
        }
    }

    /// When `handle_tick` must next run.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut out: Option<Instant> = None;
        let mut add = |t: Option<Instant>| {
            if let Some(t) = t {
                out = Some(out.map_or(t, |o| o.min(t)));
            }
        };
        match self.state {
            State::Idle | State::WillTopic | State::WillMsg => add(self.handshake_deadline),
            State::Opening => {}
            State::Asleep { deadline, .. } => add(Some(deadline)),
            State::Connected | State::Awake { .. } => {
                if self.state == State::Connected {
                    add(self.keepalive.deadline());
                }
                add(self.session.as_ref().and_then(|s| s.qos.next_timeout()));
                add(self
                    .reg_inflight
                    .as_ref()
                    .map(|r| r.sent_at + self.settings.retry_interval));
            }
        }
        out
    }

    /// Ends the channel: publishes the will if the reason calls for it, puts taken deliveries
    /// and the topic registry back into the session, then the attachment returns it to the bus
    /// (to a taker-over too), reports the disconnect, counts and logs the reason; a client whose
    /// session never opened is counted and logged as refused. Returns the final reason.
    pub fn finish(&mut self) -> CloseReason {
        let reason = self.close.take().unwrap_or(CloseReason::PeerClosed);
        if let Some(will) = self.will.take() {
            if reason.publishes_will() && self.info.is_some() && self.will_authorized(&will) {
                self.bus.publish(will);
            }
        }
        if let Some(session) = self.session.as_mut() {
            session.ext = Some(Box::new(std::mem::take(&mut self.topics)));
            session.outbox.requeue_front(self.held.drain(..).collect());
        }
        let open = self.attachment.take().zip(self.session.take());
        self.bus.end_connection(open, &reason);
        reason
    }

    /// The sleep timer: 1.5 × the duration, like keepalive (docs/mqtt-sn.md §2.17.5).
    pub(crate) fn sleep_deadline(&self, duration: u16, now: Instant) -> Instant {
        let secs = f64::from(duration) * self.settings.keepalive_multiplier.max(1.0);
        now + Duration::from_secs_f64(secs)
    }

    /// Adds the mountpoint in front of a client topic (docs/gateways.md §1.4).
    pub(crate) fn mount(&self, topic: &str) -> String {
        if self.mountpoint.is_empty() {
            topic.to_owned()
        } else {
            format!("{}{}", self.mountpoint, topic)
        }
    }

    /// Removes the mountpoint from a delivered topic.
    pub(crate) fn unmount<'a>(&self, topic: &'a str) -> &'a str {
        topic
            .strip_prefix(self.mountpoint.as_str())
            .unwrap_or(topic)
    }

    pub(crate) fn connack(&mut self, code: u8) {
        self.outbound.push(Packet::ConnAck { rc: code });
    }
}

/// Accepted.
pub(crate) const ACCEPTED: u8 = rc::ACCEPTED;

/// Fault injection for the listener's containment test: a PUBLISH from the client id set here
/// panics inside the channel, as a bug triggered by one client's input would.
#[cfg(test)]
pub(crate) mod tests_fault {
    use super::{ClientInfo, Packet};

    /// The client id whose PUBLISHes panic.
    pub(crate) static PANIC_ON_PUBLISH_FROM: parking_lot::Mutex<Option<String>> =
        parking_lot::Mutex::new(None);

    pub(super) fn maybe_panic(info: Option<&ClientInfo>, packet: &Packet) {
        let Some(info) = info else { return };
        if matches!(packet, Packet::Publish(_))
            && PANIC_ON_PUBLISH_FROM.lock().as_deref() == Some(info.client_id.as_str())
        {
            panic!("injected fault for {}", info.client_id.as_str());
        }
    }
}
