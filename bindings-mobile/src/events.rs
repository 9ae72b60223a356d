//! Change listeners: a foreign [`ChangeListener`] (a Kotlin interface, a
//! Swift protocol) wrapped into a core listener, and the [`Subscription`]
//! handle that ends it.
//!
//! The core calls listeners synchronously on the thread that committed the
//! change (a tokio worker), after the commit and outside every engine lock.
//! A listener that throws, or fails in any other way, is logged and
//! ignored: the write or sync that triggered it still succeeds and the
//! other listeners still run. Listeners should return quickly (hop to the
//! UI thread / main actor to update views).

use crate::error::{guard_sync, ErthError};
use crate::types::ChangeEvent;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// Implemented by the host app to hear about committed changes.
#[uniffi::export(callback_interface)]
pub trait ChangeListener: Send + Sync {
    /// Called after every local write and every pulled page that changed
    /// rows. A thrown error is logged and otherwise ignored.
    fn on_change(&self, event: ChangeEvent) -> Result<(), ErthError>;
}

/// Wraps a foreign listener into a core listener that never panics and
/// never propagates the listener's failure.
pub(crate) fn core_listener(listener: Box<dyn ChangeListener>) -> erth_core::events::Listener {
    Arc::new(move |event: &erth_core::ChangeEvent| {
        let event = ChangeEvent::from(event);
        match catch_unwind(AssertUnwindSafe(|| listener.on_change(event))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "change listener failed"),
            Err(_) => tracing::warn!("change listener panicked"),
        }
    })
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
