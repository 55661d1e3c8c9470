//! LwM2M paths `/O[/I[/R[/RI]]]` as commands name them, with an optional `?query`
//! (docs/lwm2m.md §4.4: the query becomes Uri-Query and `reqPath` is reported without it).

use std::fmt;

/// A parsed LwM2M path: 1 to 4 numeric segments, each 0..=65535.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    segments: Vec<u16>,
}

impl Path {
    /// Parses `/3/0/1` (a trailing `/` and a missing leading `/` are accepted).
    pub fn parse(s: &str) -> Option<Path> {
        let s = s.trim().trim_start_matches('/').trim_end_matches('/');
        if s.is_empty() {
            return None;
        }
        let segments = s
            .split('/')
            .map(|p| p.parse::<u16>().ok())
            .collect::<Option<Vec<_>>>()?;
        (segments.len() <= 4).then_some(Path { segments })
    }

    /// A path from segments (1..=4 of them).
    pub fn from_segments(segments: Vec<u16>) -> Option<Path> {
        (!segments.is_empty() && segments.len() <= 4).then_some(Path { segments })
    }

    /// Splits `"/3/0/1?pmin=10&pmax=60"` into the path text and its query parts.
    pub fn split_query(s: &str) -> (&str, Vec<String>) {
        match s.split_once('?') {
            Some((p, q)) => (
                p,
                q.split('&')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            None => (s, Vec::new()),
        }
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Always false: a path has at least one segment.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The segments.
    pub fn segments(&self) -> &[u16] {
        &self.segments
    }

    /// Segment `i`.
    pub fn segment(&self, i: usize) -> Option<u16> {
        self.segments.get(i).copied()
    }

    /// The object id.
    pub fn object(&self) -> Option<u16> {
        self.segment(0)
    }

    /// The text of the first `n` segments (`""` for 0).
    pub fn prefix(&self, n: usize) -> String {
        self.segments
            .iter()
            .take(n)
            .map(|s| format!("/{s}"))
            .collect()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prefix(self.segments.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let p = Path::parse("/3/0/1").unwrap_or_else(|| panic!("parse"));
        assert_eq!(p.to_string(), "/3/0/1");
        assert_eq!(p.prefix(2), "/3/0");
        assert_eq!(Path::parse("3/0/").map(|p| p.len()), Some(2));
        assert!(Path::parse("/3/x").is_none());
        assert!(Path::parse("/").is_none());
        assert!(Path::parse("/1/2/3/4/5").is_none());
        assert!(Path::parse("/70000").is_none());
        assert_eq!(
            Path::split_query("/3/0/1?pmin=10&pmax=60"),
            ("/3/0/1", vec!["pmin=10".to_owned(), "pmax=60".to_owned()])
        );
    }
}
