//! MQTT command JSON ↔ CoAP (docs/lwm2m.md §4.4–§4.7): the command envelope (every top-level key
//! except `data` echoed back), each operation's CoAP request, and the response/notify/transport
//! event JSON. Pure functions: no I/O, no clock.

use crate::codec::{self, format, parse_typed, senml, Typed, WriteItem};
use crate::objects::ObjectDb;
use crate::path::Path;
use serde_json::{json, Map, Value};
use switchyard_coap_transport::coap_lite::{CoapOption, ContentFormat, Packet};
use switchyard_coap_transport::wire::{self, code};

/// The operations of docs/lwm2m.md §4.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// GET.
    Read,
    /// GET, Accept: link-format.
    Discover,
    /// PUT (single, resource base) or POST (instance base).
    Write,
    /// PUT with attribute queries.
    WriteAttr,
    /// POST with text args.
    Execute,
    /// POST on the object.
    Create,
    /// DELETE.
    Delete,
    /// GET Observe=0.
    Observe,
    /// GET Observe=1.
    CancelObserve,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "read" => Op::Read,
            "discover" => Op::Discover,
            "write" => Op::Write,
            "write-attr" => Op::WriteAttr,
            "execute" => Op::Execute,
            "create" => Op::Create,
            "delete" => Op::Delete,
            "observe" => Op::Observe,
            "cancel-observe" => Op::CancelObserve,
            _ => return None,
        })
    }

    /// Whether a successful response carries `content` (docs/lwm2m.md §4.5).
    pub fn has_content(self) -> bool {
        matches!(
            self,
            Op::Read | Op::Discover | Op::Observe | Op::CancelObserve
        )
    }
}

/// A command from MQTT.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Every top-level key except `data` (`msgType` included), echoed in every event.
    pub echo: Map<String, Value>,
    /// The original `data`.
    pub data: Value,
    /// The operation.
    pub op: Op,
    /// The path reported as `reqPath` (the command's path without its query).
    pub req_path: String,
    /// The target path.
    pub path: Path,
}

/// A command that cannot be carried out: answered with 4.00 bad_request, keys echoed.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The keys to echo.
    pub echo: Map<String, Value>,
    /// `data.path` or `data.basePath`, when present.
    pub req_path: Option<String>,
    /// Why (logged).
    pub reason: &'static str,
}

