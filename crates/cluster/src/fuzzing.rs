//! Fuzz harness of what a node reads from other nodes (doc-hidden; not an API): the body of the
//! `cluster_wire` cargo-fuzz target in `fuzz/`, replayed over its committed seed corpus
//! (`fuzz/seeds/cluster_wire/`) by the unit test below, so `cargo test` checks it on stable.

use crate::{subject, wire};
use bytes::Bytes;
use std::time::Instant;
use switchyard_core::TopicName;

/// The target: the first line is a NATS subject, the rest an envelope. A subject decodes to a
/// topic or is refused, and a decoded topic encodes back to the same subject; an envelope
/// decodes or is refused, and a decoded message re-encodes to an envelope that decodes to the
/// same message; the dedup window never panics on any stamp sequence.
pub fn cluster_wire(data: &[u8]) {
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let prefix = "sy.c.m";
    let subj = String::from_utf8_lossy(head);
    if let Some(topic) = subject::topic_for_subject(prefix, &subj) {
        assert_eq!(
            subject::subject_for_topic(prefix, &topic),
            subj,
            "subject round trip"
        );
    }
    let topic = TopicName::new("f/z").expect("a valid topic");
    let now = Instant::now();
    if let Ok((stamp, msg)) = wire::decode(topic.clone(), Bytes::copy_from_slice(body), now) {
        let again = wire::encode(&msg, stamp, now);
        let (stamp2, msg2) =
            wire::decode(topic, again, now).expect("a re-encoded envelope decodes");
        assert_eq!(stamp, stamp2);
        assert_eq!(msg.payload, msg2.payload);
        assert_eq!(msg.qos, msg2.qos);
        assert_eq!(msg.retain, msg2.retain);
        assert_eq!(msg.properties, msg2.properties);
        assert_eq!(
            msg.origin.map(|o| o.client_id),
            msg2.origin.map(|o| o.client_id)
        );
    }
    let mut dedup = wire::Dedup::default();
    for chunk in body.chunks(9) {
        let mut b = [0u8; 8];
        for (i, x) in chunk.iter().take(8).enumerate() {
            b[i] = *x;
        }
        let node = u64::from(chunk.get(8).copied().unwrap_or(0) % 4);
        let _ = dedup.first(wire::Stamp {
            node,
            seq: u64::from_be_bytes(b),
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_wire_seed_corpus_replays() {
        switchyard_bus::fuzzing::replay_seeds(
            env!("CARGO_MANIFEST_DIR"),
            "cluster_wire",
            super::cluster_wire,
        );
    }

    proptest::proptest! {
        /// A stand-in for the fuzzer on stable: arbitrary bytes, and subjects built from
        /// arbitrary tokens, through the same harness.
        #[test]
        fn any_input_holds_the_harness(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            tokens in proptest::collection::vec("[a-zA-Z0-9_~.-]{0,6}", 0..5),
        ) {
            super::cluster_wire(&data);
            let mut subject = format!("sy.c.m.{}\n", tokens.join("."));
            subject.push_str("\x01\x00");
            super::cluster_wire(subject.as_bytes());
        }
    }

    /// Writes the seed corpus from real envelopes (run with `--ignored` to refresh it).
    #[test]
    #[ignore = "generates fuzz/seeds/cluster_wire"]
    fn write_seeds() {
        use crate::wire::{encode, Stamp};
        use bytes::Bytes;
        use std::sync::Arc;
        use switchyard_core::{ClientId, Message, Properties, QoS, TopicName};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/cluster_wire");
        std::fs::create_dir_all(dir).expect("seed dir");
        let topic = TopicName::new("a/b").expect("topic");
        let mut plain = Message::new(
            topic.clone(),
            Bytes::from_static(b"21.5"),
            QoS::AtMostOnce,
            false,
        );
        let now = plain.received;
        let mut full = Message::new(
            topic,
            Bytes::from_static(b"{\"t\":1}"),
            QoS::ExactlyOnce,
            true,
        );
        full.origin = Some(switchyard_bus::remote_origin(ClientId::new("dev-1")));
        full.properties = Some(Arc::new(Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            content_type: Some("application/json".into()),
            response_topic: Some("r/1".into()),
            correlation_data: Some(Bytes::from_static(b"\x01\x02")),
            user_properties: vec![("k".into(), "v".into())],
        }));
        plain.qos = QoS::AtLeastOnce;
        let seeds: Vec<(&str, Vec<u8>)> = vec![
            (
                "plain",
                [
                    b"sy.c.m.a.b\n".to_vec(),
                    encode(&plain, Stamp { node: 1, seq: 7 }, now).to_vec(),
                ]
                .concat(),
            ),
            (
                "full",
                [
                    b"sy.c.m.~.x~2Ey.~E6~B8~A9\n".to_vec(),
                    encode(&full, Stamp { node: 2, seq: 1 }, now).to_vec(),
                ]
                .concat(),
            ),
            ("bad_subject", b"sy.c.m.a b.~4\n\x01\x00".to_vec()),
        ];
        for (name, bytes) in seeds {
            std::fs::write(format!("{dir}/{name}"), bytes).expect("write seed");
        }
    }
}
