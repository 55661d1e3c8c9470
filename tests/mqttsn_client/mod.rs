//! A small MQTT-SN 1.2 test client over a tokio `UdpSocket`, for the black-box tests of the
//! gateway. It speaks through the gateway crate's codec (round-trip tested on its own) and checks
//! key byte layouts raw. Every wait is bounded.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::time::Duration;
use switchyard_mqttsn::codec::{
    decode, encode, Connect, Flags, Packet, Publish, SnQos, SubTopic, Subscribe, TopicIdType,
    WillTopic,
};
use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};

/// Default bound for one expected message.
pub const WAIT: Duration = Duration::from_secs(5);

/// One MQTT-SN client socket.
pub struct SnClient {
    pub socket: UdpSocket,
    pub gw: SocketAddr,
    pub client_id: String,
    next_msg_id: u16,
}

pub fn qos_bits(q: u8) -> SnQos {
    match q {
        0 => SnQos::Q0,
        1 => SnQos::Q1,
        2 => SnQos::Q2,
        _ => SnQos::Minus1,
    }
}

impl SnClient {
    /// A client on a fresh local port.
    pub async fn new(gw: SocketAddr, client_id: &str) -> SnClient {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        SnClient {
            socket,
            gw,
            client_id: client_id.to_owned(),
            next_msg_id: 0,
        }
    }

    /// Moves to a new local port (a NAT rebinding, or a rebooted device).
    pub async fn rebind(&mut self) {
        self.socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
    }

    pub fn msg_id(&mut self) -> u16 {
        self.next_msg_id = self.next_msg_id.wrapping_add(1).max(1);
        self.next_msg_id
    }

    pub async fn send(&self, p: &Packet) {
        let mut out = BytesMut::new();
        encode(p, &mut out).expect("encode");
        self.send_raw(&out).await;
    }

