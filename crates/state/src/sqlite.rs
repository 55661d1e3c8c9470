//! [`SqliteState`]: the store in `<data_dir>/state.db`, one table of (kind, key, JSON) rows.
//! Writes are rare (operator actions), so one connection behind a mutex is enough; every write
//! commits before it returns.

use crate::{Change, StateError, StateStore};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::path::Path;
use tokio::sync::broadcast;

/// How many changes the feed holds for a slow receiver.
const FEED: usize = 1024;

/// The database file's name under the data directory.
pub const STATE_FILE: &str = "state.db";

/// The API-state store on SQLite.
#[derive(Debug)]
pub struct SqliteState {
    conn: Mutex<Connection>,
    feed: broadcast::Sender<Change>,
}

impl SqliteState {
    /// Opens (creating it if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|error| StateError::Dir {
            path: dir.display().to_string(),
            error,
        })?;
        let conn = Connection::open(dir.join(STATE_FILE))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::with(conn)
    }

    /// A store that lives in memory only (tests, and nodes without a data directory).
    pub fn in_memory() -> Result<Self, StateError> {
        Self::with(Connection::open_in_memory()?)
    }

    fn with(conn: Connection) -> Result<Self, StateError> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS state (
                kind TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (kind, key)
            ) WITHOUT ROWID;",
        )?;
        let (feed, _) = broadcast::channel(FEED);
        Ok(SqliteState {
            conn: Mutex::new(conn),
            feed,
        })
    }

    fn notify(&self, kind: &str, key: &str, value: Option<Value>) {
        // No receiver is fine: nobody watches this kind yet.
        let _ = self.feed.send(Change {
            kind: kind.to_owned(),
            key: key.to_owned(),
            value,
        });
    }
}

fn parse(kind: &str, key: &str, text: &str) -> Result<Value, StateError> {
    serde_json::from_str(text).map_err(|e| StateError::Corrupt {
        kind: kind.to_owned(),
        key: key.to_owned(),
        error: e.to_string(),
    })
}

impl StateStore for SqliteState {
    fn get(&self, kind: &str, key: &str) -> Result<Option<Value>, StateError> {
        let text: Option<String> = self
            .conn
            .lock()
            .query_row(
                "SELECT value FROM state WHERE kind = ?1 AND key = ?2",
                params![kind, key],
                |r| r.get(0),
            )
            .optional()?;
        text.map(|t| parse(kind, key, &t)).transpose()
    }

    fn put(&self, kind: &str, key: &str, value: &Value) -> Result<(), StateError> {
        self.conn.lock().execute(
            "INSERT INTO state (kind, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
            params![kind, key, value.to_string()],
        )?;
        self.notify(kind, key, Some(value.clone()));
        Ok(())
    }

    fn put_many(&self, kind: &str, docs: &[(String, Value)]) -> Result<(), StateError> {
        {
            let mut conn = self.conn.lock();
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare(
                    "INSERT INTO state (kind, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
                )?;
                for (key, value) in docs {
                    stmt.execute(params![kind, key, value.to_string()])?;
                }
            }
            tx.commit()?;
        }
        for (key, value) in docs {
            self.notify(kind, key, Some(value.clone()));
        }
        Ok(())
    }

    fn delete(&self, kind: &str, key: &str) -> Result<bool, StateError> {
        let n = self.conn.lock().execute(
            "DELETE FROM state WHERE kind = ?1 AND key = ?2",
            params![kind, key],
        )?;
        if n > 0 {
            self.notify(kind, key, None);
        }
        Ok(n > 0)
    }

    fn list(&self, kind: &str) -> Result<Vec<(String, Value)>, StateError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare("SELECT key, value FROM state WHERE kind = ?1 ORDER BY key")?;
        let rows = stmt.query_map(params![kind], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, text) = row?;
            let value = parse(kind, &key, &text)?;
            out.push((key, value));
        }
        Ok(out)
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn put_get_list_delete_and_the_feed() {
        let s = SqliteState::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let mut feed = s.changes();
        assert_eq!(s.get("users", "a").ok().flatten(), None);
        s.put("users", "b", &json!({"n": 2}))
            .unwrap_or_else(|e| panic!("{e}"));
        s.put("users", "a", &json!({"n": 1}))
            .unwrap_or_else(|e| panic!("{e}"));
        s.put("keys", "a", &json!("other kind"))
            .unwrap_or_else(|e| panic!("{e}"));
        s.put("users", "a", &json!({"n": 3}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.get("users", "a").ok().flatten(), Some(json!({"n": 3})));
        let keys: Vec<String> = s
            .list("users")
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["a", "b"]);
        assert!(s.delete("users", "a").unwrap_or_else(|e| panic!("{e}")));
        assert!(!s.delete("users", "a").unwrap_or_else(|e| panic!("{e}")));
        let seen: Vec<Change> = std::iter::from_fn(|| feed.try_recv().ok()).collect();
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(seen[4].value, None);
        assert_eq!(
            (seen[4].kind.as_str(), seen[4].key.as_str()),
            ("users", "a")
        );
    }

    #[test]
    fn put_many_stores_every_document_and_reports_each() {
        let s = SqliteState::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let mut feed = s.changes();
        s.put("users", "b", &json!("old"))
            .unwrap_or_else(|e| panic!("{e}"));
        let docs = vec![("a".to_owned(), json!(1)), ("b".to_owned(), json!(2))];
        s.put_many("users", &docs).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.list("users").unwrap_or_else(|e| panic!("{e}")), docs);
        let seen: Vec<Change> = std::iter::from_fn(|| feed.try_recv().ok()).collect();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[2].value, Some(json!(2)));
        s.put_many("users", &[]).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn survives_reopening() {
        let dir = std::env::temp_dir().join(format!("sy-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = SqliteState::open(&dir).unwrap_or_else(|e| panic!("{e}"));
            s.put("banned", "clientid/x", &json!({"reason": "r"}))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let s = SqliteState::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.get("banned", "clientid/x").ok().flatten(),
            Some(json!({"reason": "r"}))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
