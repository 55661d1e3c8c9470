//! CoAP clients of the pub/sub gateway (RFC 7252, RFC 7641): publishers (`coap-pub`) that POST
//! `/ps/{topic}?qos=1` as CON, one exchange at a time (NSTART = 1, RFC 7252 §4.7), retransmitted
//! with exponential back-off from ACK_TIMEOUT × a random factor in [1, 1.5) up to
//! MAX_RETRANSMIT (§4.2), or as NON (`qos=0`) as fast as the socket takes them; and observers
//! (`coap-observe`) that GET with Observe=0, count each notification and ACK the CON ones
//! (RFC 7641 §4.5).
//!
//! Owns: request templates built once with coap-lite and patched per message (message id,
//! 4-byte token, payload stamp), so the hot path allocates nothing; matching replies (the
//! piggybacked ACK by message id, a separate response by token after an empty ACK).

use crate::publisher::PubOutcome;
use crate::stats::{self, Live, SubObservation};
use crate::udp::{self, ExchangeError, Reply, Retry};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Sends between yields for NON senders, so one client cannot hog a worker thread.
const YIELD_EVERY: u64 = 16;
/// Token length of every request the tool sends.
const TOKEN_LEN: usize = 4;

/// A request encoded once, patched per message.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    payload_at: usize,
}

/// A request: its type, method, Uri-Path segments, Uri-Query items, Observe, payload size.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// CON or NON.
    pub confirmable: bool,
    /// GET, POST, ...
    pub method: RequestType,
    /// Uri-Path segments.
    pub path: &'a [&'a str],
    /// Uri-Query items (`qos=1`).
    pub query: &'a [&'a str],
    /// Observe option value (0 register, 1 deregister).
    pub observe: Option<u32>,
    /// Payload bytes (0 = none).
    pub payload_len: usize,
}

impl Template {
    /// Encodes `req` with coap-lite, with a zero message id, token and payload.
    pub fn new(req: &Request) -> Result<Self, String> {
        let mut p = Packet::new();
        p.header.set_type(if req.confirmable {
            MessageType::Confirmable
        } else {
            MessageType::NonConfirmable
        });
        p.header.code = MessageClass::Request(req.method);
        p.set_token(vec![0; TOKEN_LEN]);
        if let Some(v) = req.observe {
            p.set_observe_value(v);
        }
        for s in req.path {
            p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
        }
        for q in req.query {
            p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
        }
        p.payload = vec![0; req.payload_len];
        let bytes = p
            .to_bytes()
            .map_err(|e| format!("encoding CoAP request: {e}"))?;
        Ok(Template {
            payload_at: bytes.len() - req.payload_len,
            bytes,
        })
    }

    /// The request with this message id, token and (a prefix of the) payload.
    pub fn fill(&mut self, msg_id: u16, token: u32, payload: &[u8]) -> &[u8] {
        self.bytes[2..4].copy_from_slice(&msg_id.to_be_bytes());
        self.bytes[4..4 + TOKEN_LEN].copy_from_slice(&token.to_be_bytes());
        let room = self.bytes.len() - self.payload_at;
        let n = payload.len().min(room);
        self.bytes[self.payload_at..self.payload_at + n].copy_from_slice(&payload[..n]);
        &self.bytes
    }
}

/// An empty ACK (RFC 7252 §4.2) of message `msg_id`.
pub fn empty_ack(msg_id: u16) -> [u8; 4] {
    let [hi, lo] = msg_id.to_be_bytes();
    // Version 1, type ACK (2), token length 0; code 0.00.
    [0x60, 0x00, hi, lo]
}

/// What a datagram means to the exchange of request `msg_id` with `token`.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A response with this code (`class * 100 + detail`, e.g. 204); `ack` is the message id
    /// to acknowledge when it came as a separate CON response.
    Response {
        /// e.g. 204 for 2.04.
        code: u16,
        /// Message id of a CON separate response, to ACK.
        ack: Option<u16>,
    },
    /// An empty ACK: the response comes later.
    EmptyAck,
    /// RST of our request.
    Reset,
    /// Not about this exchange.
    Other,
}

/// Numeric response code of a coap-lite class, e.g. 2.04 -> 204.
fn code_number(c: MessageClass) -> Option<u16> {
    let raw: u8 = c.into();
    (raw >> 5 >= 2).then(|| u16::from(raw >> 5) * 100 + u16::from(raw & 0x1F))
}

