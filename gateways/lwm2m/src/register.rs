//! The Client Registration Interface's data (LwM2M TS §5.3, docs/lwm2m.md §4.2): Register and
//! Update query parameters, the CoRE link-format object list with its alternate path, and the
//! JSON of the register/update events (docs/lwm2m.md §4.3).

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use switchyard_coap_transport::wire::percent_decode;

/// Why a Register is refused: the diagnostic after "Login Failed: " (docs/lwm2m.md §4.2,
/// 4.00).
pub type Refusal = &'static str;

/// What a device registered with, merged with its Updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Endpoint name (`ep`).
    pub ep: String,
    /// Lifetime in seconds as the device asked (`lt`).
    pub lt: u64,
    /// Every query parameter as given (strings).
    pub params: BTreeMap<String, String>,
    /// The object list, alternate path stripped (`["/1/0", "/3/0"]`).
    pub object_list: Vec<String>,
    /// The alternate path (`"/"` unless a link has `rt="oma.lwm2m"`).
    pub alternate_path: String,
    /// Whether a link payload was ever given (objectList/alternatePath appear only then).
    pub has_links: bool,
    /// On a DTLS listener, what the device's handshake proved; set by the driver, never read
    /// from the wire. Its username (a PSK identity, or a mapped certificate CN) replaces
    /// `imei`, and a PSK identity needs no password.
    pub peer: Option<switchyard_net::PeerIdentity>,
}

impl Registration {
    /// The username the device authenticates as: the DTLS identity, else `imei`.
    pub fn username(&self) -> Option<&str> {
        match self.peer.as_ref().and_then(|p| p.username()) {
            Some(u) => Some(u),
            None => self.params.get("imei").map(String::as_str),
        }
    }

    /// Whether a DTLS-PSK handshake already proved who the device is.
    pub fn psk_proven(&self) -> bool {
        self.peer.as_ref().is_some_and(|p| p.is_psk())
    }
}

