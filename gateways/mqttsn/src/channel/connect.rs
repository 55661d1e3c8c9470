//! CONNECT with the will handshake (MQTT-SN 1.2 §6.3, docs/mqtt-sn.md §2.6), the session open,
//! sleeping and waking (§6.14, docs/mqtt-sn.md §2.12), DISCONNECT (§2.13) and will updates
//! (§6.4, docs/mqtt-sn.md §2.14).

use super::{Channel, Pending, State, ACCEPTED, NAMESPACE};
use crate::codec::{rc, Connect, Packet, SnQos, WillTopic};
use crate::registry::TopicRegistry;
use crate::settings::render;
use bytes::Bytes;
use rand::distributions::Alphanumeric;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use switchyard_bus::{BusError, ClientInfo, Keepalive, OpenSession, Opened};
use switchyard_core::{
    render_topic, ClientId, CloseReason, Message, Origin, QoS, SessionId, TemplateVars, TopicName,
};

impl Channel {
    pub(crate) fn handle_connect(&mut self, c: Connect) {
        match self.state {
            State::Idle | State::WillTopic | State::WillMsg => {}
            // The driver gives a CONNECT for a connected client id to a new channel that takes
            // the session over; one that still lands here (a race) is a retransmission.
            _ => {
                tracing::debug!("CONNECT on a connected channel ignored");
                return;
            }
        }
        let Ok(id) = std::str::from_utf8(&c.client_id) else {
            self.connack(rc::NOT_SUPPORTED);
            self.fail(
                CloseReason::ProtocolError("client id is not UTF-8".into()),
                false,
            );
            return;
        };
        let client_id = if id.is_empty() {
            // docs/mqtt-sn.md §2.1: an empty id gets a random 16-character base62 id.
            rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(16)
                .map(char::from)
                .collect()
        } else {
            id.to_owned()
        };
        self.pending = Some(Pending {
            client_id,
            clean_session: c.flags.clean_session,
            duration: c.duration,
            will_topic: None,
        });
        self.will = None;
        if c.flags.will {
            self.state = State::WillTopic;
            self.outbound.push(Packet::WillTopicReq);
        } else {
            self.request_open();
        }
    }

    pub(crate) fn handle_will_topic(&mut self, w: Option<WillTopic>) {
        if self.state != State::WillTopic {
            tracing::debug!("WILLTOPIC outside the will handshake ignored");
            return;
        }
        match w {
            // docs/mqtt-sn.md §2.6: an empty WILLTOPIC means no will; CONNACK right away.
            None => self.request_open(),
            Some(w) => match self.will_topic(&w) {
                Ok(t) => {
                    if let Some(p) = self.pending.as_mut() {
                        p.will_topic = Some(t);
                    }
                    self.state = State::WillMsg;
                    self.outbound.push(Packet::WillMsgReq);
                }
                Err(why) => {
                    self.connack(rc::NOT_SUPPORTED);
                    self.fail(CloseReason::ProtocolError(why.into()), false);
                }
            },
        }
    }

