//! The rule SQL functions, by EMQX's names and arities.
//!
//! Owns: the function table (checked when a rule is parsed) and each function's value
//! semantics. Must not know: where columns come from; the message helpers (`topic()`,
//! `clientid()`, …) read the event's columns through the [`Scope`].

mod jq;
mod text;
mod time;

use crate::eval::{bad, float, index, EvalError, Scope};
use serde_json::{Map, Value};

const VARIADIC: usize = usize::MAX;

/// name, fewest and most arguments.
const TABLE: &[(&str, usize, usize)] = &[
    // maths
    ("abs", 1, 1),
    ("ceil", 1, 1),
    ("floor", 1, 1),
    ("round", 1, 1),
    ("sqrt", 1, 1),
    ("power", 2, 2),
    ("exp", 1, 1),
    ("log", 1, 1),
    ("log10", 1, 1),
    ("log2", 1, 1),
    ("fmod", 2, 2),
    ("sin", 1, 1),
    ("cos", 1, 1),
    ("tan", 1, 1),
    ("asin", 1, 1),
    ("acos", 1, 1),
    ("atan", 1, 1),
    ("sinh", 1, 1),
    ("cosh", 1, 1),
    ("tanh", 1, 1),
    ("asinh", 1, 1),
    ("acosh", 1, 1),
    ("atanh", 1, 1),
    ("random", 0, 0),
    // bits
    ("bitnot", 1, 1),
    ("bitand", 2, 2),
    ("bitor", 2, 2),
    ("bitxor", 2, 2),
    ("bitsl", 2, 2),
    ("bitsr", 2, 2),
    ("bytesize", 1, 1),
    // conversion
    ("str", 1, 1),
    ("str_utf8", 1, 1),
    ("bool", 1, 1),
    ("int", 1, 1),
    ("float", 1, 2),
    ("float2str", 2, 2),
    ("map", 1, 1),
    ("bin2hexstr", 1, 1),
    ("hexstr2bin", 1, 1),
    // type tests
    ("is_null", 1, 1),
    ("is_not_null", 1, 1),
    ("is_null_var", 1, 1),
    ("is_not_null_var", 1, 1),
    ("is_str", 1, 1),
    ("is_bool", 1, 1),
    ("is_int", 1, 1),
    ("is_float", 1, 1),
    ("is_num", 1, 1),
    ("is_map", 1, 1),
    ("is_array", 1, 1),
    ("is_empty", 1, 1),
    // strings
    ("lower", 1, 1),
    ("upper", 1, 1),
    ("trim", 1, 1),
    ("ltrim", 1, 1),
    ("rtrim", 1, 2),
    ("reverse", 1, 1),
    ("strlen", 1, 1),
    ("substr", 2, 3),
    ("split", 2, 3),
    ("tokens", 2, 3),
    ("concat", 1, 2),
    ("sprintf", 1, VARIADIC),
    ("pad", 2, 4),
    ("replace", 3, 4),
    ("regex_match", 2, 2),
    ("regex_replace", 3, 3),
    ("regex_extract", 2, 2),
    ("ascii", 1, 1),
    ("find", 2, 3),
    ("join_to_string", 1, 2),
    ("unescape", 1, 1),
    ("rm_prefix", 2, 2),
    ("jq", 2, 3),
    // maps and arrays
    ("map_new", 0, 0),
    ("map_get", 2, 3),
    ("map_put", 3, 3),
    ("map_keys", 1, 1),
    ("map_values", 1, 1),
    ("map_to_entries", 1, 1),
    ("map_size", 1, 1),
    ("mget", 2, 3),
    ("mput", 3, 3),
    ("nth", 2, 2),
    ("length", 1, 1),
    ("sublist", 2, 3),
    ("first", 1, 1),
    ("last", 1, 1),
    ("contains", 2, 2),
    ("coalesce", 1, 2),
    ("coalesce_ne", 1, 2),
    ("null", 0, 0),
    // hashes and codecs
    ("md5", 1, 1),
    ("sha", 1, 1),
    ("sha256", 1, 1),
    ("hash", 2, 2),
    ("base64_encode", 1, 1),
    ("base64_decode", 1, 1),
    ("json_encode", 1, 1),
    ("json_decode", 1, 1),
    // time
    ("now_timestamp", 0, 1),
    ("now_rfc3339", 0, 1),
    ("unix_ts_to_rfc3339", 1, 2),
    ("rfc3339_to_unix_ts", 1, 2),
    ("format_date", 3, 4),
    ("timezone_to_second", 1, 1),
    ("timezone_to_offset_seconds", 1, 1),
    // ids
    ("uuid_v4", 0, 0),
    ("uuid_v4_no_hyphen", 0, 0),
    // message helpers
    ("topic", 0, 1),
    ("clientid", 0, 0),
    ("username", 0, 0),
    ("payload", 0, 1),
    ("qos", 0, 0),
    ("flags", 0, 0),
    ("flag", 1, 1),
    ("peerhost", 0, 0),
    ("clientip", 0, 0),
    ("msgid", 0, 0),
    ("contains_topic", 2, 3),
    ("contains_topic_match", 2, 3),
];

