//! LwM2M data formats: decoding a device's payload into EMQX's `content` list
//! (`[{"path","value"}]`) by its Content-Format, and encoding write/create values.
//!
//! Formats: TLV (11542), text/plain (0), opaque (42), link-format (40, discover), LwM2M JSON
//! (11543), SenML JSON (110) and SenML CBOR (112). Resource types come from the object database;
//! an object without a definition still decodes: TLV values become base64 (opaque), text stays a
//! string, JSON/SenML values are taken as given (EMQX answers 4.00; docs/lwm2m.md §4.13.6).
//! Text booleans accept "0"/"1" and "true"/"false" (EMQX 5.8.9 inverts them;
//! docs/lwm2m.md §4.13.5).

pub mod senml;
pub mod text;
pub mod tlv;

use crate::objects::{DataType, ObjectDb};
use crate::path::Path;
use base64::Engine;
use serde_json::{json, Value};
use thiserror::Error;
use tlv::{Kind, Tlv};

/// Content-Format numbers (RFC 7252 §12.3, OMA LwM2M registry).
pub mod format {
    /// text/plain.
    pub const TEXT: u16 = 0;
    /// application/link-format.
    pub const LINK: u16 = 40;
    /// application/octet-stream.
    pub const OPAQUE: u16 = 42;
    /// application/senml+json.
    pub const SENML_JSON: u16 = 110;
    /// application/senml+cbor.
    pub const SENML_CBOR: u16 = 112;
    /// application/vnd.oma.lwm2m+tlv.
    pub const TLV: u16 = 11542;
    /// application/vnd.oma.lwm2m+json.
    pub const LWM2M_JSON: u16 = 11543;
}

/// The format named in a command's `format` key: a name or a Content-Format number.
pub fn format_by_name(s: &str) -> Option<u16> {
    Some(match s {
        "text" | "text/plain" => format::TEXT,
        "link" | "link-format" => format::LINK,
        "opaque" | "octet-stream" => format::OPAQUE,
        "senml-json" | "senml+json" => format::SENML_JSON,
        "senml-cbor" | "senml+cbor" => format::SENML_CBOR,
        "tlv" => format::TLV,
        "json" | "lwm2m-json" => format::LWM2M_JSON,
        n => return n.parse().ok(),
    })
}

/// Why a payload cannot be turned into content.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The payload does not parse in its format.
    #[error("malformed {0} payload")]
    Malformed(&'static str),
    /// A Content-Format we do not decode.
    #[error("unsupported content format {0}")]
    Unsupported(u16),
}

/// One decoded value.
pub type Entry = (String, Value);

/// Decodes a response payload to `[(path, value)]`; `req` is the requested path, `cf` the
/// reply's Content-Format (none means text/plain, docs/lwm2m.md §4.8).
pub fn decode(
    req: &Path,
    cf: Option<u16>,
    payload: &[u8],
    db: &ObjectDb,
) -> Result<Vec<Entry>, DecodeError> {
    match cf.unwrap_or(format::TEXT) {
        format::TEXT => Ok(vec![(req.to_string(), text::decode(req, payload, db)?)]),
        format::OPAQUE => Ok(vec![(req.to_string(), Value::String(b64(payload)))]),
        format::TLV => decode_tlv(req, payload, db),
        format::LWM2M_JSON => senml::decode_lwm2m_json(req, payload),
        format::SENML_JSON => senml::decode_senml_json(req, payload),
        format::SENML_CBOR => senml::decode_senml_cbor(req, payload),
        format::LINK => Ok(vec![(req.to_string(), Value::String(lossy(payload)))]),
        other => Err(DecodeError::Unsupported(other)),
    }
}

/// Standard base64 of bytes (opaque values, docs/lwm2m.md §4.8).
pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn decode_tlv(req: &Path, payload: &[u8], db: &ObjectDb) -> Result<Vec<Entry>, DecodeError> {
    let tlvs = tlv::decode(payload).map_err(|_| DecodeError::Malformed("TLV"))?;
    let object = req.object();
    let mut out = Vec::new();
    for t in &tlvs {
        // The level of the top TLVs fixes the prefix: instances under /O, resources under
        // /O/I, resource instances under /O/I/R.
        let prefix = match t.kind {
            Kind::ObjectInstance => req.prefix(1),
            Kind::Resource | Kind::MultipleResource => req.prefix(2),
            Kind::ResourceInstance => req.prefix(3),
        };
        walk(t, &prefix, object, db, &mut out)?;
    }
    Ok(out)
}

