//! Evaluates a parsed rule against one event's columns (a JSON object).
//!
//! Owns: EMQX's value semantics — `undefined` is JSON `null`; a path into a string decodes it as
//! JSON on first use (so `payload.a.b` works on a JSON payload while `payload` stays the raw
//! text); arrays are indexed from 1; a comparison with `undefined` is false unless both sides
//! are; a number compares with a numeric string.
//! Must not know: where the columns come from (bus events, a REST test context) or what the
//! outputs are used for.

use crate::sql::ast::{BinOp, Expr, Field, Rule, RuleKind, Seg};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::cmp::Ordering;
use thiserror::Error;

/// Why evaluating an expression failed (EMQX counts these as `failed.exception`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvalError {
    /// A path went into a string that is not JSON.
    #[error("decode_json_failed")]
    DecodeJson,
    /// An operator or function got a value it cannot take.
    #[error("badarg: {0}")]
    BadArg(String),
}

/// Shorthand for a bad argument.
pub(crate) fn bad(what: impl Into<String>) -> EvalError {
    EvalError::BadArg(what.into())
}

/// What a rule produced for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// SELECT passed: one output. FOREACH: one output per element kept (possibly none).
    Outputs(Vec<Value>),
    /// WHERE was not true (or FOREACH had nothing to iterate): `failed.no_result`.
    NoResult,
}

/// The names an expression can see.
pub struct Scope<'a> {
    columns: &'a Map<String, Value>,
    aliases: Option<&'a Map<String, Value>>,
    aliases_first: bool,
    item: Option<(&'a str, &'a Value)>,
    /// The payload decoded as JSON once per event, however many paths read it.
    decoded: &'a RefCell<Option<Value>>,
}

impl<'a> Scope<'a> {
    /// The event's columns (used by message helper functions such as `topic()`).
    pub fn columns(&self) -> &Map<String, Value> {
        self.columns
    }

    fn lookup(&self, name: &str) -> Option<&'a Value> {
        if let Some((n, v)) = self.item {
            if n == name {
                return Some(v);
            }
        }
        let alias = self.aliases.and_then(|a| a.get(name));
        if self.aliases_first {
            alias.or_else(|| self.columns.get(name))
        } else {
            self.columns.get(name).or(alias)
        }
    }
}

/// Runs `rule` on the event `columns`.
pub fn run(rule: &Rule, columns: &Map<String, Value>) -> Result<Outcome, EvalError> {
    let decoded = RefCell::new(None);
    match &rule.kind {
        RuleKind::Select(fields) => {
            let out = select(fields, columns, None, &decoded)?;
            if let Some(cond) = &rule.condition {
                let scope = Scope {
                    columns,
                    aliases: Some(&out),
                    aliases_first: true,
                    item: None,
                    decoded: &decoded,
                };
                if !truthy(&eval(cond, &scope)?) {
                    return Ok(Outcome::NoResult);
                }
            }
            Ok(Outcome::Outputs(vec![Value::Object(out)]))
        }
        RuleKind::Foreach {
            over,
            item,
            fields,
            incase,
        } => {
            let scope = Scope {
                columns,
                aliases: None,
                aliases_first: false,
                item: None,
                decoded: &decoded,
            };
            if let Some(cond) = &rule.condition {
                if !truthy(&eval(cond, &scope)?) {
                    return Ok(Outcome::NoResult);
                }
            }
            let list = match eval(over, &scope)? {
                Value::Array(a) => a,
                // EMQX: a FOREACH over a JSON text iterates the decoded array.
                Value::String(s) => match serde_json::from_str(&s) {
                    Ok(Value::Array(a)) => a,
                    _ => return Ok(Outcome::NoResult),
                },
                _ => return Ok(Outcome::NoResult),
            };
            let mut outs = Vec::new();
            for elem in &list {
                let scope = Scope {
                    columns,
                    aliases: None,
                    aliases_first: false,
                    item: Some((item.as_str(), elem)),
                    decoded: &decoded,
                };
                if let Some(c) = incase {
                    if !truthy(&eval(c, &scope)?) {
                        continue;
                    }
                }
                if fields.is_empty() {
                    let mut o = columns.clone();
                    o.insert(item.clone(), elem.clone());
                    outs.push(Value::Object(o));
                } else {
                    let o = select(fields, columns, Some((item.as_str(), elem)), &decoded)?;
                    outs.push(Value::Object(o));
                }
            }
            Ok(Outcome::Outputs(outs))
        }
    }
}

