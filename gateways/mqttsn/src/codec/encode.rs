//! [`Packet`] → datagram. The header uses the 1-byte length when the whole message fits in
//! 255 bytes, else `0x01 LenHi LenLo` (MQTT-SN 1.2 §5.2.1).

use super::msg_type as t;
use super::{EncodeError, Flags, Packet, SubTopic, Subscribe, WillTopic};
use bytes::{BufMut, BytesMut};

/// Appends the encoded message to `out`.
pub fn encode(p: &Packet, out: &mut BytesMut) -> Result<(), EncodeError> {
    let body_len = body_len(p);
    let total = total_len(body_len);
    let total16 = u16::try_from(total).map_err(|_| EncodeError::TooLong(total))?;
    out.reserve(total);
    if total <= 255 {
        out.put_u8(total16 as u8);
    } else {
        out.put_u8(0x01);
        out.put_u16(total16);
    }
    out.put_u8(type_code(p));
    body(p, out);
    Ok(())
}

/// The encoded size of `p`.
pub fn encoded_len(p: &Packet) -> usize {
    total_len(body_len(p))
}

/// Header (length + type) plus body.
fn total_len(body: usize) -> usize {
    if body + 2 <= 255 {
        body + 2
    } else {
        body + 4
    }
}

fn type_code(p: &Packet) -> u8 {
    match p {
        Packet::Advertise { .. } => t::ADVERTISE,
        Packet::SearchGw { .. } => t::SEARCHGW,
        Packet::GwInfo { .. } => t::GWINFO,
        Packet::Connect(_) => t::CONNECT,
        Packet::ConnAck { .. } => t::CONNACK,
        Packet::WillTopicReq => t::WILLTOPICREQ,
        Packet::WillTopic(_) => t::WILLTOPIC,
        Packet::WillMsgReq => t::WILLMSGREQ,
        Packet::WillMsg { .. } => t::WILLMSG,
        Packet::Register { .. } => t::REGISTER,
        Packet::RegAck { .. } => t::REGACK,
        Packet::Publish(_) => t::PUBLISH,
        Packet::PubAck { .. } => t::PUBACK,
        Packet::PubRec { .. } => t::PUBREC,
        Packet::PubRel { .. } => t::PUBREL,
        Packet::PubComp { .. } => t::PUBCOMP,
        Packet::Subscribe(_) => t::SUBSCRIBE,
        Packet::SubAck { .. } => t::SUBACK,
        Packet::Unsubscribe(_) => t::UNSUBSCRIBE,
        Packet::UnsubAck { .. } => t::UNSUBACK,
        Packet::PingReq { .. } => t::PINGREQ,
        Packet::PingResp => t::PINGRESP,
        Packet::Disconnect { .. } => t::DISCONNECT,
        Packet::WillTopicUpd(_) => t::WILLTOPICUPD,
        Packet::WillTopicResp { .. } => t::WILLTOPICRESP,
        Packet::WillMsgUpd { .. } => t::WILLMSGUPD,
        Packet::WillMsgResp { .. } => t::WILLMSGRESP,
    }
}

fn body_len(p: &Packet) -> usize {
    match p {
        Packet::WillTopicReq | Packet::WillMsgReq | Packet::PingResp => 0,
        Packet::SearchGw { .. }
        | Packet::ConnAck { .. }
        | Packet::WillTopicResp { .. }
        | Packet::WillMsgResp { .. } => 1,
        Packet::PubRec { .. }
        | Packet::PubRel { .. }
        | Packet::PubComp { .. }
        | Packet::UnsubAck { .. } => 2,
        Packet::Advertise { .. } => 3,
        Packet::RegAck { .. } | Packet::PubAck { .. } => 5,
        Packet::SubAck { .. } => 6,
        Packet::GwInfo { gw_add, .. } => 1 + gw_add.len(),
        Packet::Connect(c) => 4 + c.client_id.len(),
        Packet::WillTopic(w) | Packet::WillTopicUpd(w) => {
            w.as_ref().map_or(0, |w| 1 + w.topic.len())
        }
        Packet::WillMsg { msg } | Packet::WillMsgUpd { msg } => msg.len(),
        Packet::Register { topic_name, .. } => 4 + topic_name.len(),
        Packet::Publish(p) => 5 + p.data.len(),
        Packet::Subscribe(s) | Packet::Unsubscribe(s) => {
            3 + match &s.topic {
                SubTopic::Name(b) | SubTopic::Reserved(b) => b.len(),
                SubTopic::Predefined(_) | SubTopic::Short(_) => 2,
            }
        }
        Packet::PingReq { client_id } => client_id.as_ref().map_or(0, |c| c.len()),
        Packet::Disconnect { duration } => duration.map_or(0, |_| 2),
    }
}

