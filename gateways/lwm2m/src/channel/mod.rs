//! One LwM2M device's state machine (sans-I/O): registration-interface requests and command
//! replies in, CoAP replies/requests and MQTT events out, `now` passed in.
//!
//! Owns: the device's bus session while it is registered, its [`Registration`], the lifetime
//! clock, the downlink command queue and the observations.
//! Invariants:
//! - at most one command is outstanding; later ones wait FIFO and are released by the reply,
//!   an RST, or the transport's timeout after its retransmissions (a `coap_timeout` event) —
//!   EMQX 5.8.9 never times a command out, so one lost packet blocks a device (fixed here,
//!   docs/lwm2m.md §4.13.2);
//! - every command carries a fresh non-empty token (EMQX sends empty ones; docs/lwm2m.md
//!   §4.13.1);
//!   observations are keyed by their command id, which the transport returns with every
//!   notification of that token, for the life of the registration;
//! - in queue mode, commands are held once the device has been silent for
//!   `qmode_time_window`, and flushed in order by its next Register or Update
//!   (docs/lwm2m.md §4.9);
//! - the lifetime clock restarts on every inbound message (docs/lwm2m.md §4.2).

mod commands;

use crate::command::{self, Command};
use crate::register::Registration;
use crate::settings::{render, Translator, UpdateCondition};
use crate::Lwm2mGateway;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_bus::{
    Attachment, ClientInfo, Metrics, Namespace, RetainHandling, Session, SubOptions,
};
use switchyard_coap_transport::coap_lite::{CoapOption, Packet};
use switchyard_coap_transport::demux::{ChannelBase, ClientChannel, Transmit};
use switchyard_coap_transport::wire::{self, code};
use switchyard_coap_transport::{error_response, response, Exchange, Request};
use switchyard_core::TemplateError;
use switchyard_core::{CloseReason, Message, Origin, SubscriptionFilter, TopicName};

/// Client ids of this gateway live in their own namespace.
pub const NAMESPACE: Namespace = Namespace("lwm2m");

/// What a channel asks the socket task to do.
#[derive(Debug)]
pub enum Output {
    /// Answer a registration-interface request.
    Reply {
        /// The request's exchange.
        exchange: Exchange,
        /// Code, options, payload.
        packet: Packet,
    },
    /// Send a command as a CON request.
    Request {
        /// The device.
        peer: SocketAddr,
        /// Code, options, payload.
        packet: Packet,
        /// Keep the token for notifications.
        observe: bool,
        /// The token (non-empty).
        token: Vec<u8>,
        /// The command id, returned with every transport event about it.
        cid: u64,
    },
    /// Forget an observation's token (later notifications get RST).
    Forget {
        /// The device.
        peer: SocketAddr,
        /// The token.
        token: Vec<u8>,
    },
}

impl From<Output> for Transmit {
    fn from(o: Output) -> Transmit {
        match o {
            Output::Reply { exchange, packet } => Transmit::Reply { exchange, packet },
            Output::Request {
                peer,
                packet,
                observe,
                token,
                cid,
            } => Transmit::Request {
                peer,
                packet,
                observe,
                token,
                id: cid,
            },
            Output::Forget { peer, token } => Transmit::Forget { peer, token },
        }
    }
}

/// What the transport reported about a command's request (an empty ACK: a separate response
/// follows).
pub use switchyard_coap_transport::Outcome;

struct Inflight {
    cid: u64,
    cmd: Command,
    token: Vec<u8>,
    /// Set by an empty ACK: the separate response must come by then.
    wait_until: Option<Instant>,
}

struct Observed {
    cmd: Command,
    token: Vec<u8>,
    last_seq: Option<u32>,
}

/// One registered device.
pub struct Channel {
    gw: Lwm2mGateway,
    /// The session and its attachment, what to send, why the client closes.
    base: ChannelBase<Output>,
    peer: SocketAddr,
    reg: Registration,
    prefix: String,
    last_inbound: Instant,
    queue: VecDeque<Command>,
    inflight: Option<Inflight>,
    observations: HashMap<u64, Observed>,
    by_path: HashMap<String, u64>,
    next_cid: u64,
}

