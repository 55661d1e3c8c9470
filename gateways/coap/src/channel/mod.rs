//! The per-client protocol state machine of the pub/sub gateway (sans-I/O): requests in,
//! replies and notifications out, `now` passed in.
//!
//! Owns: the client's bus session while it is online, its observations (one per topic filter,
//! each a bus subscription whose subscription id names it), the connection-mode token, the
//! CON-notification window (at most one unacknowledged, RFC 7252 §4.7 NSTART = 1) and the
//! keepalive clock.
//! Invariants: notifications leave in outbox order, and none while a CON notification is
//! unacknowledged (so nothing with a newer Observe value overtakes its retransmission);
//! an observation is removed on Observe=1, on RST to one of its notifications and when a CON
//! notification times out (RFC 7641 §3.6/§4.5; EMQX keeps it: docs/coap.md §3.12.3); a
//! connectionless client with a live observation is never dropped for silence (EMQX drops it
//! after 1.5 × heartbeat, issues #11800/#16037; docs/coap.md §3.12.4).

mod auth;
pub mod request;

use crate::transport::demux::{ChannelBase, ClientChannel, Transmit};
use crate::transport::observe::Observation;
use crate::transport::wire::code;
use crate::transport::{error_response, response, wire, Exchange, Request};
use crate::CoapGateway;
use coap_lite::{CoapOption, Packet};
use request::{Query, Refusal, Resource};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_auth::{Action, AuthResult, ClientAcl, Credentials, Decision};
use switchyard_bus::{
    Attachment, ClientInfo, Delivery, Metrics, Namespace, RetainHandling, Session, SubOptions,
};
use switchyard_core::{
    CloseReason, Message, Origin, Properties, QoS, SubscriptionFilter, TopicName,
};

/// Client ids of this gateway live in their own namespace (as EMQX's do).
pub const NAMESPACE: Namespace = Namespace("coap");

/// Diagnostic of every connection-mode identity failure (docs/coap.md §3.5, EMQX's wording).
const MISSING_TOKEN: &str = "Missing token or clientid in connection mode";
/// Recent NON notifications remembered so an RST to one cancels its observation.
const RECENT_NON: usize = 64;
/// At most this many deliveries are turned into notifications per wakeup.
const MAX_BATCH: usize = 256;

/// How datagrams find their channel (ARCHITECTURE.md §3: by client identity, not only source address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The `clientid` query parameter.
    Id(String),
    /// A connectionless client without `clientid`: its source address.
    Addr(SocketAddr),
}

/// What a channel asks the socket task to send.
#[derive(Debug)]
pub enum Output {
    /// The answer to a request.
    Reply {
        /// The request's exchange.
        exchange: Exchange,
        /// Code, options, payload.
        packet: Packet,
    },
    /// An RFC 7641 notification.
    Notify {
        /// Where the observer is.
        peer: SocketAddr,
        /// Code 2.05, token, Observe, payload.
        packet: Packet,
        /// CON or NON.
        confirmable: bool,
        /// The channel's id for this notification (comes back in transport events).
        nid: u64,
        /// The observed resource, for Block2 follow-ups.
        resource: String,
    },
}

impl From<Output> for Transmit {
    fn from(o: Output) -> Transmit {
        match o {
            Output::Reply { exchange, packet } => Transmit::Reply { exchange, packet },
            Output::Notify {
                peer,
                packet,
                confirmable,
                nid,
                resource,
            } => Transmit::Notify {
                peer,
                packet,
                confirmable,
                id: nid,
                resource,
            },
        }
    }
}

/// What the transport reported about one of this channel's notifications.
pub use crate::transport::Outcome as NotifyOutcome;

struct Observed {
    filter: SubscriptionFilter,
    obs: Observation,
}

/// One CoAP client.
pub struct Channel {
    gw: CoapGateway,
    info: Arc<ClientInfo>,
    /// The rendered mountpoint, put in front of every topic the client names.
    prefix: String,
    peer: SocketAddr,
    /// The session and its attachment, what to send, why the client closes.
    base: ChannelBase<Output>,
    token: Option<String>,
    observations: BTreeMap<u32, Observed>,
    by_filter: HashMap<SubscriptionFilter, u32>,
    next_sub_id: u32,
    con_inflight: HashMap<u64, u32>,
    recent_non: VecDeque<(u64, u32)>,
    next_nid: u64,
    last_seen: Instant,
    /// The ACL as it applies to this client, set by its latest successful authentication.
    acl: Option<ClientAcl>,
    /// On a DTLS listener, what the client's handshake proved (applied to every request).
    peer_identity: Option<switchyard_net::PeerIdentity>,
}