/// Parses a command payload. `Ok(None)`: not a JSON object (dropped and counted,
/// docs/lwm2m.md §4.4).
pub fn parse(payload: &[u8]) -> Result<Option<Command>, Rejected> {
    let Ok(Value::Object(mut top)) = serde_json::from_slice::<Value>(payload) else {
        return Ok(None);
    };
    let data = top.remove("data").unwrap_or(Value::Null);
    let echo = top;
    let path_text = data
        .get("path")
        .or_else(|| data.get("basePath"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let reject = |reason| Rejected {
        echo: echo.clone(),
        req_path: path_text
            .as_deref()
            .map(|p| Path::split_query(p).0.to_owned()),
        reason,
    };
    let op = echo
        .get("msgType")
        .and_then(Value::as_str)
        .and_then(Op::parse)
        .ok_or_else(|| reject("unknown msgType"))?;
    let text = path_text.clone().ok_or_else(|| reject("missing path"))?;
    let (p, _) = Path::split_query(&text);
    let path = Path::parse(p).ok_or_else(|| reject("invalid path"))?;
    Ok(Some(Command {
        req_path: p.to_owned(),
        echo,
        data,
        op,
        path,
    }))
}

/// A CoAP request to send for a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The request (type, message id and token are the transport's).
    pub packet: Packet,
    /// Observe=0: keep the token for notifications.
    pub observe: bool,
}

fn set_path(p: &mut Packet, alternate: &str, path: &Path, query: &[String]) {
    for seg in alternate.split('/').filter(|s| !s.is_empty()) {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    for seg in path.segments() {
        p.add_option(CoapOption::UriPath, seg.to_string().into_bytes());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
}

fn content_format(p: &mut Packet, cf: u16) {
    p.add_option(CoapOption::ContentFormat, wire::uint_bytes(u32::from(cf)));
}

fn requested_format(data: &Value) -> Result<Option<u16>, &'static str> {
    match data.get("format") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => codec::format_by_name(s).map(Some).ok_or("unknown format"),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .map(Some)
            .ok_or("unknown format"),
        _ => Err("unknown format"),
    }
}

/// The CoAP request for a command; `alternate` is the device's alternate path.
pub fn build(cmd: &Command, alternate: &str) -> Result<Outgoing, &'static str> {
    let mut p = Packet::new();
    let text = cmd
        .data
        .get("path")
        .or_else(|| cmd.data.get("basePath"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let (_, mut query) = Path::split_query(text);
    let fmt = requested_format(&cmd.data)?;
    let mut observe = false;
    let method = match cmd.op {
        Op::Read => {
            // docs/lwm2m.md §4.5: no Accept unless the command asks for a format.
            if let Some(f) = fmt {
                p.add_option(CoapOption::Accept, wire::uint_bytes(u32::from(f)));
            }
            code::GET
        }
        Op::Discover => {
            p.add_option(
                CoapOption::Accept,
                wire::uint_bytes(u32::from(format::LINK)),
            );
            code::GET
        }
        Op::Observe | Op::CancelObserve => {
            observe = cmd.op == Op::Observe;
            p.set_observe_value(if observe { 0 } else { 1 });
            if let Some(f) = fmt {
                p.add_option(CoapOption::Accept, wire::uint_bytes(u32::from(f)));
            }
            code::GET
        }
        Op::Delete => code::DELETE,
        Op::Execute => {
            let args = match cmd.data.get("args") {
                Some(Value::String(s)) if s != "undefined" => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            p.set_content_format(ContentFormat::TextPlain);
            p.payload = args.into_bytes();
            code::POST
        }
        Op::WriteAttr => {
            for k in ["pmin", "pmax", "gt", "lt", "st"] {
                match cmd.data.get(k) {
                    Some(Value::String(s)) => query.push(format!("{k}={s}")),
                    // EMQX 5.8.9 crashes on numbers; accepted here (docs/lwm2m.md §4.13.11).
                    Some(Value::Number(n)) => query.push(format!("{k}={n}")),
                    _ => {}
                }
            }
            code::PUT
        }
        Op::Write | Op::Create => return build_write(cmd, alternate, fmt, query),
    };
    wire::set_code(&mut p, method);
    set_path(&mut p, alternate, &cmd.path, &query);
    Ok(Outgoing { packet: p, observe })
}

/// A content path relative to `base` (docs/lwm2m.md §4.5: relative, or absolute under the
/// base).
fn relative(base: &Path, path: &str) -> Result<Vec<u16>, &'static str> {
    let t = path.trim().trim_matches('/');
    if t.is_empty() {
        return Ok(Vec::new());
    }
    let segs = t
        .split('/')
        .map(|s| s.parse::<u16>().map_err(|_| "invalid content path"))
        .collect::<Result<Vec<_>, _>>()?;
    let b = base.segments();
    if path.trim().starts_with('/') && segs.len() >= b.len() && segs.starts_with(b) {
        return Ok(segs[b.len()..].to_vec());
    }
    Ok(segs)
}

/// One write value; `single`: the command's own path is the target (nothing relative).
fn item(base: &Path, v: &Value, single: bool) -> Result<WriteItem, &'static str> {
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or("missing type")?;
    let value = v.get("value").ok_or("missing value")?;
    let typed = parse_typed(ty, value).ok_or("invalid value")?;
    let rel = match v.get("path").and_then(Value::as_str) {
        Some(path) if !single => relative(base, path)?,
        _ => Vec::new(),
    };
    Ok(WriteItem { rel, value: typed })
}

fn build_write(
    cmd: &Command,
    alternate: &str,
    fmt: Option<u16>,
    query: Vec<String>,
) -> Result<Outgoing, &'static str> {
    let d = &cmd.data;
    let base = &cmd.path;
    let single = d.get("content").is_none();
    let items = if single {
        vec![item(base, d, true)?]
    } else {
        d.get("content")
            .and_then(Value::as_array)
            .ok_or("content is not a list")?
            .iter()
            .map(|c| item(base, c, false))
            .collect::<Result<Vec<_>, _>>()?
    };
    let method = match (cmd.op, base.len()) {
        (Op::Create, 1) => code::POST,
        (Op::Create, _) => return Err("create needs an object path"),
        // docs/lwm2m.md §4.5: a single write and a resource base are PUT; an instance base is POST
        // (partial update).
        (_, 2) if !single => code::POST,
        (_, 2) => code::PUT,
        (_, 3 | 4) => code::PUT,
        _ => return Err("write needs an instance or resource path"),
    };
    let mut p = Packet::new();
    wire::set_code(&mut p, method);
    set_path(&mut p, alternate, base, &query);
    let (cf, payload) = match fmt {
        Some(format::SENML_JSON) => (format::SENML_JSON, senml::encode_senml_json(base, &items)),
        Some(format::SENML_CBOR) => (format::SENML_CBOR, senml::encode_senml_cbor(base, &items)),
        Some(format::TEXT) if items.len() == 1 && items[0].rel.is_empty() => {
            (format::TEXT, items[0].value.text())
        }
        Some(format::OPAQUE) => match items.as_slice() {
            [WriteItem {
                rel,
                value: Typed::Opaque(b),
            }] if rel.is_empty() => (format::OPAQUE, b.clone()),
            _ => return Err("opaque needs one Opaque value"),
        },
        None | Some(format::TLV) => (format::TLV, codec::encode_tlv(base, &items)?),
        Some(_) => return Err("unsupported write format"),
    };
    if !(cmd.op == Op::Create && items.is_empty()) {
        content_format(&mut p, cf);
        p.payload = payload;
    }
    Ok(Outgoing {
        packet: p,
        observe: false,
    })
}

