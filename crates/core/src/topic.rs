//! Topic names and filters, validated once at the edge (MQTT 3.1.1 §4.7, MQTT 5 §4.7–4.8).
//!
//! Invariants: a [`TopicName`] is non-empty UTF-8 without wildcards or NUL; a [`TopicFilter`] has
//! `+` and `#` only as whole levels and `#` only last. Shared-subscription prefixes are parsed
//! into [`SubscriptionFilter`], never left inside a `TopicFilter`.

use bytestring::ByteString;
use std::fmt;
use thiserror::Error;

/// Longest topic in bytes (MQTT-1.5.3: UTF-8 strings are at most 65,535 bytes).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Why a topic name or filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    /// MQTT-4.7.3-1: topic names and filters are at least one character.
    #[error("topic is empty (MQTT-4.7.3-1)")]
    Empty,
    /// MQTT-1.5.3: at most 65,535 bytes.
    #[error("topic is longer than 65535 bytes")]
    TooLong,
    /// MQTT-4.7.3-2: U+0000 is not allowed.
    #[error("topic contains U+0000 (MQTT-4.7.3-2)")]
    NulChar,
    /// MQTT-3.3.2-2: a topic name must not contain wildcards.
    #[error("topic name contains a wildcard (MQTT-3.3.2-2)")]
    WildcardInName,
    /// MQTT-4.7.1-2 / 4.7.1-3: wildcards must occupy a whole level, `#` only last.
    #[error("wildcard not on a whole level or '#' not last (MQTT-4.7.1-2)")]
    BadWildcard,
    /// Deeper than `mqtt.max_topic_levels`.
    #[error("topic has {levels} levels, more than the limit {max}")]
    TooManyLevels {
        /// levels found
        levels: usize,
        /// configured limit
        max: usize,
    },
    /// MQTT 5 §4.8.2: `$share/{ShareName}/{filter}` with a non-empty share name without `/+#`.
    #[error("malformed shared subscription (MQTT 5 §4.8.2)")]
    BadShare,
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if s.contains('\0') {
        return Err(TopicError::NulChar);
    }
    Ok(())
}

/// Counts `/`-separated levels.
fn level_count(s: &str) -> usize {
    s.bytes().filter(|b| *b == b'/').count() + 1
}

fn check_levels(s: &str, max_levels: usize) -> Result<(), TopicError> {
    let levels = level_count(s);
    if max_levels > 0 && levels > max_levels {
        return Err(TopicError::TooManyLevels {
            levels,
            max: max_levels,
        });
    }
    Ok(())
}

/// A topic a message is published to. Cheap to clone (shared bytes).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(ByteString);

impl TopicName {
    /// Validates a topic name with no level limit.
    pub fn new(s: impl Into<ByteString>) -> Result<Self, TopicError> {
        Self::with_max_levels(s, 0)
    }

    /// Validates a topic name; `max_levels == 0` means unlimited.
    pub fn with_max_levels(
        s: impl Into<ByteString>,
        max_levels: usize,
    ) -> Result<Self, TopicError> {
        let s = s.into();
        check_common(&s)?;
        if s.contains(['+', '#']) {
            return Err(TopicError::WildcardInName);
        }
        check_levels(&s, max_levels)?;
        Ok(TopicName(s))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string, for zero-copy encoding.
    pub fn as_bytestring(&self) -> &ByteString {
        &self.0
    }

    /// `$`-prefixed topics are reserved for the server (MQTT-4.7.2-1).
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }

    /// Iterates the levels.
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicName({:?})", &*self.0)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subscription filter without any shared-subscription prefix.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(ByteString);

impl TopicFilter {
    /// Validates a filter with no level limit.
    pub fn new(s: impl Into<ByteString>) -> Result<Self, TopicError> {
        Self::with_max_levels(s, 0)
    }

    /// Validates a filter; `max_levels == 0` means unlimited.
    pub fn with_max_levels(
        s: impl Into<ByteString>,
        max_levels: usize,
    ) -> Result<Self, TopicError> {
        let s = s.into();
        check_common(&s)?;
        let mut levels = s.split('/').peekable();
        while let Some(level) = levels.next() {
            let is_last = levels.peek().is_none();
            match level {
                "#" if !is_last => return Err(TopicError::BadWildcard),
                "#" | "+" => {}
                l if l.contains(['+', '#']) => return Err(TopicError::BadWildcard),
                _ => {}
            }
        }
        check_levels(&s, max_levels)?;
        Ok(TopicFilter(s))
    }

    /// The filter as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string.
    pub fn as_bytestring(&self) -> &ByteString {
        &self.0
    }

    /// Whether the filter contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.0.contains(['+', '#'])
    }

