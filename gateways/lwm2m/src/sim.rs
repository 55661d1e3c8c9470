//! A simulated LwM2M device (objects 3 Device and 3303 Temperature) over real UDP, built on the
//! same CoAP transport: it registers, updates and de-registers, answers read (text, TLV, SenML
//! JSON), discover, write (TLV, text, SenML JSON), execute, create, delete, write-attributes
//! and observe, and sends notifications. `examples/lwm2m_device.rs` runs it; the end-to-end
//! tests drive it step by step and inspect what it saw.
//!
//! Test knobs: [`Device::drop_next`] loses the next inbound datagrams (to see retransmission),
//! [`Device::mute`] ignores every request (to see `coap_timeout`). [`Device::bind_dtls`] speaks
//! DTLS-PSK instead (the client side of `switchyard_net::dtls`), for the gateway's DTLS
//! listener.

use crate::codec::tlv::{self, Kind, Tlv};
use crate::codec::{format, text};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use switchyard_coap_transport::coap_lite::{CoapOption, MessageType, Packet};
use switchyard_coap_transport::wire::{self, code};
use switchyard_coap_transport::{error_response, response, Event, Request, Transport};
use switchyard_net::dtls::client::{ClientAuth, ClientError, DtlsClient};
use tokio::net::UdpSocket;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A resource value of the simulated objects.
#[derive(Debug, Clone, PartialEq)]
pub enum SimValue {
    /// String.
    Str(String),
    /// Integer or Time.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

impl SimValue {
    fn text(&self) -> String {
        match self {
            SimValue::Str(s) => s.clone(),
            SimValue::Int(i) => i.to_string(),
            SimValue::Float(f) => f.to_string(),
            SimValue::Bool(b) => if *b { "1" } else { "0" }.into(),
        }
    }

    fn tlv(&self) -> Vec<u8> {
        match self {
            SimValue::Str(s) => s.as_bytes().to_vec(),
            SimValue::Int(i) => tlv::encode_int(*i),
            SimValue::Float(f) => tlv::encode_float(*f),
            SimValue::Bool(b) => vec![u8::from(*b)],
        }
    }

    fn senml(&self) -> (&'static str, serde_json::Value) {
        match self {
            SimValue::Str(s) => ("vs", serde_json::json!(s)),
            SimValue::Int(i) => ("v", serde_json::json!(i)),
            SimValue::Float(f) => ("v", serde_json::json!(f)),
            SimValue::Bool(b) => ("vb", serde_json::json!(b)),
        }
    }

    /// Parses raw TLV or text bytes as the same kind as `self`.
    fn like(&self, raw: &[u8], is_tlv: bool) -> Option<SimValue> {
        let s = || String::from_utf8(raw.to_vec()).ok();
        Some(match (self, is_tlv) {
            (SimValue::Str(_), _) => SimValue::Str(s()?),
            (SimValue::Int(_), true) => SimValue::Int(tlv::decode_int(raw)?),
            (SimValue::Int(_), false) => SimValue::Int(s()?.trim().parse().ok()?),
            (SimValue::Float(_), true) => SimValue::Float(tlv::decode_float(raw)?),
            (SimValue::Float(_), false) => SimValue::Float(s()?.trim().parse().ok()?),
            (SimValue::Bool(_), true) => SimValue::Bool(tlv::decode_bool(raw)?),
            (SimValue::Bool(_), false) => SimValue::Bool(text::parse_bool(&s()?)?),
        })
    }
}

/// One request the device received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method code.
    pub method: u8,
    /// Uri-Path joined with `/` and a leading `/`.
    pub path: String,
    /// Uri-Query parts.
    pub query: Vec<String>,
    /// Observe option value.
    pub observe: Option<u32>,
    /// Accept option value.
    pub accept: Option<u32>,
    /// Content-Format option value.
    pub content_format: Option<u32>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Token.
    pub token: Vec<u8>,
}