/// The identity of a device from its Register (docs/lwm2m.md §4.2): client id `device_id` or `ep`,
/// username `imei` or `ep`.
pub fn client_info(reg: &Registration, peer: SocketAddr) -> ClientInfo {
    let p = &reg.params;
    let client_id = p.get("device_id").unwrap_or(&reg.ep).clone();
    ClientInfo {
        namespace: NAMESPACE,
        client_id: client_id.as_str().into(),
        username: Some(reg.username().unwrap_or(&reg.ep).to_owned()),
        peer: Some(peer),
        proto_name: "LwM2M",
        proto_ver: 1,
        keepalive: u16::try_from(reg.lt).unwrap_or(u16::MAX),
        clean_start: true,
        expiry_interval: 0,
        connected_at: std::time::SystemTime::now(),
    }
}

/// The device's topic prefix (the rendered mountpoint); an error names the placeholder that has
/// no value or whose value would escape the prefix, and the Register is refused.
pub fn mount_prefix(
    gw: &Lwm2mGateway,
    reg: &Registration,
    info: &ClientInfo,
) -> Result<String, TemplateError> {
    render(
        &gw.settings.mountpoint,
        &reg.ep,
        info.client_id.as_str(),
        info.username.as_deref(),
    )
}

/// `Err(reason)` when `enable_authn` refuses a Register (answered 4.00 `Login Failed: …`):
/// the `imei` and `password` query extras are checked by the broker's authenticator, with the
/// `imei` as username (EMQX, docs/lwm2m.md §4.2).
pub fn authenticate(
    gw: &Lwm2mGateway,
    reg: &Registration,
    peer: SocketAddr,
    now: Instant,
) -> Result<(), &'static str> {
    let s = &gw.settings;
    let p = &reg.params;
    let client_id = p.get("device_id").unwrap_or(&reg.ep);
    // Banned (or flapping) devices are refused before authentication: 4.00 `Login Failed: banned`.
    let username = reg.username().unwrap_or(&reg.ep);
    if let Some(ban) =
        s.security
            .banned
            .check_connect(client_id, Some(username), Some(peer.ip()), now)
    {
        tracing::info!(%peer, ep = %reg.ep, reason = ban.reason, "LwM2M register refused: banned");
        return Err("banned");
    }
    if reg.psk_proven() {
        // The DTLS-PSK handshake proved the identity: no password check follows.
        return Ok(());
    }
    let creds = switchyard_auth::Credentials {
        client_id,
        username: reg.username(),
        password: p.get("password").map(|pw| pw.as_bytes()),
        peer_ip: Some(peer.ip()),
        listener_authn_enabled: s.enable_authn,
    };
    // A network authenticator's answer comes from `check_network` (or the cache).
    match s.security.authenticate_now(&creds).result {
        switchyard_auth::AuthResult::Allow { .. } => Ok(()),
        switchyard_auth::AuthResult::Deny(reason) => {
            Metrics::inc(&gw.bus.metrics().auth_failures);
            tracing::info!(%peer, ep = %reg.ep, reason = %reason, "LwM2M register refused");
            Err(reason.as_str())
        }
    }
}

/// Asks the chain's network authenticators (HTTP, PostgreSQL) about a Register's
/// credentials, awaited on the device's own task, so that [`authenticate`] finds their answer.
/// Nothing to do when the chain has none.
pub async fn check_network(gw: &Lwm2mGateway, reg: &Registration, peer: SocketAddr) {
    let s = &gw.settings;
    if !s.enable_authn || s.security.chain.is_local() || reg.psk_proven() {
        return;
    }
    let p = &reg.params;
    let creds = switchyard_auth::OwnedCredentials {
        client_id: p.get("device_id").unwrap_or(&reg.ep).clone(),
        username: reg.username().map(str::to_owned),
        password: p.get("password").map(|pw| pw.clone().into_bytes()),
        peer_ip: Some(peer.ip()),
        listener_authn_enabled: true,
    };
    let _ = s.security.authenticate(&creds).await;
}

/// The reply to a refused Register.
pub fn login_failed(reason: &str) -> Packet {
    error_response(code::BAD_REQUEST, &format!("Login Failed: {reason}"))
}

