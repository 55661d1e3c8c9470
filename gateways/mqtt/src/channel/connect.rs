//! CONNECT handling: validation (MQTT 3.1.1 §3.1, MQTT 5 §3.1), the session request to the bus,
//! and CONNACK once the session is open. Split in two steps because opening a session may wait
//! for another connection to hand it over.

use super::codes::{v3, v5};
use super::{Channel, Violation, Will, NAMESPACE};
use crate::codec::{ConnAck, ConnAckProperties, Connect, Packet, ProtocolVersion};
use crate::settings::MqttSettings;
use bytestring::ByteString;
use rand::distributions::Alphanumeric;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use switchyard_bus::{ClientInfo, Keepalive, OpenSession, Opened};
use switchyard_core::{ClientId, CloseReason, Message, Origin, Properties, QoS, TopicName};

/// The keepalive (seconds, 0 = none) a client asking for `requested` is held to.
///
/// `server_keepalive` overrides an MQTT 5 client's value (it is told in CONNACK); MQTT 3.x has
/// no way to tell a client, so there it does not apply, as in EMQX. `max_keepalive` caps every
/// client, as Mosquitto's does, except that a 3.x client asking for more is held to the cap
/// rather than refused; 0 ("no keepalive") counts as more than any cap.
pub(crate) fn effective_keepalive(s: &MqttSettings, v5: bool, requested: u16) -> u16 {
    match (s.server_keepalive, s.max_keepalive) {
        (Some(k), _) if v5 => k,
        (_, Some(max)) if requested == 0 || requested > max => max,
        _ => requested,
    }
}

/// What to do after CONNECT.
#[derive(Debug)]
pub enum ConnectDecision {
    /// Open this session on the bus, then call [`Channel::on_session_opened`].
    Open(OpenSession),
    /// CONNACK with an error was queued; close after writing it.
    Refused,
}

impl Channel {
    /// Validates CONNECT and builds the session request, or queues a refusing CONNACK.
    pub fn handle_connect(&mut self, mut c: Connect, now: Instant) -> ConnectDecision {
        self.clock = now;
        if let Some(cn) = &self.cert_username {
            // peer_cert_as_username = "cn": the verified certificate names the user.
            c.username = Some(ByteString::from(cn.as_str()));
        }
        self.version = c.protocol;
        let v5 = c.protocol.is_v5();
        if v5 && c.properties.authentication_method.is_some() {
            // No enhanced authentication methods are supported yet (MQTT 5 §4.12).
            return self.refuse(v5::BAD_AUTHENTICATION_METHOD, CloseReason::NotAuthorized);
        }
        let mut assigned = None;
        let client_id = if c.client_id.is_empty() {
            // MQTT-3.1.3-7/8: an empty id needs a clean session (3.1.1); MQTT 3.1 requires an id.
            if (!v5 && !c.clean_start) || c.protocol == ProtocolVersion::V31 {
                return self.refuse_id(Violation::EmptyClientIdWithoutCleanSession);
            }
            let id: String = rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(20)
                .map(char::from)
                .collect();
            let id = format!("sy-{id}");
            assigned = Some(id.clone());
            ClientId::new(id)
        } else {
            if c.client_id.len() > self.settings.max_clientid_len {
                return self.refuse_id(Violation::ClientIdTooLong);
            }
            ClientId::new(c.client_id.clone())
        };
        // Banned clients (and flapping ones) are refused before authentication, so a reconnect
        // loop never reaches the authentication back-end.
        let ban = self.settings.security.banned.check_connect(
            client_id.as_str(),
            c.username.as_deref(),
            Some(self.peer.ip()),
            now,
        );
        if let Some(ban) = ban {
            tracing::info!(peer = %self.peer, client_id = %client_id, reason = ban.reason,
                "CONNECT refused: banned");
            let code = if self.version.is_v5() {
                v5::BANNED
            } else {
                v3::NOT_AUTHORIZED
            };
            self.outbound
                .push(Packet::ConnAck(ConnAck::new(code, false)));
            self.close = Some(CloseReason::NotAuthorized);
            return ConnectDecision::Refused;
        }
        if let Err(refused) = self.authenticate(&c, &client_id, now) {
            return refused;
        }
        let will = match c
            .will
            .as_ref()
            .map(|w| self.build_will(w, &client_id, now))
            .transpose()
        {
            Ok(w) => w,
            Err((code, why)) => return self.refuse(code, CloseReason::ProtocolError(why.into())),
        };
        let cap = self.settings.session_expiry_interval;
        let expiry = if v5 {
            let secs = c.properties.session_expiry_interval.unwrap_or(0);
            Duration::from_secs(u64::from(secs)).min(cap)
        } else if c.clean_start {
            Duration::ZERO
        } else {
            cap
        };
        self.requested_expiry = c.properties.session_expiry_interval.unwrap_or(0);
        self.connect_expiry_zero = self.requested_expiry == 0;
        let keepalive = effective_keepalive(&self.settings, v5, c.keep_alive);
        if keepalive != c.keep_alive {
            tracing::debug!(peer = %self.peer, requested = c.keep_alive, keepalive,
                "client held to the server's keepalive");
        }
        // MQTT-3.2.2-21: an MQTT 5 client must use the Server Keep Alive when one is sent.
        self.server_keep_alive = (v5
            && (self.settings.server_keepalive.is_some() || keepalive != c.keep_alive))
            .then_some(keepalive);
        self.keepalive = Keepalive::new(keepalive, self.settings.keepalive_multiplier, now);
        self.client_max_packet = c.properties.maximum_packet_size.map(|m| m as usize);
        self.client_alias_max = if v5 {
            c.properties.topic_alias_maximum.unwrap_or(0)
        } else {
            0
        };
        self.problem_info = c.properties.request_problem_information.unwrap_or(1) == 1;
        self.will = will;
        let info = Arc::new(ClientInfo {
            namespace: NAMESPACE,
            client_id,
            username: c.username.as_ref().map(|u| u.to_string()),
            peer: Some(self.peer),
            proto_name: "MQTT",
            proto_ver: c.protocol.level(),
            keepalive,
            clean_start: c.clean_start,
            expiry_interval: expiry.as_secs(),
            connected_at: SystemTime::now(),
        });
        self.info = Some(info.clone());
        self.assigned_id = assigned;
        let window = c
            .properties
            .receive_maximum
            .unwrap_or(u16::MAX)
            .min(self.settings.max_inflight);
        ConnectDecision::Open(OpenSession {
            info,
            clean_start: c.clean_start,
            expiry,
            max_inflight: window,
        })
    }