struct Observer {
    token: Vec<u8>,
    seq: u32,
}

/// How the device reaches the gateway.
enum Link {
    Plain(UdpSocket),
    Dtls(Box<DtlsClient>),
}

impl Link {
    async fn send_to(&mut self, bytes: &[u8], to: SocketAddr) {
        match self {
            Link::Plain(s) => {
                let _ = s.send_to(bytes, to).await;
            }
            // One association, to the server: `to` is always the server.
            Link::Dtls(c) => {
                let _ = c.send(bytes).await;
            }
        }
    }

    /// One datagram; cancel-safe (what the DTLS client decrypted stays in its inbox).
    async fn recv_from(
        &mut self,
        buf: &mut [u8],
        server: SocketAddr,
    ) -> std::io::Result<(usize, SocketAddr)> {
        match self {
            Link::Plain(s) => s.recv_from(buf).await,
            Link::Dtls(c) => match c.recv(Duration::from_secs(24 * 3600)).await {
                Ok(d) => {
                    let n = d.len().min(buf.len());
                    buf[..n].copy_from_slice(&d[..n]);
                    Ok((n, server))
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            },
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Link::Plain(s) => s.local_addr(),
            Link::Dtls(c) => c.local_addr(),
        }
    }
}

/// The simulated device.
pub struct Device {
    socket: Link,
    server: SocketAddr,
    transport: Transport<u8>,
    /// Endpoint name.
    pub endpoint: String,
    /// Extra Register query parameters (`lt`, `b`, …) as `k=v`.
    pub register_query: Vec<String>,
    /// The object list sent at Register.
    pub links: String,
    values: BTreeMap<(u16, u16, u16), SimValue>,
    observers: BTreeMap<String, Observer>,
    /// Every request received, in order.
    pub seen: Vec<Seen>,
    /// Inbound datagrams still to be dropped (simulated loss).
    pub drop_next: usize,
    /// Ignore every datagram (never answer, never ACK).
    pub mute: bool,
    /// Datagrams ignored while muted.
    pub ignored: usize,
    location: Option<Vec<String>>,
    last_reply: Option<Packet>,
}

impl Device {
    /// A device talking to the gateway at `server` from a fresh local port.
    pub async fn bind(server: SocketAddr, endpoint: &str) -> std::io::Result<Device> {
        let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        Ok(Self::with_link(Link::Plain(socket), server, endpoint))
    }

    /// A device talking DTLS-PSK (`TLS_PSK_WITH_AES_128_CCM_8`, LwM2M's mandatory suite) to the
    /// gateway's DTLS listener at `server`; the handshake is done when this returns.
    pub async fn bind_dtls(
        server: SocketAddr,
        endpoint: &str,
        identity: &str,
        key: &[u8],
    ) -> Result<Device, ClientError> {
        let auth = ClientAuth::Psk {
            identity: identity.as_bytes().to_vec(),
            key: key.to_vec(),
        };
        let client = DtlsClient::connect(server, &auth, None, Duration::from_secs(10)).await?;
        Ok(Self::with_link(
            Link::Dtls(Box::new(client)),
            server,
            endpoint,
        ))
    }

    fn with_link(socket: Link, server: SocketAddr, endpoint: &str) -> Device {
        let mut values = BTreeMap::new();
        let s = |v: &str| SimValue::Str(v.into());
        values.insert((3, 0, 0), s("Switchyard"));
        values.insert((3, 0, 1), s("sim-lwm2m"));
        values.insert((3, 0, 2), s("345000123"));
        values.insert((3, 0, 3), s("1.0"));
        values.insert((3, 0, 9), SimValue::Int(87));
        values.insert((3, 0, 13), SimValue::Int(1_700_000_000));
        values.insert((3, 0, 16), s("UQ"));
        values.insert((3303, 0, 5700), SimValue::Float(21.5));
        values.insert((3303, 0, 5701), s("Cel"));
        Device {
            socket,
            server,
            transport: Transport::new(Default::default()),
            endpoint: endpoint.into(),
            register_query: vec!["lt=300".into(), "lwm2m=1.0".into(), "b=U".into()],
            links: "</1/0>,</3/0>,</3303/0>".into(),
            values,
            observers: BTreeMap::new(),
            seen: Vec::new(),
            drop_next: 0,
            mute: false,
            ignored: 0,
            location: None,
            last_reply: None,
        }
    }

