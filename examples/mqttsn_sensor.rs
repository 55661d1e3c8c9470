//! An MQTT-SN sensor: connects to the gateway over UDP, registers its topic, and publishes a
//! reading every second at QoS 1, then disconnects.
//!
//! ```text
//! cargo run --example mqttsn_sensor -- [gateway_addr] [count]
//! # e.g. cargo run --example mqttsn_sensor -- 127.0.0.1:1884 5
//! mosquitto_sub -t 'sensors/#' -v     # on the MQTT side
//! ```

use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::time::Duration;
use switchyard_mqttsn::codec::{decode, encode, Connect, Flags, Packet, Publish, SnQos};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(5);

async fn send(socket: &UdpSocket, p: &Packet) -> anyhow::Result<()> {
    let mut buf = BytesMut::new();
    encode(p, &mut buf)?;
    socket.send(&buf).await?;
    Ok(())
}

async fn recv(socket: &UdpSocket) -> anyhow::Result<Packet> {
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf)).await??;
    Ok(decode(&Bytes::copy_from_slice(&buf[..n]))?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let gateway: SocketAddr = args.next().unwrap_or("127.0.0.1:1884".into()).parse()?;
    let count: u32 = args.next().unwrap_or("5".into()).parse()?;
    let socket = UdpSocket::bind("0.0.0.0:0").await?;
    socket.connect(gateway).await?;

    let connect = Connect {
        flags: Flags {
            clean_session: true,
            ..Flags::default()
        },
        protocol_id: 1,
        duration: 60,
        client_id: Bytes::from_static(b"sensor-1"),
    };
    send(&socket, &Packet::Connect(connect)).await?;
    match recv(&socket).await? {
        Packet::ConnAck { rc: 0 } => println!("connected to {gateway}"),
        other => anyhow::bail!("connect refused: {other:?}"),
    }

    let topic = "sensors/sensor-1/temperature";
    send(
        &socket,
        &Packet::Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: Bytes::from_static(topic.as_bytes()),
        },
    )
    .await?;
    let topic_id = match recv(&socket).await? {
        Packet::RegAck {
            topic_id, rc: 0, ..
        } => topic_id,
        other => anyhow::bail!("register refused: {other:?}"),
    };
    println!("registered {topic} as topic id {topic_id}");

    for n in 0..count {
        let msg_id = u16::try_from(n % 60_000 + 2)?;
        let reading = format!("{:.1}", 20.0 + f64::from(n % 10) * 0.5);
        let publish = Publish {
            flags: Flags {
                qos: SnQos::Q1,
                ..Flags::default()
            },
            topic_id,
            msg_id,
            data: Bytes::from(reading.clone()),
        };
        send(&socket, &Packet::Publish(publish)).await?;
        match recv(&socket).await? {
            Packet::PubAck { rc: 0, .. } => println!("published {reading}"),
            other => anyhow::bail!("publish refused: {other:?}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    send(&socket, &Packet::Disconnect { duration: None }).await?;
    let _ = recv(&socket).await;
    println!("disconnected");
    Ok(())
}
