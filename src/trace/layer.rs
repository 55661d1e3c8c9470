//! The tracing layer behind log traces: it writes every debug-or-above event about a matching
//! client to the trace's file, whatever the console's level.
//!
//! Owns: what a connection's span says about its client (the span named [`CONN_SPAN`] that
//! every gateway opens per client, with fields `peer`, `proto` and `client_id`, kept in the
//! span's extensions as [`ConnInfo`]), the matching of an event against the running traces,
//! and the trace line formats (text and JSON).
//! Invariants: [`TraceFilter`] is this layer's own filter (per-layer filtering): it enables
//! every `conn` span, and debug events only while some trace may run, so with no trace the
//! debug call sites stay disabled (the hint goes back to INFO and the interest cache is rebuilt
//! by the hub); nothing here logs, so writing a trace line never recurses.

use super::{Active, TraceHub};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use switchyard_admin::{PayloadEncode, TraceFormatter, TraceKind};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{span, Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The name of the span every gateway opens for one client.
pub const CONN_SPAN: &str = "conn";

/// What a `conn` span says about its client.
#[derive(Debug, Default, Clone)]
pub struct ConnInfo {
    /// The `client_id` field, once recorded.
    pub client_id: Option<String>,
    /// The IP of the `peer` field.
    pub ip: Option<IpAddr>,
    /// Every field, as text, in recording order.
    fields: Vec<(&'static str, String)>,
}

/// The span extension holding [`ConnInfo`] (shared, so an event clones a pointer).
struct ConnExt(Arc<ConnInfo>);

/// Collects a span's fields as text.
#[derive(Default)]
struct SpanFields(Vec<(&'static str, String)>);

impl SpanFields {
    fn set(&mut self, name: &'static str, value: String) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    fn into_info(self) -> ConnInfo {
        let get = |name: &str| self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        ConnInfo {
            client_id: get("client_id").cloned(),
            ip: get("peer").and_then(|p| parse_ip(p)),
            fields: self.0,
        }
    }
}

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }
}

/// `127.0.0.1:5683`, `[::1]:1883` or a bare address.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| s.parse::<IpAddr>())
        .ok()
}

/// The event fields a trace can match on.
#[derive(Default)]
pub struct EventKeys {
    /// Whether to keep `topic` (some running trace is a topic trace): a trace of one client
    /// costs the other clients' events no allocation.
    want_topic: bool,
    /// `topic`.
    pub topic: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// The IP of `peer`.
    pub ip: Option<IpAddr>,
}

impl EventKeys {
    fn set(&mut self, name: &str, value: impl FnOnce() -> String) {
        match name {
            "topic" if self.want_topic => self.topic = Some(value()),
            "client_id" => self.client_id = Some(value()),
            "peer" => self.ip = parse_ip(&value()),
            _ => {}
        }
    }
}

impl Visit for EventKeys {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), || value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), || format!("{value:?}"));
    }
}

/// The layer; filter it with [`TraceFilter`].
pub struct TraceLayer {
    hub: Arc<TraceHub>,
}

impl TraceLayer {
    /// The layer writing `hub`'s traces.
    pub fn new(hub: Arc<TraceHub>) -> TraceLayer {
        TraceLayer { hub }
    }
}

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != CONN_SPAN {
            return;
        }
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut()
                .insert(ConnExt(Arc::new(fields.into_info())));
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(ConnExt(info)) = ext.get_mut::<ConnExt>() else {
            return;
        };
        let mut fields = SpanFields(info.fields.clone());
        values.record(&mut fields);
        *info = Arc::new(fields.into_info());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let traces = self.hub.snapshot();
        if traces.is_empty() {
            return;
        }
        let now = super::now_secs();
        let conn = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|s| s.extensions().get::<ConnExt>().map(|c| c.0.clone()))
        });
        let mut keys = EventKeys {
            want_topic: traces.iter().any(|t| t.spec.kind == TraceKind::Topic),
            ..EventKeys::default()
        };
        event.record(&mut keys);
        for t in traces.iter() {
            if t.spec.is_running(now) && t.matches(conn.as_deref(), &keys) {
                t.write(render(event, conn.as_deref(), t).as_bytes());
            }
        }
    }
}

