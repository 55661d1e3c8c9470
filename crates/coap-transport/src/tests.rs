//! Transport tests on paused tokio time: retransmission schedule, dedup, RST cases,
//! block-wise transfers, separate responses, client-side observe.

use super::*;
use std::net::SocketAddr;

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn cfg(factor: f64) -> TransportConfig {
    TransportConfig {
        ack_timeout: Duration::from_secs(2),
        ack_random_factor: factor,
        max_retransmit: 4,
        max_block_size: 1024,
        max_body_size: 4096,
    }
}

fn request(t: MessageType, mid: u16, token: &[u8], c: u8, path: &[&str]) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(t);
    p.header.message_id = mid;
    p.set_token(token.to_vec());
    set_code(&mut p, c);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    p
}

fn bytes(p: &Packet) -> Vec<u8> {
    p.to_bytes_unlimited().unwrap_or_else(|e| panic!("{e}"))
}

fn sent(t: &mut Transport<u32>) -> Vec<Packet> {
    let mut out = Vec::new();
    while let Some((_, b)) = t.poll_transmit() {
        out.push(Packet::from_bytes(&b).unwrap_or_else(|e| panic!("{e}")));
    }
    out
}

fn only_request(ev: Vec<Event<u32>>) -> Request {
    let mut ev = ev.into_iter();
    match (ev.next(), ev.next()) {
        (Some(Event::Request(r)), None) => r,
        other => panic!("expected one request, got {other:?}"),
    }
}

fn notification(token: &[u8]) -> Packet {
    let mut p = response(code::CONTENT);
    p.set_token(token.to_vec());
    p.set_observe_value(1);
    p.payload = b"hello".to_vec();
    p
}

#[tokio::test(start_paused = true)]
async fn con_retransmission_schedule_doubles_then_times_out() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.0), 7);
    let t0 = now();
    let mid = t.notify(peer(), notification(b"tk"), true, 9, "/ps/a", t0);
    assert_eq!(sent(&mut t).len(), 1);
    // ACK_TIMEOUT 2 s doubling: retransmissions at 2, 6, 14, 30 s; timeout at 62 s.
    let mut at = Vec::new();
    let mut timed_out = None;
    for _ in 0..70 {
        tokio::time::advance(Duration::from_secs(1)).await;
        let ev = t.poll(now());
        for p in sent(&mut t) {
            assert_eq!(p.header.message_id, mid);
            at.push(now().duration_since(t0).as_secs());
        }
        for e in ev {
            match e {
                Event::Timeout { tag, .. } => {
                    timed_out = Some((tag, now().duration_since(t0).as_secs()))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(at, vec![2, 6, 14, 30]);
    assert_eq!(timed_out, Some((9, 62)));
    assert_eq!(t.pending_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn first_timeout_is_randomised_within_the_factor() {
    for seed in 0..20 {
        let mut t: Transport<u32> = Transport::with_seed(cfg(1.5), seed);
        let t0 = now();
        t.notify(peer(), notification(b"tk"), true, 1, "/ps/a", t0);
        let first = t.next_deadline().map(|d| d.duration_since(t0));
        let first = first.unwrap_or_else(|| panic!("no deadline"));
        assert!(first >= Duration::from_secs(2) && first <= Duration::from_secs(3));
    }
}

#[tokio::test(start_paused = true)]
async fn ack_stops_retransmission_and_is_reported() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.0), 1);
    let mid = t.notify(peer(), notification(b"tk"), true, 5, "/ps/a", now());
    sent(&mut t);
    let ack = empty(MessageType::Acknowledgement, mid);
    let ev = t.handle_datagram(peer(), &ack, now());
    assert!(matches!(ev.as_slice(), [Event::Acked { tag: 5, .. }]));
    tokio::time::advance(Duration::from_secs(100)).await;
    assert!(t.poll(now()).is_empty());
    assert!(sent(&mut t).is_empty());
    // A second ACK matches nothing and is ignored (RFC 7252 §4.2).
    assert!(t.handle_datagram(peer(), &ack, now()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn duplicate_con_gets_the_cached_reply_and_is_not_handed_up_again() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.5), 1);
    let req = bytes(&request(
        MessageType::Confirmable,
        77,
        b"ab",
        code::POST,
        &["ps", "t"],
    ));
    let r = only_request(t.handle_datagram(peer(), &req, now()));
    t.respond(&r.exchange, response(code::CHANGED), now());
    let first = sent(&mut t);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].header.get_type(), MessageType::Acknowledgement);
    assert_eq!(first[0].header.message_id, 77);
    assert_eq!(first[0].get_token(), b"ab");
    assert_eq!(code_of(&first[0]), code::CHANGED);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(t.handle_datagram(peer(), &req, now()).is_empty());
    assert_eq!(sent(&mut t), first);
    // After EXCHANGE_LIFETIME the id is new again.
    tokio::time::advance(t.config().exchange_lifetime()).await;
    assert_eq!(t.poll(now()).len(), 0);
    only_request(t.handle_datagram(peer(), &req, now()));
}

