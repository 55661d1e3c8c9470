//! MQTT topics and filters as NATS subjects.
//!
//! MQTT topic levels may hold anything but `/`, `+` and `#`, including `.`, spaces and nothing at
//! all; a NATS subject token may hold none of `.`, whitespace, `*`, `>`, and may not be empty.
//! So each level is encoded on its own, totally and reversibly: ASCII letters, digits, `_` and
//! `-` stand for themselves, every other byte is `~` and two upper-case hex digits, and an empty
//! level is a lone `~` (which no non-empty level encodes to). Levels join with `.`; in a filter
//! `+` becomes `*` and a trailing `#` becomes `>`. NATS's `>` needs at least one more token, while
//! MQTT's `a/#` also matches `a`, so such a filter needs two subjects (`subjects_for_filter`).
//! The local router still decides exactly who gets a message: these subjects only make sure
//! the node receives every message one of its filters may match.

/// Encodes one topic level as a subject token.
pub fn encode_level(level: &str, out: &mut String) {
    if level.is_empty() {
        out.push('~');
        return;
    }
    for b in level.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('~');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// Decodes one subject token back into a topic level; `None` when it is not an encoding.
pub fn decode_level(token: &str) -> Option<String> {
    if token == "~" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'~' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            let byte = hi << 4 | lo;
            // Only the one encoding of each level is accepted (a byte that stands for itself,
            // escaped, is not), and a level never holds the level separator.
            if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' || byte == b'/' {
                return None;
            }
            out.push(byte);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    if out.is_empty() {
        return None;
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `prefix.<levels>` for a topic name.
pub fn subject_for_topic(prefix: &str, topic: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + topic.len() + 8);
    s.push_str(prefix);
    for level in topic.split('/') {
        s.push('.');
        encode_level(level, &mut s);
    }
    s
}

/// The topic name a subject under `prefix` stands for; `None` when it is not one.
pub fn topic_for_subject(prefix: &str, subject: &str) -> Option<String> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let mut topic = String::with_capacity(rest.len());
    for (i, token) in rest.split('.').enumerate() {
        if i > 0 {
            topic.push('/');
        }
        topic.push_str(&decode_level(token)?);
    }
    Some(topic)
}

/// The subjects a node subscribes to for an MQTT topic filter: one, or two for a filter ending
/// in `/#` (its parent level matches too, MQTT-4.7.1-2).
pub fn subjects_for_filter(prefix: &str, filter: &str) -> Vec<String> {
    let levels: Vec<&str> = filter.split('/').collect();
    let mut s = String::with_capacity(prefix.len() + filter.len() + 8);
    s.push_str(prefix);
    let mut parent = None;
    for (i, level) in levels.iter().enumerate() {
        match *level {
            "#" => {
                if i > 0 {
                    parent = Some(s.clone());
                }
                s.push_str(".>");
            }
            "+" => s.push_str(".*"),
            other => {
                s.push('.');
                encode_level(other, &mut s);
            }
        }
    }
    let mut out = vec![s];
    out.extend(parent);
    out
}