/// Identity of a new client from its first request.
pub fn client_info(
    key: &ClientKey,
    q: &Query,
    peer: SocketAddr,
    heartbeat: Duration,
) -> ClientInfo {
    let client_id = match key {
        ClientKey::Id(id) => id.clone(),
        ClientKey::Addr(_) => random_client_id(),
    };
    ClientInfo {
        namespace: NAMESPACE,
        client_id: client_id.as_str().into(),
        username: q.username.clone(),
        peer: Some(peer),
        proto_name: "CoAP",
        proto_ver: 1,
        // EMQX reports heartbeat / 2 (fixed in 6.3.0): we report the heartbeat (docs/coap.md
        // §3.12.8).
        keepalive: u16::try_from(heartbeat.as_secs()).unwrap_or(u16::MAX),
        clean_start: true,
        expiry_interval: 0,
        connected_at: std::time::SystemTime::now(),
    }
}

fn random_client_id() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 16)
}

/// Authenticates a connection create before its client opens a session (so a wrong password
/// cannot take over the session of the client id it names). Awaited on the client's own task;
/// the password hash runs on the blocking pool (switchyard-auth's bounded offload), so a flood
/// of wrong passwords never stalls the socket task or other clients. `Err` is the refusal.
///
/// Every new client (connection mode or not) is first checked against the banned list, before
/// any authentication: a banned one gets 4.00 `Login Failed: banned`.
pub async fn login(
    gw: &CoapGateway,
    packet: &Packet,
    peer: SocketAddr,
    identity: Option<&switchyard_net::PeerIdentity>,
    now: Instant,
) -> Result<(), Packet> {
    let mut q = request::query(packet).map_err(|(c, t)| error_response(c, t))?;
    q.apply_peer(identity);
    let ban = gw.settings.security.banned.check_connect(
        q.clientid.as_deref().unwrap_or_default(),
        q.username.as_deref(),
        Some(peer.ip()),
        now,
    );
    if let Some(ban) = ban {
        tracing::info!(%peer, client_id = ?q.clientid, reason = ban.reason, "client refused: banned");
        return Err(error_response(code::BAD_REQUEST, "Login Failed: banned"));
    }
    let creates = matches!(request::resource(packet), Ok(Resource::Connection))
        && wire::code_of(packet) == code::POST;
    // A DTLS-PSK identity is proven by the handshake: no password check follows.
    if !creates || !gw.settings.enable_authn || q.dtls_proven {
        return Ok(());
    }
    let Some(id) = q.clientid.clone() else {
        return Err(error_response(code::BAD_REQUEST, MISSING_TOKEN));
    };
    let creds = switchyard_auth::OwnedCredentials {
        client_id: id.clone(),
        username: q.username.clone(),
        password: q.password.clone().map(String::into_bytes),
        peer_ip: Some(peer.ip()),
        listener_authn_enabled: true,
    };
    // The chain of authenticators (network back-ends included) on this client's own task.
    match gw.settings.security.authenticate(&creds).await.result {
        AuthResult::Allow { .. } => Ok(()),
        AuthResult::Deny(reason) => {
            Metrics::inc(&gw.bus.metrics().auth_failures);
            tracing::info!(%peer, client_id = id, reason = %reason, "authentication failed");
            Err(error_response(
                code::BAD_REQUEST,
                &format!("Login Failed: {}", reason.as_str()),
            ))
        }
    }
}

