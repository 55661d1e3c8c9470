//! Datagram → [`Packet`]. Bounds-checked everywhere: a peer controls every byte.

use super::msg_type as t;
use super::{Connect, DecodeError, Flags, Packet, Publish, SubTopic, Subscribe, WillTopic};
use bytes::Bytes;

/// A cursor over the message body that never panics.
struct Body {
    buf: Bytes,
    pos: usize,
}

impl Body {
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let hi = self.u8()?;
        let lo = self.u8()?;
        Ok(u16::from_be_bytes([hi, lo]))
    }
    fn rest(&mut self) -> Bytes {
        let out = self.buf.slice(self.pos.min(self.buf.len())..);
        self.pos = self.buf.len();
        out
    }
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    /// The message must end here.
    fn end(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::BadLength(what))
        }
    }
}

/// Decodes one datagram holding exactly one message.
pub fn decode(datagram: &Bytes) -> Result<Packet, DecodeError> {
    let first = *datagram.first().ok_or(DecodeError::Truncated)?;
    let (declared, header) = if first == 0x01 {
        let hi = *datagram.get(1).ok_or(DecodeError::Truncated)?;
        let lo = *datagram.get(2).ok_or(DecodeError::Truncated)?;
        (usize::from(u16::from_be_bytes([hi, lo])), 3)
    } else {
        (usize::from(first), 1)
    };
    if declared != datagram.len() {
        return Err(DecodeError::LengthMismatch {
            declared,
            actual: datagram.len(),
        });
    }
    let ty = *datagram.get(header).ok_or(DecodeError::Truncated)?;
    let mut b = Body {
        buf: datagram.slice(header + 1..),
        pos: 0,
    };
    let packet = match ty {
        t::ADVERTISE => {
            let gw_id = b.u8()?;
            let duration = b.u16()?;
            b.end("ADVERTISE is 5 bytes")?;
            Packet::Advertise { gw_id, duration }
        }
        t::SEARCHGW => {
            let radius = b.u8()?;
            b.end("SEARCHGW is 3 bytes")?;
            Packet::SearchGw { radius }
        }
        t::GWINFO => Packet::GwInfo {
            gw_id: b.u8()?,
            gw_add: b.rest(),
        },
        t::CONNECT => {
            let flags = Flags::from_byte(b.u8()?);
            let protocol_id = b.u8()?;
            let duration = b.u16()?;
            Packet::Connect(Connect {
                flags,
                protocol_id,
                duration,
                client_id: b.rest(),
            })
        }
        t::CONNACK => one_code(&mut b, "CONNACK is 3 bytes", |rc| Packet::ConnAck { rc })?,
        t::WILLTOPICREQ => empty(&b, Packet::WillTopicReq)?,
        t::WILLTOPIC => Packet::WillTopic(will_topic(&mut b)?),
        t::WILLMSGREQ => empty(&b, Packet::WillMsgReq)?,
        t::WILLMSG => Packet::WillMsg { msg: b.rest() },
        t::REGISTER => Packet::Register {
            topic_id: b.u16()?,
            msg_id: b.u16()?,
            topic_name: b.rest(),
        },
        t::REGACK => {
            let (topic_id, msg_id, rc) = (b.u16()?, b.u16()?, b.u8()?);
            b.end("REGACK is 7 bytes")?;
            Packet::RegAck {
                topic_id,
                msg_id,
                rc,
            }
        }
        t::PUBLISH => Packet::Publish(Publish {
            flags: Flags::from_byte(b.u8()?),
            topic_id: b.u16()?,
            msg_id: b.u16()?,
            data: b.rest(),
        }),
        t::PUBACK => {
            let (topic_id, msg_id, rc) = (b.u16()?, b.u16()?, b.u8()?);
            b.end("PUBACK is 7 bytes")?;
            Packet::PubAck {
                topic_id,
                msg_id,
                rc,
            }
        }
        t::PUBREC => msg_id_only(&mut b, |msg_id| Packet::PubRec { msg_id })?,
        t::PUBREL => msg_id_only(&mut b, |msg_id| Packet::PubRel { msg_id })?,
        t::PUBCOMP => msg_id_only(&mut b, |msg_id| Packet::PubComp { msg_id })?,
        t::SUBSCRIBE => Packet::Subscribe(subscribe(&mut b)?),
        t::UNSUBSCRIBE => Packet::Unsubscribe(subscribe(&mut b)?),
        t::SUBACK => {
            let flags = Flags::from_byte(b.u8()?);
            let (topic_id, msg_id, rc) = (b.u16()?, b.u16()?, b.u8()?);
            b.end("SUBACK is 8 bytes")?;
            Packet::SubAck {
                flags,
                topic_id,
                msg_id,
                rc,
            }
        }
        t::UNSUBACK => msg_id_only(&mut b, |msg_id| Packet::UnsubAck { msg_id })?,
        t::PINGREQ => {
            let id = b.rest();
            Packet::PingReq {
                client_id: (!id.is_empty()).then_some(id),
            }
        }
        t::PINGRESP => empty(&b, Packet::PingResp)?,
        t::DISCONNECT => match b.remaining() {
            0 => Packet::Disconnect { duration: None },
            2 => Packet::Disconnect {
                duration: Some(b.u16()?),
            },
            _ => return Err(DecodeError::BadLength("DISCONNECT is 2 or 4 bytes")),
        },
        t::WILLTOPICUPD => Packet::WillTopicUpd(will_topic(&mut b)?),
        t::WILLTOPICRESP => one_code(&mut b, "WILLTOPICRESP is 3 bytes", |rc| {
            Packet::WillTopicResp { rc }
        })?,
        t::WILLMSGUPD => Packet::WillMsgUpd { msg: b.rest() },
        t::WILLMSGRESP => one_code(&mut b, "WILLMSGRESP is 3 bytes", |rc| Packet::WillMsgResp {
            rc,
        })?,
        t::ENCAPSULATED => return Err(DecodeError::Encapsulated),
        other => return Err(DecodeError::UnknownType(other)),
    };
    Ok(packet)
}

