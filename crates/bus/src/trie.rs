//! A topic trie keyed by filter levels, generic over what hangs at each filter.
//!
//! `+` and `#` are stored as ordinary child keys, so a filter maps to exactly one path. Matching
//! walks the literal level, `+` and `#` children at each step. Invariant: no empty node survives
//! a removal, so the trie's size follows the number of distinct filters.

use std::collections::HashMap;

/// A trie from topic filters to values of type `L`.
#[derive(Debug)]
pub(crate) struct Trie<L> {
    root: Node<L>,
}

#[derive(Debug)]
struct Node<L> {
    /// Looked up up to three times per level of every published topic (the level, `+`, `#`),
    /// so a fast seeded hash rather than SipHash.
    children: HashMap<Box<str>, Node<L>, foldhash::fast::RandomState>,
    value: Option<L>,
}

impl<L> Default for Node<L> {
    fn default() -> Self {
        Node {
            children: HashMap::default(),
            value: None,
        }
    }
}

impl<L> Default for Trie<L> {
    fn default() -> Self {
        Trie {
            root: Node::default(),
        }
    }
}

impl<L: Default> Trie<L> {
    /// The value at `filter`, created if absent.
    pub(crate) fn entry(&mut self, filter: &str) -> &mut L {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.entry(Box::from(level)).or_default();
        }
        node.value.get_or_insert_with(L::default)
    }
}

impl<L> Trie<L> {
    /// The value at `filter`, if any.
    pub(crate) fn get_mut(&mut self, filter: &str) -> Option<&mut L> {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.get_mut(level)?;
        }
        node.value.as_mut()
    }

    /// Removes the value at `filter` when `is_empty` says so, pruning empty nodes.
    pub(crate) fn prune(&mut self, filter: &str, is_empty: impl Fn(&L) -> bool) {
        let levels: Vec<&str> = filter.split('/').collect();
        prune_node(&mut self.root, &levels, &is_empty);
    }

    /// Calls `f` with every value whose filter matches `topic` (MQTT 3.1.1 §4.7), including the
    /// rule that `$`-topics are not matched by a leading wildcard (MQTT-4.7.2-1).
    pub(crate) fn for_each_match(&self, topic: &str, mut f: impl FnMut(&L)) {
        // Per publish: most topics have a handful of levels, so no heap allocation.
        let levels: smallvec::SmallVec<[&str; 16]> = topic.split('/').collect();
        let system = topic.starts_with('$');
        match_node(&self.root, &levels, !system, &mut f);
    }

    /// The value at `filter`, if any.
    pub(crate) fn get(&self, filter: &str) -> Option<&L> {
        let mut node = &self.root;
        for level in filter.split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref()
    }

    /// Calls `f` with every filter that holds a value and the value (in no particular order).
    pub(crate) fn for_each_filter(&self, mut f: impl FnMut(&str, &L)) {
        fn walk<L>(node: &Node<L>, path: &mut String, top: bool, f: &mut impl FnMut(&str, &L)) {
            for (level, child) in &node.children {
                let len = path.len();
                if !top {
                    path.push('/');
                }
                path.push_str(level);
                if let Some(value) = &child.value {
                    f(path, value);
                }
                walk(child, path, false, f);
                path.truncate(len);
            }
        }
        walk(&self.root, &mut String::new(), true, &mut f);
    }

    /// Whether nothing is stored.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.root.children.is_empty() && self.root.value.is_none()
    }
}

fn prune_node<L>(node: &mut Node<L>, levels: &[&str], is_empty: &impl Fn(&L) -> bool) -> bool {
    match levels.split_first() {
        None => {
            if node.value.as_ref().is_some_and(is_empty) {
                node.value = None;
            }
        }
        Some((first, rest)) => {
            let remove = match node.children.get_mut(*first) {
                Some(child) => prune_node(child, rest, is_empty),
                None => false,
            };
            if remove {
                node.children.remove(*first);
            }
        }
    }
    node.value.is_none() && node.children.is_empty()
}

