//! What a subscriber receives: a shared message plus the per-subscription decisions (granted
//! QoS, retain flag, subscription identifiers).

use std::sync::Arc;
use switchyard_core::{Message, QoS};

/// MQTT 5 retain handling, kept protocol-neutral: when retained messages are sent on subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// Always send retained messages on subscribe.
    #[default]
    OnSubscribe,
    /// Only when the subscription did not exist before.
    OnNewSubscribe,
    /// Never.
    Never,
}

/// Options of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    /// Maximum QoS granted.
    pub qos: QoS,
    /// Do not deliver the session's own publishes.
    pub no_local: bool,
    /// Keep the publisher's retain flag on live delivery.
    pub retain_as_published: bool,
    /// When retained messages are sent on subscribe.
    pub retain_handling: RetainHandling,
    /// MQTT 5 subscription identifier, echoed on every matching delivery.
    pub subscription_id: Option<u32>,
}

/// One message for one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message, shared with every other recipient.
    pub message: Arc<Message>,
    /// QoS to deliver with: min(published, granted).
    pub qos: QoS,
    /// Retain flag to deliver with.
    pub retain: bool,
    /// Identifiers of every subscription of this session that matched.
    pub subscription_ids: Vec<u32>,
    /// The stored message's id, when the store holds it (0: not stored).
    pub message_id: u64,
    /// Position in a stored queue (0: not stored).
    pub seq: u64,
}

impl Delivery {
    /// A delivery at the message's own QoS and no subscription ids.
    pub fn new(message: Arc<Message>, qos: QoS, retain: bool) -> Self {
        Delivery {
            message,
            qos,
            retain,
            subscription_ids: Vec::new(),
            message_id: 0,
            seq: 0,
        }
    }
}