fn empty(b: &Body, p: Packet) -> Result<Packet, DecodeError> {
    b.end("message has no body")?;
    Ok(p)
}

fn one_code(
    b: &mut Body,
    what: &'static str,
    f: impl FnOnce(u8) -> Packet,
) -> Result<Packet, DecodeError> {
    let rc = b.u8()?;
    b.end(what)?;
    Ok(f(rc))
}

fn msg_id_only(b: &mut Body, f: impl FnOnce(u16) -> Packet) -> Result<Packet, DecodeError> {
    let id = b.u16()?;
    b.end("message is 4 bytes")?;
    Ok(f(id))
}

/// WILLTOPIC / WILLTOPICUPD: an empty body is "no will" (§5.4.7).
fn will_topic(b: &mut Body) -> Result<Option<WillTopic>, DecodeError> {
    if b.remaining() == 0 {
        return Ok(None);
    }
    let flags = Flags::from_byte(b.u8()?);
    Ok(Some(WillTopic {
        flags,
        topic: b.rest(),
    }))
}

fn subscribe(b: &mut Body) -> Result<Subscribe, DecodeError> {
    let flags = Flags::from_byte(b.u8()?);
    let msg_id = b.u16()?;
    let topic = match flags.topic_id_type {
        super::TopicIdType::Normal => SubTopic::Name(b.rest()),
        super::TopicIdType::Predefined => {
            let id = b.u16()?;
            b.end("predefined topic id is 2 bytes")?;
            SubTopic::Predefined(id)
        }
        super::TopicIdType::Short => {
            let (x, y) = (b.u8()?, b.u8()?);
            b.end("short topic name is 2 bytes")?;
            SubTopic::Short([x, y])
        }
        super::TopicIdType::Reserved => SubTopic::Reserved(b.rest()),
    };
    Ok(Subscribe {
        flags,
        msg_id,
        topic,
    })
}