    /// The device's local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A resource value.
    pub fn value(&self, o: u16, i: u16, r: u16) -> Option<&SimValue> {
        self.values.get(&(o, i, r))
    }

    /// Sets a resource value (then [`notify`](Self::notify) to report it).
    pub fn set_value(&mut self, o: u16, i: u16, r: u16, v: SimValue) {
        self.values.insert((o, i, r), v);
    }

    async fn flush(&mut self) {
        while let Some((addr, bytes)) = self.transport.poll_transmit() {
            self.socket.send_to(&bytes, addr).await;
        }
    }

    /// Sends a registration-interface request and waits for its reply (answering requests
    /// meanwhile).
    async fn call(&mut self, p: Packet, within: Duration) -> Option<Packet> {
        self.transport
            .request(self.server, p, true, false, 0, now());
        self.flush().await;
        self.last_reply = None;
        let deadline = tokio::time::Instant::now() + within;
        while self.last_reply.is_none() && tokio::time::Instant::now() < deadline {
            self.step(deadline).await;
        }
        self.last_reply.take()
    }

    /// Register; returns the reply code.
    pub async fn register(&mut self) -> Option<u8> {
        let mut p = Packet::new();
        wire::set_code(&mut p, code::POST);
        p.add_option(CoapOption::UriPath, b"rd".to_vec());
        let mut q = vec![format!("ep={}", self.endpoint)];
        q.extend(self.register_query.iter().cloned());
        for x in q {
            p.add_option(CoapOption::UriQuery, x.into_bytes());
        }
        p.add_option(CoapOption::ContentFormat, wire::uint_bytes(40));
        p.payload = self.links.clone().into_bytes();
        let r = self.call(p, Duration::from_secs(10)).await?;
        if let Some(loc) = r.get_option(CoapOption::LocationPath) {
            self.location = Some(
                loc.iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect(),
            );
        }
        Some(wire::code_of(&r))
    }

    fn location_packet(&self, method: u8) -> Packet {
        let mut p = Packet::new();
        wire::set_code(&mut p, method);
        let loc = self
            .location
            .clone()
            .unwrap_or_else(|| vec!["rd".into(), self.endpoint.clone()]);
        for seg in loc {
            p.add_option(CoapOption::UriPath, seg.into_bytes());
        }
        p
    }

    /// Update with extra query parameters and an optional new object list.
    pub async fn update(&mut self, query: &[&str], links: Option<&str>) -> Option<u8> {
        let mut p = self.location_packet(code::POST);
        for q in query {
            p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
        }
        if let Some(l) = links {
            p.payload = l.as_bytes().to_vec();
        }
        self.call(p, Duration::from_secs(10))
            .await
            .map(|r| wire::code_of(&r))
    }

    /// De-register.
    pub async fn deregister(&mut self) -> Option<u8> {
        let p = self.location_packet(code::DELETE);
        self.call(p, Duration::from_secs(10))
            .await
            .map(|r| wire::code_of(&r))
    }

    /// Serves requests until `n` requests in total were seen or `within` passes; returns
    /// whether `n` was reached.
    pub async fn serve_until_seen(&mut self, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.seen.len() < n && tokio::time::Instant::now() < deadline {
            self.step(deadline).await;
        }
        self.seen.len() >= n
    }

    /// Serves requests for `d`.
    pub async fn serve_for(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while tokio::time::Instant::now() < deadline {
            self.step(deadline).await;
        }
    }

