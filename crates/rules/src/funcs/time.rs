//! Time functions. Switchyard runs on UTC: where EMQX would use the node's local offset
//! ("local"), the offset is +00:00.

use super::{as_i64, as_str};
use crate::eval::{bad, EvalError};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

fn unit_per_sec(unit: &str) -> Result<i64, EvalError> {
    Ok(match unit {
        "second" => 1,
        "millisecond" => 1_000,
        "microsecond" => 1_000_000,
        "nanosecond" => 1_000_000_000,
        other => return Err(bad(format!("unknown time unit {other}"))),
    })
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The time functions; `None` when `name` is not one of them.
pub(super) fn call(name: &str, a: &[Value]) -> Result<Option<Value>, EvalError> {
    let unit = |i: usize, default: &str| -> Result<String, EvalError> {
        match a.get(i) {
            Some(v) => as_str(v, name),
            None => Ok(default.to_string()),
        }
    };
    Ok(Some(match name {
        "now_timestamp" => {
            let per = unit_per_sec(&unit(0, "second")?)?;
            Value::from((now_ns() * per as i128 / 1_000_000_000) as i64)
        }
        "now_rfc3339" => {
            let u = unit(0, "second")?;
            let per = unit_per_sec(&u)?;
            let ts = (now_ns() * per as i128 / 1_000_000_000) as i64;
            Value::String(rfc3339(ts, per, 0))
        }
        "unix_ts_to_rfc3339" => {
            let per = unit_per_sec(&unit(1, "second")?)?;
            Value::String(rfc3339(as_i64(&a[0], name)?, per, 0))
        }
        "rfc3339_to_unix_ts" => {
            let per = unit_per_sec(&unit(1, "second")?)?;
            let ns = parse_rfc3339(&as_str(&a[0], name)?)
                .ok_or_else(|| bad("rfc3339_to_unix_ts: not an RFC 3339 time"))?;
            Value::from((ns * per as i128).div_euclid(1_000_000_000) as i64)
        }
        "format_date" => {
            let per = unit_per_sec(&as_str(&a[0], name)?)?;
            let offset = offset_secs(&a[1])?;
            let fmt = as_str(&a[2], name)?;
            let ts = match a.get(3) {
                Some(v) => as_i64(v, name)?,
                None => (now_ns() * per as i128 / 1_000_000_000) as i64,
            };
            Value::String(format_date(ts, per, offset, &fmt))
        }
        "timezone_to_second" | "timezone_to_offset_seconds" => Value::from(offset_secs(&a[0])?),
        _ => return Ok(None),
    }))
}

/// `Z`, `local`, `+hh:mm`, `-hhmm`, or seconds.
fn offset_secs(v: &Value) -> Result<i64, EvalError> {
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    let t = v.as_str().ok_or_else(|| bad("bad time offset"))?;
    match t {
        "Z" | "z" | "local" | "" => return Ok(0),
        _ => {}
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return t.parse().map_err(|_| bad(format!("bad time offset {t}"))),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("bad time offset {t}")));
    }
    let h: i64 = digits[..2].parse().unwrap_or(0);
    let m: i64 = digits[2..].parse().unwrap_or(0);
    Ok(sign * (h * 3600 + m * 60))
}

/// Days since 1970-01-01 → (year, month, day) (H. Hinnant's civil calendar algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

struct Parts {
    y: i64,
    mo: u32,
    d: u32,
    h: i64,
    mi: i64,
    s: i64,
    ns: i64,
}

fn split(ts: i64, per: i64, offset: i64) -> Parts {
    let secs = ts.div_euclid(per).saturating_add(offset);
    let frac = ts.rem_euclid(per);
    let ns = frac * (1_000_000_000 / per);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil(days);
    Parts {
        y,
        mo,
        d,
        h: sod / 3600,
        mi: sod % 3600 / 60,
        s: sod % 60,
        ns,
    }
}

fn offset_text(offset: i64, colon: bool, secs: bool) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.unsigned_abs();
    let (h, m, s) = (o / 3600, o % 3600 / 60, o % 60);
    match (colon, secs) {
        (false, _) => format!("{sign}{h:02}{m:02}"),
        (true, false) => format!("{sign}{h:02}:{m:02}"),
        (true, true) => format!("{sign}{h:02}:{m:02}:{s:02}"),
    }
}

/// RFC 3339 text of `ts` (in `per` units per second) at `offset` seconds, with as many
/// fraction digits as the unit has.
pub(crate) fn rfc3339(ts: i64, per: i64, offset: i64) -> String {
    let p = split(ts, per, offset);
    let frac = match per {
        1_000 => format!(".{:03}", p.ns / 1_000_000),
        1_000_000 => format!(".{:06}", p.ns / 1_000),
        1_000_000_000 => format!(".{:09}", p.ns),
        _ => String::new(),
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{}",
        p.y,
        p.mo,
        p.d,
        p.h,
        p.mi,
        p.s,
        offset_text(offset, true, false)
    )
}

/// `strftime`-like directives EMQX's `format_date` takes: `%Y %m %d %H %M %S %N %3N %6N %z
/// %:z %::z %%`.
fn format_date(ts: i64, per: i64, offset: i64, fmt: &str) -> String {
    let p = split(ts, per, offset);
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let (text, used) = if tail.starts_with("::z") {
            (offset_text(offset, true, true), 3)
        } else if tail.starts_with(":z") {
            (offset_text(offset, true, false), 2)
        } else if tail.starts_with("3N") {
            (format!("{:03}", p.ns / 1_000_000), 2)
        } else if tail.starts_with("6N") {
            (format!("{:06}", p.ns / 1_000), 2)
        } else if tail.starts_with("9N") {
            (format!("{:09}", p.ns), 2)
        } else {
            match tail.chars().next() {
                Some('Y') => (format!("{:04}", p.y), 1),
                Some('m') => (format!("{:02}", p.mo), 1),
                Some('d') => (format!("{:02}", p.d), 1),
                Some('H') => (format!("{:02}", p.h), 1),
                Some('M') => (format!("{:02}", p.mi), 1),
                Some('S') => (format!("{:02}", p.s), 1),
                Some('N') => (format!("{:09}", p.ns), 1),
                Some('z') => (offset_text(offset, false, false), 1),
                Some('%') => ("%".to_string(), 1),
                Some(c) => (format!("%{c}"), c.len_utf8()),
                None => ("%".to_string(), 0),
            }
        };
        out.push_str(&text);
        rest = &tail[used..];
    }
    out.push_str(rest);
    out
}

/// Nanoseconds since the epoch of an RFC 3339 time (`2024-05-02T10:11:12.345+08:00`).
fn parse_rfc3339(t: &str) -> Option<i128> {
    let b = t.as_bytes();
    if b.len() < 20 || !t.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut ns: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &t[start..i];
        if digits.is_empty() {
            return None;
        }
        let padded: String = format!("{digits:0<9}").chars().take(9).collect();
        ns = padded.parse().ok()?;
    }
    let offset = offset_secs(&Value::from(t.get(i..)?)).ok()?;
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(ns))
}
