//! The writer: one thread owns the connection and commits, in one transaction, every op that
//! arrived while the previous commit was syncing (group commit, capped by count). Submitting is a
//! push under a short mutex; the durable ticket is published through a watch channel after each
//! commit.

use crate::codec::{ids_to_text, millis, props_to_json, rh_to_i64};
use crate::schema;
use parking_lot::{Condvar, Mutex};
use rusqlite::{params, Connection, Transaction};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use switchyard_bus::{SessionStore, Snapshot, StoreOp, StoredStage, Ticket};
use thiserror::Error;
use tokio::sync::watch;

/// What an acknowledgement waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before the ack (synchronous=FULL), committing as soon as ops arrive.
    Strict,
    /// fsync before the ack, but commits at most every `flush_interval` (more ops per fsync).
    Batched(Duration),
    /// No fsync (synchronous=OFF): survives a process crash, not a power loss.
    Relaxed,
}

/// Why the store could not be opened.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// the directory
        path: PathBuf,
        /// the cause
        source: std::io::Error,
    },
    /// SQLite refused the file (unreadable, corrupt, locked).
    #[error("store {path} is unreadable: {source}")]
    Sqlite {
        /// the file
        path: PathBuf,
        /// the cause
        source: rusqlite::Error,
    },
    /// The integrity check found damage.
    #[error("store {path} is corrupt ({detail}); move it aside to start empty")]
    Corrupt {
        /// the file
        path: PathBuf,
        /// what SQLite reported
        detail: String,
    },
    /// Written by a newer Switchyard.
    #[error(
        "store {path} has schema version {found}, newer than this build's {}",
        schema::VERSION
    )]
    TooNew {
        /// the file
        path: PathBuf,
        /// its version
        found: i64,
    },
}

/// Most ops in one transaction.
const MAX_BATCH: usize = 4096;
/// How often unreferenced messages are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Pending {
    ops: Vec<(Ticket, StoreOp)>,
    next: Ticket,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: watch::Sender<Ticket>,
    commits: std::sync::atomic::AtomicU64,
}

