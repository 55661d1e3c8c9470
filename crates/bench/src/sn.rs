//! MQTT-SN 1.2 publishers over UDP (`sn-pub`): each client has its own socket, CONNECTs,
//! REGISTERs its topic and publishes stamped payloads at QoS 0, or at QoS 1 with one message in
//! flight (MQTT-SN 1.2 §6.13: a client has one outstanding message that needs an ack), resending
//! with DUP after `retry` without a PUBACK.
//!
//! Owns: the client side of the MQTT-SN handshake (through the project's codec,
//! `switchyard_mqttsn::codec`) and the hot-path PUBLISH, encoded by hand into a reused buffer so
//! the tool allocates nothing per message (its layout is checked against the codec in tests).
//! Invariant: message ids are never 0 (§5.3.9 reserves none, but 0 means "no id" for QoS 0).

use crate::publisher::PubOutcome;
use crate::stats::{self, Live};
use crate::udp::{self, ExchangeError, Reply, Retry};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use switchyard_mqttsn::codec::{decode, encode, rc, Connect, Flags, Packet};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// MQTT-SN PUBLISH message type (§5.3.2).
const PUBLISH: u8 = 0x0C;
/// Sends between yields for QoS 0 senders, so one client cannot hog a worker thread.
const YIELD_EVERY: u64 = 16;

/// One client after its handshake.
pub struct SnClient {
    /// Its socket, connected to the gateway.
    pub sock: UdpSocket,
    /// The topic id the gateway assigned in REGACK.
    pub topic_id: u16,
    /// Retransmissions during the handshake.
    pub retransmits: u64,
}

/// Encodes one message with the project's codec.
fn encoded(p: &Packet) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(64);
    // Only fails above 65,535 bytes; the handshake packets are tiny.
    let _ = encode(p, &mut out);
    out.to_vec()
}

fn decoded(datagram: &[u8]) -> Option<Packet> {
    decode(&Bytes::copy_from_slice(datagram)).ok()
}

/// CONNECT (clean session, no will) then REGISTER of `topic`.
pub async fn handshake(
    sock: UdpSocket,
    client_id: &str,
    topic: &str,
    keep_alive: u16,
    retry: Retry,
) -> Result<SnClient, ExchangeError> {
    let connect = encoded(&Packet::Connect(Connect {
        flags: Flags {
            clean_session: true,
            ..Flags::default()
        },
        protocol_id: 1,
        duration: keep_alive,
        client_id: Bytes::copy_from_slice(client_id.as_bytes()),
    }));
    let (code, mut retransmits) =
        udp::exchange(&sock, &connect, &connect, retry, |d| match decoded(d) {
            Some(Packet::ConnAck { rc }) => Reply::Done(rc),
            _ => Reply::Ignore,
        })
        .await?;
    if code != rc::ACCEPTED {
        return Err(ExchangeError::Refused(format!(
            "CONNACK return code {code:#04x}"
        )));
    }
    let register = encoded(&Packet::Register {
        topic_id: 0,
        msg_id: 1,
        topic_name: Bytes::copy_from_slice(topic.as_bytes()),
    });
    let ((topic_id, code), n) =
        udp::exchange(&sock, &register, &register, retry, |d| match decoded(d) {
            Some(Packet::RegAck {
                topic_id,
                msg_id: 1,
                rc,
            }) => Reply::Done((topic_id, rc)),
            _ => Reply::Ignore,
        })
        .await?;
    retransmits += n;
    if code != rc::ACCEPTED {
        return Err(ExchangeError::Refused(format!(
            "REGACK return code {code:#04x}"
        )));
    }
    Ok(SnClient {
        sock,
        topic_id,
        retransmits,
    })
}

/// Appends a PUBLISH with a normal topic id (§5.4.12) to `buf` (bursts lay several end to
/// end; clear `buf` first for a single one).
pub fn publish_append(
    buf: &mut Vec<u8>,
    qos: u8,
    dup: bool,
    topic_id: u16,
    msg_id: u16,
    payload: &[u8],
) {
    let total = 7 + payload.len();
    if total <= 255 {
        buf.push(total as u8);
    } else {
        // The 3-byte length form (§5.2.1) counts its own two extra bytes.
        let total = u16::try_from(total + 2).unwrap_or(u16::MAX);
        buf.push(0x01);
        buf.extend_from_slice(&total.to_be_bytes());
    }
    buf.push(PUBLISH);
    buf.push((u8::from(dup) << 7) | ((qos & 0x03) << 5));
    buf.extend_from_slice(&topic_id.to_be_bytes());
    buf.extend_from_slice(&msg_id.to_be_bytes());
    buf.extend_from_slice(payload);
}

/// The PUBACK for `msg_id`, if `datagram` is one: its return code.
pub fn puback_for(datagram: &[u8], msg_id: u16) -> Option<u8> {
    match decoded(datagram)? {
        Packet::PubAck { msg_id: m, rc, .. } if m == msg_id => Some(rc),
        _ => None,
    }
}

/// What one publisher does.
#[derive(Debug, Clone)]
pub struct SnPubSpec {
    /// Publisher id in the payload stamp.
    pub id: u32,
    /// 0 or 1.
    pub qos: u8,
    /// Payload size.
    pub payload_len: usize,
    /// Messages per second (0 = as fast as possible).
    pub rate: f64,
    /// Publishing time.
    pub duration: Duration,
    /// Retransmission of an unacknowledged QoS 1 PUBLISH.
    pub retry: Retry,
    /// QoS 0 datagrams per system call (see [`udp::Burst`]).
    pub burst: usize,
}

