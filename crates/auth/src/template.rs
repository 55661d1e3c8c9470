//! Placeholder templates of the external back-ends (shared/specs/emqx-auth-api.md §4):
//! `${name}` is replaced by a client value, `${$}` is a literal `$`.
//!
//! Owns: parsing a template once (at configuration time) into literal and placeholder pieces,
//! and rendering it with an encoder chosen by the caller (URL path, form value, JSON string, SQL
//! parameter). Invariants: a placeholder that the context does not allow is kept literally and
//! never rendered (so a client value can only appear where the operator asked for it); a
//! rendered value is never parsed again, so a client value cannot change the template's shape.

use std::borrow::Cow;
use std::net::IpAddr;

/// Placeholders allowed in authentication templates (HTTP url, headers, body; SQL query).
pub(crate) const AUTHN_VARS: &[&str] = &[
    "username",
    "clientid",
    "password",
    "peerhost",
    "cert_subject",
    "cert_common_name",
    "cert_pem",
    "zone",
];

/// Placeholders allowed in JWT `verify_claims` values.
pub(crate) const JWT_CLAIM_VARS: &[&str] = &["clientid", "username"];

/// Placeholders allowed in HTTP authorization templates.
pub(crate) const AUTHZ_VARS: &[&str] = &[
    "username",
    "clientid",
    "peerhost",
    "proto_name",
    "mountpoint",
    "topic",
    "action",
    "cert_subject",
    "cert_common_name",
    "cert_pem",
    "access",
    "qos",
    "retain",
    "zone",
];

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Text used as written.
    Lit(String),
    /// A placeholder's name (allowed in this context).
    Var(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

/// The values a template may use. Absent values render as the empty string.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vars<'a> {
    pub(crate) clientid: &'a str,
    pub(crate) username: Option<&'a str>,
    pub(crate) password: Option<&'a [u8]>,
    pub(crate) peerhost: Option<IpAddr>,
    pub(crate) proto_name: Option<&'a str>,
    pub(crate) topic: Option<&'a str>,
    pub(crate) action: Option<&'a str>,
    pub(crate) qos: Option<u8>,
    pub(crate) retain: Option<bool>,
    /// `${client_attrs.NAME}`: what the client's authenticator gave it.
    pub(crate) client_attrs: Option<&'a crate::backend::ClientAttrs>,
}

impl Vars<'_> {
    /// The value of placeholder `name` (one of the context's allowed names).
    pub(crate) fn get(&self, name: &str) -> Cow<'_, str> {
        match name {
            "username" => Cow::Borrowed(self.username.unwrap_or("")),
            "clientid" => Cow::Borrowed(self.clientid),
            "password" => self
                .password
                .map_or(Cow::Borrowed(""), String::from_utf8_lossy),
            "peerhost" => self
                .peerhost
                .map_or(Cow::Borrowed(""), |ip| Cow::Owned(ip.to_string())),
            "proto_name" => Cow::Borrowed(self.proto_name.unwrap_or("")),
            "topic" => Cow::Borrowed(self.topic.unwrap_or("")),
            "action" => Cow::Borrowed(self.action.unwrap_or("")),
            "access" => Cow::Borrowed(match self.action {
                Some("subscribe") => "1",
                Some("publish") => "2",
                _ => "",
            }),
            "qos" => self
                .qos
                .map_or(Cow::Borrowed(""), |q| Cow::Owned(q.to_string())),
            "retain" => Cow::Borrowed(match self.retain {
                Some(true) => "true",
                Some(false) => "false",
                None => "",
            }),
            "zone" => Cow::Borrowed("default"),
            _ => match name.strip_prefix("client_attrs.") {
                Some(attr) => Cow::Borrowed(
                    self.client_attrs
                        .and_then(|a| a.get(attr))
                        .map_or("", String::as_str),
                ),
                // Certificates are not carried to the back-ends yet.
                None => Cow::Borrowed(""),
            },
        }
    }
}

impl Template {
    /// Parses `text`; placeholders not in `allowed` (nor `client_attrs.*`) stay literal.
    pub(crate) fn parse(text: &str, allowed: &[&str]) -> Template {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                break;
            };
            lit.push_str(&rest[..start]);
            let name = &after[..end];
            if name == "$" {
                lit.push('$');
            } else if allowed.contains(&name) || name.starts_with("client_attrs.") {
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Var(name.to_owned()));
            } else {
                tracing::warn!(
                    placeholder = name,
                    "placeholder not allowed here: kept literally"
                );
                lit.push_str(&rest[start..start + 2 + end + 1]);
            }
            rest = &after[end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Template { pieces }
    }

    /// The pieces, for renderers that bind values instead of splicing them (SQL).
    pub(crate) fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Renders with every value passed through `encode`.
    pub(crate) fn render(&self, vars: &Vars<'_>, encode: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(name) => out.push_str(&encode(&vars.get(name))),
            }
        }
        out
    }

    /// Renders with values as they are.
    pub(crate) fn render_raw(&self, vars: &Vars<'_>) -> String {
        self.render(vars, str::to_owned)
    }
}

/// Percent-encoding for a URL path segment value (RFC 3986 unreserved characters kept).
pub(crate) fn encode_path(v: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(v, SET).to_string()
}

/// `application/x-www-form-urlencoded` encoding of one value (query strings, form bodies).
pub(crate) fn encode_form(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            clientid: "c1",
            username: Some("u/1"),
            password: Some(b"p w"),
            ..Vars::default()
        }
    }

    #[test]
    fn renders_allowed_and_keeps_the_rest() {
        let t = Template::parse("a/${username}/${clientid}?x=${nope}&d=${$}", AUTHN_VARS);
        assert_eq!(t.render_raw(&vars()), "a/u/1/c1?x=${nope}&d=$");
        assert_eq!(t.render(&vars(), encode_path), "a/u%2F1/c1?x=${nope}&d=$");
        let t = Template::parse("${password}", JWT_CLAIM_VARS);
        assert_eq!(t.render_raw(&vars()), "${password}");
        assert!(t.pieces().iter().all(|p| matches!(p, Piece::Lit(_))));
    }

    #[test]
    fn unterminated_placeholder_is_literal() {
        let t = Template::parse("x${username", AUTHN_VARS);
        assert_eq!(t.render_raw(&vars()), "x${username");
    }

    #[test]
    fn form_encoding() {
        assert_eq!(encode_form("a b&c=d"), "a+b%26c%3Dd");
    }
}
