//! The seed corpora of the CoAP gateway's targets: messages built with coap-lite as clients
//! send them, and small gateway programs. `cargo test -p switchyard-coap write_seed_corpora
//! -- --ignored` rewrites `fuzz/seeds/coap_*/gen-*`; crash regressions sit beside them.

use crate::transport::wire::{self, code, Block};
use coap_lite::{CoapOption, MessageType, Packet};

fn packet(t: MessageType, c: u8, mid: u16, token: &[u8]) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(t);
    p.header.message_id = mid;
    wire::set_code(&mut p, c);
    p.set_token(token.to_vec());
    p
}

fn path(p: &mut Packet, segments: &[&str], query: &[&str]) {
    for s in segments {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
}

fn message_seeds() -> Vec<(String, Vec<u8>)> {
    let con = MessageType::Confirmable;
    let mut observe = packet(con, code::GET, 1, b"ob");
    path(&mut observe, &["ps", "a%2Fb"], &["c=cl1", "q=1", "rh=0"]);
    observe.set_observe_value(0);
    let mut publish = packet(MessageType::NonConfirmable, code::POST, 2, b"");
    path(
        &mut publish,
        &["ps", "a", "b"],
        &["clientid=cl1", "token=42", "retain=true"],
    );
    publish.payload = b"21.5".to_vec();
    let mut create = packet(con, code::POST, 3, b"\x01\x02\x03\x04\x05\x06\x07\x08");
    path(
        &mut create,
        &["mqtt", "connection"],
        &["clientid=cl1", "username=u", "password=p"],
    );
    let mut block1 = packet(con, code::PUT, 4, b"b1");
    path(&mut block1, &["ps", "a"], &[]);
    let b = Block {
        num: 1,
        more: true,
        szx: 2,
    };
    block1.add_option(CoapOption::Block1, b.to_bytes());
    wire::set_uint_option(&mut block1, CoapOption::Size1, 4096);
    block1.payload = vec![0x55; 64];
    let mut ack = packet(MessageType::Acknowledgement, code::CONTENT, 5, b"ob");
    ack.set_observe_value(7);
    ack.add_option(
        CoapOption::Block2,
        Block {
            num: 0,
            more: true,
            szx: 6,
        }
        .to_bytes(),
    );
    wire::set_uint_option(&mut ack, CoapOption::Size2, 5000);
    ack.add_option(CoapOption::ContentFormat, vec![0]);
    ack.payload = vec![0xAA; 1024];
    let mut critical = packet(con, code::GET, 6, b"");
    critical.add_option(CoapOption::Unknown(2049), vec![1]);
    let all = [
        ("observe", observe),
        ("publish", publish),
        ("create", create),
        ("block1", block1),
        ("ack-block2", ack),
        ("critical", critical),
        ("ping", packet(con, code::EMPTY, 7, b"")),
        ("reset", packet(MessageType::Reset, code::EMPTY, 8, b"")),
    ];
    all.into_iter()
        .map(|(n, p)| {
            (
                format!("gen-{n}"),
                p.to_bytes_unlimited().unwrap_or_default(),
            )
        })
        .collect()
}

fn channel_seeds() -> Vec<(String, Vec<u8>)> {
    let prog = |header: &[u8], parts: &[&[u8]]| {
        let mut b = header.to_vec();
        for p in parts {
            b.extend_from_slice(p);
        }
        b
    };
    vec![
        (
            "gen-observe-publish".into(),
            prog(
                // Connectionless, notify by QoS, heartbeat 31 s.
                &[0, 0, 30, 0, 9],
                &[
                    &[0, 1, 1, 0, 1, 2, b'x', b'y', 1, 0, 5, 0, 0, 1, 1], // observe "a" QoS 1
                    &[0, 8, 0, 1],                                        // server publishes
                    &[0, 5, 0, 1, 0],                                     // empty ACK
                    &[0, 8, 0, 0],
                    &[0, 2, 1, 0, 2, 0, 1, 0, 2, 1, 1, 0], // POST /ps/a/b QoS 1
                    &[0, 7, 10, 1],
                ],
            ),
        ),
        (
            "gen-connection-mode".into(),
            prog(
                // Connection mode, CON notifications, heartbeat 61 s.
                &[1, 1, 60, 0, 3],
                &[
                    &[0, 1, 1, 0, 1, 0, 1, 0, 0, 0],                      // create
                    &[0, 1, 1, 0, 2, 2, b't', b'k', 1, 2, 5, 1, 0, 1, 1], // observe "a/b"
                    &[0, 9, 1, 2],                                        // server publishes
                    &[0, 5, 0, 1, 0],                                     // empty ACK
                    &[0, 1, 1, 0, 3, 0, 1, 1, 2, 0, 1, 0],                // stale token
                    &[0, 1, 1, 0, 4, 0, 1, 2, 0, 3],                      // delete
                ],
            ),
        ),
    ]
}

#[test]
#[ignore = "rewrites fuzz/seeds/coap_*/gen-*; run when the formats change"]
fn write_seed_corpora() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");
    for (target, seeds) in [
        ("coap_message", message_seeds()),
        ("coap_channel", channel_seeds()),
    ] {
        let dir = std::path::Path::new(root).join(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