    fn will_topic(&self, w: &WillTopic) -> Result<(String, QoS, bool), &'static str> {
        let topic = std::str::from_utf8(&w.topic).map_err(|_| "will topic is not UTF-8")?;
        TopicName::with_max_levels(topic, self.settings.max_topic_levels)
            .map_err(|_| "invalid will topic")?;
        Ok((topic.to_owned(), w.flags.qos.to_qos(), w.flags.retain))
    }

    pub(crate) fn handle_will_msg(&mut self, msg: Bytes) {
        if self.state != State::WillMsg {
            tracing::debug!("WILLMSG outside the will handshake ignored");
            return;
        }
        let will = self.pending.as_ref().and_then(|p| {
            let (topic, qos, retain) = p.will_topic.clone()?;
            self.will_message(&topic, qos, retain, msg, &p.client_id)
        });
        self.will = will;
        self.request_open();
    }

    /// The will as published: its topic is not mounted (docs/mqtt-sn.md §2.6).
    fn will_message(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Bytes,
        client_id: &str,
    ) -> Option<Message> {
        let topic = TopicName::with_max_levels(topic, self.settings.max_topic_levels).ok()?;
        let mut m = Message::new(topic, payload, qos, retain);
        m.origin = Some(Origin {
            session: self.session.as_ref().map_or(SessionId(0), |s| s.id),
            client_id: ClientId::from(client_id),
        });
        Some(m)
    }

    /// Builds the session request; the driver opens it and calls `on_session_opened`.
    pub(crate) fn request_open(&mut self) {
        let Some(p) = self.pending.clone() else {
            return;
        };
        // A DTLS identity (PSK, or a mapped certificate CN) is the username; a PSK one is
        // proven by the handshake, so no password check follows.
        let proven = self.peer_identity.as_ref().is_some_and(|i| i.is_psk());
        let username = match self.peer_identity.as_ref().and_then(|i| i.username()) {
            Some(u) => Some(u.to_owned()),
            None => self
                .settings
                .username
                .as_deref()
                .map(|t| render(t, &p.client_id, None)),
        };
        if !proven && self.wants_async_check(&p.client_id, username.as_deref()) {
            // The driver awaits the chain and calls `on_verdict`, which comes back here.
            return;
        }
        // Banned (or flapping) clients are refused before authentication.
        let ban = self.settings.security.banned.check_connect(
            &p.client_id,
            username.as_deref(),
            Some(self.peer.ip()),
            self.clock,
        );
        if let Some(ban) = ban {
            tracing::info!(peer = %self.peer, client_id = p.client_id, reason = ban.reason,
                "CONNECT refused: banned");
            self.connack(rc::NOT_AUTHORIZED);
            self.fail(CloseReason::NotAuthorized, false);
            return;
        }
        if proven {
            self.admit_proven(&p.client_id, username.as_deref());
        } else if !self.authenticate(&p.client_id, username.as_deref()) {
            // docs/mqtt-sn.md §2.4, §2.6: authentication failed → CONNACK 0x80, then close.
            self.connack(rc::NOT_AUTHORIZED);
            self.fail(CloseReason::NotAuthorized, false);
            return;
        }
        let vars = TemplateVars {
            clientid: Some(&p.client_id),
            username: username.as_deref(),
            endpoint_name: None,
        };
        match render_topic(&self.settings.mountpoint, &vars) {
            Ok(m) => self.mountpoint = m,
            Err(e) => {
                // A client id or username that would escape the mountpoint ('/', '+', '#') or
                // a placeholder without a value: refused like a failed authentication.
                tracing::warn!(client_id = p.client_id, placeholder = e.placeholder(), error = %e,
                    "CONNECT refused: mountpoint cannot be rendered for this client");
                self.connack(rc::NOT_AUTHORIZED);
                self.fail(CloseReason::NotAuthorized, false);
                return;
            }
        }
        let expiry = if p.clean_session {
            Duration::ZERO
        } else {
            self.settings.session_expiry_interval
        };
        let info = Arc::new(ClientInfo {
            namespace: NAMESPACE,
            client_id: ClientId::from(p.client_id.as_str()),
            username,
            peer: Some(self.peer),
            proto_name: "MQTT-SN",
            proto_ver: 0x01,
            keepalive: p.duration,
            clean_start: p.clean_session,
            expiry_interval: expiry.as_secs(),
            connected_at: SystemTime::now(),
        });
        self.info = Some(info.clone());
        self.state = State::Opening;
        self.open_request = Some(OpenSession {
            info,
            clean_start: p.clean_session,
            expiry,
            // MQTT-SN: one QoS 1/2 message in flight toward the device (docs/mqtt-sn.md
            // §2.10).
            max_inflight: 1,
        });
    }

    /// The bus could not open the session: CONNACK 0x81 (docs/mqtt-sn.md §2.4), then close.
    pub fn on_session_failed(&mut self, error: &BusError) {
        tracing::warn!(error = %error, "cannot open session");
        self.connack(rc::SESSION_FAILED);
        self.state = State::Idle;
        self.fail(
            CloseReason::ProtocolError(format!("session not opened: {error}")),
            false,
        );
    }

    /// The session is open: CONNACK, then what the resumed session had in flight, and the
    /// REGISTERs of `subs_resume` (docs/mqtt-sn.md §2.13).
    pub fn on_session_opened(&mut self, opened: Opened, now: Instant) {
        self.clock = now;
        let mut session = opened.session;
        self.topics = match session.ext.take().map(|e| e.downcast::<TopicRegistry>()) {
            Some(Ok(r)) => *r,
            _ => TopicRegistry::default(),
        };
        session
            .qos
            .set_retry_interval(Some(self.settings.retry_interval));
        session.qos.set_max_inflight(1);
        if let Some(will) = self.will.as_mut() {
            if let Some(o) = will.origin.as_mut() {
                o.session = session.id;
            }
        }
        let duration = self.pending.as_ref().map_or(0, |p| p.duration);
        self.keepalive = Keepalive::new(duration, self.settings.keepalive_multiplier, now);
        self.handshake_deadline = None;
        self.state = State::Connected;
        self.connack(ACCEPTED);
        if opened.present && self.settings.subs_resume {
            let names: Vec<String> = session
                .subscriptions()
                .keys()
                .filter(|sf| !sf.is_shared() && !sf.filter.has_wildcards())
                .map(|sf| self.unmount(sf.filter.as_str()).to_owned())
                .collect();
            self.reg_queue.extend(names);
        }
        let resend = session.qos.resume(now);
        self.session = Some(session);
        for r in resend {
            self.push_resend(r);
        }
        let mut attachment = opened.attachment;
        attachment.report_connected();
        self.attachment = Some(attachment);
    }

    /// PINGREQ (docs/mqtt-sn.md §2.11): without a client id, or with ours while connected →
    /// PINGRESP; with ours while asleep → wake up and deliver (PINGRESP once everything is out);
    /// with another id → ignored.
    pub(crate) fn handle_pingreq(&mut self, client_id: Option<Bytes>, now: Instant) {
        if let Some(id) = client_id {
            let mine = self
                .info
                .as_ref()
                .is_some_and(|i| i.client_id.as_str().as_bytes() == &id[..]);
            if !mine {
                tracing::debug!("PINGREQ with another client id ignored");
                return;
            }
            if let State::Asleep { duration, .. } = self.state {
                self.state = State::Awake { duration };
                let resend = match self.session.as_mut() {
                    Some(s) => s.qos.resume(now),
                    None => Vec::new(),
                };
                for r in resend {
                    self.push_resend(r);
                }
                // PINGRESP follows the buffered messages: see `maybe_back_to_sleep`.
                return;
            }
            if let State::Awake { .. } = self.state {
                return;
            }
        }
        if let State::Asleep { duration, .. } = self.state {
            // A sleeper's plain PINGREQ also restarts its timer.
            self.state = State::Asleep {
                duration,
                deadline: self.sleep_deadline(duration, now),
            };
        }
        self.outbound.push(Packet::PingResp);
    }

    /// DISCONNECT (docs/mqtt-sn.md §2.12, §2.13): with a duration the client goes to sleep (also
    /// from awake, §2.17.4); without, the client leaves and its will is discarded (§2.17.7).
    pub(crate) fn handle_disconnect(&mut self, duration: Option<u16>, now: Instant) {
        self.outbound.push(Packet::Disconnect { duration: None });
        match duration {
            Some(d) if d > 0 => {
                self.state = State::Asleep {
                    duration: d,
                    deadline: self.sleep_deadline(d, now),
                };
            }
            _ => {
                // A clean DISCONNECT does not publish the will (EMQX's code does; not copied,
                // docs/mqtt-sn.md §2.17.7).
                self.will = None;
                self.close = Some(CloseReason::ClientDisconnect);
            }
        }
    }

    /// Back to sleep once an awake client has everything (docs/mqtt-sn.md §2.12).
    pub(crate) fn maybe_back_to_sleep(&mut self, now: Instant) {
        let State::Awake { duration } = self.state else {
            return;
        };
        let idle = self.held.is_empty()
            && self.reg_inflight.is_none()
            && self.reg_queue.is_empty()
            && self
                .session
                .as_ref()
                .is_some_and(|s| s.qos.inflight_len() == 0 && s.outbox.is_empty());
        if idle {
            self.outbound.push(Packet::PingResp);
            self.state = State::Asleep {
                duration,
                deadline: self.sleep_deadline(duration, now),
            };
        }
    }

    /// WILLTOPICUPD: set, replace or (empty) delete the will topic (docs/mqtt-sn.md §2.14).
    pub(crate) fn handle_will_topic_upd(&mut self, w: Option<WillTopic>) {
        let code = match w {
            None => {
                self.will = None;
                ACCEPTED
            }
            Some(w) => match self.will_topic(&w) {
                Ok((topic, qos, retain)) => {
                    let payload = self
                        .will
                        .as_ref()
                        .map(|m| m.payload.clone())
                        .unwrap_or_default();
                    let id = self.client_id_string();
                    self.will = self.will_message(&topic, qos, retain, payload, &id);
                    ACCEPTED
                }
                Err(_) => rc::NOT_SUPPORTED,
            },
        };
        self.outbound.push(Packet::WillTopicResp { rc: code });
    }

    /// WILLMSGUPD: replace the will payload; 0x03 without a will (docs/mqtt-sn.md §2.14,
    /// §2.17.8: EMQX 6.x's behaviour).
    pub(crate) fn handle_will_msg_upd(&mut self, msg: Bytes) {
        let code = match self.will.as_mut() {
            Some(m) => {
                m.payload = msg;
                ACCEPTED
            }
            None => rc::NOT_SUPPORTED,
        };
        self.outbound.push(Packet::WillMsgResp { rc: code });
    }

    fn client_id_string(&self) -> String {
        self.info
            .as_ref()
            .map(|i| i.client_id.to_string())
            .unwrap_or_default()
    }
}

/// The wire QoS of a delivery.
pub(crate) fn sn_qos(q: QoS) -> SnQos {
    SnQos::from_qos(q)
}
