//! Topic matching for ACL rules: a rule's filter covers a topic name (publish) or a whole
//! subscription filter (subscribe), with the MQTT `$` rule (MQTT-4.7.2-1: a wildcard at the
//! first level never matches a topic starting with `$`).

/// Whether every topic that `sub` matches is matched by `rule`. For a topic name (no
/// wildcards) this is plain matching. `+` in `rule` covers any one level of `sub` except `#`;
/// `#` in `rule` covers the rest, including `#` and the parent level (`a/#` covers `a`);
/// a literal level covers only the same literal, never `+` or `#`.
pub(crate) fn covers(rule: &str, sub: &str) -> bool {
    let mut r = rule.split('/');
    let mut s = sub.split('/');
    let mut first = true;
    loop {
        match (r.next(), s.next()) {
            (Some("#"), Some(level)) => return !(first && level.starts_with('$')),
            (Some("#"), None) => return true,
            (Some("+"), Some(level)) => {
                if level == "#" || (first && level.starts_with('$')) {
                    return false;
                }
            }
            (Some(a), Some(b)) => {
                if a != b {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
        first = false;
    }
}

/// The filter inside a shared subscription (`$share/<group>/<filter>`, `$queue/<filter>`),
/// which is what the ACL checks; any other filter as it is.
pub(crate) fn unshare(filter: &str) -> &str {
    if let Some(rest) = filter.strip_prefix("$share/") {
        return rest.split_once('/').map_or(rest, |(_, f)| f);
    }
    filter.strip_prefix("$queue/").unwrap_or(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(covers("#", "a/b"));
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/b/c"));
        assert!(covers("a/+/c", "a/b/c"));
        assert!(!covers("a/+/c", "a/b/d"));
        assert!(!covers("a/+", "a/b/c"));
        assert!(covers("+/+", "/x"));
        assert!(!covers("#", "$SYS/x"));
        assert!(!covers("+/x", "$SYS/x"));
        assert!(covers("$SYS/#", "$SYS/brokers"));
        assert!(covers("a/b", "a/b"));
        assert!(!covers("a/b", "a/b/"));
    }

    #[test]
    fn filters() {
        assert!(covers("a/#", "a/+/b"));
        assert!(covers("a/#", "a/#"));
        assert!(covers("#", "#"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("a/b", "#"));
        assert!(!covers("a/#", "#"));
        assert!(!covers("#", "$SYS/#"));
        assert!(covers("$SYS/#", "$SYS/#"));
    }

    #[test]
    fn shared() {
        assert_eq!(unshare("$share/g/a/b"), "a/b");
        assert_eq!(unshare("$queue/a/b"), "a/b");
        assert_eq!(unshare("a/b"), "a/b");
    }
}