fn select(
    fields: &[Field],
    columns: &Map<String, Value>,
    item: Option<(&str, &Value)>,
    decoded: &RefCell<Option<Value>>,
) -> Result<Map<String, Value>, EvalError> {
    let mut out = Map::new();
    for f in fields {
        match f {
            Field::All => {
                for (k, v) in columns {
                    out.insert(k.clone(), v.clone());
                }
            }
            Field::Expr { expr, target } => {
                let v = {
                    let scope = Scope {
                        columns,
                        aliases: Some(&out),
                        aliases_first: false,
                        item,
                        decoded,
                    };
                    eval(expr, &scope)?
                };
                put_path(&mut out, target, v);
            }
        }
    }
    Ok(out)
}

/// Sets `path` in `out`, creating the objects on the way (`AS o.a` → `{"o": {"a": v}}`).
pub fn put_path(out: &mut Map<String, Value>, path: &[String], v: Value) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut cur = out;
    for k in init {
        let slot = cur
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(m) => cur = m,
            _ => return,
        }
    }
    cur.insert(last.clone(), v);
}

/// Only `true` is true (EMQX: a WHERE that is not `true` filters the message out).
pub fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

/// Evaluates one expression.
pub fn eval(e: &Expr, s: &Scope) -> Result<Value, EvalError> {
    match e {
        Expr::Lit(v) => Ok(v.clone()),
        Expr::Path(segs) => path(segs, s),
        Expr::Sub(base, segs) => {
            let v = eval(base, s)?;
            walk(v, segs, s)
        }
        Expr::Array(items) => items
            .iter()
            .map(|i| eval(i, s))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Expr::Call(name, args) => {
            let vals = args
                .iter()
                .map(|a| eval(a, s))
                .collect::<Result<Vec<_>, _>>()?;
            crate::funcs::call(name, vals, s)
        }
        Expr::Not(x) => Ok(Value::Bool(!truthy(&eval(x, s)?))),
        Expr::Neg(x) => match eval(x, s)? {
            Value::Number(n) => Ok(match n.as_i64() {
                Some(i) => i
                    .checked_neg()
                    .map(Value::from)
                    .unwrap_or_else(|| float(-(i as f64))),
                None => float(-n.as_f64().unwrap_or(0.0)),
            }),
            other => Err(bad(format!("cannot negate {other}"))),
        },
        Expr::In(x, list, negated) => {
            let v = eval(x, s)?;
            let mut found = false;
            for item in list {
                if compare(&v, &eval(item, s)?) == Some(Ordering::Equal) {
                    found = true;
                    break;
                }
            }
            Ok(Value::Bool(found != *negated))
        }
        Expr::Case {
            subject,
            whens,
            otherwise,
        } => {
            let subj = subject.as_ref().map(|x| eval(x, s)).transpose()?;
            for (c, v) in whens {
                let cv = eval(c, s)?;
                let hit = match &subj {
                    Some(sv) => compare(sv, &cv) == Some(Ordering::Equal),
                    None => truthy(&cv),
                };
                if hit {
                    return eval(v, s);
                }
            }
            match otherwise {
                Some(o) => eval(o, s),
                None => Ok(Value::Null),
            }
        }
        Expr::Bin(op, l, r) => binary(*op, l, r, s),
    }
}