impl Channel {
    /// A channel for a device whose Register was accepted and whose session is open. Call
    /// [`start`](Self::start) next.
    pub fn new(
        gw: Lwm2mGateway,
        info: Arc<ClientInfo>,
        session: Session,
        attachment: Attachment,
        reg: Registration,
        prefix: String,
        now: Instant,
    ) -> Self {
        Channel {
            peer: info
                .peer
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            gw,
            base: ChannelBase::new(session, attachment),
            reg,
            prefix,
            last_inbound: now,
            queue: VecDeque::new(),
            inflight: None,
            observations: HashMap::new(),
            by_path: HashMap::new(),
            next_cid: 1,
        }
    }

    /// The registration in force.
    pub fn registration(&self) -> &Registration {
        &self.reg
    }

    /// Live observations.
    pub fn observations(&self) -> usize {
        self.observations.len()
    }

    /// Commands waiting (not counting the outstanding one).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn lifetime(&self) -> Duration {
        self.gw.settings.lifetime(self.reg.lt)
    }

    fn location(&self) -> Packet {
        let mut r = response(code::CREATED);
        r.add_option(CoapOption::LocationPath, b"rd".to_vec());
        r.add_option(CoapOption::LocationPath, self.reg.ep.as_bytes().to_vec());
        r
    }

    /// Completes the first Register: subscribes to the command topic (retained commands are
    /// delivered, docs/lwm2m.md §4.2), answers 2.01 with Location-Path `rd/{ep}`, auto-observes and
    /// publishes the register event. `Err` when the command topic is not a valid filter.
    pub fn start(&mut self, ex: &Exchange, now: Instant) -> Result<(), CloseReason> {
        let filter = format!("{}{}", self.prefix, self.gw.settings.command.topic);
        let sf = SubscriptionFilter::parse(&filter, 0)
            .map_err(|e| CloseReason::ProtocolError(format!("command topic {filter}: {e}")))?;
        let opts = SubOptions {
            qos: self.gw.settings.command.qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::OnSubscribe,
            subscription_id: None,
        };
        if let Some(s) = self.base.session.as_mut() {
            self.gw
                .bus
                .subscribe(s, sf, opts)
                .map_err(|e| CloseReason::ProtocolError(e.to_string()))?;
        }
        let reply = self.location();
        self.reply(ex, reply);
        self.registered(now);
        Ok(())
    }

    fn registered(&mut self, now: Instant) {
        if self.gw.settings.auto_observe {
            self.auto_observe();
        }
        let ev = serde_json::json!({"msgType": "register", "data": self.reg.event_data()});
        self.publish(&self.gw.settings.register.clone(), &ev);
        self.pump(now);
    }

    fn reply(&mut self, ex: &Exchange, packet: Packet) {
        self.base.out.push(Output::Reply {
            exchange: ex.clone(),
            packet,
        });
    }

    /// A registration-interface request (Register again, Update, De-register) from the device.
    pub fn handle_request(&mut self, req: Request, now: Instant) {
        if self.base.close.is_some() {
            return;
        }
        if req.peer_identity != self.reg.peer {
            // DTLS: a peer that proved another identity names this device's endpoint; it may
            // not update or take over the registration through this device's channel.
            tracing::info!(peer = %req.peer, "request refused: another DTLS identity");
            return self.reply(&req.exchange, error_response(code::FORBIDDEN, "forbidden"));
        }
        self.last_inbound = now;
        self.peer = req.peer;
        let ex = req.exchange;
        let p = req.packet;
        let (Ok(path), Ok(query)) = (wire::uri_path(&p), wire::uri_query(&p)) else {
            return self.reply(&ex, error_response(code::BAD_REQUEST, "invalid URI"));
        };
        let method = wire::code_of(&p);
        let own = path.len() == 2 && path[0] == "rd" && path[1] == self.reg.ep;
        match (method, path.len()) {
            (code::POST, 1) if path[0] == "rd" => self.reregister(&ex, &query, &p.payload, now),
            (code::POST, _) if own => self.update(&ex, &query, &p.payload, now),
            (code::DELETE, _) if own => {
                // docs/lwm2m.md §4.2: 2.02, no MQTT event; the command subscription ends with
                // the session.
                self.reply(&ex, response(code::DELETED));
                self.fail(CloseReason::ClientDisconnect);
            }
            _ => self.reply(&ex, error_response(code::NOT_FOUND, "not found")),
        }
    }

    fn reregister(&mut self, ex: &Exchange, query: &[String], payload: &[u8], now: Instant) {
        let mut reg = match Registration::parse(query, payload) {
            Ok(r) => r,
            Err(reason) => return self.reply(ex, login_failed(reason)),
        };
        // Same association, same proven identity.
        reg.peer = self.reg.peer.clone();
        if let Err(reason) = authenticate(&self.gw, &reg, self.peer, now) {
            return self.reply(ex, login_failed(reason));
        }
        // A new Register means the device lost its state: its observations are gone (LwM2M TS
        // §5.3.1). EMQX answers 2.04 without Location; this is a Register, so 2.01
        // (docs/lwm2m.md §4.13.9).
        self.forget_observations();
        self.reg = reg;
        let reply = self.location();
        self.reply(ex, reply);
        self.registered(now);
    }

    fn update(&mut self, ex: &Exchange, query: &[String], payload: &[u8], now: Instant) {
        if let Err(reason) = self.reg.update(query, payload) {
            return self.reply(ex, error_response(code::BAD_REQUEST, reason));
        }
        self.reply(ex, response(code::CHANGED));
        let publish = match self.gw.settings.update_msg_publish_condition {
            UpdateCondition::Always => true,
            UpdateCondition::ContainsObjectList => !payload.is_empty(),
        };
        if publish {
            let ev = serde_json::json!({"msgType": "update", "data": self.reg.event_data()});
            self.publish(&self.gw.settings.update.clone(), &ev);
        }
        self.pump(now);
    }

    fn forget_observations(&mut self) {
        for (_, o) in self.observations.drain() {
            self.base.out.push(Output::Forget {
                peer: self.peer,
                token: o.token,
            });
        }
        self.by_path.clear();
    }

    /// Publishes `ev` on the mountpoint + translator topic.
    fn publish(&self, t: &Translator, ev: &Value) {
        let topic = format!("{}{}", self.prefix, t.topic);
        let Ok(name) = TopicName::new(topic.as_str()) else {
            tracing::warn!(%topic, "invalid event topic; event dropped");
            return;
        };
        let mut msg = Message::new(name, ev.to_string().into_bytes(), t.qos, false);
        if let Some(s) = &self.base.session {
            msg.origin = Some(Origin {
                session: s.id,
                client_id: s.client_id.clone(),
            });
        }
        self.gw.bus.publish(msg);
    }

    fn publish_response(&self, ev: &Value) {
        self.publish(&self.gw.settings.response.clone(), ev);
    }

    /// Ends the channel: the attachment hands the session back to the bus (to a taker-over
    /// too), reports the disconnect, counts and logs the reason. Returns the close reason.
    pub fn finish(&mut self) -> CloseReason {
        self.forget_observations();
        self.base.finish(&self.gw.bus)
    }
}