/// The subject prefix of a cluster's messages: `sy.<name>.<kind>` with the name encoded as a
/// level, so any cluster name is a valid token.
pub fn prefix(cluster: &str, kind: &str) -> String {
    let mut s = String::from("sy.");
    encode_level(cluster, &mut s);
    s.push('.');
    s.push_str(kind);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What NATS accepts as a published subject: non-empty tokens without separators,
    /// whitespace or wildcards.
    fn valid_subject(s: &str) -> bool {
        s.split('.').all(|t| {
            !t.is_empty() && !t.contains(|c: char| c.is_whitespace() || c == '*' || c == '>')
        })
    }

    #[test]
    fn examples() {
        let p = prefix("switchyard", "m");
        assert_eq!(p, "sy.switchyard.m");
        assert_eq!(subject_for_topic(&p, "a/b"), "sy.switchyard.m.a.b");
        assert_eq!(
            subject_for_topic(&p, "a.b/ c"),
            "sy.switchyard.m.a~2Eb.~20c"
        );
        assert_eq!(subject_for_topic(&p, "/x//"), "sy.switchyard.m.~.x.~.~");
        assert_eq!(subject_for_topic(&p, "$SYS/x"), "sy.switchyard.m.~24SYS.x");
        assert_eq!(subject_for_topic(&p, "~"), "sy.switchyard.m.~7E");
        assert_eq!(
            subjects_for_filter(&p, "a/+/c"),
            vec!["sy.switchyard.m.a.*.c"]
        );
        assert_eq!(
            subjects_for_filter(&p, "a/#"),
            vec!["sy.switchyard.m.a.>", "sy.switchyard.m.a"]
        );
        assert_eq!(subjects_for_filter(&p, "#"), vec!["sy.switchyard.m.>"]);
        assert_eq!(prefix("my cluster.1", "r"), "sy.my~20cluster~2E1.r");
    }

    #[test]
    fn not_encodings_are_refused() {
        for bad in ["", "~", "~4", "~4g", "a b", "~C3", "~41", "~2F", "x~5Fy"] {
            let decoded = decode_level(bad);
            // A lone "~" is the empty level; everything else here is not an encoding.
            if bad == "~" {
                assert_eq!(decoded.as_deref(), Some(""));
            } else {
                assert_eq!(decoded, None, "{bad:?}");
            }
        }
        assert_eq!(topic_for_subject("sy.c.m", "sy.c.x.a"), None);
        assert_eq!(topic_for_subject("sy.c.m", "sy.c.m"), None);
    }

    fn topic() -> impl Strategy<Value = String> {
        // Levels from a mix of what MQTT allows: dots, spaces, `$`, `~`, UTF-8, empty.
        let level = prop::string::string_regex("([a-zA-Z0-9 ._$~-]|é|漢|\u{1F600}){0,6}")
            .expect("valid regex");
        prop::collection::vec(level, 1..6).prop_map(|v| v.join("/"))
    }

    proptest! {
        #[test]
        fn topics_round_trip(t in topic(), name in "[a-z .]{1,8}") {
            let p = prefix(&name, "m");
            let s = subject_for_topic(&p, &t);
            prop_assert!(valid_subject(&s), "{s}");
            prop_assert_eq!(topic_for_subject(&p, &s), Some(t));
        }

        #[test]
        fn a_filter_subject_covers_what_the_filter_matches(
            t in topic(), mask in prop::collection::vec(0u8..3, 6),
        ) {
            // Build a filter that matches `t`: some levels replaced by `+`, maybe a `#` tail.
            let levels: Vec<&str> = t.split('/').collect();
            let mut f: Vec<String> = Vec::new();
            let mut tail = false;
            for (i, l) in levels.iter().enumerate() {
                match mask.get(i).copied().unwrap_or(0) {
                    1 => f.push("+".into()),
                    2 => { f.push("#".into()); tail = true; break; }
                    _ => f.push((*l).to_string()),
                }
            }
            // `a/#` matches `a` too.
            if !tail && mask.get(levels.len()).copied() == Some(2) {
                f.push("#".into());
            }
            let filter = f.join("/");
            let p = prefix("c", "m");
            let subject = subject_for_topic(&p, &t);
            let subs = subjects_for_filter(&p, &filter);
            prop_assert!(subs.iter().any(|s| nats_matches(s, &subject)),
                "{filter} -> {subs:?} does not cover {subject}");
        }
    }

    /// NATS subject matching: `*` one token, `>` one or more trailing tokens.
    fn nats_matches(pattern: &str, subject: &str) -> bool {
        let p: Vec<&str> = pattern.split('.').collect();
        let s: Vec<&str> = subject.split('.').collect();
        for (i, tok) in p.iter().enumerate() {
            match *tok {
                ">" => return s.len() > i,
                "*" => {
                    if i >= s.len() {
                        return false;
                    }
                }
                lit => {
                    if s.get(i) != Some(&lit) {
                        return false;
                    }
                }
            }
        }
        p.len() == s.len()
    }
}