fn path(segs: &[Seg], s: &Scope) -> Result<Value, EvalError> {
    let Some((Seg::Key(first), rest)) = segs.split_first() else {
        return Ok(Value::Null);
    };
    // The payload is decoded once per event, not once per path.
    if first == "payload" && !rest.is_empty() && s.lookup("payload").is_some_and(Value::is_string) {
        let cached = s.decoded.borrow().clone();
        let root = match cached {
            Some(v) => v,
            None => {
                let text = s.lookup("payload").and_then(Value::as_str).unwrap_or("");
                let v: Value = serde_json::from_str(text).map_err(|_| EvalError::DecodeJson)?;
                *s.decoded.borrow_mut() = Some(v.clone());
                v
            }
        };
        return walk(root, rest, s);
    }
    let root = s.lookup(first).cloned().unwrap_or(Value::Null);
    walk(root, rest, s)
}

/// Follows path steps from `v`; a string on the way is decoded as JSON.
fn walk(mut v: Value, segs: &[Seg], s: &Scope) -> Result<Value, EvalError> {
    for seg in segs {
        if let Value::String(text) = &v {
            v = serde_json::from_str(text).map_err(|_| EvalError::DecodeJson)?;
        }
        v = match seg {
            Seg::Key(k) => match v {
                Value::Object(mut m) => m.remove(k).unwrap_or(Value::Null),
                _ => Value::Null,
            },
            Seg::Index(ix) => {
                let i = eval(ix, s)?;
                match (v, i) {
                    (Value::Array(a), Value::Number(n)) => {
                        let n = n.as_i64().ok_or_else(|| bad("index is not an integer"))?;
                        index(&a, n)?.cloned().unwrap_or(Value::Null)
                    }
                    (Value::Object(mut m), Value::String(k)) => m.remove(&k).unwrap_or(Value::Null),
                    (Value::Null, _) => Value::Null,
                    _ => Value::Null,
                }
            }
            Seg::Range(a, b) => {
                let (a, b) = (eval(a, s)?, eval(b, s)?);
                match v {
                    Value::Array(arr) => {
                        let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) else {
                            return Err(bad("range bounds must be integers"));
                        };
                        Value::Array(range(&arr, a, b))
                    }
                    _ => Value::Null,
                }
            }
        };
    }
    Ok(v)
}

/// 1-based position `n` (negative: from the end); 0 is refused as EMQX does.
pub(crate) fn index(a: &[Value], n: i64) -> Result<Option<&Value>, EvalError> {
    let len = a.len() as i64;
    // Checked: the index may come from a payload (`payload.l[payload.i]`).
    let i = match n.cmp(&0) {
        Ordering::Greater => n - 1,
        Ordering::Less => match len.checked_add(n) {
            Some(i) => i,
            None => return Ok(None),
        },
        Ordering::Equal => return Err(bad("index 0 (arrays are 1-based)")),
    };
    if i < 0 {
        return Ok(None);
    }
    Ok(usize::try_from(i).ok().and_then(|i| a.get(i)))
}

/// Elements `a..=b`, 1-based (negative from the end), clamped to the array.
pub(crate) fn range(arr: &[Value], a: i64, b: i64) -> Vec<Value> {
    let len = arr.len() as i64;
    let norm = |n: i64| {
        if n < 0 {
            len.saturating_add(n).saturating_add(1)
        } else {
            n
        }
    };
    let (a, b) = (norm(a).max(1), norm(b).min(len));
    if a > b {
        return Vec::new();
    }
    arr[(a - 1) as usize..b as usize].to_vec()
}

