//! Fuzz harnesses of the LwM2M gateway (doc-hidden; not an API). Each `pub fn(&[u8])` is the
//! whole body of one cargo-fuzz target in `fuzz/fuzz_targets/`; the unit tests below replay the
//! committed seed corpus of each (`fuzz/seeds/<target>/`) through the same function on stable.
//!
//! - [`tlv`]: TLV frames decode→encode→decode, typed values through the object database, the
//!   scalar value encodings both ways.
//! - [`lwm2m_json`], [`senml_json`], [`senml_cbor`]: a device payload decoded as that format
//!   (for every kind of requested path); the input, read as write items, also encodes and
//!   decodes back to the same paths and values.
//! - [`link`]: a Register/Update (query and link-format payload), the registration data and its
//!   event JSON.
//! - [`command`]: an MQTT command (JSON) parsed and translated into its CoAP request, and a
//!   device reply to it turned into the response event.
//! - [`channel`]: the stateful device target; see its module.

mod channel;
#[cfg(test)]
mod seeds;

pub use channel::channel;

use crate::codec::{self, format, senml, tlv, Typed, WriteItem};
use crate::objects::ObjectDb;
use crate::path::Path;
use crate::register::{parse_links, query_map, Registration};
use serde_json::{json, Value};
use std::sync::OnceLock;
use switchyard_bus::fuzzing::Input;
use switchyard_coap_transport::coap_lite::{CoapOption, Packet};
use switchyard_coap_transport::wire;

/// The shipped object definitions, parsed once per process.
pub(crate) fn db() -> &'static ObjectDb {
    static DB: OnceLock<ObjectDb> = OnceLock::new();
    DB.get_or_init(ObjectDb::builtin)
}

/// Requested paths of every depth, with and without object definitions.
const PATHS: [&str; 9] = [
    "/3",
    "/3/0",
    "/3/0/1",
    "/3/0/7",
    "/3/0/7/1",
    "/3303/0/5700",
    "/1/0",
    "/5/0/3",
    "/65535/1",
];

fn paths() -> impl Iterator<Item = Path> {
    PATHS.iter().filter_map(|p| Path::parse(p))
}

/// Decodes `data` as format `cf` for every requested path.
fn decode_all(cf: u16, data: &[u8]) {
    for p in paths() {
        if let Ok(entries) = codec::decode(&p, Some(cf), data, db()) {
            for (path, _) in entries {
                assert!(!path.is_empty());
            }
        }
    }
}

/// The TLV target.
pub fn tlv(data: &[u8]) {
    if let Ok(tlvs) = tlv::decode(data) {
        let bytes = match tlv::encode(&tlvs) {
            Ok(b) => b,
            Err(e) => panic!("decoded TLVs do not encode: {e}: {tlvs:?}"),
        };
        assert_eq!(tlv::decode(&bytes), Ok(tlvs));
    }
    decode_all(format::TLV, data);
    decode_all(format::TEXT, data);
    decode_all(format::OPAQUE, data);
    if let Some(i) = tlv::decode_int(data) {
        assert_eq!(tlv::decode_int(&tlv::encode_int(i)), Some(i));
    }
    if let Some(u) = tlv::decode_uint(data) {
        assert_eq!(tlv::decode_uint(&tlv::encode_uint(u)), Some(u));
    }
    if let Some(f) = tlv::decode_float(data) {
        let back = tlv::decode_float(&tlv::encode_float(f));
        assert_eq!(back.map(f64::to_bits), Some(f.to_bits()));
    }
    if let Some((o, i)) = tlv::decode_objlnk(data) {
        assert_eq!(tlv::decode_objlnk(&tlv::encode_objlnk(o, i)), Some((o, i)));
    }
    let _ = tlv::decode_bool(data);
}

/// Write items read from the input: values of every type at paths of 0-2 segments below
/// `target`.
fn write_items(input: &mut Input<'_>, target: &Path) -> Vec<WriteItem> {
    let mut items = Vec::new();
    while !input.is_empty() && items.len() < 16 {
        let rel: Vec<u16> = (0..input.below(3)).map(|_| input.u16() % 100).collect();
        if target.len() + rel.len() > 4 {
            continue;
        }
        let value = match input.u8() % 8 {
            0 => Typed::Integer(i64::from(input.u32() as i32) * i64::from(input.u16())),
            1 => Typed::Unsigned(u64::from(input.u32()) << (input.u8() % 33)),
            2 => Typed::Float(f64::from(input.u32() as i32) / 7.0),
            3 => Typed::Time(i64::from(input.u32())),
            4 => Typed::String(String::from_utf8_lossy(input.bytes(12)).into_owned()),
            5 => Typed::Boolean(input.bool()),
            6 => Typed::Opaque(input.bytes(12).to_vec()),
            _ => Typed::Objlnk(input.u16(), input.u16()),
        };
        items.push(WriteItem { rel, value });
    }
    items
}

/// What decoding an encoded write item should give back: its full path and its JSON value.
fn expected(target: &Path, it: &WriteItem) -> (String, Value) {
    let mut path = target.to_string();
    for r in &it.rel {
        path.push_str(&format!("/{r}"));
    }
    let value = match &it.value {
        Typed::Integer(i) | Typed::Time(i) => json!(i),
        Typed::Unsigned(u) => json!(u),
        Typed::Float(f) => json!(f),
        Typed::String(s) => json!(s),
        Typed::Boolean(b) => json!(b),
        Typed::Opaque(b) => json!(codec::b64(b)),
        Typed::Objlnk(o, i) => json!(format!("{o}:{i}")),
    };
    (path, value)
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        // JSON text may round a float in its last place.
        (Some(x), Some(y)) if a.is_f64() || b.is_f64() => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        _ => a == b,
    }
}

