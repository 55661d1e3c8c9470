//! The seed corpora of the LwM2M targets: payloads of every format as devices send them (the
//! examples of the codec and command tests), built with the encoders where there is one, and
//! small device programs. `cargo test -p switchyard-lwm2m write_seed_corpora -- --ignored`
//! rewrites `fuzz/seeds/lwm2m_*/gen-*`; crash regressions sit beside them.

use crate::codec::tlv::{self, Kind, Tlv};
use crate::codec::{senml, Typed, WriteItem};
use crate::path::Path;

fn item(rel: &[u16], value: Typed) -> WriteItem {
    WriteItem {
        rel: rel.to_vec(),
        value,
    }
}

fn tlv_seeds() -> Vec<(String, Vec<u8>)> {
    let device = vec![
        Tlv::value(Kind::Resource, 0, b"Open Mobile Alliance".to_vec()),
        Tlv::value(Kind::Resource, 9, tlv::encode_int(80)),
        Tlv::container(
            Kind::MultipleResource,
            6,
            vec![
                Tlv::value(Kind::ResourceInstance, 0, tlv::encode_int(1)),
                Tlv::value(Kind::ResourceInstance, 1, tlv::encode_int(5)),
            ],
        ),
        Tlv::value(Kind::Resource, 13, tlv::encode_int(1_367_491_215)),
        Tlv::value(Kind::Resource, 300, vec![7; 300]),
    ];
    let instance = vec![Tlv::container(Kind::ObjectInstance, 0, device.clone())];
    let mut out = vec![
        (
            "gen-resources".into(),
            tlv::encode(&device).unwrap_or_default(),
        ),
        (
            "gen-instance".into(),
            tlv::encode(&instance).unwrap_or_default(),
        ),
        ("gen-float".into(), tlv::encode_float(21.5)),
        ("gen-objlnk".into(), tlv::encode_objlnk(3, 0)),
    ];
    out.push(("gen-int8".into(), tlv::encode_int(-1_234_567_890_123)));
    out
}

fn items() -> Vec<WriteItem> {
    vec![
        item(&[], Typed::Float(21.5)),
        item(&[1], Typed::String("Cel".into())),
        item(&[2], Typed::Boolean(true)),
        item(&[3, 0], Typed::Opaque(vec![1, 2, 3])),
        item(&[4], Typed::Integer(-7)),
        item(&[5], Typed::Unsigned(u64::MAX)),
        item(&[6], Typed::Objlnk(3, 0)),
    ]
}

fn json_seeds() -> Vec<(String, Vec<u8>)> {
    let lwm2m = br#"{"bn":"/3/0/","e":[{"n":"0","sv":"EMQ"},{"n":"9","v":80},{"n":"6/0","v":1},{"n":"1","bv":true},{"n":"2","ov":"3:0"}]}"#;
    vec![
        ("gen-device".into(), lwm2m.to_vec()),
        ("gen-no-bn".into(), br#"{"e":[{"n":"","v":1.5}]}"#.to_vec()),
    ]
}

fn senml_json_seeds() -> Vec<(String, Vec<u8>)> {
    let target = Path::parse("/3303/0").unwrap_or_else(|| panic!("path"));
    let s = br#"[{"bn":"/3303/0/","n":"5700","v":21.5},{"n":"5701","vs":"Cel"},{"n":"5850","vb":true},{"n":"1","vd":"AQID"},{"n":"2","vlo":"3:0"}]"#;
    vec![
        ("gen-device".into(), s.to_vec()),
        (
            "gen-encoded".into(),
            senml::encode_senml_json(&target, &items()),
        ),
        // Read by the round-trip half as: target /3/0, then items.
        (
            "gen-items".into(),
            vec![0, 0, 3, 0, 0, 1, 0, 1, 0, 0, 0, 9, 5, 1, 7, 2, 4, b'a'],
        ),
    ]
}

fn senml_cbor_seeds() -> Vec<(String, Vec<u8>)> {
    let target = Path::parse("/3/0").unwrap_or_else(|| panic!("path"));
    vec![(
        "gen-encoded".into(),
        senml::encode_senml_cbor(&target, &items()),
    )]
}

fn link_seeds() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "gen-register".into(),
            b"ep=dev1&lt=300&lwm2m=1.1&b=UQ&device_id=d1\n</1/0>,</3/0>,</3303/0>".to_vec(),
        ),
        (
            "gen-alternate".into(),
            b"ep=dev2&lt=60&lwm2m=1.0\n</lwm2m>;rt=\"oma.lwm2m\";ct=11543,</lwm2m/3/0>;ver=1.1,</lwm2m/5/0>"
                .to_vec(),
        ),
        ("gen-percent".into(), b"ep=a%2Fb&lt=0&lwm2m=1&apn=Ctnb\n<>".to_vec()),
    ]
}

