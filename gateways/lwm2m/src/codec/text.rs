//! text/plain (content format 0, LwM2M TS §6.4.2): one resource value as text, typed through
//! the object database. Booleans are "0"/"1" (and "true"/"false" are accepted); EMQX 5.8.9
//! inverts them and refuses "0"/"1" (fixed here: docs/lwm2m.md §4.13.5).

use super::{b64, DecodeError};
use crate::objects::{DataType, ObjectDb};
use crate::path::Path;
use serde_json::{json, Value};

/// A text Boolean.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "true" | "True" | "TRUE" => Some(true),
        "0" | "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Decodes the text value of resource `req`; without a definition the text is kept.
pub fn decode(req: &Path, payload: &[u8], db: &ObjectDb) -> Result<Value, DecodeError> {
    let ty = match (req.object(), req.segment(2)) {
        (Some(o), Some(r)) => db.resource_type(o, r),
        _ => None,
    };
    if matches!(ty, Some(DataType::Opaque)) {
        return Ok(Value::String(b64(payload)));
    }
    let s = std::str::from_utf8(payload).map_err(|_| DecodeError::Malformed("text"))?;
    let bad = || DecodeError::Malformed("text value");
    Ok(match ty {
        Some(DataType::Integer) | Some(DataType::Time) => {
            json!(s.trim().parse::<i64>().map_err(|_| bad())?)
        }
        Some(DataType::UnsignedInteger) => json!(s.trim().parse::<u64>().map_err(|_| bad())?),
        Some(DataType::Float) => {
            let f: f64 = s.trim().parse().map_err(|_| bad())?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(bad)?
        }
        Some(DataType::Boolean) => Value::Bool(parse_bool(s).ok_or_else(bad)?),
        _ => Value::String(s.to_owned()),
    })
}
