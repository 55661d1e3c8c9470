//! Topic templates: the one renderer for mountpoints, the gateways' topic settings and ACL
//! rules. A template is text with `${name}` placeholders (`${clientid}`, `${username}`,
//! `${endpoint_name}`); an unknown name stays as written.
//!
//! Invariant: a rendered value never adds topic levels or wildcards of its own. A value that
//! contains `/`, `+`, `#` or NUL, or a placeholder whose value the client did not provide (or
//! provided empty), is an error naming the placeholder, so a client can never escape the prefix
//! it was given. Gateways refuse such a client with their not-authorized code; ACL rules treat
//! the error as "this rule does not match".

use thiserror::Error;

/// The values a template may use; `None` where the client provided none.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateVars<'a> {
    /// `${clientid}`.
    pub clientid: Option<&'a str>,
    /// `${username}`.
    pub username: Option<&'a str>,
    /// `${endpoint_name}` (LwM2M).
    pub endpoint_name: Option<&'a str>,
}

/// Why a template could not be rendered for a client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    /// The client provided no value (or an empty one) for the placeholder.
    #[error("placeholder ${{{0}}} has no value for this client")]
    Missing(&'static str),
    /// The value would add topic levels or wildcards.
    #[error("value {value:?} of placeholder ${{{placeholder}}} contains '/', '+', '#' or NUL")]
    Unsafe {
        /// The placeholder's name.
        placeholder: &'static str,
        /// The offending value.
        value: String,
    },
}

impl TemplateError {
    /// The placeholder at fault, for the log line.
    pub fn placeholder(&self) -> &'static str {
        match self {
            TemplateError::Missing(p) | TemplateError::Unsafe { placeholder: p, .. } => p,
        }
    }
}

const NAMES: [&str; 3] = ["clientid", "username", "endpoint_name"];

impl<'a> TemplateVars<'a> {
    fn get(&self, name: &str) -> Option<(&'static str, Option<&'a str>)> {
        let i = NAMES.iter().position(|n| *n == name)?;
        let v = match i {
            0 => self.clientid,
            1 => self.username,
            _ => self.endpoint_name,
        };
        NAMES.get(i).map(|n| (*n, v))
    }
}

/// Renders `template` for a client. A template without `${` is returned as it is.
pub fn render_topic(template: &str, vars: &TemplateVars<'_>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let (before, tail) = rest.split_at(start);
        out.push_str(before);
        let Some(end) = tail.find('}') else {
            out.push_str(tail);
            return Ok(out);
        };
        let name = tail.get(2..end).unwrap_or_default();
        match vars.get(name) {
            Some((placeholder, value)) => {
                let value = value
                    .filter(|v| !v.is_empty())
                    .ok_or(TemplateError::Missing(placeholder))?;
                if value.contains(['/', '+', '#', '\0']) {
                    return Err(TemplateError::Unsafe {
                        placeholder,
                        value: value.to_owned(),
                    });
                }
                out.push_str(value);
            }
            // Not ours: kept as written (a literal part of the topic).
            None => out.push_str(tail.get(..=end).unwrap_or_default()),
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(c: Option<&'a str>, u: Option<&'a str>) -> TemplateVars<'a> {
        TemplateVars {
            clientid: c,
            username: u,
            endpoint_name: None,
        }
    }

    #[test]
    fn renders_known_placeholders_and_keeps_unknown_ones() {
        let v = vars(Some("dev1"), Some("alice"));
        assert_eq!(render_topic("plain/", &v), Ok("plain/".into()));
        assert_eq!(
            render_topic("t/${clientid}/${username}/", &v),
            Ok("t/dev1/alice/".into())
        );
        assert_eq!(render_topic("${other}/x", &v), Ok("${other}/x".into()));
        assert_eq!(
            render_topic("open ${clientid", &v),
            Ok("open ${clientid".into())
        );
        let ep = TemplateVars {
            endpoint_name: Some("ep9"),
            ..v
        };
        assert_eq!(
            render_topic("lwm2m/${endpoint_name}/", &ep),
            Ok("lwm2m/ep9/".into())
        );
    }

    #[test]
    fn refuses_missing_values_and_values_that_escape() {
        assert_eq!(
            render_topic("u/${username}/", &vars(Some("c"), None)),
            Err(TemplateError::Missing("username"))
        );
        assert_eq!(
            render_topic("u/${username}/", &vars(Some("c"), Some(""))),
            Err(TemplateError::Missing("username"))
        );
        for bad in ["a/b", "+", "#", "x\0y"] {
            let e = render_topic("c/${clientid}/", &vars(Some(bad), None));
            assert!(
                matches!(&e, Err(TemplateError::Unsafe { placeholder: "clientid", value }) if value == bad),
                "{bad:?}: {e:?}"
            );
            assert_eq!(e.err().map(|e| e.placeholder()), Some("clientid"));
        }
        // A placeholder the template does not use needs no value.
        assert_eq!(
            render_topic("c/${clientid}/", &vars(Some("ok"), None)),
            Ok("c/ok/".into())
        );
    }
}