/// Checks the `username`/`password` (`u`/`p`) of a request when `enable_authn` is set
/// (always allowed otherwise): `Ok(grant)` (superuser, the authenticator's `acl`, expiry and
/// attributes), or the reason for `Login Failed: <reason>`
/// (docs/coap.md §3.5) / 4.01 (connectionless, §3.4). Failures are counted.
pub fn authenticate(
    gw: &CoapGateway,
    q: &Query,
    client_id: &str,
    peer: SocketAddr,
) -> Result<switchyard_auth::Grant, &'static str> {
    if q.dtls_proven {
        // The DTLS-PSK handshake proved the identity (the username); never a superuser.
        return Ok(switchyard_auth::Grant::default());
    }
    let creds = Credentials {
        client_id,
        username: q.username.as_deref(),
        password: q.password.as_deref().map(str::as_bytes),
        peer_ip: Some(peer.ip()),
        listener_authn_enabled: gw.settings.enable_authn,
    };
    // A network authenticator's answer comes from the check `login` awaited (or the cache).
    let verdict = gw.settings.security.authenticate_now(&creds);
    match verdict.result {
        AuthResult::Allow { .. } => Ok(verdict.grant),
        AuthResult::Deny(reason) => {
            Metrics::inc(&gw.bus.metrics().auth_failures);
            tracing::info!(%peer, client_id, reason = %reason, "authentication failed");
            Err(reason.as_str())
        }
    }
}

impl Channel {
    /// A channel for a client whose session is open.
    pub fn new(
        gw: CoapGateway,
        info: Arc<ClientInfo>,
        session: Session,
        attachment: Attachment,
        prefix: String,
        now: Instant,
    ) -> Self {
        Channel {
            prefix,
            peer: info
                .peer
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            gw,
            info,
            base: ChannelBase::new(session, attachment),
            token: None,
            observations: BTreeMap::new(),
            by_filter: HashMap::new(),
            next_sub_id: 1,
            con_inflight: HashMap::new(),
            recent_non: VecDeque::new(),
            next_nid: 1,
            last_seen: now,
            acl: None,
            peer_identity: None,
        }
    }

    /// What the client's DTLS handshake proved (`None` over plain UDP): its username replaces
    /// the query's on every request, and a PSK identity needs no password.
    pub fn set_peer_identity(&mut self, identity: Option<switchyard_net::PeerIdentity>) {
        self.peer_identity = identity;
    }

    /// Where the client last spoke from (after its identity was checked).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the client may be sent server-initiated requests (docs/coap.md §3.10): in
    /// connection mode once it holds a token, otherwise always.
    pub fn is_connected(&self) -> bool {
        !self.gw.settings.connection_required || self.token.is_some()
    }

    /// Number of live observations.
    pub fn observations(&self) -> usize {
        self.observations.len()
    }

    fn reply(&mut self, ex: &Exchange, packet: Packet) {
        self.base.out.push(Output::Reply {
            exchange: ex.clone(),
            packet,
        });
    }

    fn refuse(&mut self, ex: &Exchange, (c, text): Refusal) {
        self.reply(ex, error_response(c, text));
    }

    /// One request of this client.
    pub fn handle_request(&mut self, req: Request, now: Instant) {
        if self.base.close.is_some() {
            return;
        }
        let ex = req.exchange;
        if req.peer_identity != self.peer_identity {
            // DTLS: a peer that proved another identity names this client (its client id); it
            // may not act as this client.
            tracing::info!(peer = %req.peer, "request refused: another DTLS identity");
            return self.refuse(&ex, (code::FORBIDDEN, "forbidden"));
        }
        let mut q = match request::query(&req.packet) {
            Ok(q) => q,
            Err(r) => return self.refuse(&ex, r),
        };
        q.apply_peer(self.peer_identity.as_ref());
        let res = request::resource(&req.packet);
        let is_connection = matches!(res, Ok(Resource::Connection));
        let method = wire::code_of(&req.packet);
        if self.gw.settings.connection_required && !(is_connection && method == code::POST) {
            // docs/coap.md §3.5: every request carries clientid and token; a missing token is
            // answered 4.00 (EMQX 5.8.9 stays silent; 5.10/6.x answer, docs/coap.md §3.12.5).
            let ok = q.clientid.as_deref() == Some(self.info.client_id.as_str())
                && q.token.is_some()
                && q.token == self.token;
            if !ok {
                return self.refuse(&ex, (code::BAD_REQUEST, MISSING_TOKEN));
            }
        } else if !self.gw.settings.connection_required {
            // A create hands out a token in this mode too (docs/coap.md §3.4), and a second create
            // (a rebooted device) replaces it: a request that names a token must name the current
            // one, or a device still holding the token from before the takeover would go on
            // publishing as the taken-over client. Requests without a token stay connectionless.
            let creates = is_connection && method == code::POST;
            if !creates && q.token.is_some() && q.token != self.token {
                tracing::debug!(peer = %req.peer, "stale or unknown token refused");
                return self.refuse(&ex, (code::BAD_REQUEST, MISSING_TOKEN));
            }
            if !is_connection {
                // docs/coap.md §3.4, §3.12.11 (6.x hardened profile): every connectionless
                // request authenticates.
                match authenticate(&self.gw, &q, self.info.client_id.as_str(), req.peer) {
                    Ok(grant) => self.set_acl(q.username.as_deref(), &grant, req.peer),
                    Err(_) => return self.refuse(&ex, (code::UNAUTHORIZED, "not authorized")),
                }
            }
        }
        self.last_seen = now;
        self.peer = req.peer;
        match res {
            Err(r) => self.refuse(&ex, r),
            Ok(Resource::Connection) => self.connection(&ex, method, &q),
            Ok(Resource::PubSub(topic)) => match method {
                code::POST => self.publish(&ex, &topic, &q, req.packet.payload, now),
                code::GET => self.observe(&ex, &req.packet, &topic, &q, now),
                _ => self.refuse(&ex, (code::METHOD_NOT_ALLOWED, "method not allowed")),
            },
        }
    }