fn binary(op: BinOp, l: &Expr, r: &Expr, s: &Scope) -> Result<Value, EvalError> {
    match op {
        BinOp::And => {
            return Ok(Value::Bool(truthy(&eval(l, s)?) && truthy(&eval(r, s)?)));
        }
        BinOp::Or => {
            return Ok(Value::Bool(truthy(&eval(l, s)?) || truthy(&eval(r, s)?)));
        }
        _ => {}
    }
    let (a, b) = (eval(l, s)?, eval(r, s)?);
    let cmp = |want: fn(Ordering) -> bool| Ok(Value::Bool(compare(&a, &b).is_some_and(want)));
    match op {
        BinOp::Eq => cmp(|o| o == Ordering::Equal),
        BinOp::Ne => {
            // Undefined on one side: false, like every comparison with undefined.
            if a.is_null() != b.is_null() {
                return Ok(Value::Bool(false));
            }
            Ok(Value::Bool(compare(&a, &b) != Some(Ordering::Equal)))
        }
        BinOp::Lt => cmp(|o| o == Ordering::Less),
        BinOp::Le => cmp(|o| o != Ordering::Greater),
        BinOp::Gt => cmp(|o| o == Ordering::Greater),
        BinOp::Ge => cmp(|o| o != Ordering::Less),
        BinOp::TopicMatch => match (&a, &b) {
            (Value::String(t), Value::String(f)) => Ok(Value::Bool(topic_match(t, f))),
            _ => Ok(Value::Bool(false)),
        },
        BinOp::Add => match (&a, &b) {
            (Value::String(_), _) | (_, Value::String(_)) => Ok(Value::String(format!(
                "{}{}",
                crate::funcs::to_text(&a),
                crate::funcs::to_text(&b)
            ))),
            _ => arith(op, &a, &b),
        },
        _ => arith(op, &a, &b),
    }
}

fn arith(op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
    let (Value::Number(x), Value::Number(y)) = (a, b) else {
        return Err(bad(format!("arithmetic on {a} and {b}")));
    };
    if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
        let r = match op {
            BinOp::Add => i.checked_add(j),
            BinOp::Sub => i.checked_sub(j),
            BinOp::Mul => i.checked_mul(j),
            BinOp::IntDiv => {
                return i
                    .checked_div(j)
                    .map(Value::from)
                    .ok_or_else(|| bad("division by zero"))
            }
            BinOp::Mod => {
                return i
                    .checked_rem(j)
                    .map(Value::from)
                    .ok_or_else(|| bad("division by zero"))
            }
            _ => None,
        };
        if let Some(r) = r {
            return Ok(Value::from(r));
        }
    }
    let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
    match op {
        BinOp::Add => Ok(float(x + y)),
        BinOp::Sub => Ok(float(x - y)),
        BinOp::Mul => Ok(float(x * y)),
        BinOp::Div if y == 0.0 => Err(bad("division by zero")),
        BinOp::Div => Ok(float(x / y)),
        _ => Err(bad("div and mod take integers")),
    }
}

/// A float as a JSON number (NaN and infinities are undefined).
pub(crate) fn float(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// How two values order, EMQX-style: undefined equals only undefined; a number and a numeric
/// string compare as numbers; otherwise same types only.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y),
        (Value::Number(x), Value::String(t)) => {
            let y: f64 = t.trim().parse().ok()?;
            x.as_f64()?.partial_cmp(&y)
        }
        (Value::String(t), Value::Number(y)) => {
            let x: f64 = t.trim().parse().ok()?;
            x.partial_cmp(&y.as_f64()?)
        }
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ if a == b => Some(Ordering::Equal),
        _ => None,
    }
}

fn num_cmp(x: &Number, y: &Number) -> Option<Ordering> {
    match (x.as_i64(), y.as_i64()) {
        (Some(i), Some(j)) => Some(i.cmp(&j)),
        _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

/// Whether topic `t` matches filter `f` (`+` one level, `#` the rest), as MQTT defines it;
/// a filter starting with a wildcard does not match a `$` topic (MQTT-4.7.2-1).
pub fn topic_match(t: &str, f: &str) -> bool {
    if t.starts_with('$') && (f.starts_with('+') || f.starts_with('#')) {
        return false;
    }
    let mut tl = t.split('/');
    for fl in f.split('/') {
        match fl {
            "#" => return true,
            "+" => {
                if tl.next().is_none() {
                    return false;
                }
            }
            lit => {
                if tl.next() != Some(lit) {
                    return false;
                }
            }
        }
    }
    tl.next().is_none()
}