/// Classifies `datagram` against the request `msg_id`/`token`.
pub fn answer(datagram: &[u8], msg_id: u16, token: &[u8]) -> Answer {
    let Ok(p) = Packet::from_bytes(datagram) else {
        return Answer::Other;
    };
    let same_id = p.header.message_id == msg_id;
    match (p.header.get_type(), code_number(p.header.code)) {
        (MessageType::Reset, _) if same_id => Answer::Reset,
        (MessageType::Acknowledgement, None) if same_id => Answer::EmptyAck,
        (MessageType::Acknowledgement, Some(code)) if same_id && p.get_token() == token => {
            Answer::Response { code, ack: None }
        }
        (t @ (MessageType::Confirmable | MessageType::NonConfirmable), Some(code))
            if p.get_token() == token =>
        {
            let ack = (t == MessageType::Confirmable).then_some(p.header.message_id);
            Answer::Response { code, ack }
        }
        _ => Answer::Other,
    }
}

/// ACK_TIMEOUT × a factor in [1, `random_factor`) picked from `seed` (no RNG needed: the point is
/// only that 1,000 clients do not retransmit in lockstep).
pub fn coap_retry(
    ack_timeout: Duration,
    random_factor: f64,
    max_retransmit: u32,
    seed: u64,
) -> Retry {
    let frac = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    let f = 1.0 + (random_factor - 1.0).max(0.0) * frac;
    Retry {
        first: ack_timeout.mul_f64(f),
        factor: 2,
        max_retransmit,
    }
}

/// One CON exchange: send, wait for the response (retransmitting), ACK a separate one.
pub async fn request(
    sock: &UdpSocket,
    bytes: &[u8],
    msg_id: u16,
    token: &[u8],
    retry: Retry,
) -> Result<(u16, u64), ExchangeError> {
    let (a, n) = udp::exchange(sock, bytes, bytes, retry, |d| {
        match answer(d, msg_id, token) {
            Answer::Response { code, ack } => Reply::Done(Ok((code, ack))),
            Answer::Reset => Reply::Done(Err(())),
            Answer::EmptyAck => Reply::Pending,
            Answer::Other => Reply::Ignore,
        }
    })
    .await?;
    let (code, ack) = a.map_err(|()| ExchangeError::Refused("RST".into()))?;
    if let Some(id) = ack {
        let _ = sock.send(&empty_ack(id)).await;
    }
    Ok((code, n))
}

/// What one CoAP publisher does.
#[derive(Debug, Clone)]
pub struct CoapPubSpec {
    /// Publisher id in the payload stamp.
    pub id: u32,
    /// CON (`qos=1`, one exchange at a time) or NON (`qos=0`).
    pub confirmable: bool,
    /// Payload size.
    pub payload_len: usize,
    /// Messages per second (0 = as fast as possible).
    pub rate: f64,
    /// Publishing time.
    pub duration: Duration,
    /// Retransmission of CON requests.
    pub retry: Retry,
}

/// Publishes `template` (a POST) until the duration is over.
pub async fn publish(
    sock: UdpSocket,
    mut template: Template,
    spec: CoapPubSpec,
    live: Arc<Live>,
) -> PubOutcome {
    let mut out = PubOutcome::default();
    let mut payload = vec![0u8; spec.payload_len.max(stats::STAMP_LEN)];
    let start = Instant::now();
    let end = start + spec.duration;
    let mut seq: u64 = 0;
    // Start message ids apart per client; they only need to be unique per endpoint.
    let mut msg_id = (spec.id as u16).wrapping_mul(7919);
    while Instant::now() < end {
        if udp::budget(start, Instant::now(), spec.rate, seq) == 0 {
            if let Some(due) = udp::next_due(start, spec.rate, seq) {
                tokio::time::sleep_until(due.min(end)).await;
            }
            continue;
        }
        stats::stamp(&mut payload, spec.id, seq, stats::now_ns());
        msg_id = msg_id.wrapping_add(1);
        let token = seq as u32;
        let bytes = template.fill(msg_id, token, &payload);
        seq += 1;
        Live::add(&live.sent, 1);
        if !spec.confirmable {
            if let Err(e) = sock.send(bytes).await {
                out.error = Some(e.to_string());
                break;
            }
            if seq % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
            }
            continue;
        }
        match request(&sock, bytes, msg_id, &token.to_be_bytes(), spec.retry).await {
            Ok((204, n)) => {
                out.retransmits += n;
                out.acked += 1;
                Live::add(&live.acked, 1);
            }
            Ok((code, _)) => {
                out.error = Some(format!("POST answered {}.{:02}", code / 100, code % 100));
                break;
            }
            Err(e) => {
                out.error = Some(format!("message {}: {e}", seq - 1));
                break;
            }
        }
    }
    out.sent = seq;
    out
}