/// Whether `name` is a function that takes `n` arguments; the error says what is wrong.
pub fn check(name: &str, n: usize) -> Result<(), String> {
    match TABLE.iter().find(|(f, _, _)| *f == name) {
        None => Err(format!("unknown function {name}")),
        Some((_, lo, hi)) if n < *lo || n > *hi => Err(if lo == hi {
            format!("{name} takes {lo} argument(s), got {n}")
        } else if *hi == VARIADIC {
            format!("{name} takes at least {lo} argument(s), got {n}")
        } else {
            format!("{name} takes {lo} to {hi} arguments, got {n}")
        }),
        Some(_) => Ok(()),
    }
}

/// Every function name, for the dashboard's help and the tests.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(n, _, _)| *n)
}

/// The text form of a value: strings as they are, numbers in their shortest form, maps and
/// arrays as compact JSON, undefined as `undefined` (EMQX's `str/1`).
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "undefined".to_string(),
        other => other.to_string(),
    }
}

pub(crate) fn as_str(v: &Value, f: &str) -> Result<String, EvalError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
        _ => Err(bad(format!("{f}: expected a string, got {v}"))),
    }
}

pub(crate) fn as_f64(v: &Value, f: &str) -> Result<f64, EvalError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| bad(f.to_string())),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| bad(format!("{f}: not a number: {s}"))),
        _ => Err(bad(format!("{f}: expected a number, got {v}"))),
    }
}

pub(crate) fn as_i64(v: &Value, f: &str) -> Result<i64, EvalError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|x| x.trunc() as i64))
            .ok_or_else(|| bad(f.to_string())),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .or_else(|_| s.trim().parse::<f64>().map(|x| x.trunc() as i64))
            .map_err(|_| bad(format!("{f}: not an integer: {s}"))),
        Value::Bool(b) => Ok(i64::from(*b)),
        _ => Err(bad(format!("{f}: expected an integer, got {v}"))),
    }
}

fn as_array<'v>(v: &'v Value, f: &str) -> Result<&'v Vec<Value>, EvalError> {
    v.as_array()
        .ok_or_else(|| bad(format!("{f}: expected an array, got {v}")))
}

fn as_map(v: &Value, f: &str) -> Result<Map<String, Value>, EvalError> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        Value::Null => Ok(Map::new()),
        Value::String(s) => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(bad(format!("{f}: expected a map"))),
        },
        _ => Err(bad(format!("{f}: expected a map, got {v}"))),
    }
}

fn math(args: &[Value], name: &str, op: fn(f64) -> f64) -> Result<Value, EvalError> {
    let x = as_f64(&args[0], name)?;
    let r = op(x);
    if r.is_finite() {
        Ok(float(r))
    } else {
        Err(bad(format!("{name}: out of domain")))
    }
}

fn int_of(x: f64) -> Value {
    if x.abs() < 9.0e18 {
        Value::from(x as i64)
    } else {
        float(x)
    }
}

