//! In-memory views of the store and the task that keeps them current from the change feed.
//!
//! Owns: [`StateView`] (what a feature's view must do with a change) and [`follow`] (the loop
//! that hands every change, or a resync after the feed lagged, to every view).
//! Invariants: applying a change is idempotent and never makes a view older than the store: a
//! view re-reads the changed document under the same lock its own writes take, because a
//! feed entry may be older than what a local write has already put in the view.

use crate::{Change, StateError};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::broadcast;

/// A feature's in-memory view of its kinds.
pub trait StateView: Send + Sync {
    /// A short name for logs (`"authn_users"`, `"admin"`).
    fn name(&self) -> &'static str;
    /// Brings the view up to date after `change` (ignoring kinds it does not hold). Must be
    /// idempotent; may read the store (it runs on the blocking pool).
    fn apply(&self, change: &Change) -> Result<(), StateError>;
    /// Re-reads every document the view holds (the feed lagged and changes were missed).
    fn resync(&self) -> Result<(), StateError>;
}

/// Feeds `feed` to `views` until `shutdown` completes or the store is dropped. Subscribe
/// (`StateStore::changes`) before the views load, so no change falls between the two.
pub async fn follow(
    mut feed: broadcast::Receiver<Change>,
    views: Vec<Arc<dyn StateView>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            () = &mut shutdown => return,
            next = feed.recv() => next,
        };
        let change = match next {
            Ok(change) => Some(change),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "state feed lagged; views re-read the store");
                None
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        for view in &views {
            let (view, change) = (view.clone(), change.clone());
            // Views read SQLite and take locks writers hold across an fsync: not on a worker.
            let done = tokio::task::spawn_blocking(move || {
                let name = view.name();
                let result = match &change {
                    Some(c) => view.apply(c),
                    None => view.resync(),
                };
                (name, change, result)
            })
            .await;
            match done {
                Ok((_, _, Ok(()))) => {}
                Ok((view, Some(c), Err(error))) => tracing::error!(
                    view, kind = %c.kind, key = %c.key, %error,
                    "state view could not apply a change"
                ),
                Ok((view, None, Err(error))) => {
                    tracing::error!(view, %error, "state view could not resync")
                }
                Err(error) => tracing::error!(%error, "state view panicked"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SqliteState, StateStore};
    use parking_lot::Mutex;
    use serde_json::json;

    #[derive(Default)]
    struct Seen {
        changes: Mutex<Vec<(String, String)>>,
        resyncs: Mutex<u32>,
    }

    impl StateView for Seen {
        fn name(&self) -> &'static str {
            "seen"
        }
        fn apply(&self, change: &Change) -> Result<(), StateError> {
            self.changes
                .lock()
                .push((change.kind.clone(), change.key.clone()));
            Ok(())
        }
        fn resync(&self) -> Result<(), StateError> {
            *self.resyncs.lock() += 1;
            Ok(())
        }
    }

    #[tokio::test]
    async fn follow_hands_changes_to_views_then_stops_on_shutdown() {
        let store = SqliteState::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let seen = Arc::new(Seen::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(follow(store.changes(), vec![seen.clone()], async move {
            let _ = stopped.await;
        }));
        store
            .put("k", "a", &json!(1))
            .unwrap_or_else(|e| panic!("{e}"));
        store.delete("k", "a").unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..200 {
            if seen.changes.lock().len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(seen.changes.lock().len(), 2);
        let _ = stop.send(());
        assert!(task.await.is_ok());
        assert_eq!(*seen.resyncs.lock(), 0);
    }

    #[tokio::test]
    async fn a_lagging_feed_resyncs_the_views() {
        let store = SqliteState::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let feed = store.changes();
        let docs: Vec<(String, serde_json::Value)> =
            (0..2000).map(|i| (format!("{i:05}"), json!(i))).collect();
        store.put_many("k", &docs).unwrap_or_else(|e| panic!("{e}"));
        drop(store);
        let seen = Arc::new(Seen::default());
        // The store is gone: the loop drains what is buffered, then ends on Closed.
        follow(feed, vec![seen.clone()], std::future::pending()).await;
        assert_eq!(*seen.resyncs.lock(), 1);
        assert!(seen.changes.lock().len() <= 1024);
    }
}