/// What the demux's client loop drives (`switchyard_coap_transport::demux`): a registered device,
/// its queued commands and its timers.
impl ClientChannel for Channel {
    type Output = Output;

    /// MQTT commands from the outbox into the device's command queue (see `pull_commands`).
    fn pull_deliveries(&mut self, now: Instant) -> usize {
        self.pull_commands(now)
    }

    /// The next timer: lifetime expiry, or the end of the wait for a separate response.
    fn next_deadline(&self) -> Option<Instant> {
        if self.base.close.is_some() {
            return None;
        }
        let life = self.last_inbound + self.lifetime();
        let wait = self.inflight.as_ref().and_then(|i| i.wait_until);
        Some(wait.map_or(life, |w| w.min(life)))
    }

    /// Timer wakeup.
    fn tick(&mut self, now: Instant) {
        if self.base.close.is_some() {
            return;
        }
        if now >= self.last_inbound + self.lifetime() {
            tracing::debug!(lt = self.reg.lt, "registration lifetime expired");
            return self.fail(CloseReason::KeepaliveTimeout);
        }
        if self
            .inflight
            .as_ref()
            .and_then(|i| i.wait_until)
            .is_some_and(|w| now >= w)
        {
            if let Some(i) = self.inflight.take() {
                self.publish_response(&command::transport_event(&i.cmd, "coap_timeout"));
            }
            self.pump(now);
        }
    }

    switchyard_coap_transport::channel_base!(base);
}

#[cfg(test)]
mod tests;