/// Calls `name` (already checked by [`check`]) on evaluated arguments.
pub fn call(name: &str, args: Vec<Value>, s: &Scope) -> Result<Value, EvalError> {
    let a = &args;
    let arg = |i: usize| a.get(i).cloned().unwrap_or(Value::Null);
    Ok(match name {
        "abs" => match &a[0] {
            Value::Number(n) if n.is_i64() => n
                .as_i64()
                .and_then(i64::checked_abs)
                .map(Value::from)
                .unwrap_or(Value::Null),
            v => float(as_f64(v, name)?.abs()),
        },
        "ceil" => int_of(as_f64(&a[0], name)?.ceil()),
        "floor" => int_of(as_f64(&a[0], name)?.floor()),
        "round" => int_of(as_f64(&a[0], name)?.round()),
        "sqrt" => math(a, name, f64::sqrt)?,
        "exp" => math(a, name, f64::exp)?,
        "log" => math(a, name, f64::ln)?,
        "log10" => math(a, name, f64::log10)?,
        "log2" => math(a, name, f64::log2)?,
        "sin" => math(a, name, f64::sin)?,
        "cos" => math(a, name, f64::cos)?,
        "tan" => math(a, name, f64::tan)?,
        "asin" => math(a, name, f64::asin)?,
        "acos" => math(a, name, f64::acos)?,
        "atan" => math(a, name, f64::atan)?,
        "sinh" => math(a, name, f64::sinh)?,
        "cosh" => math(a, name, f64::cosh)?,
        "tanh" => math(a, name, f64::tanh)?,
        "asinh" => math(a, name, f64::asinh)?,
        "acosh" => math(a, name, f64::acosh)?,
        "atanh" => math(a, name, f64::atanh)?,
        "power" => {
            let r = as_f64(&a[0], name)?.powf(as_f64(&a[1], name)?);
            if !r.is_finite() {
                return Err(bad("power: out of range"));
            }
            float(r)
        }
        "fmod" => {
            let (x, y) = (as_f64(&a[0], name)?, as_f64(&a[1], name)?);
            if y == 0.0 {
                return Err(bad("fmod: division by zero"));
            }
            float(x % y)
        }
        "random" => float(rand::random::<f64>()),
        "bitnot" => Value::from(!as_i64(&a[0], name)?),
        "bitand" => Value::from(as_i64(&a[0], name)? & as_i64(&a[1], name)?),
        "bitor" => Value::from(as_i64(&a[0], name)? | as_i64(&a[1], name)?),
        "bitxor" => Value::from(as_i64(&a[0], name)? ^ as_i64(&a[1], name)?),
        "bitsl" | "bitsr" => {
            let (x, n) = (as_i64(&a[0], name)?, as_i64(&a[1], name)?);
            let n = u32::try_from(n).map_err(|_| bad("shift out of range"))?;
            let r = if name == "bitsl" {
                x.checked_shl(n)
            } else {
                x.checked_shr(n)
            };
            Value::from(r.ok_or_else(|| bad("shift out of range"))?)
        }
        "bytesize" => Value::from(as_str(&a[0], name)?.len()),
        "str" | "str_utf8" => Value::String(to_text(&a[0])),
        "bool" => match &a[0] {
            Value::Bool(b) => Value::Bool(*b),
            Value::Number(n) if n.as_i64() == Some(1) => Value::Bool(true),
            Value::Number(n) if n.as_i64() == Some(0) => Value::Bool(false),
            Value::String(t) if t == "true" => Value::Bool(true),
            Value::String(t) if t == "false" => Value::Bool(false),
            v => return Err(bad(format!("bool: cannot convert {v}"))),
        },
        "int" => Value::from(as_i64(&a[0], name)?),
        "float" => {
            let x = as_f64(&a[0], name)?;
            match a.get(1) {
                Some(d) => {
                    let d = as_i64(d, name)?.clamp(0, 15) as i32;
                    let p = 10f64.powi(d);
                    float((x * p).round() / p)
                }
                None => float(x),
            }
        }
        "float2str" => {
            let d = as_i64(&a[1], name)?.clamp(0, 20) as usize;
            Value::String(format!("{:.*}", d, as_f64(&a[0], name)?))
        }
        "map" => Value::Object(as_map(&a[0], name)?),
        "bin2hexstr" => Value::String(text::hex_upper(as_str(&a[0], name)?.as_bytes())),
        "hexstr2bin" => Value::String(text::unhex(&as_str(&a[0], name)?)?),
        "is_null" | "is_null_var" => Value::Bool(a[0].is_null()),
        "is_not_null" | "is_not_null_var" => Value::Bool(!a[0].is_null()),
        "is_str" => Value::Bool(a[0].is_string()),
        "is_bool" => Value::Bool(a[0].is_boolean()),
        "is_int" => Value::Bool(a[0].is_i64() || a[0].is_u64()),
        "is_float" => Value::Bool(a[0].is_f64()),
        "is_num" => Value::Bool(a[0].is_number()),
        "is_map" => Value::Bool(a[0].is_object()),
        "is_array" => Value::Bool(a[0].is_array()),
        "is_empty" => Value::Bool(match &a[0] {
            Value::Object(m) => m.is_empty(),
            Value::Array(v) => v.is_empty(),
            _ => false,
        }),
        "map_new" => Value::Object(Map::new()),
        "map_get" | "mget" => {
            let m = as_map(&a[1], name)?;
            let key = to_text(&a[0]);
            let found = map_path(&Value::Object(m), &key);
            match found {
                Value::Null => arg(2),
                v => v,
            }
        }
        "map_put" | "mput" => {
            let mut m = as_map(&a[2], name)?;
            let key = to_text(&a[0]);
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            crate::eval::put_path(&mut m, &path, a[1].clone());
            Value::Object(m)
        }
        "map_keys" => Value::Array(
            as_map(&a[0], name)?
                .keys()
                .cloned()
                .map(Value::from)
                .collect(),
        ),
        "map_values" => Value::Array(as_map(&a[0], name)?.values().cloned().collect()),
        "map_to_entries" => Value::Array(
            as_map(&a[0], name)?
                .into_iter()
                .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                .collect(),
        ),
        "map_size" => Value::from(as_map(&a[0], name)?.len()),
        "nth" => {
            let n = as_i64(&a[0], name)?;
            index(as_array(&a[1], name)?, n)?
                .cloned()
                .unwrap_or(Value::Null)
        }
        "length" => match &a[0] {
            Value::Array(v) => Value::from(v.len()),
            Value::Object(m) => Value::from(m.len()),
            v => Value::from(as_str(v, name)?.chars().count()),
        },
        "sublist" => {
            let (start, len, list) = if a.len() == 2 {
                (1, as_i64(&a[0], name)?, as_array(&a[1], name)?)
            } else {
                (
                    as_i64(&a[0], name)?,
                    as_i64(&a[1], name)?,
                    as_array(&a[2], name)?,
                )
            };
            if start < 1 || len < 0 {
                return Err(bad("sublist: bad start or length"));
            }
            Value::Array(
                list.iter()
                    .skip((start - 1) as usize)
                    .take(len as usize)
                    .cloned()
                    .collect(),
            )
        }
        "first" => as_array(&a[0], name)?
            .first()
            .cloned()
            .unwrap_or(Value::Null),
        "last" => as_array(&a[0], name)?
            .last()
            .cloned()
            .unwrap_or(Value::Null),
        "contains" => Value::Bool(as_array(&a[1], name)?.contains(&a[0])),
        "coalesce" | "coalesce_ne" => {
            let list: Vec<Value> = if a.len() == 1 {
                as_array(&a[0], name)?.clone()
            } else {
                a.clone()
            };
            let empty_ok = name == "coalesce";
            list.into_iter()
                .find(|v| !v.is_null() && (empty_ok || v.as_str() != Some("")))
                .unwrap_or(Value::Null)
        }
        "null" => Value::Null,
        "md5" | "sha" | "sha256" => Value::String(text::digest(name, &to_text(&a[0]))?),
        "hash" => {
            let alg = as_str(&a[0], name)?.to_ascii_lowercase();
            let alg = if alg == "sha1" {
                "sha".to_string()
            } else {
                alg
            };
            Value::String(text::digest(&alg, &to_text(&a[1]))?)
        }
        "base64_encode" => Value::String(text::b64_encode(to_text(&a[0]).as_bytes())),
        "base64_decode" => Value::String(text::b64_decode(&as_str(&a[0], name)?)?),
        "json_encode" => Value::String(serde_json::to_string(&a[0]).unwrap_or_default()),
        "json_decode" => {
            serde_json::from_str(&as_str(&a[0], name)?).map_err(|_| EvalError::DecodeJson)?
        }
        "uuid_v4" => Value::String(text::uuid_v4(true)),
        "uuid_v4_no_hyphen" => Value::String(text::uuid_v4(false)),
        "jq" => jq::run(&as_str(&a[0], name)?, &a[1])?,
        "topic" => {
            let t = s.columns().get("topic").cloned().unwrap_or(Value::Null);
            match a.first() {
                None => t,
                Some(n) => {
                    let n = as_i64(n, name)?;
                    let levels: Vec<Value> = t
                        .as_str()
                        .unwrap_or("")
                        .split('/')
                        .map(Value::from)
                        .collect();
                    index(&levels, n)?.cloned().unwrap_or(Value::Null)
                }
            }
        }
        "clientid" | "username" | "qos" | "flags" | "peerhost" => column(s, name),
        "clientip" => column(s, "peerhost"),
        "msgid" => column(s, "id"),
        "flag" => column(s, "flags")
            .get(to_text(&a[0]))
            .cloned()
            .unwrap_or(Value::Null),
        "payload" => {
            let p = column(s, "payload");
            match a.first() {
                None => p,
                Some(path) => {
                    let root = match &p {
                        Value::String(t) => {
                            serde_json::from_str(t).map_err(|_| EvalError::DecodeJson)?
                        }
                        v => v.clone(),
                    };
                    map_path(&root, &to_text(path))
                }
            }
        }
        "contains_topic" | "contains_topic_match" => {
            let list = as_array(&a[0], name)?;
            let topic = as_str(&a[1], name)?;
            let hit = list.iter().find(|e| {
                let f = match e {
                    Value::Object(m) => m.get("topic").and_then(Value::as_str).unwrap_or(""),
                    v => v.as_str().unwrap_or(""),
                };
                let matched = if name == "contains_topic" {
                    f == topic
                } else {
                    crate::eval::topic_match(&topic, f)
                };
                let qos_ok = match a.get(2) {
                    Some(q) => match e {
                        Value::Object(m) => m.get("qos") == Some(q),
                        _ => false,
                    },
                    None => true,
                };
                matched && qos_ok
            });
            Value::Bool(hit.is_some())
        }
        _ => {
            if let Some(v) = text::call(name, a)? {
                v
            } else if let Some(v) = time::call(name, a)? {
                v
            } else {
                return Err(bad(format!("unknown function {name}")));
            }
        }
    })
}

/// RFC 3339 text of epoch milliseconds, UTC (`2024-05-02T10:11:12.345+00:00`).
pub fn rfc3339_ms(ms: i64) -> String {
    time::rfc3339(ms, 1_000, 0)
}

fn column(s: &Scope, name: &str) -> Value {
    s.columns().get(name).cloned().unwrap_or(Value::Null)
}

/// A dotted path (`"a.b"`) into a value; missing is undefined.
fn map_path(v: &Value, path: &str) -> Value {
    if let Some(hit) = v.get(path) {
        return hit.clone();
    }
    let mut cur = v;
    for k in path.split('.') {
        match cur.get(k) {
            Some(next) => cur = next,
            None => return Value::Null,
        }
    }
    cur.clone()
}

#[cfg(test)]
mod tests;