/// Publishes until the duration is over (QoS 1: and the last message is acknowledged or given
/// up), then sends DISCONNECT.
pub async fn publish(client: SnClient, spec: SnPubSpec, live: Arc<Live>) -> PubOutcome {
    let mut out = PubOutcome {
        retransmits: client.retransmits,
        ..Default::default()
    };
    let mut payload = vec![0u8; spec.payload_len.max(stats::STAMP_LEN)];
    let mut buf = Vec::with_capacity(payload.len() + 8);
    let mut resend = Vec::with_capacity(payload.len() + 8);
    let burst = (spec.qos == 0 && spec.burst > 1)
        .then(|| udp::Burst::new(&client.sock, spec.burst))
        .flatten();
    let per_wakeup = burst.as_ref().map_or(1, |b| b.max_segments() as u64);
    let start = Instant::now();
    let end = start + spec.duration;
    let mut seq: u64 = 0;
    let mut msg_id: u16 = 0;
    // Paced bursts wait until a whole burst is due, so each system call carries a full one.
    while Instant::now() < end {
        let budget = udp::budget(start, Instant::now(), spec.rate, seq);
        if budget < per_wakeup {
            if let Some(due) = udp::next_due(start, spec.rate, seq + per_wakeup - 1) {
                tokio::time::sleep_until(due.min(end)).await;
                continue;
            }
        }
        if spec.qos == 0 {
            let n = match &burst {
                Some(b) => budget.min(b.max_segments() as u64).max(1),
                None => 1,
            };
            buf.clear();
            for i in 0..n {
                stats::stamp(&mut payload, spec.id, seq + i, stats::now_ns());
                publish_append(&mut buf, 0, false, client.topic_id, 0, &payload);
            }
            let sent = match &burst {
                Some(b) if n > 1 => b.send(&client.sock, &buf, buf.len() / n as usize).await,
                _ => client.sock.send(&buf).await.map(drop),
            };
            if let Err(e) = sent {
                out.error = Some(e.to_string());
                break;
            }
            let before = seq;
            seq += n;
            Live::add(&live.sent, n);
            if seq / YIELD_EVERY != before / YIELD_EVERY {
                tokio::task::yield_now().await;
            }
            continue;
        }
        stats::stamp(&mut payload, spec.id, seq, stats::now_ns());
        msg_id = msg_id.checked_add(1).unwrap_or(1);
        buf.clear();
        publish_append(&mut buf, 1, false, client.topic_id, msg_id, &payload);
        resend.clear();
        publish_append(&mut resend, 1, true, client.topic_id, msg_id, &payload);
        seq += 1;
        Live::add(&live.sent, 1);
        let id = msg_id;
        match udp::exchange(
            &client.sock,
            &buf,
            &resend,
            spec.retry,
            |d| match puback_for(d, id) {
                Some(code) => Reply::Done(code),
                None => Reply::Ignore,
            },
        )
        .await
        {
            Ok((code, n)) => {
                out.retransmits += n;
                if code == rc::ACCEPTED {
                    out.acked += 1;
                    Live::add(&live.acked, 1);
                } else {
                    out.error = Some(format!("PUBACK return code {code:#04x}"));
                    break;
                }
            }
            Err(e) => {
                out.error = Some(format!("message {seq}: {e}"));
                break;
            }
        }
    }
    out.sent = seq;
    let _ = client
        .sock
        .send(&encoded(&Packet::Disconnect { duration: None }))
        .await;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_mqttsn::codec::{Publish, SnQos, TopicIdType};

    fn check(qos: u8, dup: bool, len: usize) {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut buf = Vec::new();
        publish_append(&mut buf, qos, dup, 1025, 7, &payload);
        let want = Packet::Publish(Publish {
            flags: Flags {
                dup,
                qos: if qos == 1 { SnQos::Q1 } else { SnQos::Q0 },
                topic_id_type: TopicIdType::Normal,
                ..Flags::default()
            },
            topic_id: 1025,
            msg_id: 7,
            data: Bytes::from(payload),
        });
        assert_eq!(
            decoded(&buf),
            Some(want.clone()),
            "qos {qos} dup {dup} len {len}"
        );
        assert_eq!(buf, encoded(&want));
    }

    #[test]
    fn hand_rolled_publish_matches_the_codec() {
        for (qos, dup, len) in [
            (0, false, 20),
            (1, false, 64),
            (1, true, 248),
            (1, false, 249),
            (0, false, 1000),
        ] {
            check(qos, dup, len);
        }
    }

    #[test]
    fn puback_is_matched_by_message_id() {
        let ack = |msg_id, rc| {
            encoded(&Packet::PubAck {
                topic_id: 1025,
                msg_id,
                rc,
            })
        };
        assert_eq!(puback_for(&ack(7, 0), 7), Some(0));
        assert_eq!(puback_for(&ack(7, rc::INVALID_TOPIC_ID), 7), Some(2));
        assert_eq!(puback_for(&ack(6, 0), 7), None);
        assert_eq!(puback_for(&[3, 0x16], 7), None, "PINGRESP is not an ack");
        assert_eq!(puback_for(&[0xFF], 7), None, "garbage is ignored");
    }
}
