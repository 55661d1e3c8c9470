//! The JSON-family formats: LwM2M 1.0 JSON (11543, TS §6.4.4), SenML JSON (110, RFC 8428 as
//! LwM2M 1.1 profiles it) and SenML CBOR (112). Each record's name is base name + name; values
//! are taken as the record types them, so these formats need no object definition.

use super::{b64, DecodeError, Entry, Typed, WriteItem};
use crate::path::Path;
use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{json, Map, Value};

/// Decodes LwM2M JSON: `{"bn":…, "e":[{"n":…, "v"|"bv"|"ov"|"sv":…}]}`.
pub fn decode_lwm2m_json(req: &Path, payload: &[u8]) -> Result<Vec<Entry>, DecodeError> {
    let bad = || DecodeError::Malformed("LwM2M JSON");
    let doc: Value = serde_json::from_slice(payload).map_err(|_| bad())?;
    let bn = match doc.get("bn").and_then(Value::as_str) {
        Some(b) => b.to_owned(),
        None => format!("{req}/"),
    };
    let entries = doc.get("e").and_then(Value::as_array).ok_or_else(bad)?;
    let mut out = Vec::new();
    for e in entries {
        let n = e.get("n").and_then(Value::as_str).unwrap_or("");
        let value = ["v", "bv", "ov", "sv"]
            .iter()
            .find_map(|k| e.get(*k))
            .cloned()
            .ok_or_else(bad)?;
        // A record that names nothing (empty base name, no name) is the requested path, as in
        // SenML below: never an entry with an empty path.
        let name = join(&bn, n);
        out.push((
            if name.is_empty() {
                req.to_string()
            } else {
                name
            },
            value,
        ));
    }
    Ok(out)
}

fn join(bn: &str, n: &str) -> String {
    let mut p = format!("{bn}{n}");
    while p.len() > 1 && p.ends_with('/') {
        p.pop();
    }
    p
}

/// Decodes SenML JSON records.
pub fn decode_senml_json(req: &Path, payload: &[u8]) -> Result<Vec<Entry>, DecodeError> {
    let bad = || DecodeError::Malformed("SenML JSON");
    let doc: Value = serde_json::from_slice(payload).map_err(|_| bad())?;
    let records = doc.as_array().ok_or_else(bad)?;
    let mut bn = String::new();
    let mut out = Vec::new();
    for r in records {
        let r = r.as_object().ok_or_else(bad)?;
        if let Some(b) = r.get("bn").and_then(Value::as_str) {
            bn = b.to_owned();
        }
        let n = r.get("n").and_then(Value::as_str).unwrap_or("");
        let value = if let Some(v) = r.get("v").or_else(|| r.get("vb")).or_else(|| r.get("vs")) {
            v.clone()
        } else if let Some(Value::String(d)) = r.get("vd") {
            Value::String(rebase64(d))
        } else if let Some(v) = r.get("vlo") {
            v.clone()
        } else {
            continue;
        };
        let name = join(&bn, n);
        out.push((
            if name.is_empty() {
                req.to_string()
            } else {
                name
            },
            value,
        ));
    }
    Ok(out)
}

/// SenML data values are base64url without padding (RFC 8428 §4.3); content reports opaque
/// values as standard base64 like the other formats.
fn rebase64(d: &str) -> String {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let trimmed = d.trim_end_matches('=');
    match URL_SAFE_NO_PAD.decode(trimmed) {
        Ok(b) => b64(&b),
        Err(_) => STANDARD
            .decode(d)
            .map(|b| b64(&b))
            .unwrap_or_else(|_| d.to_owned()),
    }
}

fn cbor_key(k: &Cbor) -> Option<i64> {
    match k {
        Cbor::Integer(i) => i64::try_from(i128::from(*i)).ok(),
        Cbor::Text(t) if t == "vlo" => Some(1000),
        _ => None,
    }
}

fn cbor_to_json(v: &Cbor) -> Option<Value> {
    Some(match v {
        Cbor::Integer(i) => {
            let i = i128::from(*i);
            match i64::try_from(i) {
                Ok(x) => json!(x),
                Err(_) => json!(u64::try_from(i).ok()?),
            }
        }
        Cbor::Float(f) => json!(f),
        Cbor::Text(t) => Value::String(t.clone()),
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Bytes(b) => Value::String(b64(b)),
        Cbor::Tag(_, inner) => cbor_to_json(inner)?,
        _ => return None,
    })
}