    fn connection(&mut self, ex: &Exchange, method: u8, q: &Query) {
        match method {
            code::POST => {
                let id = self.info.client_id.to_string();
                match authenticate(&self.gw, q, &id, self.peer) {
                    Ok(grant) => self.set_acl(q.username.as_deref(), &grant, self.peer),
                    Err(reason) => {
                        let text = format!("Login Failed: {reason}");
                        return self.reply(ex, error_response(code::BAD_REQUEST, &text));
                    }
                }
                // A create for a connected client id (a rebooted device) takes the session
                // over with a new token; the old token is refused from now on.
                let token = rand::Rng::gen_range(&mut rand::thread_rng(), 1..=u32::MAX).to_string();
                let mut r = response(code::CREATED);
                r.payload = token.clone().into_bytes();
                self.token = Some(token);
                self.reply(ex, r);
            }
            code::PUT => self.reply(ex, response(code::CHANGED)),
            code::DELETE => {
                self.reply(ex, response(code::DELETED));
                self.fail(CloseReason::ClientDisconnect);
            }
            _ => self.refuse(ex, (code::METHOD_NOT_ALLOWED, "method not allowed")),
        }
    }

    fn mount(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    fn publish(&mut self, ex: &Exchange, topic: &str, q: &Query, payload: Vec<u8>, now: Instant) {
        let parsed = (|| -> Result<(QoS, bool, Option<u32>), Refusal> {
            let qos = match &q.qos {
                Some(v) => request::parse_qos(v)?,
                None => self.gw.settings.publish_qos.resolve(ex.is_confirmable()),
            };
            let retain = match &q.retain {
                Some(v) => request::parse_bool(v, "invalid retain")?,
                None => false,
            };
            let expiry = q.expiry.as_deref().map(request::parse_expiry).transpose()?;
            Ok((qos, retain, expiry))
        })();
        let (qos, retain, expiry) = match parsed {
            Ok(v) => v,
            Err(r) => return self.refuse(ex, r),
        };
        let levels = self.gw.settings.max_topic_levels;
        let Ok(name) = TopicName::with_max_levels(self.mount(topic), levels) else {
            return self.refuse(ex, (code::BAD_REQUEST, "invalid topic"));
        };
        let action = Action::Publish { topic, qos, retain };
        if self.authorize(ex, action, now) == Decision::Deny {
            return;
        }
        let mut msg = Message::new(name, payload, qos, retain);
        if let Some(secs) = expiry {
            // docs/coap.md §3.6: EMQX 5.8.9 ignores `expiry`; it sets the message expiry here
            // (§3.12.6).
            msg.properties = Some(Arc::new(Properties {
                message_expiry_interval: Some(secs),
                ..Properties::default()
            }));
        }
        if let Some(s) = &self.base.session {
            msg.origin = Some(Origin {
                session: s.id,
                client_id: s.client_id.clone(),
            });
        }
        self.gw.bus.publish(msg);
        self.reply(ex, response(code::CHANGED));
    }

    fn observe(&mut self, ex: &Exchange, packet: &Packet, topic: &str, q: &Query, now: Instant) {
        let obs = match request::observe(packet) {
            Ok(Some(v)) => v,
            Ok(None) => return self.refuse(ex, (code::BAD_REQUEST, "invalid observe value")),
            Err(r) => return self.refuse(ex, r),
        };
        if ex.token().is_empty() {
            return self.refuse(ex, (code::BAD_REQUEST, "observe without token"));
        }
        let levels = self.gw.settings.max_topic_levels;
        let Ok(filter) = SubscriptionFilter::parse(&self.mount(topic), levels) else {
            return self.refuse(ex, (code::BAD_REQUEST, "invalid topic"));
        };
        if obs == 1 {
            if let Some(id) = self.by_filter.get(&filter).copied() {
                self.cancel(id);
            }
            return self.reply(ex, response(code::NO_CONTENT));
        }
        let opts = match self.sub_options(ex, q) {
            Ok(o) => o,
            Err(r) => return self.refuse(ex, r),
        };
        let action = Action::Subscribe {
            filter: topic,
            qos: opts.qos,
        };
        if self.authorize(ex, action, now) == Decision::Deny {
            return;
        }
        let seq = match self.by_filter.get(&filter).copied() {
            Some(id) => match self.observations.get_mut(&id) {
                Some(o) => {
                    o.obs.reregister(ex.token().to_vec());
                    o.obs.seq()
                }
                None => 0,
            },
            None => {
                let id = self.next_sub_id;
                self.next_sub_id = self.next_sub_id.wrapping_add(1).max(1);
                let Some(session) = self.base.session.as_mut() else {
                    return;
                };
                let opts = SubOptions {
                    subscription_id: Some(id),
                    ..opts
                };
                if self
                    .gw
                    .bus
                    .subscribe(session, filter.clone(), opts)
                    .is_err()
                {
                    return self.refuse(ex, (code::BAD_REQUEST, "subscription refused"));
                }
                let resource = ex.resource().to_owned();
                let obs = Observation::new(ex.token().to_vec(), resource, now);
                self.by_filter.insert(filter.clone(), id);
                self.observations.insert(id, Observed { filter, obs });
                0
            }
        };
        let mut r = response(code::CONTENT);
        r.set_observe_value(seq);
        self.reply(ex, r);
    }

    fn sub_options(&self, ex: &Exchange, q: &Query) -> Result<SubOptions, Refusal> {
        let qos = match &q.qos {
            Some(v) => request::parse_qos(v)?,
            None => self.gw.settings.subscribe_qos.resolve(ex.is_confirmable()),
        };
        let nl = match &q.nl {
            Some(v) => request::parse_bool(v, "invalid nl")?,
            None => false,
        };
        // docs/coap.md §3.7: as EMQX, retained messages reach an observer only with rh=0.
        let rh0 = match q.rh.as_deref() {
            None | Some("1") | Some("2") => false,
            Some("0") => true,
            Some(_) => return Err((code::BAD_REQUEST, "invalid rh")),
        };
        Ok(SubOptions {
            qos,
            no_local: nl,
            retain_as_published: false,
            retain_handling: if rh0 {
                RetainHandling::OnSubscribe
            } else {
                RetainHandling::Never
            },
            subscription_id: None,
        })
    }

    fn cancel(&mut self, id: u32) {
        if let Some(o) = self.observations.remove(&id) {
            self.by_filter.remove(&o.filter);
            if let Some(s) = self.base.session.as_mut() {
                self.gw.bus.unsubscribe(s, &o.filter);
            }
        }
    }

    /// The transport's verdict on one of our notifications.
    pub fn handle_notify_outcome(&mut self, nid: u64, outcome: NotifyOutcome, now: Instant) {
        let sub = self.con_inflight.remove(&nid).or_else(|| {
            let pos = self.recent_non.iter().position(|(n, _)| *n == nid)?;
            self.recent_non.remove(pos).map(|(_, s)| s)
        });
        match outcome {
            NotifyOutcome::Acked => self.last_seen = now,
            NotifyOutcome::Reset | NotifyOutcome::Timeout => {
                if outcome == NotifyOutcome::Reset {
                    self.last_seen = now;
                }
                if let Some(id) = sub {
                    tracing::debug!(sub_id = id, ?outcome, "observation cancelled");
                    self.cancel(id);
                }
            }
        }
    }

    /// Turns queued deliveries into notifications, in outbox order, while no CON notification
    /// is unacknowledged. Returns how many deliveries left the outbox.
    ///
    /// Nothing overtakes an unacknowledged CON, NON included: if its first transmission is lost,
    /// a NON sent meanwhile carries a newer Observe value, and the client then discards the
    /// CON's retransmission as stale (RFC 7641 §3.4), so a QoS 1 message would be lost although
    /// acknowledged. EMQX 6.x queues every notification behind an in-flight CON the same way.
    fn pull_notifications(&mut self, now: Instant) -> usize {
        if self.base.close.is_some() {
            return 0;
        }
        let Some(outbox) = self.outbox() else {
            return 0;
        };
        let notify = self.gw.settings.notify_type;
        let mut budget = MAX_BATCH;
        let mut pulled = 0;
        while budget > 0 && self.con_inflight.is_empty() {
            let mut taken = Vec::new();
            let mut last = false;
            outbox.drain(
                now,
                |d| {
                    if last || budget == 0 {
                        return false;
                    }
                    // A CON notification ends the batch: what follows waits for its ACK.
                    last = wants_con(notify, d.qos);
                    budget -= 1;
                    true
                },
                &mut taken,
            );
            if taken.is_empty() {
                break;
            }
            let mut taken = taken.into_iter();
            while let Some(d) = taken.next() {
                pulled += 1;
                let rest = self.notify(d, now);
                if !self.con_inflight.is_empty() {
                    // Also when a delivery meant for NON went CON (at least one a day, RFC 7641
                    // §4.5): the rest (of this delivery's observations, then of the batch) goes
                    // back to the front, in order, until the ACK.
                    outbox.requeue_front(rest.into_iter().chain(taken).collect());
                    break;
                }
            }
        }
        pulled
    }

    /// One notification per observation the delivery matches, until one goes CON: the same
    /// message for the client's other observations must wait for its ACK too (one exchange
    /// outstanding per client, RFC 7252 §4.7 NSTART = 1), so what is left of the delivery is
    /// returned, for the front of the outbox.
    fn notify(&mut self, d: Delivery, now: Instant) -> Option<Delivery> {
        let want_con = wants_con(self.gw.settings.notify_type, d.qos);
        let mut sent = false;
        let mut rest = None;
        for (i, id) in d.subscription_ids.iter().enumerate() {
            let Some(o) = self.observations.get_mut(id) else {
                continue;
            };
            let (seq, con) = o.obs.next(want_con, now);
            let mut p = response(code::CONTENT);
            p.set_token(o.obs.token.clone());
            p.set_observe_value(seq);
            p.payload = d.message.payload.to_vec();
            let nid = self.next_nid;
            self.next_nid = self.next_nid.wrapping_add(1);
            if con {
                self.con_inflight.insert(nid, *id);
            } else {
                if self.recent_non.len() >= RECENT_NON {
                    self.recent_non.pop_front();
                }
                self.recent_non.push_back((nid, *id));
            }
            self.base.out.push(Output::Notify {
                peer: self.peer,
                packet: p,
                confirmable: con,
                nid,
                resource: o.obs.resource.clone(),
            });
            sent = true;
            if con {
                let left = d.subscription_ids.get(i + 1..).unwrap_or_default().to_vec();
                rest = (!left.is_empty()).then_some(left);
                break;
            }
        }
        let m = self.gw.bus.metrics();
        Metrics::inc(if sent {
            &m.messages_sent
        } else {
            &m.messages_dropped
        });
        rest.map(|subscription_ids| Delivery {
            subscription_ids,
            ..d
        })
    }

    /// Ends the channel: the attachment hands the session back to the bus (to a taker-over
    /// too), reports the disconnect, counts and logs the reason. Returns the close reason.
    pub fn finish(&mut self) -> CloseReason {
        self.base.finish(&self.gw.bus)
    }
}

/// What the demux's client loop drives (`switchyard_coap_transport::demux`).
impl ClientChannel for Channel {
    type Output = Output;