/// EMQX's `codeMsg`: the snake_case name of a CoAP response code.
pub fn code_msg(c: u8) -> &'static str {
    match c {
        0x41 => "created",
        0x42 => "deleted",
        0x43 => "valid",
        0x44 => "changed",
        0x45 => "content",
        0x5F => "continue",
        0x80 => "bad_request",
        0x81 => "unauthorized",
        0x82 => "bad_option",
        0x83 => "forbidden",
        0x84 => "not_found",
        0x85 => "method_not_allowed",
        0x86 => "not_acceptable",
        0x88 => "request_entity_incomplete",
        0x8C => "precondition_failed",
        0x8D => "request_entity_too_large",
        0x8F => "unsupported_content_format",
        0xA0 => "internal_server_error",
        0xA1 => "not_implemented",
        0xA2 => "bad_gateway",
        0xA3 => "service_unavailable",
        0xA4 => "gateway_timeout",
        0xA5 => "proxying_not_supported",
        _ => "unknown",
    }
}

fn envelope(echo: &Map<String, Value>, msg_type: &str, data: Value) -> Value {
    let mut m = echo.clone();
    m.insert("msgType".into(), json!(msg_type));
    m.insert("data".into(), data);
    Value::Object(m)
}

/// `data` of a result: `reqPath`, `code`, `codeMsg`, and `content` when given.
pub fn result_data(req_path: &str, c: u8, content: Option<Value>) -> Value {
    let mut d = Map::new();
    d.insert("reqPath".into(), json!(req_path));
    d.insert("code".into(), json!(wire::code_string(c)));
    d.insert("codeMsg".into(), json!(code_msg(c)));
    if let Some(content) = content {
        d.insert("content".into(), content);
    }
    Value::Object(d)
}

fn content_format_of(p: &Packet) -> Option<u16> {
    wire::uint_option(p, CoapOption::ContentFormat)
        .and_then(Result::ok)
        .and_then(|v| u16::try_from(v).ok())
}