    /// One wakeup: a datagram, a transport timer, or the deadline.
    pub async fn step(&mut self, deadline: tokio::time::Instant) {
        let mut buf = vec![0u8; 2048];
        let timer = self
            .transport
            .next_deadline()
            .map(tokio::time::Instant::from_std)
            .map_or(deadline, |t| t.min(deadline));
        let events = tokio::select! {
            r = self.socket.recv_from(&mut buf, self.server) => match r {
                Ok((n, peer)) => {
                    if self.drop_next > 0 {
                        self.drop_next -= 1;
                        return;
                    }
                    if self.mute {
                        self.ignored += 1;
                        return;
                    }
                    let data = buf.get(..n).unwrap_or_default().to_vec();
                    self.transport.handle_datagram(peer, &data, now())
                }
                Err(_) => Vec::new(),
            },
            _ = tokio::time::sleep_until(timer) => self.transport.poll(now()),
        };
        for ev in events {
            match ev {
                Event::Request(r) => self.on_request(r),
                Event::Response { packet, .. } => self.last_reply = Some(packet),
                _ => {}
            }
        }
        self.flush().await;
    }

    fn on_request(&mut self, r: Request) {
        let p = &r.packet;
        let path = wire::uri_path(p).unwrap_or_default();
        let opt = |o| wire::uint_option(p, o).and_then(Result::ok);
        let seen = Seen {
            method: wire::code_of(p),
            path: format!("/{}", path.join("/")),
            query: wire::uri_query(p).unwrap_or_default(),
            observe: opt(CoapOption::Observe),
            accept: opt(CoapOption::Accept),
            content_format: opt(CoapOption::ContentFormat),
            payload: p.payload.clone(),
            token: p.get_token().to_vec(),
        };
        let ids: Vec<u16> = path.iter().filter_map(|s| s.parse().ok()).collect();
        let reply = self.answer(&seen, &ids);
        self.seen.push(seen);
        self.transport.respond(&r.exchange, reply, now());
    }

    fn answer(&mut self, s: &Seen, ids: &[u16]) -> Packet {
        match s.method {
            code::GET if s.accept == Some(u32::from(format::LINK)) => self.discover(ids),
            code::GET => {
                let mut r = self.read(ids, s.accept);
                match s.observe {
                    Some(0) if wire::code_of(&r) == code::CONTENT => {
                        let o = self.observers.entry(s.path.clone()).or_insert(Observer {
                            token: Vec::new(),
                            seq: 0,
                        });
                        o.token = s.token.clone();
                        r.set_observe_value(o.seq);
                    }
                    Some(1) => {
                        self.observers.remove(&s.path);
                    }
                    _ => {}
                }
                r
            }
            code::PUT if !s.query.is_empty() && s.payload.is_empty() => response(code::CHANGED),
            code::PUT | code::POST if ids.len() >= 2 && !self.is_executable(ids) => {
                self.write(ids, s)
            }
            code::POST if self.is_executable(ids) => response(code::CHANGED),
            code::POST if ids.len() == 1 => response(code::CREATED),
            code::DELETE if ids.len() == 2 => response(code::DELETED),
            _ => error_response(code::METHOD_NOT_ALLOWED, ""),
        }
    }

    fn is_executable(&self, ids: &[u16]) -> bool {
        matches!(ids, [3, 0, 4] | [3, 0, 5] | [3303, 0, 5605])
    }