fn match_node<L>(node: &Node<L>, levels: &[&str], wildcards: bool, f: &mut impl FnMut(&L)) {
    if wildcards {
        // `#` matches the parent level too (MQTT-4.7.1-2: "sport/#" matches "sport").
        if let Some(value) = node.children.get("#").and_then(|n| n.value.as_ref()) {
            f(value);
        }
    }
    let Some((first, rest)) = levels.split_first() else {
        if let Some(value) = &node.value {
            f(value);
        }
        return;
    };
    if let Some(child) = node.children.get(*first) {
        match_node(child, rest, true, f);
    }
    if wildcards {
        if let Some(child) = node.children.get("+") {
            match_node(child, rest, true, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use switchyard_core::{TopicFilter, TopicName};

    fn matches(trie: &Trie<Vec<usize>>, topic: &str) -> Vec<usize> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |v| out.extend_from_slice(v));
        out.sort_unstable();
        out
    }

    #[test]
    fn every_filter_is_listed_once() {
        let mut trie: Trie<Vec<usize>> = Trie::default();
        for (i, f) in ["a/b", "a/#", "/x//", "+", "a"].iter().enumerate() {
            trie.entry(f).push(i);
        }
        let mut seen = Vec::new();
        trie.for_each_filter(|f, _| seen.push(f.to_string()));
        seen.sort();
        assert_eq!(seen, vec!["+", "/x//", "a", "a/#", "a/b"]);
    }

    #[test]
    fn basic_and_dollar_rule() {
        let mut t: Trie<Vec<usize>> = Trie::default();
        for (i, f) in ["#", "a/#", "a/+", "+/+", "$SYS/#", "a/b", "+"]
            .iter()
            .enumerate()
        {
            t.entry(f).push(i);
        }
        assert_eq!(matches(&t, "a/b"), vec![0, 1, 2, 3, 5]);
        assert_eq!(matches(&t, "a"), vec![0, 1, 6]);
        assert_eq!(matches(&t, "$SYS/x"), vec![4]);
        assert_eq!(matches(&t, "$SYS"), vec![4]);
        t.prune("#", |_| true);
        t.prune("a/#", |_| true);
        assert_eq!(matches(&t, "a"), vec![6]);
        for f in ["a/+", "+/+", "$SYS/#", "a/b", "+"] {
            t.prune(f, |_| true);
        }
        assert!(t.is_empty());
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("".to_string()),
            Just("$x".to_string()),
            Just("c".to_string()),
        ]
    }

    fn topic() -> impl Strategy<Value = String> {
        proptest::collection::vec(level(), 1..5)
            .prop_map(|v| v.join("/"))
            .prop_filter("topics are non-empty", |t| !t.is_empty())
    }

    fn filter() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(
                prop_oneof![level(), Just("+".to_string()), Just("+".to_string())],
                1..5,
            ),
            any::<bool>(),
        )
            .prop_map(|(mut v, hash)| {
                if hash {
                    v.push("#".into());
                }
                v.join("/")
            })
            .prop_filter("filters are non-empty", |f| !f.is_empty())
    }

    proptest! {
        /// The trie agrees with the straightforward reference matcher in core on every
        /// generated topic, also after removing a random subset of filters.
        #[test]
        fn trie_agrees_with_reference(
            filters in proptest::collection::vec(filter(), 1..20),
            topics in proptest::collection::vec(topic(), 1..20),
            remove_mask in proptest::collection::vec(any::<bool>(), 20),
        ) {
            let mut t: Trie<Vec<usize>> = Trie::default();
            let mut live: Vec<(usize, TopicFilter)> = Vec::new();
            for (i, f) in filters.iter().enumerate() {
                let tf = TopicFilter::new(f.as_str()).map_err(|e| TestCaseError::fail(format!("{f}: {e}")))?;
                t.entry(f).push(i);
                live.push((i, tf));
            }
            for (i, f) in filters.iter().enumerate() {
                if remove_mask[i] {
                    if let Some(v) = t.get_mut(f) { v.retain(|x| *x != i); }
                    t.prune(f, |v| v.is_empty());
                    live.retain(|(j, _)| *j != i);
                }
            }
            for topic in &topics {
                let name = TopicName::new(topic.as_str()).map_err(|e| TestCaseError::fail(format!("{topic}: {e}")))?;
                let mut expected: Vec<usize> = live.iter().filter(|(_, f)| f.matches(&name)).map(|(i, _)| *i).collect();
                expected.sort_unstable();
                prop_assert_eq!(matches(&t, topic), expected, "topic {}", topic);
            }
        }
    }
}