    /// Notifications from the outbox while no CON notification is unacknowledged (see
    /// `pull_notifications`).
    fn pull_deliveries(&mut self, now: Instant) -> usize {
        self.pull_notifications(now)
    }

    /// When the keepalive fires: 1.5 × heartbeat after the last message from the client, except
    /// for a connectionless client that still has observations (see the module doc).
    /// Also when the client's credentials expire (a JWT's `exp`, an HTTP `expire_at`).
    fn next_deadline(&self) -> Option<Instant> {
        if self.base.close.is_some() {
            return None;
        }
        let expiry = self.expiry_deadline();
        if !self.gw.settings.connection_required && !self.observations.is_empty() {
            return expiry;
        }
        let keepalive = self.last_seen + self.gw.settings.heartbeat.mul_f64(1.5);
        Some(expiry.map_or(keepalive, |e| e.min(keepalive)))
    }

    /// Timer wakeup.
    fn tick(&mut self, now: Instant) {
        if self.credentials_expired() {
            tracing::info!("credentials expired; disconnecting");
            return self.fail(CloseReason::NotAuthorized);
        }
        // The keepalive alone: next_deadline may be the credentials' expiry instead.
        let watched = self.gw.settings.connection_required || self.observations.is_empty();
        let due = self.last_seen + self.gw.settings.heartbeat.mul_f64(1.5);
        if self.base.close.is_none() && watched && now >= due {
            self.fail(CloseReason::KeepaliveTimeout);
        }
    }

