//! Switchyard's shared vocabulary: what a message, a QoS level, a topic, a client and a close
//! reason are. Every other crate speaks these types.
//!
//! Owns: validation of topic names and filters (MQTT 3.1.1 §4.7 / MQTT 5 §4.7), the
//! protocol-neutral [`Message`], identities.
//! Must not know: tokio, sockets, any wire format, sessions or routing.

mod close;
mod ids;
mod message;
mod qos;
mod template;
mod topic;

pub use close::CloseReason;
pub use ids::{ClientId, PacketId, SessionId};
pub use message::{Message, Origin, Properties};
pub use qos::{QoS, QoSError};
pub use template::{render_topic, TemplateError, TemplateVars};
pub use topic::{SharedGroup, SubscriptionFilter, TopicError, TopicFilter, TopicName};

pub use bytes::Bytes;
pub use bytestring::ByteString;