#[tokio::test(start_paused = true)]
async fn duplicate_non_is_ignored() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.5), 1);
    let req = bytes(&request(
        MessageType::NonConfirmable,
        5,
        b"x",
        code::POST,
        &["ps", "t"],
    ));
    let r = only_request(t.handle_datagram(peer(), &req, now()));
    t.respond(&r.exchange, response(code::CHANGED), now());
    let out = sent(&mut t);
    assert_eq!(out[0].header.get_type(), MessageType::NonConfirmable);
    assert!(t.handle_datagram(peer(), &req, now()).is_empty());
    assert!(sent(&mut t).is_empty());
}

#[tokio::test(start_paused = true)]
async fn rst_cases() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.5), 1);
    // Empty CON (ping) → RST with its message id.
    t.handle_datagram(peer(), &empty(MessageType::Confirmable, 300), now());
    let out = sent(&mut t);
    assert_eq!(out[0].header.get_type(), MessageType::Reset);
    assert_eq!(out[0].header.message_id, 300);
    // A CON response nobody asked for → RST.
    let mut unknown = response(code::CONTENT);
    unknown.header.set_type(MessageType::Confirmable);
    unknown.header.message_id = 301;
    unknown.set_token(b"zz".to_vec());
    t.handle_datagram(peer(), &bytes(&unknown), now());
    let out = sent(&mut t);
    assert_eq!(out[0].header.get_type(), MessageType::Reset);
    assert_eq!(out[0].header.message_id, 301);
    // Format error (payload marker, no payload) → RST.
    t.handle_datagram(peer(), &[0x40, 0x02, 0x01, 0x2e, 0xff], now());
    let out = sent(&mut t);
    assert_eq!(out[0].header.get_type(), MessageType::Reset);
    assert_eq!(out[0].header.message_id, 302);
    // RST to our CON notification and to a NON one → Reset events with their tags.
    let con = t.notify(peer(), notification(b"a"), true, 11, "/ps/a", now());
    let non = t.notify(peer(), notification(b"b"), false, 12, "/ps/b", now());
    let ev = t.handle_datagram(peer(), &empty(MessageType::Reset, con), now());
    assert!(matches!(ev.as_slice(), [Event::Reset { tag: 11, .. }]));
    let ev = t.handle_datagram(peer(), &empty(MessageType::Reset, non), now());
    assert!(matches!(ev.as_slice(), [Event::Reset { tag: 12, .. }]));
    assert_eq!(t.pending_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn unknown_critical_option_gets_4_02() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.5), 1);
    let mut req = request(MessageType::Confirmable, 9, b"q", code::GET, &["ps", "t"]);
    req.add_option(CoapOption::Unknown(2049), vec![1]);
    assert!(t.handle_datagram(peer(), &bytes(&req), now()).is_empty());
    let out = sent(&mut t);
    assert_eq!(code_of(&out[0]), code::BAD_OPTION);
    // An unknown elective (even) option is ignored.
    let mut req = request(MessageType::Confirmable, 10, b"q", code::GET, &["ps", "t"]);
    req.add_option(CoapOption::Unknown(2048), vec![1]);
    only_request(t.handle_datagram(peer(), &bytes(&req), now()));
}

fn block1_request(mid: u16, num: u32, more: bool, szx: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = request(
        MessageType::Confirmable,
        mid,
        b"b1",
        code::POST,
        &["ps", "big"],
    );
    p.add_option(CoapOption::Block1, Block { num, more, szx }.to_bytes());
    p.payload = payload.to_vec();
    bytes(&p)
}