fn body(p: &Packet, out: &mut BytesMut) {
    match p {
        Packet::WillTopicReq | Packet::WillMsgReq | Packet::PingResp => {}
        Packet::Advertise { gw_id, duration } => {
            out.put_u8(*gw_id);
            out.put_u16(*duration);
        }
        Packet::SearchGw { radius } => out.put_u8(*radius),
        Packet::GwInfo { gw_id, gw_add } => {
            out.put_u8(*gw_id);
            out.put_slice(gw_add);
        }
        Packet::Connect(c) => {
            out.put_u8(c.flags.to_byte());
            out.put_u8(c.protocol_id);
            out.put_u16(c.duration);
            out.put_slice(&c.client_id);
        }
        Packet::ConnAck { rc } | Packet::WillTopicResp { rc } | Packet::WillMsgResp { rc } => {
            out.put_u8(*rc)
        }
        Packet::WillTopic(w) | Packet::WillTopicUpd(w) => will_topic(w.as_ref(), out),
        Packet::WillMsg { msg } | Packet::WillMsgUpd { msg } => out.put_slice(msg),
        Packet::Register {
            topic_id,
            msg_id,
            topic_name,
        } => {
            out.put_u16(*topic_id);
            out.put_u16(*msg_id);
            out.put_slice(topic_name);
        }
        Packet::RegAck {
            topic_id,
            msg_id,
            rc,
        }
        | Packet::PubAck {
            topic_id,
            msg_id,
            rc,
        } => {
            out.put_u16(*topic_id);
            out.put_u16(*msg_id);
            out.put_u8(*rc);
        }
        Packet::Publish(p) => {
            out.put_u8(p.flags.to_byte());
            out.put_u16(p.topic_id);
            out.put_u16(p.msg_id);
            out.put_slice(&p.data);
        }
        Packet::PubRec { msg_id }
        | Packet::PubRel { msg_id }
        | Packet::PubComp { msg_id }
        | Packet::UnsubAck { msg_id } => out.put_u16(*msg_id),
        Packet::Subscribe(s) | Packet::Unsubscribe(s) => subscribe(s, out),
        Packet::SubAck {
            flags,
            topic_id,
            msg_id,
            rc,
        } => {
            out.put_u8(flags.to_byte());
            out.put_u16(*topic_id);
            out.put_u16(*msg_id);
            out.put_u8(*rc);
        }
        Packet::PingReq { client_id } => {
            if let Some(c) = client_id {
                out.put_slice(c);
            }
        }
        Packet::Disconnect { duration } => {
            if let Some(d) = duration {
                out.put_u16(*d);
            }
        }
    }
}

fn will_topic(w: Option<&WillTopic>, out: &mut BytesMut) {
    if let Some(w) = w {
        out.put_u8(w.flags.to_byte());
        out.put_slice(&w.topic);
    }
}

fn subscribe(s: &Subscribe, out: &mut BytesMut) {
    // The topic variant decides the TopicIdType bits, so the two can never disagree.
    let flags = Flags {
        topic_id_type: s.topic.id_type(),
        ..s.flags
    };
    out.put_u8(flags.to_byte());
    out.put_u16(s.msg_id);
    match &s.topic {
        SubTopic::Name(b) | SubTopic::Reserved(b) => out.put_slice(b),
        SubTopic::Predefined(id) => out.put_u16(*id),
        SubTopic::Short(s) => out.put_slice(s),
    }
}