fn check_round_trip(target: &Path, items: &[WriteItem], decoded: Vec<(String, Value)>) {
    assert_eq!(decoded.len(), items.len(), "{items:?} → {decoded:?}");
    for (it, (path, value)) in items.iter().zip(decoded) {
        let (want_path, want_value) = expected(target, it);
        assert_eq!(path, want_path);
        assert!(same_value(&value, &want_value), "{value} != {want_value}");
    }
}

fn target_from(input: &mut Input<'_>) -> Path {
    let n = 1 + input.below(2);
    let segs: Vec<u16> = (0..n).map(|_| input.u16() % 4000).collect();
    Path::from_segments(segs).unwrap_or_else(|| panic!("1..=2 segments make a path"))
}

/// The LwM2M JSON target.
pub fn lwm2m_json(data: &[u8]) {
    decode_all(format::LWM2M_JSON, data);
}

/// The SenML JSON target.
pub fn senml_json(data: &[u8]) {
    decode_all(format::SENML_JSON, data);
    let mut input = Input::new(data);
    let target = target_from(&mut input);
    let items = write_items(&mut input, &target);
    let bytes = senml::encode_senml_json(&target, &items);
    match senml::decode_senml_json(&target, &bytes) {
        Ok(decoded) => check_round_trip(&target, &items, decoded),
        Err(e) => panic!("encoded SenML JSON does not decode: {e}"),
    }
}

/// The SenML CBOR target.
pub fn senml_cbor(data: &[u8]) {
    decode_all(format::SENML_CBOR, data);
    let mut input = Input::new(data);
    let target = target_from(&mut input);
    let items = write_items(&mut input, &target);
    let bytes = senml::encode_senml_cbor(&target, &items);
    match senml::decode_senml_cbor(&target, &bytes) {
        Ok(decoded) => check_round_trip(&target, &items, decoded),
        Err(e) => panic!("encoded SenML CBOR does not decode: {e}"),
    }
    // TLV encodes the same items; what it frames must decode.
    if let Ok(bytes) = codec::encode_tlv(&target, &items) {
        assert!(tlv::decode(&bytes).is_ok());
    }
}

/// The link-format / registration target: the first line is the query (`&`-separated), the
/// rest the payload of a Register, then of an Update.
pub fn link(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (_, list) = parse_links(&text);
    for l in &list {
        assert!(!l.is_empty());
    }
    let (query, payload) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let parts: Vec<String> = String::from_utf8_lossy(query)
        .split('&')
        .map(str::to_owned)
        .collect();
    let _ = query_map(&parts);
    if let Ok(mut reg) = Registration::parse(&parts, payload) {
        assert!(!reg.ep.is_empty());
        let _ = reg.queue_mode();
        let _ = reg.event_data();
        let _ = reg.update(&parts[1..], payload);
        let ev = reg.event_data();
        assert!(ev.is_object());
    }
    let (p, q) = Path::split_query(&text);
    let _ = (Path::parse(p), q);
}

/// The command target: the input is an MQTT command, then (after a NUL) a device reply payload
/// with a content format chosen by its first byte.
pub fn command(data: &[u8]) {
    let (json, reply) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let cmd = match crate::command::parse(json) {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(r) => {
            assert!(crate::command::rejected_event(&r).is_object());
            return;
        }
    };
    for alt in ["/", "/lwm2m"] {
        if let Ok(out) = crate::command::build(&cmd, alt) {
            let bytes = out.packet.to_bytes_unlimited().unwrap_or_default();
            assert!(
                wire::decode(&bytes).is_ok(),
                "command request does not encode"
            );
            assert!(!wire::uri_path(&out.packet).unwrap_or_default().is_empty());
        }
    }
    let mut p = Packet::new();
    let mut input = Input::new(reply);
    wire::set_code(&mut p, *input.pick(&[0x45u8, 0x44, 0x41, 0x84, 0x80]));
    let cf = *input.pick(&[
        format::TEXT,
        format::TLV,
        format::LWM2M_JSON,
        format::SENML_JSON,
        format::SENML_CBOR,
        format::LINK,
        format::OPAQUE,
        60,
    ]);
    p.add_option(CoapOption::ContentFormat, wire::uint_bytes(u32::from(cf)));
    if input.bool() {
        p.set_observe_value(u32::from(input.u8()));
    }
    p.payload = input.rest().to_vec();
    assert!(crate::command::response_event(&cmd, &p, db()).is_object());
    assert!(crate::command::notify_event(&cmd, &p, 1, db()).is_object());
    let _ = crate::command::content(&cmd, &p, db());
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_bus::fuzzing::replay_seeds;

    fn replay(target: &str, harness: fn(&[u8])) {
        replay_seeds(env!("CARGO_MANIFEST_DIR"), target, harness);
    }

    #[test]
    fn lwm2m_tlv_seed_corpus_replays() {
        replay("lwm2m_tlv", tlv);
    }

    #[test]
    fn lwm2m_json_seed_corpus_replays() {
        replay("lwm2m_json", lwm2m_json);
    }

    #[test]
    fn lwm2m_senml_json_seed_corpus_replays() {
        replay("lwm2m_senml_json", senml_json);
    }

    #[test]
    fn lwm2m_senml_cbor_seed_corpus_replays() {
        replay("lwm2m_senml_cbor", senml_cbor);
    }

    #[test]
    fn lwm2m_link_seed_corpus_replays() {
        replay("lwm2m_link", link);
    }

    #[test]
    fn lwm2m_command_seed_corpus_replays() {
        replay("lwm2m_command", command);
    }

    #[test]
    fn lwm2m_channel_seed_corpus_replays() {
        replay("lwm2m_channel", channel);
    }
}
