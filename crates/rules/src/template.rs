//! `${…}` templates (spec §6): topics, payloads, URLs, headers and bodies of actions.
//!
//! Owns: parsing a template once and rendering it against a rule's selected output.
//! A variable is a path into the output (`${payload.temp}` decodes a JSON-text payload on the
//! way); `${.}` is the whole output as JSON. Strings render as they are, numbers in their
//! shortest form, maps and arrays as compact JSON, and a missing variable as the sink's
//! placeholder (`undefined` for republish and HTTP).

use serde_json::Value;
use std::borrow::Cow;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// Path keys; empty: the whole output.
    Var(Vec<String>),
}

impl Template {
    /// Parses `text`; an unclosed `${` is kept as literal text.
    pub fn parse(text: &str) -> Template {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            let Some(j) = rest[i + 2..].find('}') else {
                break;
            };
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let name = rest[i + 2..i + 2 + j].trim();
            parts.push(Part::Var(path_of(name)));
            rest = &rest[i + 2 + j + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Template { parts }
    }

    /// Whether the template is exactly one variable (so a typed value, e.g. `${qos}`, can be
    /// taken as it is rather than as text).
    pub fn single_var(&self) -> bool {
        matches!(self.parts.as_slice(), [Part::Var(_)])
    }

    /// Renders against `data`; returns the text and how many variables were missing.
    pub fn render(&self, data: &Value, missing: &str) -> (String, usize) {
        let mut out = String::new();
        let mut absent = 0;
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(path) => match find(data, path) {
                    Some(v) => push_text(&mut out, &v),
                    None => {
                        absent += 1;
                        out.push_str(missing);
                    }
                },
            }
        }
        (out, absent)
    }

    /// The value of a single-variable template (typed), else the rendered text.
    pub fn value(&self, data: &Value) -> Option<Value> {
        match self.parts.as_slice() {
            [Part::Var(path)] => lookup(data, path),
            _ => Some(Value::String(self.render(data, "undefined").0)),
        }
    }
}

/// `a.b.'c-d'` → keys; `.` → the root.
fn path_of(name: &str) -> Vec<String> {
    if name == "." || name.is_empty() {
        return Vec::new();
    }
    name.split('.')
        .map(|k| k.trim_matches('\'').trim_matches('"').to_string())
        .collect()
}

/// Follows `path` into `data`, decoding JSON text on the way; a JSON null is missing.
pub fn lookup(data: &Value, path: &[String]) -> Option<Value> {
    find(data, path).map(Cow::into_owned)
}

/// [`lookup`] without copying: borrowed from `data` unless a JSON text had to be decoded on
/// the way (rendering runs once per message per action, so no copy of the whole output).
fn find<'a>(data: &'a Value, path: &[String]) -> Option<Cow<'a, Value>> {
    let mut cur = Cow::Borrowed(data);
    for k in path {
        if let Value::String(s) = cur.as_ref() {
            cur = Cow::Owned(serde_json::from_str(s).ok()?);
        }
        cur = match cur {
            Cow::Borrowed(v) => Cow::Borrowed(child(v, k)?),
            Cow::Owned(v) => Cow::Owned(child(&v, k)?.clone()),
        };
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

fn child<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => {
            let i: usize = k.parse().ok()?;
            a.get(i.checked_sub(1)?)
        }
        _ => None,
    }
}

fn push_text(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_paths_whole_output_and_missing() {
        let data =
            json!({"clientid": "c1", "n": 1.5, "payload": "{\"temp\": 21}", "m": {"k": [1, 2]}});
        let t = Template::parse("a/${clientid}/${payload.temp}/${n}/${m}/${nope}");
        assert_eq!(
            t.render(&data, "undefined"),
            ("a/c1/21/1.5/{\"k\":[1,2]}/undefined".to_string(), 1)
        );
        let whole = Template::parse("${.}").render(&data, "undefined").0;
        assert_eq!(
            serde_json::from_str::<Value>(&whole).ok(),
            Some(data.clone())
        );
        assert_eq!(Template::parse("${n}").value(&data), Some(json!(1.5)));
        assert_eq!(Template::parse("x${").render(&data, "u").0, "x${");
        assert_eq!(Template::parse("${m.k.2}").render(&data, "u").0, "2");
    }
}
