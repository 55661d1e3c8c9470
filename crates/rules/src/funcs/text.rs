//! String, codec and hash functions.

use super::{as_array, as_i64, as_str, to_text};
use crate::eval::{bad, EvalError};
use base64::Engine;
use regex::Regex;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

/// Compiled patterns kept per thread, so a rule does not recompile its regex per message; bounded
/// because patterns may come from payloads.
const REGEX_CACHE: usize = 64;

thread_local! {
    static REGEXES: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

fn regex(pattern: &str) -> Result<Regex, EvalError> {
    REGEXES.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(r) = c.get(pattern) {
            return Ok(r.clone());
        }
        let r = Regex::new(pattern).map_err(|e| bad(format!("bad regex: {e}")))?;
        if c.len() >= REGEX_CACHE {
            c.clear();
        }
        c.insert(pattern.to_string(), r.clone());
        Ok(r)
    })
}

/// The string functions; `None` when `name` is not one of them.
pub(super) fn call(name: &str, a: &[Value]) -> Result<Option<Value>, EvalError> {
    let s = |i: usize| a.get(i).map(|v| as_str(v, name)).transpose();
    let s0 = || -> Result<String, EvalError> { s(0).map(Option::unwrap_or_default) };
    let text = |t: String| Ok(Some(Value::String(t)));
    match name {
        "lower" => text(s0()?.to_lowercase()),
        "upper" => text(s0()?.to_uppercase()),
        "trim" => text(s0()?.trim().to_string()),
        "ltrim" => text(s0()?.trim_start().to_string()),
        "rtrim" => match s(1)? {
            Some(chars) => text(s0()?.trim_end_matches(|c| chars.contains(c)).to_string()),
            None => text(s0()?.trim_end().to_string()),
        },
        "reverse" => text(s0()?.chars().rev().collect()),
        "strlen" => Ok(Some(Value::from(s0()?.chars().count()))),
        "substr" => {
            // EMQX's substr is 0-based: substr('abcdef', 2) = 'cdef'.
            let start = as_i64(&a[1], name)?.max(0) as usize;
            let t = s0()?;
            let chars = t.chars().skip(start);
            match a.get(2) {
                Some(n) => text(chars.take(as_i64(n, name)?.max(0) as usize).collect()),
                None => text(chars.collect()),
            }
        }
        "split" => {
            let (t, sep) = (s0()?, s(1)?.unwrap_or_default());
            if sep.is_empty() {
                return Err(bad("split: empty separator"));
            }
            let parts: Vec<&str> = match s(2)?.as_deref() {
                Some("leading") => t.splitn(2, sep.as_str()).collect(),
                Some("trailing") => {
                    let mut v: Vec<&str> = t.rsplitn(2, sep.as_str()).collect();
                    v.reverse();
                    v
                }
                Some("notrim") => t.split(sep.as_str()).collect(),
                _ => t.split(sep.as_str()).filter(|p| !p.is_empty()).collect(),
            };
            Ok(Some(Value::Array(
                parts.into_iter().map(Value::from).collect(),
            )))
        }
        "tokens" => {
            let (t, seps) = (s0()?, s(1)?.unwrap_or_default());
            let nocrlf = s(2)?.as_deref() == Some("nocrlf");
            let parts = t
                .split(|c: char| seps.contains(c) || (nocrlf && (c == '\r' || c == '\n')))
                .filter(|p| !p.is_empty())
                .map(Value::from)
                .collect();
            Ok(Some(Value::Array(parts)))
        }
        "concat" => {
            if a.len() == 1 {
                let list = as_array(&a[0], name)?;
                text(list.iter().map(to_text).collect())
            } else {
                text(format!("{}{}", to_text(&a[0]), to_text(&a[1])))
            }
        }
        "sprintf" => text(sprintf(&s0()?, &a[1..])?),
        "pad" => {
            let t = s0()?;
            let n = as_i64(&a[1], name)?.clamp(0, 1 << 20) as usize;
            let dir = s(2)?.unwrap_or_else(|| "trailing".into());
            let ch = s(3)?.and_then(|c| c.chars().next()).unwrap_or(' ');
            let missing = n.saturating_sub(t.chars().count());
            let fill = |k: usize| std::iter::repeat(ch).take(k).collect::<String>();
            text(match dir.as_str() {
                "leading" => format!("{}{t}", fill(missing)),
                "both" => format!("{}{t}{}", fill(missing / 2), fill(missing - missing / 2)),
                _ => format!("{t}{}", fill(missing)),
            })
        }
        "replace" => {
            let (t, from, to) = (s0()?, s(1)?.unwrap_or_default(), s(2)?.unwrap_or_default());
            if from.is_empty() {
                return text(t);
            }
            text(match s(3)?.as_deref() {
                Some("leading") => t.replacen(&from, &to, 1),
                Some("trailing") => match t.rfind(&from) {
                    Some(i) => format!("{}{to}{}", &t[..i], &t[i + from.len()..]),
                    None => t,
                },
                _ => t.replace(&from, &to),
            })
        }
        "regex_match" => Ok(Some(Value::Bool(
            regex(&s(1)?.unwrap_or_default())?.is_match(&s0()?),
        ))),
        "regex_replace" => {
            let re = regex(&s(1)?.unwrap_or_default())?;
            let rep = erl_replacement(&s(2)?.unwrap_or_default());
            text(re.replace_all(&s0()?, rep.as_str()).into_owned())
        }
        "regex_extract" => {
            let re = regex(&s(1)?.unwrap_or_default())?;
            let t = s0()?;
            let groups = match re.captures(&t) {
                Some(c) if c.len() > 1 => c
                    .iter()
                    .skip(1)
                    .map(|m| Value::from(m.map(|m| m.as_str()).unwrap_or("")))
                    .collect(),
                Some(c) => vec![Value::from(c.get(0).map(|m| m.as_str()).unwrap_or(""))],
                None => Vec::new(),
            };
            Ok(Some(Value::Array(groups)))
        }
        "ascii" => Ok(Some(
            s0()?
                .chars()
                .next()
                .map(|c| Value::from(c as u32))
                .unwrap_or(Value::Null),
        )),
        "find" => {
            let (t, sub) = (s0()?, s(1)?.unwrap_or_default());
            let at = if s(2)?.as_deref() == Some("trailing") {
                t.rfind(&sub)
            } else {
                t.find(&sub)
            };
            text(at.map(|i| t[i..].to_string()).unwrap_or_default())
        }
        "join_to_string" => {
            let (sep, list) = if a.len() == 2 {
                (s0()?, as_array(&a[1], name)?)
            } else {
                (", ".to_string(), as_array(&a[0], name)?)
            };
            text(list.iter().map(to_text).collect::<Vec<_>>().join(&sep))
        }
        "unescape" => text(unescape(&s0()?)),
        "rm_prefix" => {
            let (t, p) = (s0()?, s(1)?.unwrap_or_default());
            text(t.strip_prefix(p.as_str()).unwrap_or(&t).to_string())
        }
        _ => Ok(None),
    }
}

