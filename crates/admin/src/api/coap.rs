//! `POST /api/v5/gateways/coap/clients/{clientid}/request` (docs/coap.md §3.10): the gateway
//! sends a CON request to a connected CoAP client and the API returns the client's response.
//!
//! Body (EMQX's field names): `{method: get|put|post|delete, token, timeout: "10s",
//! content_type: text/plain|application/json|application/octet-stream, payload}`; an
//! octet-stream payload is base64 both ways. Our extension: an optional `uri` ("a/b") sent as
//! Uri-Path (EMQX sends no Uri-Path, and neither do we without it).
//! Answers: 200 `{id, token, method, payload}` with `method` EMQX's Erlang term for the response
//! code (`{ok,content}`); 400 for a bad body; 404 CLIENT_NOT_FOUND; 504 CLIENT_NOT_RESPONSE.

use super::{body, St};
use crate::error::{ApiError, ApiResult};
use crate::{CoapMethod, CoapRequest, CoapRequestError, CoapResponse};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The wait when the body names none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait accepted (an HTTP request held longer helps nobody).
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
struct Body {
    method: Option<String>,
    token: Option<String>,
    uri: Option<String>,
    content_type: Option<String>,
    payload: Option<String>,
    timeout: Option<Value>,
}

/// The `content_type` values EMQX accepts, with their Content-Format numbers (RFC 7252 §12.3).
const CONTENT_TYPES: [(&str, u16); 3] = [
    ("text/plain", 0),
    ("application/json", 50),
    ("application/octet-stream", 42),
];
const OCTET_STREAM: &str = "application/octet-stream";

/// The handler, dispatched from the gateway-client action route.
pub async fn request(
    st: St,
    client_id: String,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b: Body = body(&raw)?;
    let ct = b.content_type.as_deref().unwrap_or("text/plain");
    let req = parse(client_id, &b, ct)?;
    let Some(requests) = st.0.ctx.coap_requests.clone() else {
        return Err(not_found());
    };
    match requests.request(req).await {
        Ok(r) => Ok((StatusCode::OK, Json(render(&r, ct)))),
        Err(CoapRequestError::NotFound) => Err(not_found()),
        Err(CoapRequestError::NoResponse(why)) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "CLIENT_NOT_RESPONSE",
            format!("client not response: {why}"),
        )),
        Err(CoapRequestError::Invalid(why)) => Err(ApiError::bad_request(why)),
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "CLIENT_NOT_FOUND",
        "Client not found",
    )
}

fn parse(client_id: String, b: &Body, ct: &str) -> ApiResult<CoapRequest> {
    let method = match b.method.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("get") => CoapMethod::Get,
        Some("post") => CoapMethod::Post,
        Some("put") => CoapMethod::Put,
        Some("delete") => CoapMethod::Delete,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "method {other:?}: expected get, put, post or delete"
            )))
        }
    };
    let content_format = CONTENT_TYPES
        .iter()
        .find(|(name, _)| *name == ct)
        .map(|(_, n)| *n)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "content_type {ct:?}: expected text/plain, application/json or application/octet-stream"
            ))
        })?;
    let token = b.token.clone().unwrap_or_default().into_bytes();
    if token.len() > 8 {
        return Err(ApiError::bad_request(
            "token: at most 8 bytes (RFC 7252 §5.3.1)",
        ));
    }
    let text = b.payload.as_deref().unwrap_or("");
    let payload = if ct == OCTET_STREAM {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| ApiError::bad_request(format!("payload: invalid base64: {e}")))?
    } else {
        text.as_bytes().to_vec()
    };
    let uri_path = b
        .uri
        .as_deref()
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(CoapRequest {
        client_id,
        method,
        token,
        uri_path,
        content_format: Some(content_format),
        payload,
        timeout: timeout(b.timeout.as_ref())?,
    })
}

/// `"10s"`-style strings (a bare number of seconds in a string), or an integer of milliseconds
/// as EMQX's `timeout_duration_ms`.
fn timeout(v: Option<&Value>) -> ApiResult<Duration> {
    let d = match v {
        None | Some(Value::Null) => DEFAULT_TIMEOUT,
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Duration::from_millis)
            .ok_or_else(|| ApiError::bad_request("timeout: expected a positive duration"))?,
        Some(Value::String(s)) => s
            .parse::<switchyard_config::Duration>()
            .map(|d| d.as_std())
            .map_err(|e| ApiError::bad_request(format!("timeout: {e}")))?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "timeout: expected a duration like \"10s\", got {other}"
            )))
        }
    };
    if d.is_zero() || d > MAX_TIMEOUT {
        return Err(ApiError::bad_request(format!(
            "timeout: expected more than 0 and at most {}s",
            MAX_TIMEOUT.as_secs()
        )));
    }
    Ok(d)
}

