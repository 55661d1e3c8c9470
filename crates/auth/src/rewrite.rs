//! Topic rewrite (`[[rewrite]]`, EMQX's feature): a PUBLISH topic or a SUBSCRIBE filter that
//! matches a rule's `source_topic` filter and its regular expression becomes the rule's
//! `dest_topic`, with `$1`, `$2` … standing for the captures. Applied by every gateway before
//! authorization, so the ACL sees the rewritten topic. The first matching rule wins.
//!
//! Must not know: any protocol. Rules can be replaced at run time (the REST API).

use parking_lot::RwLock;
use regex::Regex;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use switchyard_core::TopicFilter;

/// What a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteAction {
    /// PUBLISH topics.
    Publish,
    /// SUBSCRIBE / UNSUBSCRIBE filters.
    Subscribe,
    /// Both.
    All,
}

impl RewriteAction {
    /// EMQX's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RewriteAction::Publish => "publish",
            RewriteAction::Subscribe => "subscribe",
            RewriteAction::All => "all",
        }
    }
}

/// One rule as written (what the API shows and takes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteRule {
    /// publish | subscribe | all.
    pub action: RewriteAction,
    /// The filter a topic must match.
    pub source_topic: String,
    /// The regular expression, with captures.
    pub re: String,
    /// The replacement, `$N` for captures.
    pub dest_topic: String,
}

#[derive(Debug)]
struct Compiled {
    rule: RewriteRule,
    source: TopicFilter,
    re: Regex,
}

/// The rules in force.
#[derive(Debug, Default)]
pub struct Rewriter {
    rules: RwLock<Vec<Compiled>>,
    /// Whether any rule is in force: checked before the lock, because every PUBLISH asks and
    /// most nodes have no rules.
    active: AtomicBool,
}

impl Rewriter {
    /// Compiles `rules`; the error names the first rule that does not compile.
    pub fn new(rules: Vec<RewriteRule>) -> Result<Self, String> {
        let r = Rewriter::default();
        r.set(rules)?;
        Ok(r)
    }

    /// Replaces the rules (all or nothing).
    pub fn set(&self, rules: Vec<RewriteRule>) -> Result<(), String> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, rule) in rules.into_iter().enumerate() {
            let source = TopicFilter::new(rule.source_topic.as_str())
                .map_err(|e| format!("rewrite[{i}].source_topic: {e}"))?;
            let re = Regex::new(&rule.re).map_err(|e| format!("rewrite[{i}].re: {e}"))?;
            compiled.push(Compiled { rule, source, re });
        }
        let mut rules = self.rules.write();
        self.active.store(!compiled.is_empty(), Ordering::Release);
        *rules = compiled;
        Ok(())
    }

    /// The rules in force.
    pub fn rules(&self) -> Vec<RewriteRule> {
        self.rules.read().iter().map(|c| c.rule.clone()).collect()
    }

    fn apply<'a>(&self, topic: &'a str, publish: bool) -> Cow<'a, str> {
        if !self.active.load(Ordering::Acquire) {
            return Cow::Borrowed(topic);
        }
        let rules = self.rules.read();
        for c in rules.iter() {
            let applies = match c.rule.action {
                RewriteAction::All => true,
                RewriteAction::Publish => publish,
                RewriteAction::Subscribe => !publish,
            };
            if !applies || !source_matches(&c.source, topic) {
                continue;
            }
            if let Some(caps) = c.re.captures(topic) {
                let mut out = String::new();
                caps.expand(&dollar_braces(&c.rule.dest_topic), &mut out);
                return Cow::Owned(out);
            }
        }
        Cow::Borrowed(topic)
    }

    /// The topic a PUBLISH goes to.
    pub fn publish<'a>(&self, topic: &'a str) -> Cow<'a, str> {
        self.apply(topic, true)
    }

    /// The filter a SUBSCRIBE (or UNSUBSCRIBE) names.
    pub fn subscribe<'a>(&self, filter: &'a str) -> Cow<'a, str> {
        self.apply(filter, false)
    }
}

/// Whether `topic` (a name, or for subscribe a filter taken literally) matches `source`.
fn source_matches(source: &TopicFilter, topic: &str) -> bool {
    match switchyard_core::TopicName::new(topic) {
        Ok(name) => source.matches(&name),
        // A wildcard filter: matches when the source filter equals it or covers it level by
        // level as text (EMQX compares filters with the same match).
        Err(_) => source.as_str() == topic || literal_cover(source.as_str(), topic),
    }
}

fn literal_cover(source: &str, filter: &str) -> bool {
    let (mut s, mut f) = (source.split('/'), filter.split('/'));
    loop {
        match (s.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some(a), Some(b)) if a == "+" || a == b => continue,
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// `$1` → `${1}`, so a capture followed by letters is not read as a named group.
fn dollar_braces(dest: &str) -> String {
    let mut out = String::with_capacity(dest.len() + 4);
    let mut chars = dest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                out.push(d);
                chars.next();
            }
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: RewriteAction, src: &str, re: &str, dest: &str) -> RewriteRule {
        RewriteRule {
            action,
            source_topic: src.into(),
            re: re.into(),
            dest_topic: dest.into(),
        }
    }

    #[test]
    fn rewrites_with_captures_first_match_and_per_action() {
        let r = Rewriter::new(vec![
            rule(RewriteAction::Publish, "x/#", r"^x/y/(.+)$", "z/y/$1"),
            rule(RewriteAction::All, "x/#", r"^x/(.+)$", "all/$1"),
            rule(
                RewriteAction::Subscribe,
                "sub/#",
                r"^sub/(\w+)/(\w+)$",
                "s/$2/$1x",
            ),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.publish("x/y/1"), "z/y/1");
        assert_eq!(r.publish("x/q"), "all/q");
        assert_eq!(
            r.subscribe("x/y/1"),
            "all/y/1",
            "the publish rule is skipped"
        );
        assert_eq!(r.subscribe("sub/a/b"), "s/b/ax");
        assert_eq!(r.publish("sub/a/b"), "sub/a/b", "a subscribe rule");
        assert_eq!(r.publish("other"), "other");
        assert_eq!(r.subscribe("x/+/1"), "all/+/1", "filters are rewritten too");
        assert!(Rewriter::new(vec![rule(RewriteAction::All, "a", "(", "b")]).is_err());
    }
}