    fn build_will(
        &self,
        w: &crate::codec::LastWill,
        client_id: &ClientId,
        now: Instant,
    ) -> Result<Will, (u8, &'static str)> {
        let topic = TopicName::with_max_levels(w.topic.clone(), self.settings.max_topic_levels)
            .map_err(|_| (v5::TOPIC_NAME_INVALID, "invalid will topic (MQTT-3.1.3-11)"))?;
        if self.version.is_v5() && w.qos > self.settings.max_qos_allowed {
            return Err((
                v5::QOS_NOT_SUPPORTED,
                "will QoS above maximum (MQTT-3.2.2-12)",
            ));
        }
        if self.version.is_v5() && w.retain && !self.settings.retain_available {
            return Err((
                v5::RETAIN_NOT_SUPPORTED,
                "will retain not supported (MQTT-3.2.2-13)",
            ));
        }
        let p = &w.properties;
        let props = Properties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
        };
        let mut message = Message::new(
            topic,
            w.payload.clone(),
            w.qos.min(self.settings.max_qos_allowed),
            w.retain,
        );
        message.received = now;
        message.properties = (!props.is_empty()).then(|| Arc::new(props));
        // The will is published on behalf of the client; it has no session id yet, and no-local
        // does not apply to wills.
        message.origin = Some(Origin {
            session: switchyard_core::SessionId(0),
            client_id: client_id.clone(),
        });
        let delay = std::time::Duration::from_secs(u64::from(p.will_delay_interval.unwrap_or(0)));
        Ok(Will { message, delay })
    }

    fn refuse_id(&mut self, v: Violation) -> ConnectDecision {
        tracing::info!(peer = %self.peer, why = %v, "client id rejected");
        let code = if self.version.is_v5() {
            v.reason_code()
        } else {
            v3::IDENTIFIER_REJECTED
        };
        self.outbound
            .push(Packet::ConnAck(ConnAck::new(code, false)));
        self.close = Some(v.close_reason());
        ConnectDecision::Refused
    }

    fn refuse(&mut self, v5_code: u8, reason: CloseReason) -> ConnectDecision {
        tracing::info!(peer = %self.peer, reason = %reason, "CONNECT refused");
        let code = if self.version.is_v5() {
            v5_code
        } else {
            v3::NOT_AUTHORIZED
        };
        let code = if !self.version.is_v5() && matches!(reason, CloseReason::ProtocolError(_)) {
            // MQTT 3.x has no CONNACK code for a bad will; the spec says close the connection.
            self.close = Some(reason);
            return ConnectDecision::Refused;
        } else {
            code
        };
        self.outbound
            .push(Packet::ConnAck(ConnAck::new(code, false)));
        self.close = Some(reason);
        ConnectDecision::Refused
    }

    /// The refusal for a CONNECT whose protocol level we do not speak (MQTT-3.1.2-2).
    pub fn refuse_protocol_version(&mut self, v5: bool) {
        let v = Violation::UnsupportedProtocolVersion;
        let code = if v5 {
            v.reason_code()
        } else {
            v3::BAD_PROTOCOL_VERSION
        };
        self.outbound
            .push(Packet::ConnAck(ConnAck::new(code, false)));
        self.close = Some(v.close_reason());
    }

    /// The bus could not open the session: CONNACK server unavailable.
    pub fn on_session_failed(&mut self, error: &switchyard_bus::BusError) {
        tracing::warn!(error = %error, "cannot open session");
        let code = if self.version.is_v5() {
            v5::SERVER_UNAVAILABLE
        } else {
            v3::SERVER_UNAVAILABLE
        };
        self.outbound
            .push(Packet::ConnAck(ConnAck::new(code, false)));
        self.close = Some(CloseReason::ProtocolError(format!(
            "session not opened: {error}"
        )));
    }

    /// The session is open: CONNACK, then resend what the resumed session had in flight
    /// (MQTT-4.4.0-1), then report the connect.
    pub fn on_session_opened(&mut self, opened: Opened, now: Instant) {
        self.clock = now;
        let mut session = opened.session;
        if let Some(will) = self.will.as_mut() {
            if let Some(o) = will.message.origin.as_mut() {
                o.session = session.id;
            }
        }
        // MQTT 5 never resends on a live connection; 3.x may when configured.
        session.qos.set_retry_interval(if self.version.is_v5() {
            None
        } else {
            self.settings.retry_interval
        });
        let mut ack = ConnAck::new(0, opened.present);
        if self.version.is_v5() {
            ack.properties = self.connack_properties();
        }
        self.outbound.push(Packet::ConnAck(ack));
        if let Some(will) = &self.will {
            self.bus
                .set_will(&session, Some((&will.message, will.delay)));
        }
        for r in session.qos.resume(now) {
            self.push_resend(r);
        }
        self.session = Some(session);
        let mut attachment = opened.attachment;
        attachment.report_connected();
        self.attachment = Some(attachment);
    }

    fn connack_properties(&mut self) -> ConnAckProperties {
        let s = &self.settings;
        let mut p = ConnAckProperties {
            assigned_client_identifier: self.assigned_id.take().map(ByteString::from),
            topic_alias_maximum: (s.max_topic_alias > 0).then_some(s.max_topic_alias),
            maximum_packet_size: u32::try_from(s.max_packet_size).ok(),
            server_keep_alive: self.server_keep_alive,
            ..Default::default()
        };
        if s.max_awaiting_rel > 0 {
            p.receive_maximum = Some(u16::try_from(s.max_awaiting_rel).unwrap_or(u16::MAX));
        }
        if s.max_qos_allowed < QoS::ExactlyOnce {
            p.maximum_qos = Some(s.max_qos_allowed.as_u8());
        }
        if !s.retain_available {
            p.retain_available = Some(0);
        }
        if !s.wildcard_subscription {
            p.wildcard_subscription_available = Some(0);
        }
        if !s.shared_subscription {
            p.shared_subscription_available = Some(0);
        }
        if let Some(info) = &self.info {
            // MQTT 5 §3.2.2.3.2: tell the client when the server chose another expiry.
            if info.expiry_interval != u64::from(self.requested_expiry) {
                p.session_expiry_interval = u32::try_from(info.expiry_interval).ok();
            }
        }
        p
    }
}
