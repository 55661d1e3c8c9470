//! Criterion benchmarks of the MQTT codec's hot path: decoding and encoding PUBLISH (MQTT 3.1.1
//! and 5.0, QoS 0 and 1, 64 B and 1 KiB payloads), through `switchyard_mqtt::codec`'s public API.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::num::NonZeroU16;
use switchyard_core::QoS;
use switchyard_mqtt::codec::{decode_packet, encode_packet, Packet, ProtocolVersion, Publish};

fn publish(qos: QoS, size: usize) -> Packet {
    let mut p = Publish::new(
        "sensors/building-7/floor-3/room-12/temp",
        Bytes::from(vec![0xA5; size]),
    );
    p.qos = qos;
    p.pkid = (qos != QoS::AtMostOnce).then_some(NonZeroU16::MIN);
    Packet::Publish(p)
}

fn cases() -> Vec<(String, ProtocolVersion, Packet)> {
    let mut out = Vec::new();
    for (vname, v) in [("v311", ProtocolVersion::V311), ("v5", ProtocolVersion::V5)] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            for size in [64, 1024] {
                out.push((
                    format!("{vname}/qos{}/{size}B", qos as u8),
                    v,
                    publish(qos, size),
                ));
            }
        }
    }
    out
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish");
    for (name, v, packet) in cases() {
        let mut wire = BytesMut::new();
        if let Err(e) = encode_packet(&packet, v, &mut wire) {
            panic!("encode {name}: {e}");
        }
        let frame = wire.freeze();
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_with_input(BenchmarkId::new("decode", &name), &frame, |b, frame| {
            b.iter(|| {
                // Decoding takes the frame out of a buffer the driver would have read into.
                let mut buf = BytesMut::from(&frame[..]);
                black_box(decode_packet(&mut buf, v, 1 << 20).ok().flatten())
            })
        });
        let mut out = BytesMut::with_capacity(4096);
        g.bench_with_input(BenchmarkId::new("encode", &name), &packet, |b, packet| {
            b.iter(|| {
                out.clear();
                black_box(encode_packet(black_box(packet), v, &mut out).is_ok())
            })
        });
    }
    // A read of 64 back-to-back frames, as a busy connection delivers them.
    let (_, v, packet) = &cases()[0];
    let mut batch = BytesMut::new();
    for _ in 0..64 {
        if let Err(e) = encode_packet(packet, *v, &mut batch) {
            panic!("encode: {e}");
        }
    }
    let batch = batch.freeze();
    g.throughput(Throughput::Elements(64));
    g.bench_function("decode/v311/qos0/64B/batch64", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&batch[..]);
            let mut n = 0;
            while let Ok(Some(p)) = decode_packet(&mut buf, *v, 1 << 20) {
                black_box(p);
                n += 1;
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