fn walk(
    t: &Tlv,
    prefix: &str,
    object: Option<u16>,
    db: &ObjectDb,
    out: &mut Vec<Entry>,
) -> Result<(), DecodeError> {
    let path = format!("{prefix}/{}", t.id);
    match t.kind {
        Kind::ObjectInstance | Kind::MultipleResource => {
            for c in &t.children {
                let owner = if t.kind == Kind::MultipleResource {
                    Some(t.id)
                } else {
                    None
                };
                walk_child(c, &path, object, owner, db, out)?;
            }
            Ok(())
        }
        Kind::Resource => {
            out.push((path, tlv_value(object, Some(t.id), &t.value, db)?));
            Ok(())
        }
        Kind::ResourceInstance => {
            // Top-level resource instances: the resource id is the prefix's last segment.
            let rid = prefix.rsplit('/').next().and_then(|s| s.parse().ok());
            out.push((path, tlv_value(object, rid, &t.value, db)?));
            Ok(())
        }
    }
}

fn walk_child(
    c: &Tlv,
    parent: &str,
    object: Option<u16>,
    owner: Option<u16>,
    db: &ObjectDb,
    out: &mut Vec<Entry>,
) -> Result<(), DecodeError> {
    let path = format!("{parent}/{}", c.id);
    match c.kind {
        Kind::Resource => out.push((path, tlv_value(object, Some(c.id), &c.value, db)?)),
        Kind::ResourceInstance => out.push((path, tlv_value(object, owner, &c.value, db)?)),
        Kind::MultipleResource => {
            for i in &c.children {
                walk_child(i, &path, object, Some(c.id), db, out)?;
            }
        }
        Kind::ObjectInstance => return Err(DecodeError::Malformed("TLV")),
    }
    Ok(())
}

/// A TLV value typed by the object database; unknown resources are opaque (base64).
fn tlv_value(
    object: Option<u16>,
    resource: Option<u16>,
    v: &[u8],
    db: &ObjectDb,
) -> Result<Value, DecodeError> {
    let ty = match (object, resource) {
        (Some(o), Some(r)) => db.resource_type(o, r),
        _ => None,
    };
    let bad = || DecodeError::Malformed("TLV value");
    Ok(match ty {
        Some(DataType::Integer) | Some(DataType::Time) => {
            json!(tlv::decode_int(v).ok_or_else(bad)?)
        }
        Some(DataType::UnsignedInteger) => json!(tlv::decode_uint(v).ok_or_else(bad)?),
        Some(DataType::Float) => json!(tlv::decode_float(v).ok_or_else(bad)?),
        Some(DataType::Boolean) => json!(tlv::decode_bool(v).ok_or_else(bad)?),
        Some(DataType::String) | Some(DataType::Corelnk) => Value::String(lossy(v)),
        Some(DataType::Objlnk) => {
            let (o, i) = tlv::decode_objlnk(v).ok_or_else(bad)?;
            Value::String(format!("{o}:{i}"))
        }
        Some(DataType::Opaque) | Some(DataType::None) | None => Value::String(b64(v)),
    })
}

/// A typed value of a write or create command.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    /// `Integer`.
    Integer(i64),
    /// `Unsigned Integer` (LwM2M 1.1).
    Unsigned(u64),
    /// `Float`.
    Float(f64),
    /// `Time` (seconds since the epoch, signed as Integer).
    Time(i64),
    /// `String`.
    String(String),
    /// `Boolean`.
    Boolean(bool),
    /// `Opaque` (base64 in the command).
    Opaque(Vec<u8>),
    /// `Objlnk` ("O:I").
    Objlnk(u16, u16),
}

/// Parses a command value of type `ty` (docs/lwm2m.md §4.5: numbers as JSON numbers or numeric
/// strings, booleans as "true"/"false", opaque as base64, objlnk as "O:I").
pub fn parse_typed(ty: &str, v: &Value) -> Option<Typed> {
    let s = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some(match ty {
        "Integer" => Typed::Integer(parse_i64(&s)?),
        "Unsigned Integer" | "UnsignedInteger" => Typed::Unsigned(s.parse().ok()?),
        "Time" => Typed::Time(parse_i64(&s)?),
        "Float" => Typed::Float(s.parse().ok().filter(|f: &f64| f.is_finite())?),
        "String" | "Corelnk" => match v {
            Value::String(raw) => Typed::String(raw.clone()),
            _ => Typed::String(s),
        },
        "Boolean" => Typed::Boolean(text::parse_bool(&s)?),
        "Opaque" => Typed::Opaque(
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .ok()?,
        ),
        "Objlnk" => {
            let (o, i) = s.split_once(':')?;
            Typed::Objlnk(o.parse().ok()?, i.parse().ok()?)
        }
        _ => return None,
    })
}