    /// Iterates the levels.
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// The reference matcher (MQTT 3.1.1 §4.7): straightforward and obviously right, used by the
    /// router's tests as the oracle and for single checks such as ACLs.
    pub fn matches(&self, topic: &TopicName) -> bool {
        if topic.is_system() && (self.0.starts_with('+') || self.0.starts_with('#')) {
            return false;
        }
        let mut f = self.levels();
        let mut t = topic.levels();
        loop {
            match (f.next(), t.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(fl), Some(tl)) if fl == tl => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicFilter({:?})", &*self.0)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The group a shared subscription belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SharedGroup {
    /// `$share/{name}/…`
    Named(ByteString),
    /// EMQX's `$queue/…`: one global group per filter.
    Queue,
}

impl SharedGroup {
    /// The group name; `$queue` for the queue form.
    pub fn name(&self) -> &str {
        match self {
            SharedGroup::Named(n) => n,
            SharedGroup::Queue => "$queue",
        }
    }
}

/// What a client subscribes to: a filter, possibly in a shared group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionFilter {
    /// `Some` for `$share/{group}/…` and `$queue/…`.
    pub group: Option<SharedGroup>,
    /// The filter that is matched against topics.
    pub filter: TopicFilter,
}

impl SubscriptionFilter {
    /// Parses a filter as sent in SUBSCRIBE, recognising `$share/` and `$queue/`.
    pub fn parse(s: &str, max_levels: usize) -> Result<Self, TopicError> {
        if let Some(rest) = s.strip_prefix("$share/") {
            let (group, filter) = rest.split_once('/').ok_or(TopicError::BadShare)?;
            if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
                return Err(TopicError::BadShare);
            }
            return Ok(SubscriptionFilter {
                group: Some(SharedGroup::Named(ByteString::from(group))),
                filter: TopicFilter::with_max_levels(filter, max_levels)?,
            });
        }
        if s == "$share" || s == "$share/" {
            return Err(TopicError::BadShare);
        }
        if let Some(filter) = s.strip_prefix("$queue/") {
            if filter.is_empty() {
                return Err(TopicError::BadShare);
            }
            return Ok(SubscriptionFilter {
                group: Some(SharedGroup::Queue),
                filter: TopicFilter::with_max_levels(filter, max_levels)?,
            });
        }
        Ok(SubscriptionFilter {
            group: None,
            filter: TopicFilter::with_max_levels(s, max_levels)?,
        })
    }

    /// Whether this is a shared subscription.
    pub fn is_shared(&self) -> bool {
        self.group.is_some()
    }
}

impl fmt::Display for SubscriptionFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(SharedGroup::Named(g)) => write!(f, "$share/{g}/{}", self.filter),
            Some(SharedGroup::Queue) => write!(f, "$queue/{}", self.filter),
            None => write!(f, "{}", self.filter),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TopicName {
        TopicName::new(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn names() {
        assert!(TopicName::new("a/b").is_ok());
        assert!(TopicName::new("/").is_ok());
        assert!(TopicName::new("a//b").is_ok());
        assert_eq!(TopicName::new(""), Err(TopicError::Empty));
        assert_eq!(TopicName::new("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("a#"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("a\0b"), Err(TopicError::NulChar));
        assert_eq!(
            TopicName::with_max_levels("a/b/c", 2),
            Err(TopicError::TooManyLevels { levels: 3, max: 2 })
        );
        assert!(TopicName::with_max_levels("a/b/c", 3).is_ok());
    }

    #[test]
    fn filters() {
        for ok in ["#", "+", "a/#", "a/+/b", "+/+", "/#", "a//+", "$SYS/#"] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
        for bad in ["a/#/b", "sport+", "a/b#", "#/", "a+/b", ""] {
            assert!(TopicFilter::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_rules_from_spec() {
        // MQTT 3.1.1 §4.7.1.2 examples.
        assert!(filter("sport/tennis/player1/#").matches(&name("sport/tennis/player1")));
        assert!(filter("sport/tennis/player1/#").matches(&name("sport/tennis/player1/ranking")));
        assert!(filter("sport/#").matches(&name("sport")));
        assert!(filter("sport/tennis/+").matches(&name("sport/tennis/player1")));
        assert!(!filter("sport/tennis/+").matches(&name("sport/tennis/player1/ranking")));
        assert!(!filter("sport/+").matches(&name("sport")));
        assert!(filter("sport/+").matches(&name("sport/")));
        assert!(filter("+/+").matches(&name("/finance")));
        assert!(filter("/+").matches(&name("/finance")));
        assert!(!filter("+").matches(&name("/finance")));
        // MQTT-4.7.2-1
        assert!(!filter("#").matches(&name("$SYS/x")));
        assert!(!filter("+/monitor/Clients").matches(&name("$SYS/monitor/Clients")));
        assert!(filter("$SYS/#").matches(&name("$SYS/monitor/Clients")));
        assert!(filter("$SYS/monitor/+").matches(&name("$SYS/monitor/Clients")));
    }

    #[test]
    fn shared() {
        let s = SubscriptionFilter::parse("$share/g1/a/+", 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.group, Some(SharedGroup::Named("g1".into())));
        assert_eq!(s.filter.as_str(), "a/+");
        assert_eq!(s.to_string(), "$share/g1/a/+");
        let q = SubscriptionFilter::parse("$queue/a/b", 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.group, Some(SharedGroup::Queue));
        for bad in [
            "$share/g1",
            "$share//a",
            "$share/g+/a",
            "$share/g1/",
            "$queue/",
            "$share",
        ] {
            assert!(SubscriptionFilter::parse(bad, 0).is_err(), "{bad}");
        }
        let plain = SubscriptionFilter::parse("$sharex/a", 0).unwrap_or_else(|e| panic!("{e}"));
        assert!(plain.group.is_none());
    }
}
