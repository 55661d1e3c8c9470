//! The MQTT codec: bytes to [`Packet`]s and back for MQTT 3.1, 3.1.1 and 5.0. No I/O.
//!
//! Owns: the wire format (MQTT 3.1.1 OASIS standard, MQTT 5.0 OASIS standard, and IBM's MQTT
//! 3.1 "MQIsdp" for old clients) and the framing of a byte stream into packets.
//! Does not own: what packets mean in a session (the channel's job), topic and filter syntax
//! (`switchyard_core::TopicName` / `TopicFilter`), client id length policy, or reason code
//! semantics.
//! Invariants:
//! - decoding never panics on any input, checks a whole frame is buffered before parsing, and
//!   refuses a frame larger than the limit from its fixed header alone;
//! - decoded strings, topics and payloads are zero-copy slices of the received frame;
//! - whatever [`decode_packet`] accepts, [`encode_packet`] writes back so that it decodes to an
//!   equal packet (the property tests and the fuzz target check this);
//! - [`encoded_len`] equals the bytes [`encode_packet`] appends.
//!
//! Use [`peek_connect_version`] on the first bytes of a connection to pick the version, or let
//! [`MqttCodec`] do it: it adopts the version of each CONNECT it decodes or encodes.

mod decode;
mod encode;
mod error;
mod packet;
mod properties;
mod wire;

#[cfg(test)]
mod tests;

pub use decode::{decode_packet, peek_connect_version};
pub use encode::{encode_packet, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Ack, AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, Disconnect, DisconnectProperties, LastWill, Packet, PacketType,
    ProtocolVersion, Publish, PublishProperties, SubAck, Subscribe, SubscribeProperties,
    SubscriptionOptions, UnsubAck, Unsubscribe, UserProperty, WillProperties,
};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// A [`tokio_util::codec`] adapter over [`decode_packet`] and [`encode_packet`] that remembers
/// the connection's protocol version and size limit.
#[derive(Debug, Clone)]
pub struct MqttCodec {
    version: ProtocolVersion,
    max_packet_size: usize,
}

impl MqttCodec {
    /// A codec refusing inbound packets over `max_packet_size` bytes (fixed header included).
    /// Until a CONNECT passes through it, it speaks MQTT 3.1.1.
    pub fn new(max_packet_size: usize) -> Self {
        MqttCodec {
            version: ProtocolVersion::default(),
            max_packet_size,
        }
    }

    /// Sets the version used for every packet but CONNECT.
    pub fn set_version(&mut self, v: ProtocolVersion) {
        self.version = v;
    }

    /// The version in use.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The inbound size limit.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// Changes the inbound size limit.
    pub fn set_max_packet_size(&mut self, max_packet_size: usize) {
        self.max_packet_size = max_packet_size;
    }
}

impl Decoder for MqttCodec {
    type Item = Packet;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let packet = decode_packet(src, self.version, self.max_packet_size)?;
        if let Some(Packet::Connect(connect)) = &packet {
            self.version = connect.protocol;
        }
        Ok(packet)
    }
}

impl Encoder<&Packet> for MqttCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: &Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode_packet(item, self.version, dst)?;
        if let Packet::Connect(connect) = item {
            self.version = connect.protocol;
        }
        Ok(())
    }
}

impl Encoder<Packet> for MqttCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        Encoder::<&Packet>::encode(self, &item, dst)
    }
}