fn parse_i64(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().or_else(|| {
        // "12345.0" from a JSON float that is integral.
        let f: f64 = s.parse().ok()?;
        (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
    })
}

impl Typed {
    /// The TLV value bytes.
    pub fn tlv_bytes(&self) -> Vec<u8> {
        match self {
            Typed::Integer(i) | Typed::Time(i) => tlv::encode_int(*i),
            Typed::Unsigned(u) => tlv::encode_uint(*u),
            Typed::Float(f) => tlv::encode_float(*f),
            Typed::String(s) => s.as_bytes().to_vec(),
            Typed::Boolean(b) => vec![u8::from(*b)],
            Typed::Opaque(b) => b.clone(),
            Typed::Objlnk(o, i) => tlv::encode_objlnk(*o, *i),
        }
    }

    /// The text/plain form (LwM2M TS §6.4.2).
    pub fn text(&self) -> Vec<u8> {
        match self {
            Typed::Integer(i) | Typed::Time(i) => i.to_string().into_bytes(),
            Typed::Unsigned(u) => u.to_string().into_bytes(),
            Typed::Float(f) => f.to_string().into_bytes(),
            Typed::String(s) => s.as_bytes().to_vec(),
            Typed::Boolean(b) => {
                if *b {
                    b"1".to_vec()
                } else {
                    b"0".to_vec()
                }
            }
            Typed::Opaque(b) => b64(b).into_bytes(),
            Typed::Objlnk(o, i) => format!("{o}:{i}").into_bytes(),
        }
    }
}

/// One value to write, at a path relative to the request path (0, 1 or 2 segments).
#[derive(Debug, Clone, PartialEq)]
pub struct WriteItem {
    /// Relative segments below the request path.
    pub rel: Vec<u16>,
    /// The value.
    pub value: Typed,
}

/// Encodes write/create items as TLV for a request on `target` (`/O`, `/O/I` or `/O/I/R`).
/// Under `/O/I/R` a relative path of one segment is a resource instance; under `/O/I` one
/// segment is a resource and two a resource instance; under `/O` two segments (`I/R`) group
/// into object instances and one is a resource of an unnamed instance.
pub fn encode_tlv(target: &Path, items: &[WriteItem]) -> Result<Vec<u8>, &'static str> {
    let depth = target.len();
    let mut tlvs: Vec<Tlv> = Vec::new();
    for it in items {
        match (depth, it.rel.as_slice()) {
            (3, []) => {
                let rid = target.segment(2).ok_or("bad path")?;
                tlvs.push(Tlv::value(Kind::Resource, rid, it.value.tlv_bytes()));
            }
            (3, [ri]) => {
                let rid = target.segment(2).ok_or("bad path")?;
                push_instance(&mut tlvs, rid, *ri, it.value.tlv_bytes());
            }
            (4, []) => {
                let ri = target.segment(3).ok_or("bad path")?;
                tlvs.push(Tlv::value(Kind::ResourceInstance, ri, it.value.tlv_bytes()));
            }
            (2, [r]) | (1, [r]) => tlvs.push(Tlv::value(Kind::Resource, *r, it.value.tlv_bytes())),
            (2, [r, ri]) => push_instance(&mut tlvs, *r, *ri, it.value.tlv_bytes()),
            (1, [i, r]) => {
                let res = Tlv::value(Kind::Resource, *r, it.value.tlv_bytes());
                match tlvs
                    .iter_mut()
                    .find(|t| t.kind == Kind::ObjectInstance && t.id == *i)
                {
                    Some(inst) => inst.children.push(res),
                    None => tlvs.push(Tlv::container(Kind::ObjectInstance, *i, vec![res])),
                }
            }
            _ => return Err("path does not fit the base path"),
        }
    }
    tlv::encode(&tlvs).map_err(|_| "value too long")
}

fn push_instance(tlvs: &mut Vec<Tlv>, rid: u16, ri: u16, value: Vec<u8>) {
    let inst = Tlv::value(Kind::ResourceInstance, ri, value);
    match tlvs
        .iter_mut()
        .find(|t| t.kind == Kind::MultipleResource && t.id == rid)
    {
        Some(m) => m.children.push(inst),
        None => tlvs.push(Tlv::container(Kind::MultipleResource, rid, vec![inst])),
    }
}

#[cfg(test)]
pub(crate) mod tests;
