//! Change subscriptions: listeners get a [`ChangeEvent`] after every local
//! write and every pulled page that changed rows. A [`Subscription`] ends
//! when dropped (or by [`Subscription::unsubscribe`]).
//!
//! Listeners run on the caller's task after the data is committed, outside
//! every engine lock, so a listener may call back into the database.

use std::sync::{Arc, Mutex, Weak};

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "lowercase")
)]
pub enum ChangeOrigin {
    /// A write through this database handle.
    Local,
    /// Rows pulled from the server.
    Remote,
}

/// Rows of one table that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Serialize, tsify::Tsify),
    serde(rename_all = "camelCase")
)]
pub struct ChangeEvent {
    /// The table's name: a synced table as declared (`todos`), or a local table of the app's own.
    pub table: String,
    /// Ids of the changed rows (UUIDv7 text; rowids as text for local
    /// tables). Empty when a pull changed more than 10,000 rows of the table
    /// at once (a large first pull): too many to list; read the table.
    pub ids: Vec<String>,
    pub origin: ChangeOrigin,
}

#[cfg(not(target_arch = "wasm32"))]
pub type Listener = Arc<dyn Fn(&ChangeEvent) + Send + Sync>;
#[cfg(target_arch = "wasm32")]
pub type Listener = Arc<dyn Fn(&ChangeEvent)>;

/// The set of listeners of one database.
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<(u64, Vec<(u64, Listener)>)>,
}

impl Registry {
    pub(crate) fn add(self: &Arc<Self>, listener: Listener) -> Subscription {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        let id = g.0;
        g.1.push((id, listener));
        Subscription {
            id,
            registry: Arc::downgrade(self),
        }
    }

    fn remove(&self, id: u64) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .retain(|(i, _)| *i != id);
    }

    /// Tells every listener of `event`, unless it lists no row (nothing changed).
    pub(crate) fn emit(&self, event: ChangeEvent) {
        if !event.ids.is_empty() {
            self.deliver(&event);
        }
    }

    /// Tells every listener that many rows of `table` changed at once (a
    /// large pull), too many to list: an event with no ids.
    pub(crate) fn emit_many(&self, table: &str, origin: ChangeOrigin) {
        self.deliver(&ChangeEvent {
            table: table.to_owned(),
            ids: Vec::new(),
            origin,
        });
    }

    fn deliver(&self, event: &ChangeEvent) {
        let listeners: Vec<Listener> = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        for l in listeners {
            l(event);
        }
    }
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    registry: Weak<Registry>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Subscription {
    /// Stops the listener now (same as dropping the subscription).
    pub fn unsubscribe(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(r) = self.registry.upgrade() {
            r.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn drop_unsubscribes() {
        let reg = Arc::new(Registry::default());
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let sub = reg.add(Arc::new(move |_| {
            h.fetch_add(1, Ordering::SeqCst);
        }));
        let ev = ChangeEvent {
            table: "t".into(),
            ids: vec!["a".into()],
            origin: ChangeOrigin::Local,
        };
        reg.emit(ev.clone());
        reg.emit(ChangeEvent {
            ids: vec![],
            ..ev.clone()
        });
        sub.unsubscribe();
        reg.emit(ev);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}