    crate::transport::channel_base!(base);
}

fn wants_con(notify: crate::NotifyType, qos: QoS) -> bool {
    match notify {
        crate::NotifyType::Con => true,
        crate::NotifyType::Non => false,
        crate::NotifyType::Qos => qos != QoS::AtMostOnce,
    }
}

/// The answer the socket task gives itself when a connection-mode request names no live
/// channel: `Ok(())` to create one (a connection create), else the reply. Cheap: no password
/// check (see [`login`]).
pub fn precheck_connection_mode(packet: &Packet) -> Result<(), Packet> {
    let q = request::query(packet).map_err(|(c, t)| error_response(c, t))?;
    let is_connection = matches!(request::resource(packet), Ok(Resource::Connection));
    match (is_connection, wire::code_of(packet), &q.clientid) {
        (true, code::POST, None) => Err(error_response(code::BAD_REQUEST, MISSING_TOKEN)),
        // A create: its credentials are checked on the new client's own task, never here
        // (a password hash on the socket task would stall every CoAP client).
        (true, code::POST, Some(_)) => Ok(()),
        // docs/coap.md §3.5: a DELETE reaching a fresh channel is answered 2.02.
        (true, code::DELETE, _) => Err(response(code::DELETED)),
        (true, code::GET, _) => Err(error_response(
            code::METHOD_NOT_ALLOWED,
            "method not allowed",
        )),
        _ => Err(error_response(code::BAD_REQUEST, MISSING_TOKEN)),
    }
}

/// The key a request is routed by, or the reply when it cannot be routed (docs/gateways.md
/// §1.3, docs/coap.md §3.4, §3.5).
pub fn route(gw: &CoapGateway, peer: SocketAddr, packet: &Packet) -> Result<ClientKey, Packet> {
    let q = request::query(packet).map_err(|(c, t)| error_response(c, t))?;
    let creates = matches!(request::resource(packet), Ok(Resource::Connection))
        && wire::code_of(packet) == code::POST;
    match q.clientid.filter(|c| !c.is_empty()) {
        Some(id) => Ok(ClientKey::Id(id)),
        // A create names its client in either mode (docs/coap.md §3.4, §3.5; EMQX's answer in
        // connectionless mode too): routed by address it would register a random id under a token
        // that no later request could be routed back to.
        None if gw.settings.connection_required || creates => {
            Err(error_response(code::BAD_REQUEST, MISSING_TOKEN))
        }
        None => Ok(ClientKey::Addr(peer)),
    }
}

/// Whether a packet carries Observe (used in logs).
pub fn has_observe(p: &Packet) -> bool {
    p.get_first_option(CoapOption::Observe).is_some()
}

#[cfg(test)]
mod tests;