#[tokio::test(start_paused = true)]
async fn block1_reassembly_continue_then_complete_with_echo() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.5), 1);
    let body: Vec<u8> = (0..40u8).collect();
    for (i, chunk) in body.chunks(16).enumerate() {
        let num = u32::try_from(i).unwrap_or(0);
        let more = (i + 1) * 16 < body.len();
        let ev = t.handle_datagram(
            peer(),
            &block1_request(100 + num as u16, num, more, 0, chunk),
            now(),
        );
        if more {
            assert!(ev.is_empty());
            let out = sent(&mut t);
            assert_eq!(code_of(&out[0]), code::CONTINUE);
            let b = wire::block_option(&out[0], CoapOption::Block1);
            assert_eq!(
                b,
                Some(Ok(Block {
                    num,
                    more: true,
                    szx: 0
                }))
            );
        } else {
            let r = only_request(ev);
            assert_eq!(r.packet.payload, body);
            assert!(r.packet.get_first_option(CoapOption::Block1).is_none());
            t.respond(&r.exchange, response(code::CHANGED), now());
            let out = sent(&mut t);
            assert_eq!(code_of(&out[0]), code::CHANGED);
            let b = wire::block_option(&out[0], CoapOption::Block1);
            assert_eq!(
                b,
                Some(Ok(Block {
                    num: 2,
                    more: false,
                    szx: 0
                }))
            );
        }
    }
    assert_eq!(t.assemblies_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn block1_out_of_order_and_too_large() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.5), 1);
    // Block 1 without block 0 → 4.08.
    t.handle_datagram(peer(), &block1_request(1, 1, true, 0, &[0; 16]), now());
    assert_eq!(code_of(&sent(&mut t)[0]), code::REQUEST_ENTITY_INCOMPLETE);
    // Size1 above the 4096-byte limit → 4.13 with our Size1.
    let mut p = request(
        MessageType::Confirmable,
        2,
        b"s",
        code::POST,
        &["ps", "big"],
    );
    p.add_option(
        CoapOption::Block1,
        Block {
            num: 0,
            more: true,
            szx: 6,
        }
        .to_bytes(),
    );
    wire::set_uint_option(&mut p, CoapOption::Size1, 10_000);
    p.payload = vec![0; 1024];
    t.handle_datagram(peer(), &bytes(&p), now());
    let out = sent(&mut t);
    assert_eq!(code_of(&out[0]), code::REQUEST_ENTITY_TOO_LARGE);
    assert_eq!(
        wire::uint_option(&out[0], CoapOption::Size1),
        Some(Ok(4096))
    );
    // Growing past the limit without Size1 → 4.13 as well.
    for i in 0..4u32 {
        t.handle_datagram(
            peer(),
            &block1_request(10 + i as u16, i, true, 6, &[1; 1024]),
            now(),
        );
        assert_eq!(code_of(&sent(&mut t)[0]), code::CONTINUE);
    }
    t.handle_datagram(peer(), &block1_request(20, 4, false, 6, &[1; 10]), now());
    assert_eq!(code_of(&sent(&mut t)[0]), code::REQUEST_ENTITY_TOO_LARGE);
}

#[tokio::test(start_paused = true)]
async fn block2_large_response_and_follow_up_blocks() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.5), 1);
    let body: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let req = bytes(&request(
        MessageType::Confirmable,
        1,
        b"g",
        code::GET,
        &["ps", "t"],
    ));
    let r = only_request(t.handle_datagram(peer(), &req, now()));
    let mut resp = response(code::CONTENT);
    resp.payload = body.clone();
    t.respond(&r.exchange, resp, now());
    let first = sent(&mut t).remove(0);
    assert_eq!(first.payload, body[..1024]);
    assert_eq!(
        wire::block_option(&first, CoapOption::Block2),
        Some(Ok(Block {
            num: 0,
            more: true,
            szx: 6
        }))
    );
    assert_eq!(wire::uint_option(&first, CoapOption::Size2), Some(Ok(2500)));
    let mut got = first.payload.clone();
    for num in 1..3u32 {
        let mut p = request(
            MessageType::Confirmable,
            1 + num as u16,
            b"h",
            code::GET,
            &["ps", "t"],
        );
        p.add_option(
            CoapOption::Block2,
            Block {
                num,
                more: false,
                szx: 6,
            }
            .to_bytes(),
        );
        assert!(t.handle_datagram(peer(), &bytes(&p), now()).is_empty());
        let out = sent(&mut t).remove(0);
        let b = wire::block_option(&out, CoapOption::Block2);
        assert_eq!(
            b,
            Some(Ok(Block {
                num,
                more: num < 2,
                szx: 6
            }))
        );
        got.extend_from_slice(&out.payload);
    }
    assert_eq!(got, body);
}

#[tokio::test(start_paused = true)]
async fn slow_answer_gets_empty_ack_then_separate_con_response() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.0), 1);
    let req = bytes(&request(
        MessageType::Confirmable,
        42,
        b"s",
        code::POST,
        &["ps", "t"],
    ));
    let r = only_request(t.handle_datagram(peer(), &req, now()));
    tokio::time::advance(Duration::from_millis(1001)).await;
    t.poll(now());
    let out = sent(&mut t);
    assert_eq!(out[0].header.get_type(), MessageType::Acknowledgement);
    assert_eq!(code_of(&out[0]), code::EMPTY);
    t.respond(&r.exchange, response(code::CHANGED), now());
    let out = sent(&mut t);
    assert_eq!(out[0].header.get_type(), MessageType::Confirmable);
    assert_eq!(out[0].get_token(), b"s");
    assert_eq!(t.pending_len(), 1);
}

