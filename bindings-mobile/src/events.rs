//! Foreign callbacks: a [`ChangeListener`] (change events) or a
//! [`LiveQueryListener`] (a live query's rows) — a Kotlin interface, a Swift
//! protocol, a Python class — wrapped into a core listener, and the
//! handles that end them ([`Subscription`], [`LiveQuery`]).
//!
//! The core calls listeners synchronously on the thread that committed the
//! change (a tokio worker), after the commit and outside every engine lock
//! (a live query's first result: on the thread calling `watch`, before it
//! returns). A listener that throws, or fails in any other way, is logged
//! and ignored: the write or sync that triggered it still succeeds and the
//! other listeners still run. Listeners should return quickly (hop to the
//! UI thread / main actor to update views).

use crate::error::{guard_sync, ErthError};
use crate::types::{ChangeEvent, Rows};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// Implemented by the host app to hear about committed changes.
#[uniffi::export(callback_interface)]
pub trait ChangeListener: Send + Sync {
    /// Called after every local write and every pulled page that changed
    /// rows. A thrown error is logged and otherwise ignored.
    fn on_change(&self, event: ChangeEvent) -> Result<(), ErthError>;
}

/// Implemented by the host app to get a live query's rows.
#[uniffi::export(callback_interface)]
pub trait LiveQueryListener: Send + Sync {
    /// Called with the query's rows once when `watch` starts (before it
    /// returns), then after every committed change (local or pulled) to a
    /// table the query reads, when the rows differ from the last ones
    /// delivered. A thrown error is logged and otherwise ignored.
    fn on_rows(&self, rows: Rows) -> Result<(), ErthError>;
}

/// Calls a foreign listener; its failure or panic is logged, never propagated.
fn deliver(what: &str, call: impl FnOnce() -> Result<(), ErthError>) {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "{what} listener failed"),
        Err(_) => tracing::warn!("{what} listener panicked"),
    }
}

/// Wraps a foreign listener into a core listener that never panics and
/// never propagates the listener's failure.
pub(crate) fn core_listener(listener: Box<dyn ChangeListener>) -> erth_core::events::Listener {
    Arc::new(move |event: &ChangeEvent| deliver("change", || listener.on_change(event.clone())))
}

/// [`core_listener`] for a live query's rows.
pub(crate) fn rows_listener(listener: Box<dyn LiveQueryListener>) -> erth_core::RowsListener {
    Arc::new(move |rows: &Rows| deliver("live query", || listener.on_rows(rows.clone())))
}

/// A live subscription. `unsubscribe()` ends it now; dropping the handle
/// (Kotlin `close()`, the last Swift reference going away) ends it too.
#[derive(Debug, uniffi::Object)]
pub struct Subscription {
    inner: Mutex<Option<erth_core::Subscription>>,
}

impl Subscription {
    pub(crate) fn new(inner: erth_core::Subscription) -> Self {
        Subscription {
            inner: Mutex::new(Some(inner)),
        }
    }
}

#[uniffi::export]
impl Subscription {
    /// Stops the listener: changes committed after this returns are not
    /// delivered. Idempotent.
    pub fn unsubscribe(&self) -> Result<(), ErthError> {
        guard_sync(|| {
            let sub = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
            drop(sub);
            Ok(())
        })
    }

    /// Whether the listener is still subscribed.
    pub fn is_active(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

/// A running live query. `stop()` ends it now; dropping the handle (Kotlin
/// `close()`, the last Swift reference going away) ends it too.
#[derive(Debug, uniffi::Object)]
pub struct LiveQuery {
    inner: Mutex<Option<erth_core::LiveQuery>>,
}

impl LiveQuery {
    pub(crate) fn new(inner: erth_core::LiveQuery) -> Self {
        LiveQuery {
            inner: Mutex::new(Some(inner)),
        }
    }
}

#[uniffi::export]
impl LiveQuery {
    /// Stops the query: no listener call starts after this returns. Idempotent.
    pub fn stop(&self) -> Result<(), ErthError> {
        guard_sync(|| {
            let live = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
            drop(live);
            Ok(())
        })
    }

    /// Whether the query is still running.
    pub fn is_active(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The tables whose changes re-run the query (synced tables by their
    /// declared name), as SQLite reported them when the query was prepared.
    pub fn tables(&self) -> Vec<String> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|live| live.tables().to_vec())
            .unwrap_or_default()
    }
}
