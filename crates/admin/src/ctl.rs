//! `switchyard ctl`: a tiny HTTP client of the admin API for scripts and operators (status,
//! clients list/show/kick, gateways list). Plain HTTP/1.1 over a std `TcpStream`, so the binary
//! needs no HTTP client library. Authenticates with an API key (HTTP Basic) or a
//! username/password login.

use base64::Engine;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where and how to reach the API.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` of the dashboard listener.
    pub addr: String,
    /// `Authorization` header value, once known.
    pub auth: Option<String>,
}

/// What to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// `GET /status`.
    Status,
    /// `GET /api/v5/clients` (optionally one protocol).
    ClientsList {
        /// A `proto_name` of `GET /api/v5/protocols` (`MQTT`, `MQTT-SN`, ...).
        proto: Option<String>,
    },
    /// `GET /api/v5/clients/{id}`.
    ClientsShow(String),
    /// `DELETE /api/v5/clients/{id}`.
    ClientsKick(String),
    /// `GET /api/v5/gateways`.
    GatewaysList,
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn encode_path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One request; returns (status, body).
pub fn request(
    t: &Target,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    let addr = t
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", t.addr))?
        .next()
        .ok_or_else(|| format!("{}: no address", t.addr))?;
    let mut s =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{}: {e}", t.addr))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        t.addr,
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(a) = &t.auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or("malformed HTTP status line")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(rest.get(..n).unwrap_or_default());
        s = rest.get(n..).unwrap_or_default().trim_start_matches("\r\n");
    }
    out
}

/// HTTP Basic for an API key.
pub fn basic(key: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"))
    )
}

/// Logs in and returns the bearer header value.
pub fn login(t: &Target, username: &str, password: &str) -> Result<String, String> {
    let body = serde_json::json!({ "username": username, "password": password });
    let (status, text) = request(t, "POST", "/api/v5/login", Some(&body))?;
    if status != 200 {
        return Err(format!("login failed ({status}): {text}"));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if v["must_change_password"] == Value::Bool(true) {
        return Err("this admin must change its password first (dashboard or POST /api/v5/users/{username}/change_pwd)".into());
    }
    v["token"]
        .as_str()
        .map(|t| format!("Bearer {t}"))
        .ok_or_else(|| "login answer has no token".into())
}

fn api_error(status: u16, text: &str) -> String {
    let msg = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.to_owned());
    format!("HTTP {status}: {msg}")
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs `action`; returns what to print.
pub fn run(t: &Target, action: &Action) -> Result<String, String> {
    match action {
        Action::Status => {
            let (status, text) = request(t, "GET", "/status", None)?;
            if status == 200 {
                Ok(text)
            } else {
                Err(api_error(status, &text))
            }
        }
        Action::ClientsList { proto } => {
            let mut path = "/api/v5/clients?limit=10000".to_owned();
            if let Some(p) = proto {
                path.push_str(&format!("&proto_name={}", encode_path_segment(p)));
            }
            let (status, text) = request(t, "GET", &path, None)?;
            if status != 200 {
                return Err(api_error(status, &text));
            }
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let mut out = format!(
                "{:<32} {:<8} {:<13} {:<22} {:>5}\n",
                "CLIENTID", "PROTO", "STATE", "PEER", "SUBS"
            );
            for c in v["data"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let peer = format!("{}:{}", s(&c["ip_address"]), s(&c["port"]));
                out.push_str(&format!(
                    "{:<32} {:<8} {:<13} {:<22} {:>5}\n",
                    s(&c["clientid"]),
                    s(&c["proto_name"]),
                    s(&c["conn_state"]),
                    peer,
                    s(&c["subscriptions_cnt"])
                ));
            }
            out.push_str(&format!("{} client(s)\n", s(&v["meta"]["count"])));
            Ok(out)
        }
        Action::ClientsShow(id) => {
            let (status, text) = request(
                t,
                "GET",
                &format!("/api/v5/clients/{}", encode_path_segment(id)),
                None,
            )?;
            if status != 200 {
                return Err(api_error(status, &text));
            }
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            serde_json::to_string_pretty(&v)
                .map(|s| s + "\n")
                .map_err(|e| e.to_string())
        }
        Action::ClientsKick(id) => {
            let (status, text) = request(
                t,
                "DELETE",
                &format!("/api/v5/clients/{}", encode_path_segment(id)),
                None,
            )?;
            if status == 204 {
                Ok(format!("kicked {id}\n"))
            } else {
                Err(api_error(status, &text))
            }
        }
        Action::GatewaysList => {
            let (status, text) = request(t, "GET", "/api/v5/gateways", None)?;
            if status != 200 {
                return Err(api_error(status, &text));
            }
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let mut out = format!(
                "{:<8} {:<9} {:>11}  LISTENERS\n",
                "NAME", "STATUS", "CONNECTIONS"
            );
            for g in v.as_array().map(Vec::as_slice).unwrap_or_default() {
                let listeners: Vec<String> = g["listeners"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|l| format!("{} {}", s(&l["id"]), s(&l["bind"])))
                    .collect();
                out.push_str(&format!(
                    "{:<8} {:<9} {:>11}  {}\n",
                    s(&g["name"]),
                    s(&g["status"]),
                    s(&g["current_connections"]),
                    listeners.join(", ")
                ));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(encode_path_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_path_segment("MQTT-SN"), "MQTT-SN");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
