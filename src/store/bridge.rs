//! The one way async code reaches the store.
//!
//! A [`Store`] is synchronous: its calls block (sled reads and writes pages, a database
//! backend waits for the server). Async code (a source's fetch, the pipeline, the daemon's
//! jobs and socket, the digest, commands that await) never calls a store method on a runtime
//! thread: it hands the work to [`blocking`] (or [`spawn`] for a streamed answer), which runs
//! it on tokio's blocking pool. Synchronous code (a command without awaits, a test, the work
//! inside such a closure) calls the store directly.
//!
//! So a backend may block in any call, and it is never called from a runtime worker thread;
//! one that runs its own async client (tokio-postgres) keeps that client's runtime on its own
//! thread(s) and must not need the caller's.

use std::sync::Arc;

use super::{Result, Store, StoreError};

/// Runs `work` on the store off the async threads (tokio's blocking pool) and waits for it.
pub async fn blocking<T, F>(store: &Arc<dyn Store>, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T> + Send + 'static,
{
    let store = store.clone();
    run(move || work(store.as_ref())).await
}

/// Runs `work`, which uses the store (and may return another error that a store error converts
/// into), off the async threads and waits for it.
pub(crate) async fn run<T, E, F>(work: F) -> std::result::Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce() -> std::result::Result<T, E> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| E::from(StoreError::Task(e)))?
}

/// Starts `work` on the blocking pool without waiting (a streamed answer that sends what it
/// reads through a channel); await the handle for its end.
pub(crate) fn spawn<T, F>(work: F) -> tokio::task::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(work)
}