/// An observer after its registration.
pub struct Observer {
    /// Its socket, connected to the gateway.
    pub sock: UdpSocket,
    /// The token of the observation.
    pub token: [u8; TOKEN_LEN],
    /// The next message id to use.
    pub msg_id: u16,
    /// Retransmissions of the registration.
    pub retransmits: u64,
}

/// Registers an observation: CON GET `path` with Observe=0, answered 2.05.
pub async fn register(
    sock: UdpSocket,
    n: u32,
    path: &[&str],
    retry: Retry,
) -> Result<Observer, ExchangeError> {
    let mut t = Template::new(&Request {
        confirmable: true,
        method: RequestType::Get,
        path,
        query: &[],
        observe: Some(0),
        payload_len: 0,
    })
    .map_err(ExchangeError::Refused)?;
    let msg_id = (n as u16).wrapping_mul(7919);
    let token = n.wrapping_add(0x5000_0000);
    let bytes = t.fill(msg_id, token, &[]).to_vec();
    let (code, retransmits) = request(&sock, &bytes, msg_id, &token.to_be_bytes(), retry).await?;
    if code != 205 {
        return Err(ExchangeError::Refused(format!(
            "GET Observe answered {}.{:02}",
            code / 100,
            code % 100
        )));
    }
    Ok(Observer {
        sock,
        token: token.to_be_bytes(),
        msg_id: msg_id.wrapping_add(1),
        retransmits,
    })
}

/// A notification for `token`: (its payload, the message id to ACK when CON).
pub fn notification<'a>(p: &'a Packet, token: &[u8]) -> Option<(&'a [u8], Option<u16>)> {
    if p.get_token() != token || code_number(p.header.code) != Some(205) {
        return None;
    }
    let ack = match p.header.get_type() {
        MessageType::Confirmable => Some(p.header.message_id),
        MessageType::NonConfirmable | MessageType::Acknowledgement => None,
        MessageType::Reset => return None,
    };
    Some((&p.payload, ack))
}