/// Erlang `re:replace` writes groups as `\1` and the whole match as `&`; the regex crate wants
/// `${1}` and `${0}`, and a literal `$` escaped.
fn erl_replacement(rep: &str) -> String {
    let mut out = String::new();
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '&' => out.push_str("${0}"),
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                Some(other) => {
                    chars.next();
                    if other == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(other);
                    }
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// Erlang `io_lib:format` directives people use in rules: `~s`, `~p`, `~w`, `~n`, `~~`.
fn sprintf(fmt: &str, args: &[Value]) -> Result<String, EvalError> {
    let mut out = String::new();
    let mut next = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('~') => out.push('~'),
            Some('n') => out.push('\n'),
            Some('s') | Some('p') | Some('w') => {
                let v = next
                    .next()
                    .ok_or_else(|| bad("sprintf: too few arguments"))?;
                out.push_str(&to_text(v));
            }
            other => return Err(bad(format!("sprintf: unsupported directive ~{other:?}"))),
        }
    }
    Ok(out)
}

fn unescape(t: &str) -> String {
    let mut out = String::new();
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// Upper-case hex (EMQX's `bin2hexstr`).
pub(super) fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hex text back to a string (invalid UTF-8 replaced: rule values are text).
pub(super) fn unhex(t: &str) -> Result<String, EvalError> {
    if t.len() % 2 != 0 || !t.is_ascii() {
        return Err(bad("hexstr2bin: odd length or not hex"));
    }
    let bytes = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).map_err(|_| bad("hexstr2bin: not hex")))
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Lower-case hex digest of `data`.
pub(super) fn digest(alg: &str, data: &str) -> Result<String, EvalError> {
    use sha2::Digest;
    let b = data.as_bytes();
    Ok(match alg {
        "md5" => hex_lower(&md5::Md5::digest(b)),
        "sha" => hex_lower(&sha1::Sha1::digest(b)),
        "sha224" => hex_lower(&sha2::Sha224::digest(b)),
        "sha256" => hex_lower(&sha2::Sha256::digest(b)),
        "sha384" => hex_lower(&sha2::Sha384::digest(b)),
        "sha512" => hex_lower(&sha2::Sha512::digest(b)),
        other => return Err(bad(format!("hash: unknown algorithm {other}"))),
    })
}

pub(super) fn b64_encode(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub(super) fn b64_decode(t: &str) -> Result<String, EvalError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(t.trim())
        .map_err(|_| bad("base64_decode: not base64"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A random (version 4) UUID.
pub(super) fn uuid_v4(hyphens: bool) -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex_lower(&b);
    if hyphens {
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    } else {
        h
    }
}
