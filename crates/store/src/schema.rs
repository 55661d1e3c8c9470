//! The tables. A message's payload is stored once (`messages`) however many queues and the
//! retained store reference it; unreferenced messages are swept by the writer.

use rusqlite::Connection;

/// Schema version written to `user_version`; a newer file is refused rather than misread.
pub(crate) const VERSION: i64 = 1;

pub(crate) const CREATE: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    props TEXT,
    origin TEXT,
    received_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    sid INTEGER PRIMARY KEY,
    ns TEXT NOT NULL,
    client_id TEXT NOT NULL,
    expiry_secs INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    offline_ms INTEGER,
    will_msg INTEGER,
    will_delay INTEGER
);
CREATE TABLE IF NOT EXISTS subs (
    sid INTEGER NOT NULL,
    filter TEXT NOT NULL,
    qos INTEGER NOT NULL,
    nl INTEGER NOT NULL,
    rap INTEGER NOT NULL,
    rh INTEGER NOT NULL,
    subid INTEGER,
    PRIMARY KEY (sid, filter)
);
CREATE TABLE IF NOT EXISTS queue (
    sid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    msg INTEGER NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    subids TEXT NOT NULL,
    pkid INTEGER,
    released INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sid, seq)
);
CREATE TABLE IF NOT EXISTS incoming (
    sid INTEGER NOT NULL,
    pkid INTEGER NOT NULL,
    PRIMARY KEY (sid, pkid)
);
CREATE TABLE IF NOT EXISTS retained (
    topic TEXT PRIMARY KEY,
    msg INTEGER NOT NULL
);
";

/// Messages no queue, retained entry or will references, up to a watermark (so that a message
/// whose reference is still in a later batch is never swept).
pub(crate) const SWEEP: &str = "
DELETE FROM messages WHERE id <= ?1
  AND id NOT IN (SELECT msg FROM queue)
  AND id NOT IN (SELECT msg FROM retained)
  AND id NOT IN (SELECT will_msg FROM sessions WHERE will_msg IS NOT NULL)";

/// Creates the tables, or checks an existing file's version.
pub(crate) fn init(conn: &Connection) -> rusqlite::Result<Result<(), i64>> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        return Ok(Err(version));
    }
    conn.execute_batch(CREATE)?;
    conn.pragma_update(None, "user_version", VERSION)?;
    Ok(Ok(()))
}