/// Decodes SenML CBOR records (labels: bn −2, n 0, v 2, vs 3, vb 4, vd 8, "vlo").
pub fn decode_senml_cbor(req: &Path, payload: &[u8]) -> Result<Vec<Entry>, DecodeError> {
    let bad = || DecodeError::Malformed("SenML CBOR");
    let doc: Cbor = ciborium::de::from_reader(payload).map_err(|_| bad())?;
    let Cbor::Array(records) = doc else {
        return Err(bad());
    };
    let mut bn = String::new();
    let mut out = Vec::new();
    for r in &records {
        let Cbor::Map(fields) = r else {
            return Err(bad());
        };
        let mut n = String::new();
        let mut value = None;
        for (k, v) in fields {
            match (cbor_key(k), v) {
                (Some(-2), Cbor::Text(t)) => bn = t.clone(),
                (Some(0), Cbor::Text(t)) => n = t.clone(),
                (Some(2 | 3 | 4 | 8 | 1000), v) => value = cbor_to_json(v),
                _ => {}
            }
        }
        if let Some(value) = value {
            let name = join(&bn, &n);
            out.push((
                if name.is_empty() {
                    req.to_string()
                } else {
                    name
                },
                value,
            ));
        }
    }
    Ok(out)
}

fn full_name(target: &Path, it: &WriteItem) -> String {
    let mut s = target.to_string();
    for r in &it.rel {
        s.push('/');
        s.push_str(&r.to_string());
    }
    s
}

/// Encodes write items as SenML JSON, one record per value with its full path as the name.
pub fn encode_senml_json(target: &Path, items: &[WriteItem]) -> Vec<u8> {
    let records: Vec<Value> = items
        .iter()
        .map(|it| {
            let mut m = Map::new();
            m.insert("n".into(), Value::String(full_name(target, it)));
            let (k, v) = match &it.value {
                Typed::Integer(i) | Typed::Time(i) => ("v", json!(i)),
                Typed::Unsigned(u) => ("v", json!(u)),
                Typed::Float(f) => ("v", json!(f)),
                Typed::String(s) => ("vs", json!(s)),
                Typed::Boolean(b) => ("vb", json!(b)),
                Typed::Opaque(b) => (
                    "vd",
                    json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)),
                ),
                Typed::Objlnk(o, i) => ("vlo", json!(format!("{o}:{i}"))),
            };
            m.insert(k.into(), v);
            Value::Object(m)
        })
        .collect();
    Value::Array(records).to_string().into_bytes()
}

/// Encodes write items as SenML CBOR.
pub fn encode_senml_cbor(target: &Path, items: &[WriteItem]) -> Vec<u8> {
    let records: Vec<Cbor> = items
        .iter()
        .map(|it| {
            let name = (Cbor::Integer(0.into()), Cbor::Text(full_name(target, it)));
            let value = match &it.value {
                Typed::Integer(i) | Typed::Time(i) => {
                    (Cbor::Integer(2.into()), Cbor::Integer((*i).into()))
                }
                Typed::Unsigned(u) => (Cbor::Integer(2.into()), Cbor::Integer((*u).into())),
                Typed::Float(f) => (Cbor::Integer(2.into()), Cbor::Float(*f)),
                Typed::String(s) => (Cbor::Integer(3.into()), Cbor::Text(s.clone())),
                Typed::Boolean(b) => (Cbor::Integer(4.into()), Cbor::Bool(*b)),
                Typed::Opaque(b) => (Cbor::Integer(8.into()), Cbor::Bytes(b.clone())),
                Typed::Objlnk(o, i) => (Cbor::Text("vlo".into()), Cbor::Text(format!("{o}:{i}"))),
            };
            Cbor::Map(vec![name, value])
        })
        .collect();
    let mut out = Vec::new();
    // Writing into a Vec cannot fail for these value kinds; an error leaves an empty payload.
    if ciborium::ser::into_writer(&Cbor::Array(records), &mut out).is_err() {
        out.clear();
    }
    out
}