#[tokio::test(start_paused = true)]
async fn client_side_observe_keeps_the_token_until_cancelled() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.5), 3);
    let mut get = request(MessageType::Confirmable, 0, b"", code::GET, &["3", "0"]);
    get.set_observe_value(0);
    let token = t.request(peer(), get, true, true, 8, now());
    assert_eq!(token.len(), 8);
    let req = sent(&mut t).remove(0);
    assert_eq!(req.get_token(), token.as_slice());
    // Piggybacked 2.05 with Observe → Response, the token stays registered.
    let mut ack = notification(&token);
    ack.header.set_type(MessageType::Acknowledgement);
    ack.header.message_id = req.header.message_id;
    let ev = t.handle_datagram(peer(), &bytes(&ack), now());
    assert!(matches!(ev.as_slice(), [Event::Response { tag: 8, .. }]));
    // A CON notification → empty ACK and another Response.
    let mut n = notification(&token);
    n.header.set_type(MessageType::Confirmable);
    n.header.message_id = 900;
    let ev = t.handle_datagram(peer(), &bytes(&n), now());
    assert!(matches!(ev.as_slice(), [Event::Response { tag: 8, .. }]));
    let out = sent(&mut t);
    assert_eq!(out[0].header.get_type(), MessageType::Acknowledgement);
    // Cancelled: the next notification is rejected with RST (RFC 7641 §3.6).
    t.cancel_request(peer(), &token);
    n.header.message_id = 901;
    assert!(t.handle_datagram(peer(), &bytes(&n), now()).is_empty());
    assert_eq!(sent(&mut t)[0].header.get_type(), MessageType::Reset);
}

#[tokio::test(start_paused = true)]
async fn request_with_token_uses_the_given_token_and_never_an_empty_one() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.5), 4);
    let get = request(MessageType::Confirmable, 0, b"", code::GET, &["3", "0"]);
    let token = t.request_with_token(peer(), get.clone(), true, false, b"abc".to_vec(), 1, now());
    assert_eq!(token, b"abc");
    let req = sent(&mut t).remove(0);
    assert_eq!(req.get_token(), b"abc");
    // The reply with that token is matched.
    let mut ack = response(code::CONTENT);
    ack.header.set_type(MessageType::Acknowledgement);
    ack.header.message_id = req.header.message_id;
    ack.set_token(b"abc".to_vec());
    let ev = t.handle_datagram(peer(), &bytes(&ack), now());
    assert!(matches!(ev.as_slice(), [Event::Response { tag: 1, .. }]));
    // An empty token is replaced by a fresh 8-byte one.
    let token = t.request_with_token(peer(), get, true, false, Vec::new(), 2, now());
    assert_eq!(token.len(), 8);
    assert_eq!(sent(&mut t)[0].get_token(), token.as_slice());
}

/// Fuzzing regression (coap_channel, fuzz/seeds/coap_channel/regress-ack-with-code): an ACK with
/// a non-empty code to a CON notification (or with a token that is not the request's) removed
/// the message from the retransmission set without any event, so the observer's channel waited
/// for its CON window forever and every later notification stayed queued.
#[tokio::test(start_paused = true)]
async fn ack_with_a_code_still_acknowledges() {
    let mut t: Transport<u32> = Transport::with_seed(cfg(1.0), 7);
    let mid = t.notify(peer(), notification(b"tk"), true, 9, "/ps/a", now());
    sent(&mut t);
    let ack = request(MessageType::Acknowledgement, mid, b"", code::GET, &[]);
    let ev = t.handle_datagram(peer(), &bytes(&ack), now());
    assert!(
        matches!(ev.as_slice(), [Event::Acked { tag: 9, .. }]),
        "{ev:?}"
    );
    // A piggybacked "response" whose token is not the request's acknowledges it too; the
    // request's own response may still come separately.
    let get = request(MessageType::Confirmable, 0, b"", code::GET, &["3"]);
    t.request_with_token(peer(), get, true, false, b"rq".to_vec(), 5, now());
    let mid = sent(&mut t)[0].header.message_id;
    let mut other = request(MessageType::Acknowledgement, mid, b"xx", code::CONTENT, &[]);
    other.payload = b"1".to_vec();
    let ev = t.handle_datagram(peer(), &bytes(&other), now());
    assert!(
        matches!(ev.as_slice(), [Event::Acked { tag: 5, .. }]),
        "{ev:?}"
    );
    let mut late = request(MessageType::NonConfirmable, 77, b"rq", code::CONTENT, &[]);
    late.payload = b"2".to_vec();
    let ev = t.handle_datagram(peer(), &bytes(&late), now());
    assert!(
        matches!(ev.as_slice(), [Event::Response { tag: 5, .. }]),
        "{ev:?}"
    );
}