/// The answer's shape (docs/coap.md §3.10), as EMQX formats its `#coap_message{}`.
fn render(r: &CoapResponse, ct: &str) -> Value {
    let token = match std::str::from_utf8(&r.token) {
        Ok(t) => t.to_owned(),
        Err(_) => r.token.iter().map(|b| format!("{b:02x}")).collect(),
    };
    let payload = if ct == OCTET_STREAM {
        base64::engine::general_purpose::STANDARD.encode(&r.payload)
    } else {
        String::from_utf8_lossy(&r.payload).into_owned()
    };
    json!({
        "id": r.message_id,
        "token": token,
        "method": method_term(r.code),
        "payload": payload,
    })
}

/// EMQX's name for a response code (`emqx_coap_frame`), printed as the Erlang term
/// (`{ok,content}`); a code it has no name for prints as `{Class,Detail}`.
fn method_term(code: u8) -> String {
    let name = match code {
        0x41 => Some("ok,created"),
        0x42 => Some("ok,deleted"),
        0x43 => Some("ok,valid"),
        0x44 => Some("ok,changed"),
        0x45 => Some("ok,content"),
        0x47 => Some("ok,nocontent"),
        0x5F => Some("ok,continue"),
        0x80 => Some("error,bad_request"),
        0x81 => Some("error,unauthorized"),
        0x82 => Some("error,bad_option"),
        0x83 => Some("error,forbidden"),
        0x84 => Some("error,not_found"),
        0x85 => Some("error,method_not_allowed"),
        0x86 => Some("error,not_acceptable"),
        0x88 => Some("error,request_entity_incomplete"),
        0x8C => Some("error,precondition_failed"),
        0x8D => Some("error,request_entity_too_large"),
        0x8F => Some("error,unsupported_content_format"),
        0xA0 => Some("error,internal_server_error"),
        0xA1 => Some("error,not_implemented"),
        0xA2 => Some("error,bad_gateway"),
        0xA3 => Some("error,service_unavailable"),
        0xA4 => Some("error,gateway_timeout"),
        0xA5 => Some("error,proxying_not_supported"),
        _ => None,
    };
    match name {
        Some(n) => format!("{{{n}}}"),
        None => format!("{{{},{}}}", code >> 5, code & 0x1F),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: Value) -> Body {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_emqx_body() {
        let body = b(json!({"method": "post", "token": "abc", "timeout": "5s",
            "content_type": "application/json", "payload": "{\"a\":1}", "uri": "/x/y"}));
        let r = parse("c1".into(), &body, "application/json");
        let r = r.unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(r.method, CoapMethod::Post);
        assert_eq!(r.token, b"abc");
        assert_eq!(r.uri_path, vec!["x".to_owned(), "y".to_owned()]);
        assert_eq!(r.content_format, Some(50));
        assert_eq!(r.payload, b"{\"a\":1}");
        assert_eq!(r.timeout, Duration::from_secs(5));
    }

    #[test]
    fn rejects_bad_input() {
        let bad = [
            (json!({"method": "patch"}), "text/plain"),
            (json!({"token": "123456789"}), "text/plain"),
            (json!({"timeout": "soon"}), "text/plain"),
            (json!({"timeout": "0s"}), "text/plain"),
            (json!({"timeout": true}), "text/plain"),
            (json!({"payload": "!!"}), OCTET_STREAM),
            (json!({}), "image/png"),
        ];
        for (v, ct) in bad {
            let e = parse("c".into(), &b(v.clone()), ct).err();
            assert_eq!(e.map(|e| e.status), Some(StatusCode::BAD_REQUEST), "{v}");
        }
    }

    #[test]
    fn octet_stream_is_base64_both_ways_and_codes_are_erlang_terms() {
        let body = b(json!({"payload": "AAH/"}));
        let r = parse("c".into(), &body, OCTET_STREAM).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(r.payload, vec![0, 1, 255]);
        assert_eq!(r.timeout, DEFAULT_TIMEOUT);
        let resp = CoapResponse {
            message_id: 7,
            token: vec![0xff],
            code: 0x45,
            payload: vec![0, 1, 255],
        };
        let v = render(&resp, OCTET_STREAM);
        assert_eq!(
            v,
            json!({"id": 7, "token": "ff", "method": "{ok,content}", "payload": "AAH/"})
        );
        assert_eq!(method_term(0x84), "{error,not_found}");
        assert_eq!(method_term(0x46), "{2,6}");
    }
}
