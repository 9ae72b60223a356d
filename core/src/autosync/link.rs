//! [`Link`]: what a replica shares with its auto-sync driver, the network
//! switch and the driver's inbox. Held by `Database`; a leaf below it.

use super::schedule::Event;
use futures::channel::mpsc;
use std::sync::Mutex;

/// What a `Database` shares with its auto-sync: the network switch and
/// the driver's inbox.
#[derive(Debug, Default)]
pub(crate) struct Link(Mutex<LinkState>);

#[derive(Debug, Default)]
pub(super) struct LinkState {
    pub(super) offline: bool,
    pub(super) inbox: Option<mpsc::UnboundedSender<Event>>,
}

impl Link {
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn send(&self, event: Event) {
        if let Some(inbox) = &self.state().inbox {
            // A driver that stopped has dropped its end: nothing to tell.
            let _ = inbox.unbounded_send(event);
        }
    }

    pub(crate) fn is_online(&self) -> bool {
        !self.state().offline
    }
}
