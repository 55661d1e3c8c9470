//! Topic ids (docs/mqtt-sn.md §2.5): the global predefined table from config, and the per-session
//! registry of dynamic ids, which lives in the bus session's `ext` so it survives resume and
//! takeover.
//!
//! Invariants: predefined ids are 1..=1024; dynamic ids count up from [`FIRST_DYNAMIC_ID`] and
//! are never reused within a session; one name has at most one dynamic id; wildcard names are
//! never registered.

use std::collections::HashMap;

/// The first dynamic topic id (EMQX: ids below are reserved for predefined topics).
pub const FIRST_DYNAMIC_ID: u16 = 1025;
/// Highest predefined id.
pub const MAX_PREDEFINED_ID: u16 = 1024;

/// Predefined topics, shared by every client.
#[derive(Debug, Clone, Default)]
pub struct Predefined {
    by_id: HashMap<u16, String>,
    by_name: HashMap<String, u16>,
}

impl Predefined {
    /// Builds the table; the config has already checked ids are 1..=1024 and unique.
    pub fn new(entries: impl IntoIterator<Item = (u16, String)>) -> Self {
        let mut p = Predefined::default();
        for (id, name) in entries {
            p.by_name.entry(name.clone()).or_insert(id);
            p.by_id.insert(id, name);
        }
        p
    }
    /// The topic of a predefined id.
    pub fn name(&self, id: u16) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }
    /// The predefined id of a topic.
    pub fn id(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied()
    }
}

/// Why a name could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// Wildcards are never registered (REGACK 0x03).
    Wildcard,
    /// All ids up to 65535 are used (REGACK 0x03, SUBACK 0x83).
    Full,
}

/// One session's dynamic topic ids.
#[derive(Debug, Clone)]
pub struct TopicRegistry {
    by_id: HashMap<u16, String>,
    by_name: HashMap<String, u16>,
    next: u32,
}

impl Default for TopicRegistry {
    fn default() -> Self {
        TopicRegistry {
            by_id: HashMap::new(),
            by_name: HashMap::new(),
            next: u32::from(FIRST_DYNAMIC_ID),
        }
    }
}

impl TopicRegistry {
    /// The id of `name`, allocating the next one if it has none.
    pub fn register(&mut self, name: &str) -> Result<u16, RegisterError> {
        if name.contains(['+', '#']) {
            return Err(RegisterError::Wildcard);
        }
        if let Some(id) = self.by_name.get(name) {
            return Ok(*id);
        }
        let id = u16::try_from(self.next).map_err(|_| RegisterError::Full)?;
        self.next += 1;
        self.by_name.insert(name.to_owned(), id);
        self.by_id.insert(id, name.to_owned());
        Ok(id)
    }
    /// The name of a dynamic id.
    pub fn name(&self, id: u16) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }
    /// The dynamic id of a name.
    pub fn id(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied()
    }
    /// Forgets a name (the client refused its REGISTER); its id is not reused.
    pub fn forget(&mut self, name: &str) {
        if let Some(id) = self.by_name.remove(name) {
            self.by_id.remove(&id);
        }
    }
    /// Number of registered names.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_1025_same_name_same_id_no_wildcards_exhaustion() {
        let mut r = TopicRegistry::default();
        assert_eq!(r.register("a"), Ok(1025));
        assert_eq!(r.register("b"), Ok(1026));
        assert_eq!(r.register("a"), Ok(1025));
        assert_eq!(r.register("a/+"), Err(RegisterError::Wildcard));
        assert_eq!(r.register("#"), Err(RegisterError::Wildcard));
        assert_eq!(r.name(1026), Some("b"));
        r.forget("b");
        assert_eq!(r.name(1026), None);
        assert_eq!(r.register("b"), Ok(1027), "ids are not reused");
        for i in 0..(65535 - 1027) {
            assert!(r.register(&format!("t/{i}")).is_ok());
        }
        assert_eq!(r.register("last-one-fails"), Err(RegisterError::Full));
        assert_eq!(r.register("a"), Ok(1025), "known names still resolve");
    }

    #[test]
    fn predefined_lookup_both_ways() {
        let p = Predefined::new([(1, "pre/one".to_owned()), (5, "pre/five".to_owned())]);
        assert_eq!(p.name(5), Some("pre/five"));
        assert_eq!(p.id("pre/one"), Some(1));
        assert_eq!(p.name(2), None);
    }
}