/// The SQLite store. Dropping it commits what was submitted and stops the writer.
#[derive(Debug)]
pub struct SqliteStore {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl SqliteStore {
    /// Opens (or creates) `dir/switchyard.db`, checks it, loads everything into a snapshot and
    /// starts the writer.
    pub fn open(dir: &Path, mode: Durability) -> Result<(Arc<SqliteStore>, Snapshot), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("switchyard.db");
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sql)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sql)?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path,
                detail: check,
            });
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        let sync = if mode == Durability::Relaxed {
            "OFF"
        } else {
            "FULL"
        };
        conn.pragma_update(None, "synchronous", sync).map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(sql)?;
        if let Err(found) = schema::init(&conn).map_err(sql)? {
            return Err(StoreError::TooNew { path, found });
        }
        let snapshot = crate::load::load(&conn).map_err(sql)?;
        compact(&conn, snapshot.max_message_id);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                ops: Vec::new(),
                next: 0,
                closed: false,
            }),
            wake: Condvar::new(),
            durable: watch::Sender::new(0),
            commits: std::sync::atomic::AtomicU64::new(0),
        });
        let worker = shared.clone();
        let handle = std::thread::Builder::new()
            .name("switchyard-store".into())
            .spawn(move || run(conn, worker, mode))
            .map_err(|source| StoreError::DataDir {
                path: dir.to_path_buf(),
                source,
            })?;
        let store = Arc::new(SqliteStore {
            shared,
            writer: Mutex::new(Some(handle)),
        });
        Ok((store, snapshot))
    }

    /// Transactions committed so far (each may hold many ops: group commit).
    pub fn commits(&self) -> u64 {
        self.shared
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Commits what was submitted and stops the writer (idempotent).
    pub fn close(&self) {
        {
            let mut p = self.shared.pending.lock();
            p.closed = true;
        }
        self.shared.wake.notify_all();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl SessionStore for SqliteStore {
    fn submit(&self, op: StoreOp) -> Ticket {
        let ticket = {
            let mut p = self.shared.pending.lock();
            p.next += 1;
            let t = p.next;
            p.ops.push((t, op));
            t
        };
        self.shared.wake.notify_one();
        ticket
    }

    fn durable(&self) -> watch::Receiver<Ticket> {
        self.shared.durable.subscribe()
    }

    fn is_persistent(&self) -> bool {
        true
    }
}

/// Sweeps unreferenced messages and vacuums when a quarter of the file is free.
fn compact(conn: &Connection, watermark: u64) {
    let watermark = i64::try_from(watermark).unwrap_or(i64::MAX);
    if let Err(e) = conn.execute(schema::SWEEP, params![watermark]) {
        tracing::warn!(error = %e, "store sweep failed");
    }
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap_or(0);
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap_or(0);
    if pages > 256 && free * 4 > pages {
        tracing::info!(pages, free, "compacting store");
        if let Err(e) = conn.execute_batch("VACUUM") {
            tracing::warn!(error = %e, "store vacuum failed");
        }
    }
}

fn take_batch(shared: &Shared, mode: Durability) -> Option<Vec<(Ticket, StoreOp)>> {
    let mut p = shared.pending.lock();
    while p.ops.is_empty() && !p.closed {
        shared.wake.wait(&mut p);
    }
    if p.ops.is_empty() {
        return None;
    }
    if let Durability::Batched(interval) = mode {
        // Let more ops join this commit, up to the interval.
        let deadline = Instant::now() + interval;
        while !p.closed && p.ops.len() < MAX_BATCH {
            if shared.wake.wait_until(&mut p, deadline).timed_out() {
                break;
            }
        }
    }
    let rest = if p.ops.len() > MAX_BATCH {
        p.ops.split_off(MAX_BATCH)
    } else {
        Vec::new()
    };
    Some(std::mem::replace(&mut p.ops, rest))
}

fn run(mut conn: Connection, shared: Arc<Shared>, mode: Durability) {
    let mut last_sweep = Instant::now();
    let mut max_message: u64 = 0;
    let mut sweep_watermark: u64 = 0;
    while let Some(batch) = take_batch(&shared, mode) {
        let last = batch.last().map(|(t, _)| *t).unwrap_or(0);
        let result = conn.transaction().and_then(|tx| {
            for (_, op) in &batch {
                if let StoreOp::MessagePut { id, .. } = op {
                    max_message = max_message.max(*id);
                }
                apply(&tx, op)?;
            }
            tx.commit()
        });
        match result {
            Ok(()) => {
                shared
                    .commits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                shared.durable.send_replace(last);
            }
            Err(e) => {
                // Nothing is acknowledged that is not on disk: the waiting acks never go out, the
                // clients retry on reconnect. Loud, because the operator must act.
                tracing::error!(error = %e, ops = batch.len(), "store commit failed; acknowledgements withheld");
            }
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            compact(&conn, sweep_watermark);
            sweep_watermark = max_message;
            last_sweep = Instant::now();
        }
    }
}

fn sid(s: switchyard_core::SessionId) -> i64 {
    i64::try_from(s.0).unwrap_or(i64::MAX)
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn apply(tx: &Transaction<'_>, op: &StoreOp) -> rusqlite::Result<()> {
    match op {
        StoreOp::MessagePut { id, message: m } => {
            let props = m.properties.as_deref().map(props_to_json);
            let origin = m.origin.as_ref().map(|o| o.client_id.to_string());
            tx.execute(
                "INSERT OR REPLACE INTO messages (id, topic, payload, qos, retain, props, origin, received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![int(*id), m.topic.as_str(), &m.payload[..], m.qos.as_u8(), m.retain, props, origin, millis(m.timestamp)],
            )?;
        }
        StoreOp::SessionPut {
            session,
            namespace,
            client_id,
            expiry_secs,
            created_at,
        } => {
            tx.execute(
                "INSERT INTO sessions (sid, ns, client_id, expiry_secs, created_ms, offline_ms) VALUES (?1, ?2, ?3, ?4, ?5, NULL)
                 ON CONFLICT(sid) DO UPDATE SET expiry_secs = excluded.expiry_secs, offline_ms = NULL",
                params![sid(*session), namespace, client_id, int(*expiry_secs), millis(*created_at)],
            )?;
        }
        StoreOp::SessionOffline { session, at } => {
            tx.execute(
                "UPDATE sessions SET offline_ms = ?2 WHERE sid = ?1",
                params![sid(*session), millis(*at)],
            )?;
        }
        StoreOp::SessionDelete { session } => {
            let s = sid(*session);
            tx.execute("DELETE FROM sessions WHERE sid = ?1", params![s])?;
            tx.execute("DELETE FROM subs WHERE sid = ?1", params![s])?;
            tx.execute("DELETE FROM queue WHERE sid = ?1", params![s])?;
            tx.execute("DELETE FROM incoming WHERE sid = ?1", params![s])?;
        }
        StoreOp::WillPut { session, will } => {
            let (msg, delay) = match will {
                Some((id, delay)) => (Some(int(*id)), Some(i64::from(*delay))),
                None => (None, None),
            };
            tx.execute(
                "UPDATE sessions SET will_msg = ?2, will_delay = ?3 WHERE sid = ?1",
                params![sid(*session), msg, delay],
            )?;
        }
        StoreOp::SubscriptionPut {
            session,
            filter,
            opts,
        } => {
            tx.execute(
                "INSERT OR REPLACE INTO subs (sid, filter, qos, nl, rap, rh, subid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    sid(*session),
                    filter.to_string(),
                    opts.qos.as_u8(),
                    opts.no_local,
                    opts.retain_as_published,
                    rh_to_i64(opts.retain_handling),
                    opts.subscription_id.map(i64::from)
                ],
            )?;
        }
        StoreOp::SubscriptionDelete { session, filter } => {
            tx.execute(
                "DELETE FROM subs WHERE sid = ?1 AND filter = ?2",
                params![sid(*session), filter.to_string()],
            )?;
        }
        StoreOp::QueuePush {
            session,
            seq,
            message_id,
            qos,
            retain,
            subscription_ids,
        } => {
            tx.execute(
                "INSERT OR REPLACE INTO queue (sid, seq, msg, qos, retain, subids, pkid, released) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, 0)",
                params![sid(*session), int(*seq), int(*message_id), qos, retain, ids_to_text(subscription_ids)],
            )?;
        }
        StoreOp::QueueInflight {
            session,
            seq,
            pkid,
            stage,
        } => {
            tx.execute(
                "UPDATE queue SET pkid = ?3, released = ?4 WHERE sid = ?1 AND seq = ?2",
                params![
                    sid(*session),
                    int(*seq),
                    pkid.get(),
                    *stage == StoredStage::Released
                ],
            )?;
        }
        StoreOp::QueueRemove { session, seq } => {
            tx.execute(
                "DELETE FROM queue WHERE sid = ?1 AND seq = ?2",
                params![sid(*session), int(*seq)],
            )?;
        }
        StoreOp::IncomingPut { session, pkid } => {
            tx.execute(
                "INSERT OR IGNORE INTO incoming (sid, pkid) VALUES (?1, ?2)",
                params![sid(*session), pkid.get()],
            )?;
        }
        StoreOp::IncomingDelete { session, pkid } => {
            tx.execute(
                "DELETE FROM incoming WHERE sid = ?1 AND pkid = ?2",
                params![sid(*session), pkid.get()],
            )?;
        }
        StoreOp::RetainPut {
            topic, message_id, ..
        } => {
            tx.execute(
                "INSERT OR REPLACE INTO retained (topic, msg) VALUES (?1, ?2)",
                params![topic, int(*message_id)],
            )?;
        }
        StoreOp::RetainDelete { topic } => {
            tx.execute("DELETE FROM retained WHERE topic = ?1", params![topic])?;
        }
    }
    Ok(())
}