    pub async fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.gw).await.expect("send");
    }

    /// The next datagram within `within`, decoded.
    pub async fn recv(&self, within: Duration) -> Option<Packet> {
        self.recv_raw(within)
            .await
            .map(|b| decode(&b).unwrap_or_else(|e| panic!("gateway sent garbage {b:02x?}: {e}")))
    }

    pub async fn recv_raw(&self, within: Duration) -> Option<Bytes> {
        let mut buf = vec![0u8; 65536];
        match timeout(within, self.socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => Some(Bytes::copy_from_slice(&buf[..n])),
            _ => None,
        }
    }

    /// The next message, panicking if none arrives within [`WAIT`].
    pub async fn expect(&self, what: &str) -> Packet {
        match self.recv(WAIT).await {
            Some(p) => p,
            None => panic!("{}: expected {what} within {WAIT:?}", self.client_id),
        }
    }

    /// Panics if a message arrives within `within`.
    pub async fn expect_nothing(&self, within: Duration, why: &str) {
        if let Some(p) = self.recv(within).await {
            panic!("{}: expected nothing ({why}), got {p:?}", self.client_id);
        }
    }

    /// Every message within `within`.
    pub async fn collect(&self, within: Duration) -> Vec<Packet> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left).await {
                Some(p) => out.push(p),
                None => return out,
            }
        }
    }

    pub fn connect_packet(&self, clean: bool, will: bool, duration: u16) -> Packet {
        Packet::Connect(Connect {
            flags: Flags {
                clean_session: clean,
                will,
                ..Flags::default()
            },
            protocol_id: 1,
            duration,
            client_id: Bytes::copy_from_slice(self.client_id.as_bytes()),
        })
    }

    /// CONNECT without will; panics unless CONNACK 0.
    pub async fn connect(&self, clean: bool, duration: u16) {
        self.send(&self.connect_packet(clean, false, duration))
            .await;
        match self.expect("CONNACK").await {
            Packet::ConnAck { rc: 0 } => {}
            other => panic!("{}: expected CONNACK 0, got {other:?}", self.client_id),
        }
    }

    /// CONNECT with the will handshake; panics unless CONNACK 0.
    pub async fn connect_with_will(&self, duration: u16, topic: &str, qos: u8, msg: &str) {
        self.send(&self.connect_packet(true, true, duration)).await;
        assert_eq!(self.expect("WILLTOPICREQ").await, Packet::WillTopicReq);
        let flags = Flags {
            qos: qos_bits(qos),
            ..Flags::default()
        };
        let wt = WillTopic {
            flags,
            topic: Bytes::copy_from_slice(topic.as_bytes()),
        };
        self.send(&Packet::WillTopic(Some(wt))).await;
        assert_eq!(self.expect("WILLMSGREQ").await, Packet::WillMsgReq);
        self.send(&Packet::WillMsg {
            msg: Bytes::copy_from_slice(msg.as_bytes()),
        })
        .await;
        assert_eq!(self.expect("CONNACK").await, Packet::ConnAck { rc: 0 });
    }

    /// REGISTER a name; returns (topic id, rc).
    pub async fn register(&mut self, name: &str) -> (u16, u8) {
        let msg_id = self.msg_id();
        self.send(&Packet::Register {
            topic_id: 0,
            msg_id,
            topic_name: Bytes::copy_from_slice(name.as_bytes()),
        })
        .await;
        match self.expect("REGACK").await {
            Packet::RegAck {
                topic_id,
                msg_id: m,
                rc,
            } if m == msg_id => (topic_id, rc),
            other => panic!("expected REGACK for {msg_id}, got {other:?}"),
        }
    }

    /// SUBSCRIBE; returns (topic id, granted qos bits, rc).
    pub async fn subscribe(&mut self, topic: SubTopic, qos: u8) -> (u16, SnQos, u8) {
        let msg_id = self.msg_id();
        let s = Subscribe {
            flags: Flags {
                qos: qos_bits(qos),
                ..Flags::default()
            },
            msg_id,
            topic,
        };
        self.send(&Packet::Subscribe(s)).await;
        match self.expect("SUBACK").await {
            Packet::SubAck {
                flags,
                topic_id,
                msg_id: m,
                rc,
            } if m == msg_id => (topic_id, flags.qos, rc),
            other => panic!("expected SUBACK for {msg_id}, got {other:?}"),
        }
    }

    pub async fn subscribe_name(&mut self, name: &str, qos: u8) -> (u16, SnQos, u8) {
        self.subscribe(SubTopic::Name(Bytes::copy_from_slice(name.as_bytes())), qos)
            .await
    }

    pub fn publish_packet(
        &mut self,
        kind: TopicIdType,
        topic_id: u16,
        qos: u8,
        retain: bool,
        data: &str,
    ) -> Packet {
        let msg_id = if matches!(qos, 1 | 2) {
            self.msg_id()
        } else {
            0
        };
        Packet::Publish(Publish {
            flags: Flags {
                qos: qos_bits(qos),
                retain,
                topic_id_type: kind,
                ..Flags::default()
            },
            topic_id,
            msg_id,
            data: Bytes::copy_from_slice(data.as_bytes()),
        })
    }

    /// PUBLISH and complete its QoS flow (PUBACK or PUBREC/PUBREL/PUBCOMP); returns the PUBACK
    /// rc for QoS 1 (0 for the others).
    pub async fn publish(&mut self, kind: TopicIdType, topic_id: u16, qos: u8, data: &str) -> u8 {
        let p = self.publish_packet(kind, topic_id, qos, false, data);
        let msg_id = match &p {
            Packet::Publish(p) => p.msg_id,
            _ => 0,
        };
        self.send(&p).await;
        match qos {
            1 => match self.expect("PUBACK").await {
                Packet::PubAck { msg_id: m, rc, .. } if m == msg_id => rc,
                other => panic!("expected PUBACK, got {other:?}"),
            },
            2 => {
                assert_eq!(self.expect("PUBREC").await, Packet::PubRec { msg_id });
                self.send(&Packet::PubRel { msg_id }).await;
                assert_eq!(self.expect("PUBCOMP").await, Packet::PubComp { msg_id });
                0
            }
            _ => 0,
        }
    }

    /// The next PUBLISH (answering any REGISTER on the way with REGACK 0 and recording it).
    pub async fn next_publish(&self, registered: &mut Vec<(u16, String)>) -> Publish {
        loop {
            match self.expect("PUBLISH").await {
                Packet::Publish(p) => return p,
                Packet::Register {
                    topic_id,
                    msg_id,
                    topic_name,
                } => {
                    registered.push((topic_id, String::from_utf8_lossy(&topic_name).into_owned()));
                    self.send(&Packet::RegAck {
                        topic_id,
                        msg_id,
                        rc: 0,
                    })
                    .await;
                }
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    }

    /// Acknowledges a received QoS 1/2 PUBLISH fully.
    pub async fn ack(&self, p: &Publish) {
        match p.flags.qos {
            SnQos::Q1 => {
                self.send(&Packet::PubAck {
                    topic_id: p.topic_id,
                    msg_id: p.msg_id,
                    rc: 0,
                })
                .await
            }
            SnQos::Q2 => {
                self.send(&Packet::PubRec { msg_id: p.msg_id }).await;
                assert_eq!(
                    self.expect("PUBREL").await,
                    Packet::PubRel { msg_id: p.msg_id }
                );
                self.send(&Packet::PubComp { msg_id: p.msg_id }).await;
            }
            _ => {}
        }
    }

    pub async fn disconnect(&self, duration: Option<u16>) {
        self.send(&Packet::Disconnect { duration }).await;
        assert_eq!(
            self.expect("DISCONNECT").await,
            Packet::Disconnect { duration: None }
        );
    }

    pub async fn pingreq(&self, with_id: bool) {
        let client_id = with_id.then(|| Bytes::copy_from_slice(self.client_id.as_bytes()));
        self.send(&Packet::PingReq { client_id }).await;
    }
}
