//! Durable sessions, queues and retained messages on SQLite: the default [`SessionStore`].
//!
//! Owns: the database file under `node.data_dir`, its schema, the single writer thread that
//! group-commits whatever ops arrived while the previous commit was syncing, and loading a
//! [`Snapshot`] at start-up.
//! Must not know: any protocol, or how the bus uses the ops (it applies them in order).
//!
//! Durability modes: `strict` (synchronous=FULL, commit as soon as ops arrive), `batched`
//! (synchronous=FULL, a commit at most every `flush_interval`), `relaxed` (synchronous=OFF: a
//! committed op survives a process crash but not a power loss).

mod codec;
mod load;
mod schema;
mod writer;

pub use switchyard_bus::{SessionStore, Snapshot};
pub use writer::{Durability, SqliteStore, StoreError};

#[cfg(test)]
mod tests;