fn command_seeds() -> Vec<(String, Vec<u8>)> {
    let with_reply = |cmd: &str, reply: &[u8]| {
        let mut v = cmd.as_bytes().to_vec();
        v.push(0);
        v.extend_from_slice(reply);
        v
    };
    let tlv_reply = {
        // 2.05, TLV, no Observe, then the payload.
        let mut r = vec![0, 1, 0];
        r.extend(tlv::encode(&[Tlv::value(Kind::Resource, 9, vec![80])]).unwrap_or_default());
        r
    };
    vec![
        (
            "gen-read".into(),
            with_reply(r#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/9"}}"#, &tlv_reply),
        ),
        (
            "gen-write".into(),
            br#"{"msgType":"write","data":{"basePath":"/3/0/13","content":[{"type":"Float","value":"12345.0"}]}}"#
                .to_vec(),
        ),
        (
            "gen-write-attr".into(),
            br#"{"msgType":"write-attr","data":{"path":"/3/0/9","pmin":"1","pmax":60,"lt":"5"}}"#
                .to_vec(),
        ),
        (
            "gen-observe".into(),
            with_reply(
                r#"{"msgType":"observe","data":{"path":"/3/0/9?pmin=10"}}"#,
                &[0, 3, 1, 5, b'[', b']'],
            ),
        ),
        (
            "gen-execute".into(),
            br#"{"msgType":"execute","data":{"path":"/3/0/4","args":"2,7"}}"#.to_vec(),
        ),
        (
            "gen-create".into(),
            br#"{"msgType":"create","data":{"basePath":"/5","content":[{"path":"/0/1","type":"String","value":"x"}]}}"#
                .to_vec(),
        ),
    ]
}

/// Device programs (see `channel.rs` for how each byte is read).
fn channel_seeds() -> Vec<(String, Vec<u8>)> {
    // Settings: no auto-observe, queue of 2, transport seed 7.
    let header = [0u8, 1, 0, 7];
    let register =
        |peer: u8, ep: u8, binding: u8, links: u8| vec![peer, 1, ep, 0, 0, 2, 0, binding, 1, links];
    let prog = |parts: &[&[u8]]| {
        let mut b = header.to_vec();
        for p in parts {
            b.extend_from_slice(p);
        }
        b
    };
    vec![
        (
            "gen-read-reply".into(),
            prog(&[
                &register(0, 0, 0, 0),
                &[0, 4, 0, 0, 0, 3, 0, 0, 0, 1], // read /3/0/1 as TLV, QoS 0
                &[0, 6, 0, 2, 0, 0, 0, 4, b'E', b'M', b'Q', b'!'], // piggybacked 2.05 text
                &[0, 9, 5, 1],                   // 5 s later
            ]),
        ),
        (
            "gen-observe-notify".into(),
            prog(&[
                &register(1, 1, 1, 3),           // queue mode
                &[1, 4, 1, 7, 0, 3, 0, 1, 0, 1], // observe /3/0/1 as LwM2M JSON
                &[1, 6, 0, 0, 0],                // empty ACK: separate response follows
                &[1, 6, 0, 3, 0, 2, 1, 9, 0],    // CON 2.05 with Observe 9
                &[1, 9, 30, 1],
                &[1, 1, 1, 0, 2, 0, 0], // Update
            ]),
        ),
        (
            "gen-timeout".into(),
            prog(&[
                &register(2, 2, 0, 1),
                &[2, 5, 2, 2, 0, 3, 0, 0, 0, 1],
                &[2, 5, 2, 0, 0, 3, 0, 0, 0, 1], // queued behind the first
                &[2, 9, 10, 1],
                &[2, 9, 20, 1],
                &[2, 9, 100, 1],  // retransmissions exhausted
                &[2, 1, 2, 0, 3], // De-register
            ]),
        ),
    ]
}

#[test]
#[ignore = "rewrites fuzz/seeds/lwm2m_*/gen-*; run when the formats change"]
fn write_seed_corpora() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");
    for (target, seeds) in [
        ("lwm2m_tlv", tlv_seeds()),
        ("lwm2m_json", json_seeds()),
        ("lwm2m_senml_json", senml_json_seeds()),
        ("lwm2m_senml_cbor", senml_cbor_seeds()),
        ("lwm2m_link", link_seeds()),
        ("lwm2m_command", command_seeds()),
        ("lwm2m_channel", channel_seeds()),
    ] {
        let dir = std::path::Path::new(root).join(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
