//! Quality of service levels, ordered so that `min`/`max` give the spec's downgrade rules.

use thiserror::Error;

/// MQTT quality of service. Ordered: `AtMostOnce < AtLeastOnce < ExactlyOnce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: acknowledged, may duplicate.
    AtLeastOnce = 1,
    /// QoS 2: exactly once, four-way handshake.
    ExactlyOnce = 2,
}

/// A QoS value outside 0..=2 (MQTT-3.3.1-4: a PUBLISH with both QoS bits set is malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("invalid QoS value {0}")]
pub struct QoSError(pub u8);

impl TryFrom<u8> for QoS {
    type Error = QoSError;
    fn try_from(v: u8) -> Result<Self, QoSError> {
        match v {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            other => Err(QoSError(other)),
        }
    }
}

impl QoS {
    /// The numeric level as on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_gives_downgrade() {
        assert_eq!(QoS::ExactlyOnce.min(QoS::AtLeastOnce), QoS::AtLeastOnce);
        assert_eq!(QoS::AtMostOnce.max(QoS::AtLeastOnce), QoS::AtLeastOnce);
        assert_eq!(QoS::try_from(3), Err(QoSError(3)));
        assert_eq!(QoS::try_from(2), Ok(QoS::ExactlyOnce));
    }
}