/// Splits `k=v` query parts (percent-decoded).
pub fn query_map(parts: &[String]) -> BTreeMap<String, String> {
    parts
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

impl Registration {
    /// A Register's query and payload. `ep`, `lt` and `lwm2m` (1.0, 1 or 1.1) are required.
    pub fn parse(query: &[String], payload: &[u8]) -> Result<Registration, Refusal> {
        let params = query_map(query);
        let ep = params
            .get("ep")
            .filter(|e| !e.is_empty())
            .ok_or("invalid queries")?
            .clone();
        let lt = params
            .get("lt")
            .and_then(|l| l.parse::<u64>().ok())
            .ok_or("invalid queries")?;
        match params.get("lwm2m").map(String::as_str) {
            Some("1.0" | "1" | "1.1" | "1.0.1" | "1.0.2") => {}
            _ => return Err("invalid lwm2m version"),
        }
        let mut r = Registration {
            ep,
            lt,
            params,
            object_list: Vec::new(),
            alternate_path: "/".into(),
            has_links: false,
            peer: None,
        };
        r.set_links(payload);
        Ok(r)
    }

    /// Merges an Update's query and (optional) new object list.
    pub fn update(&mut self, query: &[String], payload: &[u8]) -> Result<(), Refusal> {
        let params = query_map(query);
        if let Some(lt) = params.get("lt") {
            self.lt = lt.parse().map_err(|_| "invalid queries")?;
        }
        self.params.extend(params);
        self.set_links(payload);
        Ok(())
    }

    fn set_links(&mut self, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        if text.trim().is_empty() {
            return;
        }
        let (alt, list) = parse_links(&text);
        self.alternate_path = alt;
        self.object_list = list;
        self.has_links = true;
    }

    /// The binding (`b`), "U" when absent.
    pub fn binding(&self) -> &str {
        self.params.get("b").map_or("U", String::as_str)
    }

    /// Queue mode (docs/lwm2m.md §4.9): binding UQ/SQ/UQS, or an `apn` of the NB-IoT PSM profiles.
    pub fn queue_mode(&self) -> bool {
        let b = self.binding();
        let apn = self.params.get("apn").map(String::as_str);
        matches!(b, "UQ" | "SQ" | "UQS" | "Q")
            || (b.contains('Q') && b.starts_with('U'))
            || matches!(
                apn,
                Some("Ctnb" | "psmA.eDRX0.ctnb" | "psmC.eDRX0.ctnb" | "psmF.eDRXC.ctnb")
            )
    }

    /// The `data` of a register or update event: every query parameter as a string, `lt` as
    /// an integer, and `alternatePath`/`objectList` when the device sent links.
    pub fn event_data(&self) -> Value {
        let mut m: Map<String, Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        m.insert("lt".into(), json!(self.lt));
        if self.has_links {
            m.insert("alternatePath".into(), json!(self.alternate_path));
            m.insert("objectList".into(), json!(self.object_list));
        }
        Value::Object(m)
    }
}

/// Parses a link-format object list: links are split on `,`, `<>` and blanks stripped,
/// attributes dropped; a link with `rt="oma.lwm2m"` is the alternate path, whose prefix is
/// stripped from the others (docs/lwm2m.md §4.2).
pub fn parse_links(text: &str) -> (String, Vec<String>) {
    let mut alt = "/".to_owned();
    let mut links = Vec::new();
    for link in text.split(',') {
        let mut parts = link.split(';');
        let target = parts
            .next()
            .unwrap_or("")
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim()
            .to_owned();
        let is_root = parts.any(|a| {
            let a = a.trim();
            a == "rt=\"oma.lwm2m\"" || a == "rt=oma.lwm2m"
        });
        if is_root {
            alt = if target.is_empty() {
                "/".into()
            } else {
                target
            };
        } else if !target.is_empty() {
            links.push(target);
        }
    }
    let prefix = alt.trim_end_matches('/');
    let list = links
        .into_iter()
        .map(|l| match l.strip_prefix(prefix) {
            Some(rest) if !prefix.is_empty() && rest.starts_with('/') => rest.to_owned(),
            _ => l,
        })
        .collect();
    (alt, list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn register_event_matches_emqx_vector() {
        let r = Registration::parse(
            &q(&["ep=urn:oma:lwm2m:oma:3", "lt=345", "lwm2m=1"]),
            b"</1>, </2>, </3>, </4>, </5>",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let want: Value = serde_json::from_str(
            r#"{"alternatePath":"/","ep":"urn:oma:lwm2m:oma:3","lt":345,"lwm2m":"1","objectList":["/1","/2","/3","/4","/5"]}"#,
        )
        .unwrap_or_default();
        assert_eq!(r.event_data(), want);
    }

    #[test]
    fn required_params_and_versions() {
        assert!(Registration::parse(&q(&["lt=345", "lwm2m=1"]), b"").is_err());
        assert!(Registration::parse(&q(&["ep=a", "lwm2m=1"]), b"").is_err());
        assert!(Registration::parse(&q(&["ep=a", "lt=1", "lwm2m=8.3"]), b"").is_err());
        assert!(Registration::parse(&q(&["ep=a", "lt=1"]), b"").is_err());
        let r = Registration::parse(&q(&["ep=a", "lt=1", "lwm2m=1.1", "apn=x"]), b"")
            .unwrap_or_else(|e| panic!("{e}"));
        // No links: no objectList, no alternatePath; extras verbatim.
        assert_eq!(
            r.event_data(),
            json!({"ep":"a","lt":1,"lwm2m":"1.1","apn":"x"})
        );
    }

    #[test]
    fn alternate_path_is_stripped() {
        let (alt, list) = parse_links(
            r#"</lwm2m>;rt="oma.lwm2m";ct=11543,</lwm2m/1/0>,</lwm2m/2/0>,</lwm2m/3/0>"#,
        );
        assert_eq!(alt, "/lwm2m");
        assert_eq!(list, vec!["/1/0", "/2/0", "/3/0"]);
        let (alt, list) = parse_links(r#"</>;rt="oma.lwm2m",</1/0>;ver=1.1,</3/0>"#);
        assert_eq!(alt, "/");
        assert_eq!(list, vec!["/1/0", "/3/0"]);
    }

    #[test]
    fn update_merges() {
        let mut r = Registration::parse(&q(&["ep=a", "lt=345", "lwm2m=1", "b=U"]), b"</1>")
            .unwrap_or_else(|e| panic!("{e}"));
        r.update(&q(&["lt=789"]), b"</1/0>,</2/0>")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.lt, 789);
        assert_eq!(r.object_list, vec!["/1/0", "/2/0"]);
        assert_eq!(r.event_data()["b"], json!("U"));
        assert!(!r.queue_mode());
        r.update(&q(&["b=UQ"]), b"")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.queue_mode());
        assert_eq!(r.object_list, vec!["/1/0", "/2/0"]);
    }
}