/// Counts notifications until `stop` (ACKing CON ones), then deregisters (NON GET Observe=1,
/// not waited for).
pub async fn observe(
    mut o: Observer,
    path: Vec<String>,
    live: Arc<Live>,
    stop: CancellationToken,
) -> (SubObservation, Option<String>) {
    let mut obs = SubObservation::default();
    let mut buf = vec![0u8; 2048];
    let mut error = None;
    loop {
        let n = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = o.sock.recv(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => { error = Some(e.to_string()); break; }
            },
        };
        let Ok(p) = Packet::from_bytes(buf.get(..n).unwrap_or_default()) else {
            continue;
        };
        let Some((payload, ack)) = notification(&p, &o.token) else {
            continue;
        };
        if let Some(id) = ack {
            if let Err(e) = o.sock.send(&empty_ack(id)).await {
                error = Some(e.to_string());
                break;
            }
        }
        if payload.is_empty() {
            continue;
        }
        let now = stats::now_ns();
        obs.record(payload, now, false);
        Live::add(&live.received, 1);
        live.last_rx_ns.fetch_max(now, Ordering::Relaxed);
    }
    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
    if let Ok(mut t) = Template::new(&Request {
        confirmable: false,
        method: RequestType::Get,
        path: &segs,
        query: &[],
        observe: Some(1),
        payload_len: 0,
    }) {
        let token = u32::from_be_bytes(o.token);
        o.msg_id = o.msg_id.wrapping_add(1);
        let _ = o.sock.send(t.fill(o.msg_id, token, &[])).await;
    }
    (obs, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coap_lite::ResponseType;

    fn post(confirmable: bool) -> Template {
        Template::new(&Request {
            confirmable,
            method: RequestType::Post,
            path: &["ps", "bench", "coap", "3"],
            query: &["qos=1"],
            observe: None,
            payload_len: 24,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn patched_template_decodes_as_the_request() {
        let mut t = post(true);
        let payload = [7u8; 24];
        let bytes = t.fill(0xBEEF, 0x0102_0304, &payload).to_vec();
        let p = Packet::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.header.get_type(), MessageType::Confirmable);
        assert_eq!(p.header.code, MessageClass::Request(RequestType::Post));
        assert_eq!(p.header.message_id, 0xBEEF);
        assert_eq!(p.get_token(), &[1, 2, 3, 4]);
        let path: Vec<_> = p
            .get_option(CoapOption::UriPath)
            .map(|l| {
                l.iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(path, ["ps", "bench", "coap", "3"]);
        assert_eq!(
            p.get_first_option(CoapOption::UriQuery),
            Some(&b"qos=1".to_vec())
        );
        assert_eq!(p.payload, payload);
        let non = post(false).fill(1, 1, &payload).to_vec();
        let p = Packet::from_bytes(&non).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.header.get_type(), MessageType::NonConfirmable);
    }

    fn reply(t: MessageType, code: MessageClass, msg_id: u16, token: &[u8]) -> Vec<u8> {
        let mut p = Packet::new();
        p.header.set_type(t);
        p.header.code = code;
        p.header.message_id = msg_id;
        p.set_token(token.to_vec());
        p.to_bytes().unwrap_or_default()
    }

    #[test]
    fn answers_are_matched_by_id_and_token() {
        let tok = [0, 0, 0, 9];
        let changed = MessageClass::Response(ResponseType::Changed);
        let ack = reply(MessageType::Acknowledgement, changed, 5, &tok);
        assert_eq!(
            answer(&ack, 5, &tok),
            Answer::Response {
                code: 204,
                ack: None
            }
        );
        assert_eq!(answer(&ack, 6, &tok), Answer::Other, "another exchange");
        assert_eq!(answer(&empty_ack(5), 5, &tok), Answer::EmptyAck);
        let sep = reply(MessageType::Confirmable, changed, 77, &tok);
        assert_eq!(
            answer(&sep, 5, &tok),
            Answer::Response {
                code: 204,
                ack: Some(77)
            }
        );
        let rst = reply(MessageType::Reset, MessageClass::Empty, 5, &[]);
        assert_eq!(answer(&rst, 5, &tok), Answer::Reset);
        let bad = reply(
            MessageType::Acknowledgement,
            MessageClass::Response(ResponseType::BadRequest),
            5,
            &tok,
        );
        assert_eq!(
            answer(&bad, 5, &tok),
            Answer::Response {
                code: 400,
                ack: None
            }
        );
        assert_eq!(answer(&[1, 2], 5, &tok), Answer::Other);
    }

    #[test]
    fn empty_ack_is_valid_coap() {
        let p = Packet::from_bytes(&empty_ack(0x1234)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.header.get_type(), MessageType::Acknowledgement);
        assert_eq!(p.header.code, MessageClass::Empty);
        assert_eq!(p.header.message_id, 0x1234);
    }

    #[test]
    fn notifications_are_told_con_from_non() {
        let tok = [1, 2, 3, 4];
        let content = MessageClass::Response(ResponseType::Content);
        let mut p = Packet::from_bytes(&reply(MessageType::Confirmable, content, 9, &tok))
            .unwrap_or_default();
        p.payload = b"x".to_vec();
        assert_eq!(notification(&p, &tok), Some((&b"x"[..], Some(9))));
        p.header.set_type(MessageType::NonConfirmable);
        assert_eq!(notification(&p, &tok), Some((&b"x"[..], None)));
        assert_eq!(notification(&p, &[9, 9, 9, 9]), None, "another observation");
    }

    #[test]
    fn retry_jitter_stays_within_the_random_factor() {
        for seed in 0..1000 {
            let r = coap_retry(Duration::from_secs(2), 1.5, 4, seed);
            assert!(r.first >= Duration::from_secs(2) && r.first < Duration::from_secs(3));
            assert_eq!(r.factor, 2);
        }
    }
}
