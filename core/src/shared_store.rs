//! The replica's store as the engine shares it between the app's calls,
//! live queries and sync: [`SharedStore`], which owns whose turn it is.
//!
//! A store has one connection, and an interactive write transaction
//! ([`crate::WriteTransaction`]) leaves it inside `BEGIN … COMMIT` across
//! the app's awaits: anything else that ran on it then would read the
//! transaction's uncommitted rows or write into it. So store calls take
//! turns on a read–write lock (async-lock's, which lets a waiting writer
//! in before later readers): each engine call and each one-shot app
//! statement holds it shared for that call ([`SharedStore::turn`]), an
//! interactive transaction holds it alone from its `BEGIN` to its end
//! ([`SharedStore::exclusive`]). Shared turns are not nested: a holder that
//! waited for a second one behind a waiting writer would wait forever.
//!
//! Waiting is bounded: past the replica's lock timeout
//! (`Config::lock_timeout_ms`) a wait fails with
//! [`Error::DatabaseLocked`], as a write waiting for another process's lock
//! on the file does (SQLite's busy timeout). Live queries re-run inside
//! commit notifications, synchronously: one that finds the store held
//! alone ([`SharedStore::try_turn`]) is deferred ([`SharedStore::defer`])
//! and runs when that turn ends.

use crate::error::{Error, LockHolder, Result};
use crate::store::Store;
use crate::transport::Transport;
use crate::value::{Rows, Statement};
use async_lock::{RwLock, RwLockReadGuard, RwLockWriteGuardArc};
use std::sync::{Arc, Mutex};

/// Work that waits for the store's exclusive turn to end (a live query's re-run).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Deferred = Box<dyn FnOnce() + Send>;
#[cfg(target_arch = "wasm32")]
pub(crate) type Deferred = Box<dyn FnOnce()>;

/// The store, whose turn it is, and what waits for the exclusive turn to end.
pub(crate) struct SharedStore {
    store: Arc<dyn Store>,
    turns: Arc<RwLock<()>>,
    deferred: Mutex<Vec<Deferred>>,
    /// Its timer bounds the waits.
    timer: Arc<dyn Transport>,
    wait_ms: u64,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("wait_ms", &self.wait_ms)
            .finish_non_exhaustive()
    }
}

/// A shared turn: the store, for calls that read committed state only and
/// whose writes commit within the call.
pub(crate) struct Turn<'a> {
    store: &'a dyn Store,
    _guard: RwLockReadGuard<'a, ()>,
}

impl<'a> std::ops::Deref for Turn<'a> {
    type Target = dyn Store + 'a;
    fn deref(&self) -> &Self::Target {
        self.store
    }
}

/// The exclusive turn of an interactive write transaction; ending it (a
/// drop) runs what was deferred meanwhile.
pub(crate) struct ExclusiveTurn {
    shared: Arc<SharedStore>,
    guard: Option<RwLockWriteGuardArc<()>>,
}

impl std::fmt::Debug for ExclusiveTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExclusiveTurn").finish_non_exhaustive()
    }
}

impl std::ops::Deref for ExclusiveTurn {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        self.shared.store.as_ref()
    }
}

impl Drop for ExclusiveTurn {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.shared.run_deferred();
    }
}

impl SharedStore {
    /// Shares `store`; waits for a turn last at most `wait_ms`, timed by `timer`.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        timer: Arc<dyn Transport>,
        wait_ms: u64,
    ) -> SharedStore {
        SharedStore {
            store,
            turns: Arc::new(RwLock::new(())),
            deferred: Mutex::new(Vec::new()),
            timer,
            wait_ms,
        }
    }

    /// The store, for calls that read no rows and write none (preparing a
    /// statement to learn what it reads, the sync lock's file).
    pub(crate) fn unshared(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// A shared turn, waiting while an interactive write transaction holds
    /// the store. Errors: [`Error::DatabaseLocked`] past the lock timeout.
    pub(crate) async fn turn(&self) -> Result<Turn<'_>> {
        if let Some(turn) = self.try_turn() {
            return Ok(turn);
        }
        let guard = self.bounded(self.turns.read()).await?;
        Ok(Turn {
            store: self.store.as_ref(),
            _guard: guard,
        })
    }

    /// A shared turn now, or `None` while the store is held (or wanted) alone.
    pub(crate) fn try_turn(&self) -> Option<Turn<'_>> {
        self.turns.try_read().map(|guard| Turn {
            store: self.store.as_ref(),
            _guard: guard,
        })
    }

    /// The exclusive turn, once every shared one ended. Errors:
    /// [`Error::DatabaseLocked`] past the lock timeout.
    pub(crate) async fn exclusive(self: &Arc<Self>) -> Result<ExclusiveTurn> {
        let guard = match self.turns.try_write_arc() {
            Some(guard) => guard,
            None => {
                let waited = self.bounded(self.turns.write_arc()).await;
                if waited.is_err() {
                    // Readers deferred behind this wait run now.
                    self.run_deferred();
                }
                waited?
            }
        };
        Ok(ExclusiveTurn {
            shared: self.clone(),
            guard: Some(guard),
        })
    }

    /// Runs `work` when the current exclusive turn ends (at once when there
    /// is none any more).
    pub(crate) fn defer(&self, work: Deferred) {
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(work);
        if self.turns.try_read().is_some() {
            // The exclusive turn ended between the caller's try and the push.
            self.run_deferred();
        }
    }

    fn run_deferred(&self) {
        let work = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        for w in work {
            w();
        }
    }

    /// Waits for `lock` at most the lock timeout.
    async fn bounded<T>(&self, lock: impl std::future::Future<Output = T>) -> Result<T> {
        let lock = std::pin::pin!(lock);
        let timeout = std::pin::pin!(self.timer.sleep(self.wait_ms));
        match futures::future::select(lock, timeout).await {
            futures::future::Either::Left((guard, _)) => Ok(guard),
            futures::future::Either::Right(_) => {
                Err(Error::DatabaseLocked(LockHolder::WriteTransaction {
                    waited_ms: self.wait_ms,
                }))
            }
        }
    }

    /// [`Store::query`] in a turn of its own.
    pub(crate) async fn query(&self, stmt: &Statement) -> Result<Rows> {
        Ok(self.turn().await?.query(stmt).await?)
    }

    /// [`Store::write`] in a turn of its own.
    pub(crate) async fn write(&self, stmts: &[Statement]) -> Result<Vec<Rows>> {
        Ok(self.turn().await?.write(stmts).await?)
    }

    /// [`Store::persisted`]: needs no turn (it reads nothing).
    pub(crate) async fn persisted(&self) -> Result<()> {
        Ok(self.store.persisted().await?)
    }
}
