//! A CoAP sensor against the CoAP gateway, built on Switchyard's own CoAP transport in its
//! client role: it observes `commands/<id>` (GET with Observe=0) and POSTs a reading to
//! `sensors/<id>/temp` every two seconds; notifications are printed as they arrive.
//!
//! ```text
//! cargo run --example coap_sensor -- 127.0.0.1:5683 sensor-1
//! mosquitto_sub -t 'sensors/#' -v            # sees the readings
//! mosquitto_pub -t commands/sensor-1 -m on   # the sensor prints "command: on"
//! ```

use std::net::SocketAddr;
use std::time::Duration;
use switchyard_coap_transport::coap_lite::{CoapOption, Packet};
use switchyard_coap_transport::wire::code;
use switchyard_coap_transport::{code_string, set_code, Event, Transport, TransportConfig};
use tokio::net::UdpSocket;

#[derive(Debug, Clone, Copy)]
enum Tag {
    Reading,
    Commands,
}

fn request(method: u8, path: &str, query: &[&str]) -> Packet {
    let mut p = Packet::new();
    set_code(&mut p, method);
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let server: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:5683".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let id = args.next().unwrap_or_else(|| "sensor-1".into());
    let socket = UdpSocket::bind("0.0.0.0:0").await?;
    let mut t: Transport<Tag> = Transport::new(TransportConfig::default());
    let clientid = format!("clientid={id}");

    let mut observe = request(code::GET, &format!("ps/commands/{id}"), &[&clientid]);
    observe.set_observe_value(0);
    t.request(server, observe, true, true, Tag::Commands, now());

    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    let mut buf = vec![0u8; 2048];
    let mut n = 0u32;
    loop {
        while let Some((to, bytes)) = t.poll_transmit() {
            socket.send_to(&bytes, to).await?;
        }
        let deadline = t.next_deadline().map(tokio::time::Instant::from_std);
        let events = tokio::select! {
            _ = ticker.tick() => {
                n = n.wrapping_add(1);
                let mut post = request(code::POST, &format!("ps/sensors/{id}/temp"), &[&clientid, "qos=1"]);
                post.payload = format!("{:.1}", 20.0 + f64::from(n % 50) / 10.0).into_bytes();
                t.request(server, post, true, false, Tag::Reading, now());
                Vec::new()
            }
            r = socket.recv_from(&mut buf) => {
                let (len, from) = r?;
                t.handle_datagram(from, buf.get(..len).unwrap_or_default(), now())
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => t.poll(now()),
        };
        for ev in events {
            match ev {
                Event::Response {
                    tag: Tag::Commands,
                    packet,
                    ..
                } if !packet.payload.is_empty() => {
                    println!("command: {}", String::from_utf8_lossy(&packet.payload));
                }
                Event::Response { tag, packet, .. } => {
                    println!(
                        "{tag:?}: {}",
                        code_string(switchyard_coap_transport::code_of(&packet))
                    );
                }
                Event::Timeout { tag, .. } => println!("{tag:?}: no answer from {server}"),
                _ => {}
            }
        }
    }
}