/// [`TraceLayer`]'s own filter.
pub struct TraceFilter {
    hub: Arc<TraceHub>,
}

impl TraceFilter {
    /// The filter following `hub`'s traces.
    pub fn new(hub: Arc<TraceHub>) -> TraceFilter {
        TraceFilter { hub }
    }
}

impl<S> Filter<S> for TraceFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        if meta.is_span() {
            return meta.name() == CONN_SPAN;
        }
        *meta.level() <= Level::DEBUG && self.hub.any()
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() {
            if meta.name() == CONN_SPAN {
                Interest::always()
            } else {
                Interest::never()
            }
        } else if *meta.level() <= Level::DEBUG && self.hub.any() {
            // Which client an event is about is known only when it happens.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // INFO for the `conn` spans, which must exist before a trace starts.
        Some(if self.hub.any() {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        })
    }
}

/// One trace line for `event`, in `t`'s format, ending in a newline.
fn render(event: &Event<'_>, conn: Option<&ConnInfo>, t: &Active) -> String {
    let meta = event.metadata();
    let mut fields = LineFields {
        encode: t.spec.payload_encode,
        ..LineFields::default()
    };
    event.record(&mut fields);
    let mut time = String::new();
    // The same timestamps as the console (RFC 3339, UTC).
    let _ = tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut time));
    let span = conn.map_or(&[][..], |c| &c.fields[..]);
    match t.spec.formatter {
        TraceFormatter::Text => {
            let mut line = format!("{time} {:>5} ", meta.level());
            if !span.is_empty() {
                line.push_str(CONN_SPAN);
                line.push('{');
                for (i, (k, v)) in span.iter().enumerate() {
                    let sep = if i == 0 { "" } else { " " };
                    let _ = write!(line, "{sep}{k}={v}");
                }
                line.push_str("}: ");
            }
            let _ = write!(line, "{}: {}", meta.target(), fields.message);
            for (k, v) in &fields.text {
                let _ = write!(line, " {k}={v}");
            }
            line.push('\n');
            line
        }
        TraceFormatter::Json => {
            let obj = |pairs: &[(&'static str, String)]| {
                serde_json::Value::Object(
                    pairs
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
                        .collect(),
                )
            };
            let mut line = serde_json::json!({
                "time": time,
                "level": meta.level().as_str(),
                "target": meta.target(),
                "span": obj(span),
                "message": fields.message,
                "fields": obj(&fields.json),
            })
            .to_string();
            line.push('\n');
            line
        }
    }
}

/// An event's message and fields, as the trace line shows them.
#[derive(Default)]
struct LineFields {
    encode: PayloadEncode,
    message: String,
    /// `name` and the value as the text line shows it (strings quoted).
    text: Vec<(&'static str, String)>,
    /// `name` and the plain value, for JSON.
    json: Vec<(&'static str, String)>,
}

impl LineFields {
    fn push(&mut self, name: &'static str, text: String, plain: String) {
        self.text.push((name, text));
        self.json.push((name, plain));
    }
}

impl Visit for LineFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.push(field.name(), format!("{value:?}"), value.to_owned());
        }
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        let plain = match self.encode {
            PayloadEncode::Text => String::from_utf8_lossy(value).into_owned(),
            PayloadEncode::Hex => value.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02X}");
                s
            }),
            PayloadEncode::Hidden => "******".to_owned(),
        };
        self.push(field.name(), format!("{plain:?}"), plain);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.push(field.name(), text.clone(), text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_with_or_without_a_port() {
        assert_eq!(parse_ip("127.0.0.1:5683"), "127.0.0.1".parse().ok());
        assert_eq!(parse_ip("[::1]:1883"), "::1".parse().ok());
        assert_eq!(parse_ip("10.0.0.1"), "10.0.0.1".parse().ok());
        assert_eq!(parse_ip("nowhere"), None);
    }

    #[test]
    fn recorded_fields_replace_earlier_values() {
        let mut f = SpanFields::default();
        f.set("peer", "10.1.2.3:4".into());
        f.set("client_id", String::new());
        f.set("client_id", "c1".into());
        let info = f.into_info();
        assert_eq!(info.client_id.as_deref(), Some("c1"));
        assert_eq!(info.ip, "10.1.2.3".parse().ok());
        assert_eq!(info.fields.len(), 2);
    }
}
