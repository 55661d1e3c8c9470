//! MQTT protocol violations by well-formed packets, named after the spec clause each breaks,
//! with the one mapping to the MQTT 5 reason code the server answers (DISCONNECT after CONNECT,
//! CONNACK during it). Malformed bytes are the codec's `DecodeError`; this is the channel's
//! counterpart. Every close for a violation goes through [`Violation`], so the log line, the
//! close reason and the wire code cannot disagree.

use super::codes::v5;
use thiserror::Error;

/// A rule of MQTT 3.1.1 / 5.0 the client broke (or a limit it exceeded) with a packet that
/// parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Violation {
    /// MQTT-3.1.0-2: CONNECT sent twice.
    #[error("second CONNECT (MQTT-3.1.0-2)")]
    SecondConnect,
    /// MQTT-4.12.0-1: AUTH without an authentication method agreed at CONNECT.
    #[error("AUTH without an authentication method (MQTT-4.12.0-1)")]
    AuthWithoutMethod,
    /// MQTT 5 §2.1.2 / 3.1.1 §2.2.1: a packet type only servers send.
    #[error("{0} is sent by servers only (MQTT 5 §2.1.2)")]
    ServerOnlyPacket(&'static str),
    /// MQTT-3.14.2-2: a Session Expiry Interval at DISCONNECT after zero at CONNECT.
    #[error("session expiry set at DISCONNECT after zero at CONNECT (MQTT-3.14.2-2)")]
    SessionExpiryAfterZero,
    /// MQTT-3.3.1-4 (and MQTT 5 Maximum QoS): a PUBLISH above the QoS we allow.
    #[error("QoS above maximum (MQTT-3.3.1-4)")]
    QosNotSupported,
    /// MQTT-3.3.1-8 (MQTT 5 Retain Available = 0): a retained PUBLISH.
    #[error("retain not supported (MQTT-3.3.1-8)")]
    RetainNotSupported,
    /// MQTT-3.3.4-9: more unacknowledged QoS 2 PUBLISHes than our Receive Maximum.
    #[error("receive maximum exceeded (MQTT-3.3.4-9)")]
    ReceiveMaximumExceeded,
    /// MQTT-3.3.2-8/9: a Topic Alias of 0 or above our Topic Alias Maximum.
    #[error("topic alias {0} out of range (MQTT-3.3.2-8/9)")]
    TopicAliasOutOfRange(u16),
    /// MQTT 5 §3.3.2.3.4: an empty topic with an alias that was never set.
    #[error("unknown topic alias {0} (MQTT 5 §3.3.2.3.4)")]
    UnknownTopicAlias(u16),
    /// MQTT-3.3.2-2 (and the topic limits): a PUBLISH topic name that is not valid.
    #[error("invalid topic name: {0} (MQTT-3.3.2-2)")]
    TopicNameInvalid(String),
    /// MQTT-3.8.3-4: No Local on a shared subscription.
    #[error("no-local on a shared subscription (MQTT-3.8.3-4)")]
    NoLocalOnSharedSubscription,
    /// `mqtt.max_publish_rate` exceeded (MQTT 5 reason 0x96).
    #[error("publish rate above mqtt.max_publish_rate")]
    MessageRateTooHigh,
    /// MQTT-3.1.3-8: an empty client id without a clean session (or on MQTT 3.1).
    #[error("empty client id without clean session (MQTT-3.1.3-8)")]
    EmptyClientIdWithoutCleanSession,
    /// MQTT-3.1.3-5: a client id longer than we accept (`mqtt.max_clientid_len`).
    #[error("client id longer than mqtt.max_clientid_len (MQTT-3.1.3-5)")]
    ClientIdTooLong,
    /// MQTT-3.1.2-2: a protocol level we do not speak.
    #[error("unsupported protocol version (MQTT-3.1.2-2)")]
    UnsupportedProtocolVersion,
}

impl Violation {
    /// The MQTT 5 reason code for this violation (DISCONNECT or CONNACK).
    pub fn reason_code(&self) -> u8 {
        match self {
            Violation::SecondConnect
            | Violation::AuthWithoutMethod
            | Violation::ServerOnlyPacket(_)
            | Violation::SessionExpiryAfterZero
            | Violation::UnknownTopicAlias(_)
            | Violation::NoLocalOnSharedSubscription => v5::PROTOCOL_ERROR,
            Violation::QosNotSupported => v5::QOS_NOT_SUPPORTED,
            Violation::RetainNotSupported => v5::RETAIN_NOT_SUPPORTED,
            Violation::ReceiveMaximumExceeded => v5::RECEIVE_MAXIMUM_EXCEEDED,
            Violation::TopicAliasOutOfRange(_) => v5::TOPIC_ALIAS_INVALID,
            Violation::TopicNameInvalid(_) => v5::TOPIC_NAME_INVALID,
            Violation::MessageRateTooHigh => v5::MESSAGE_RATE_TOO_HIGH,
            Violation::EmptyClientIdWithoutCleanSession | Violation::ClientIdTooLong => {
                v5::CLIENT_ID_NOT_VALID
            }
            Violation::UnsupportedProtocolVersion => v5::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }

    /// The close reason it is logged and counted as.
    pub fn close_reason(&self) -> switchyard_core::CloseReason {
        switchyard_core::CloseReason::ProtocolError(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_has_its_reason_code_and_names_its_clause() {
        let cases = [
            (Violation::SecondConnect, 0x82, "MQTT-3.1.0-2"),
            (Violation::AuthWithoutMethod, 0x82, "MQTT-4.12.0-1"),
            (Violation::ServerOnlyPacket("CONNACK"), 0x82, "§2.1.2"),
            (Violation::SessionExpiryAfterZero, 0x82, "MQTT-3.14.2-2"),
            (Violation::QosNotSupported, 0x9B, "MQTT-3.3.1-4"),
            (Violation::RetainNotSupported, 0x9A, "MQTT-3.3.1-8"),
            (Violation::ReceiveMaximumExceeded, 0x93, "MQTT-3.3.4-9"),
            (Violation::TopicAliasOutOfRange(0), 0x94, "MQTT-3.3.2-8/9"),
            (Violation::UnknownTopicAlias(3), 0x82, "§3.3.2.3.4"),
            (
                Violation::TopicNameInvalid("a+b".into()),
                0x90,
                "MQTT-3.3.2-2",
            ),
            (Violation::NoLocalOnSharedSubscription, 0x82, "MQTT-3.8.3-4"),
            (Violation::MessageRateTooHigh, 0x96, "max_publish_rate"),
            (
                Violation::EmptyClientIdWithoutCleanSession,
                0x85,
                "MQTT-3.1.3-8",
            ),
            (Violation::ClientIdTooLong, 0x85, "MQTT-3.1.3-5"),
            (Violation::UnsupportedProtocolVersion, 0x84, "MQTT-3.1.2-2"),
        ];
        for (v, code, clause) in cases {
            assert_eq!(v.reason_code(), code, "{v:?}");
            assert!(v.to_string().contains(clause), "{v}: {clause}");
            assert_eq!(v.close_reason().as_str(), "protocol_error");
        }
    }
}