/// The `content` of a successful reply, or `None` when the payload cannot be decoded (reported
/// as 4.00 bad_request, docs/lwm2m.md §4.5).
pub fn content(cmd: &Command, p: &Packet, db: &ObjectDb) -> Option<Value> {
    if cmd.op == Op::Discover {
        let text = String::from_utf8_lossy(&p.payload);
        let links: Vec<Value> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| json!(s))
            .collect();
        return Some(Value::Array(links));
    }
    // An empty text/plain (or opaque) reply for a resource is one value, the empty one, as EMQX
    // reports it (a String reads as "", a number is a 4.00); empty containers have no entries.
    let cf = content_format_of(p).unwrap_or(format::TEXT);
    let single_value = matches!(cf, format::TEXT | format::OPAQUE) && cmd.path.segment(2).is_some();
    if p.payload.is_empty() && !single_value {
        return Some(json!([]));
    }
    let entries = codec::decode(&cmd.path, content_format_of(p), &p.payload, db).ok()?;
    Some(Value::Array(
        entries
            .into_iter()
            .map(|(path, value)| json!({"path": path, "value": value}))
            .collect(),
    ))
}

/// The response event for a command's reply (docs/lwm2m.md §4.5, §4.6). `seq` is the reply's
/// Observe value, when it has one.
pub fn response_event(cmd: &Command, p: &Packet, db: &ObjectDb) -> Value {
    let c = wire::code_of(p);
    let success = c >> 5 == 2;
    let data = if success && cmd.op.has_content() {
        match content(cmd, p, db) {
            Some(content) => result_data(&cmd.req_path, c, Some(content)),
            None => result_data(&cmd.req_path, code::BAD_REQUEST, None),
        }
    } else {
        result_data(&cmd.req_path, c, None)
    };
    let msg_type = match cmd.op {
        Op::Observe => "observe",
        Op::CancelObserve => "cancel-observe",
        _ => cmd
            .echo
            .get("msgType")
            .and_then(Value::as_str)
            .unwrap_or(""),
    };
    let mut ev = envelope(&cmd.echo, msg_type, data);
    if cmd.op == Op::Observe {
        // docs/lwm2m.md §4.6: seqNum only when the reply carries Observe ≠ 0 (EMQX invents a
        // random one otherwise; not copied, §4.13.8).
        if let Some(seq) = p
            .get_observe_value()
            .and_then(Result::ok)
            .filter(|s| *s != 0)
        {
            if let Value::Object(m) = &mut ev {
                m.insert("seqNum".into(), json!(seq));
            }
        }
    }
    ev
}

/// A notification event for an observation started by `cmd`.
pub fn notify_event(cmd: &Command, p: &Packet, seq: u32, db: &ObjectDb) -> Value {
    let c = wire::code_of(p);
    let data = if c >> 5 == 2 {
        match content(cmd, p, db) {
            Some(content) => result_data(&cmd.req_path, c, Some(content)),
            None => result_data(&cmd.req_path, code::BAD_REQUEST, None),
        }
    } else {
        result_data(&cmd.req_path, c, None)
    };
    let mut ev = envelope(&cmd.echo, "notify", data);
    if let Value::Object(m) = &mut ev {
        m.insert("seqNum".into(), json!(seq));
    }
    ev
}

/// An `ack`, `coap_timeout` or `coap_reset` event: the echoed keys with the original data.
pub fn transport_event(cmd: &Command, msg_type: &str) -> Value {
    envelope(&cmd.echo, msg_type, cmd.data.clone())
}

/// The 4.00 bad_request answer to a rejected command (keys echoed).
pub fn rejected_event(r: &Rejected) -> Value {
    let msg_type = r.echo.get("msgType").cloned().unwrap_or(Value::Null);
    let mut m = r.echo.clone();
    m.insert("msgType".into(), msg_type);
    let mut d = Map::new();
    // Always present ("" when the command named no usable path): back-ends match replies by
    // it (emqxlwm2m reads `data.reqPath` unconditionally).
    d.insert(
        "reqPath".into(),
        json!(r.req_path.as_deref().unwrap_or_default()),
    );
    d.insert("code".into(), json!("4.00"));
    d.insert("codeMsg".into(), json!("bad_request"));
    m.insert("data".into(), Value::Object(d));
    Value::Object(m)
}

/// The 4.00 answer to a command whose data does not translate into a request.
pub fn bad_request_event(cmd: &Command) -> Value {
    envelope(
        &cmd.echo,
        cmd.echo
            .get("msgType")
            .and_then(Value::as_str)
            .unwrap_or(""),
        result_data(&cmd.req_path, code::BAD_REQUEST, None),
    )
}

#[cfg(test)]
mod tests;