    fn matching(&self, ids: &[u16]) -> Vec<((u16, u16, u16), SimValue)> {
        self.values
            .iter()
            .filter(|((o, i, r), _)| {
                let key = [*o, *i, *r];
                ids.iter().zip(key.iter()).all(|(a, b)| a == b)
            })
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    fn read(&self, ids: &[u16], accept: Option<u32>) -> Packet {
        let found = self.matching(ids);
        if found.is_empty() {
            return error_response(code::NOT_FOUND, "");
        }
        let mut r = response(code::CONTENT);
        let cf = match accept {
            Some(a) => a,
            None if ids.len() == 3 => u32::from(format::TEXT),
            None => u32::from(format::TLV),
        };
        r.payload = match u16::try_from(cf).unwrap_or(0) {
            format::TEXT if found.len() == 1 => found[0].1.text().into_bytes(),
            format::SENML_JSON => {
                let recs: Vec<_> = found
                    .iter()
                    .map(|((o, i, res), v)| {
                        let (k, val) = v.senml();
                        serde_json::json!({"n": format!("/{o}/{i}/{res}"), k: val})
                    })
                    .collect();
                serde_json::Value::Array(recs).to_string().into_bytes()
            }
            format::TLV => {
                let res: Vec<Tlv> = found
                    .iter()
                    .map(|((_, _, id), v)| Tlv::value(Kind::Resource, *id, v.tlv()))
                    .collect();
                let tlvs = if ids.len() == 1 {
                    vec![Tlv::container(Kind::ObjectInstance, 0, res)]
                } else {
                    res
                };
                tlv::encode(&tlvs).unwrap_or_default()
            }
            _ => return error_response(0x86, ""),
        };
        r.add_option(CoapOption::ContentFormat, wire::uint_bytes(cf));
        r
    }

    fn discover(&self, ids: &[u16]) -> Packet {
        let found = self.matching(ids);
        if found.is_empty() {
            return error_response(code::NOT_FOUND, "");
        }
        let mut links = vec![format!(
            "<{}>",
            ids.iter().map(|i| format!("/{i}")).collect::<String>()
        )];
        links.extend(found.iter().map(|((o, i, r), _)| format!("</{o}/{i}/{r}>")));
        let mut r = response(code::CONTENT);
        r.add_option(CoapOption::ContentFormat, wire::uint_bytes(40));
        r.payload = links.join(",").into_bytes();
        r
    }

    fn write(&mut self, ids: &[u16], s: &Seen) -> Packet {
        let is_tlv = s.content_format == Some(u32::from(format::TLV));
        let entries: Vec<(u16, Vec<u8>)> = if is_tlv {
            match tlv::decode(&s.payload) {
                Ok(t) => t.into_iter().map(|t| (t.id, t.value)).collect(),
                Err(_) => return error_response(code::BAD_REQUEST, "bad TLV"),
            }
        } else if let [_, _, r] = ids {
            vec![(*r, s.payload.clone())]
        } else {
            return error_response(code::BAD_REQUEST, "");
        };
        let (Some(o), Some(i)) = (ids.first(), ids.get(1)) else {
            return error_response(code::BAD_REQUEST, "");
        };
        for (rid, raw) in entries {
            let Some(cur) = self.values.get(&(*o, *i, rid)) else {
                return error_response(code::NOT_FOUND, "");
            };
            match cur.like(&raw, is_tlv) {
                Some(v) => {
                    self.values.insert((*o, *i, rid), v);
                }
                None => return error_response(code::BAD_REQUEST, "bad value"),
            }
        }
        response(code::CHANGED)
    }

    /// Sends a notification for an observed path with its current value (CON or NON).
    /// Returns false when nobody observes it.
    pub async fn notify(&mut self, path: &str, confirmable: bool) -> bool {
        let ids: Vec<u16> = path.split('/').filter_map(|s| s.parse().ok()).collect();
        let mut r = self.read(&ids, None);
        let Some(o) = self.observers.get_mut(path) else {
            return false;
        };
        o.seq += 1;
        r.set_observe_value(o.seq);
        r.set_token(o.token.clone());
        r.header.set_type(if confirmable {
            MessageType::Confirmable
        } else {
            MessageType::NonConfirmable
        });
        self.transport
            .notify(self.server, r, confirmable, 1, path, now());
        self.flush().await;
        true
    }
}
