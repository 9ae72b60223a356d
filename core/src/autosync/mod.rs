//! Auto-sync: a replica that syncs by itself. Switched on by
//! [`Config::auto_sync`] (and started by [`AutoSync::start`]), it syncs
//! once at start, shortly after local writes (debounced), on an interval
//! (to pull other devices' changes), at once when the network comes back
//! or the server, the token or the refused rows change, and again after a
//! failure, with backoff. [`Database::set_online`] switches a database's
//! network use off and on: while off, syncs fail with [`Error::Network`]
//! (nothing is sent) and auto-sync waits. Outcomes show in
//! [`Database::status`] (`syncing`, `last_error`, its kind and server code,
//! `online`, `auto_sync`), as for syncs the app asks for.
//!
//! Two parts:
//! - [`Scheduler`], sans I/O: given events and the time, it says when a
//!   sync is due. Unit-tested without a clock or a network.
//! - [`AutoSync`], the driver: it feeds the scheduler and runs
//!   [`Database::sync`] when it says so. Natively on a thread of its own
//!   (a one-thread tokio runtime, for its timer), on wasm as a task of the
//!   worker's event loop (`spawn_local`). It holds the database weakly
//!   between syncs; dropping the handle stops it: a sync it is running is
//!   abandoned where it stands (the sync engine treats that like a lost
//!   answer), and natively the thread has ended when the drop returns.

pub(crate) mod link;
pub mod schedule;

pub use schedule::{AutoSyncOptions, Event, Scheduler, RETRY_FIRST_MS, RETRY_MAX_MS};

#[cfg(doc)]
use crate::config::Config;
use crate::db::Database;
use crate::error::{Error, Result};
use crate::events::{ChangeEvent, ChangeOrigin, Subscription};
use crate::transport::TransportError;
use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};
use std::sync::{Arc, Weak};

impl Database {
    /// Switches this database's network use off (`false`) or on: while off,
    /// [`Database::sync`] fails at once with [`Error::Network`] and
    /// auto-sync waits; switched on, auto-sync syncs at once. Local reads
    /// and writes are not affected. Hosts call it when the platform
    /// reports the network gone and back (or for an app's "offline" switch).
    pub fn set_online(&self, online: bool) {
        self.auto_sync.state().offline = !online;
        self.auto_sync.send(Event::Online(online));
    }

    /// Asks auto-sync (if it runs) to sync now rather than at its next
    /// time: after the server, the token or the refused rows changed.
    pub fn sync_soon(&self) {
        self.auto_sync.send(Event::Nudge);
    }

    /// [`Error::Network`] while [`Database::set_online`]`(false)` is in effect.
    pub(crate) fn check_online(&self) -> Result<()> {
        if self.auto_sync.is_online() {
            return Ok(());
        }
        Err(Error::Network(TransportError::Connect(
            "offline: the network is switched off for this database".into(),
        )))
    }
}

/// Called with `true` when an auto-sync starts and `false` when it ended
/// (its outcome is in [`Database::status`]).
#[cfg(not(target_arch = "wasm32"))]
pub type SyncObserver = Arc<dyn Fn(bool) + Send + Sync>;
/// Called with `true` when an auto-sync starts and `false` when it ended
/// (its outcome is in [`Database::status`]).
#[cfg(target_arch = "wasm32")]
pub type SyncObserver = Arc<dyn Fn(bool)>;

/// A running auto-sync (see the module docs); dropping it stops it.
pub struct AutoSync {
    stop: Option<oneshot::Sender<()>>,
    #[cfg(not(target_arch = "wasm32"))]
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for AutoSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoSync")
            .field("running", &self.stop.is_some())
            .finish()
    }
}

impl AutoSync {
    /// Starts auto-sync for `db` if its [`Config::auto_sync`] asks for it
    /// (else the handle does nothing); `observer` hears when each auto-sync
    /// starts and ends. Starting again replaces the earlier driver, which
    /// stops.
    ///
    /// Errors: natively, [`Error::Network`] when the thread cannot be
    /// started (the system is out of threads).
    pub fn start(db: &Arc<Database>, observer: Option<SyncObserver>) -> Result<AutoSync> {
        let Some(options) = db.config.auto_sync else {
            return Ok(AutoSync::idle());
        };
        let (inbox_tx, inbox) = mpsc::unbounded();
        // Through the link, whose sender is the only one: replacing it (a
        // later start) or dropping the database ends the inbox.
        let link = Arc::downgrade(db);
        let subscription = db.subscribe(Arc::new(move |e: &ChangeEvent| {
            if let Some(db) = link.upgrade().filter(|_| e.origin == ChangeOrigin::Local) {
                db.auto_sync.send(Event::LocalWrite);
            }
        }));
        db.auto_sync.state().inbox = Some(inbox_tx);
        let (stop_tx, stop) = oneshot::channel();
        let driver = Driver {
            db: Arc::downgrade(db),
            options,
            online: db.auto_sync.is_online(),
            observer,
            _subscription: subscription,
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            let thread = std::thread::Builder::new()
                .name("erth-auto-sync".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                    {
                        Ok(runtime) => runtime.block_on(driver.run(inbox, stop)),
                        Err(e) => tracing::warn!(error = %e, "auto-sync could not start its timer"),
                    }
                })
                .map_err(|e| {
                    Error::Network(TransportError::Io(format!(
                        "starting the auto-sync thread: {e}"
                    )))
                })?;
            Ok(AutoSync {
                stop: Some(stop_tx),
                thread: Some(thread),
            })
        }
        #[cfg(target_arch = "wasm32")]
        {
            js_sys::futures::spawn_local(driver.run(inbox, stop));
            Ok(AutoSync {
                stop: Some(stop_tx),
            })
        }
    }

    fn idle() -> AutoSync {
        AutoSync {
            stop: None,
            #[cfg(not(target_arch = "wasm32"))]
            thread: None,
        }
    }
}

impl Drop for AutoSync {
    fn drop(&mut self) {
        // Closing the channel wakes the driver, which returns.
        drop(self.stop.take());
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(thread) = self.thread.take() {
            // Dropped from a listener the driver called: it ends by itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// What the driver task owns.
struct Driver {
    db: Weak<Database>,
    options: AutoSyncOptions,
    online: bool,
    observer: Option<SyncObserver>,
    /// Local writes reach the inbox through this; dropped with the driver.
    _subscription: Subscription,
}

impl Driver {
    async fn run(self, mut inbox: mpsc::UnboundedReceiver<Event>, stop: oneshot::Receiver<()>) {
        let mut stop = stop.fuse();
        let clock = Monotonic::new();
        let mut scheduler = Scheduler::new(self.options, self.online, clock.now_ms());
        let notify = |syncing| {
            if let Some(observer) = &self.observer {
                observer(syncing);
            }
        };
        loop {
            if scheduler.poll(clock.now_ms()) {
                let Some(db) = self.db.upgrade() else { return };
                // Local-only for now: nothing to do until a server is set.
                let ok = if db.remote_handle().is_none() {
                    true
                } else {
                    notify(true);
                    let sync = db.sync().fuse();
                    futures::pin_mut!(sync);
                    let result = futures::select! {
                        result = sync => result,
                        _ = stop => return,
                    };
                    notify(false);
                    result.is_ok()
                };
                drop(db);
                scheduler.on(Event::Finished { ok }, clock.now_ms());
                continue;
            }
            let wait = scheduler
                .next_wake()
                .map(|at| at.saturating_sub(clock.now_ms()));
            let mut timer = match wait {
                Some(ms) => sleep_ms(ms).boxed_local().fuse(),
                None => futures::future::pending().boxed_local().fuse(),
            };
            futures::select! {
                event = inbox.next() => match event {
                    Some(event) => scheduler.on(event, clock.now_ms()),
                    // The database is gone, or a later start took over.
                    None => return,
                },
                _ = stop => return,
                () = timer => {}
            }
        }
    }
}

/// Milliseconds since the driver started, from a clock that never goes
/// back natively (the browser's wall clock on wasm).
struct Monotonic {
    #[cfg(not(target_arch = "wasm32"))]
    started: std::time::Instant,
}

impl Monotonic {
    fn new() -> Monotonic {
        Monotonic {
            #[cfg(not(target_arch = "wasm32"))]
            started: std::time::Instant::now(),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    #[cfg(target_arch = "wasm32")]
    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }
}

#[cfg(not(target_arch = "wasm32"))]
async fn sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

#[cfg(target_arch = "wasm32")]
async fn sleep_ms(ms: u64) {
    use crate::transport::Transport;
    crate::transport::browser::BrowserTransport::new(0)
        .sleep(ms)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const OPTIONS: AutoSyncOptions = AutoSyncOptions {
        debounce_ms: 500,
        interval_ms: 30_000,
    };

    /// Runs the scheduler from `from` to `to` in 1 ms steps (with the
    /// events of `events` at their times); the times syncs started at.
    /// Every sync takes `sync_ms` and ends `ok`.
    fn run(
        s: &mut Scheduler,
        from: u64,
        to: u64,
        events: &[(u64, Event)],
        sync_ms: u64,
        ok: bool,
    ) -> Vec<u64> {
        let mut started = Vec::new();
        let mut ends = None;
        for now in from..=to {
            for (_, e) in events.iter().filter(|(t, _)| *t == now) {
                s.on(*e, now);
            }
            if ends == Some(now) {
                s.on(Event::Finished { ok }, now);
                ends = None;
            }
            if s.poll(now) {
                started.push(now);
                ends = Some(now + sync_ms);
            }
        }
        started
    }

    #[test]
    fn syncs_at_start_then_debounced_after_writes() {
        let mut s = Scheduler::new(OPTIONS, true, 0);
        let writes = [(1_000, Event::LocalWrite), (1_300, Event::LocalWrite)];
        // At once, then 500 ms after the last of two writes.
        assert_eq!(run(&mut s, 0, 5_000, &writes, 10, true), vec![0, 1_800]);
        assert_eq!(s.next_wake(), Some(30_000), "the next interval tick");
    }

    #[test]
    fn a_burst_of_writes_still_syncs_on_the_interval() {
        let options = AutoSyncOptions {
            debounce_ms: 500,
            interval_ms: 2_000,
        };
        let mut s = Scheduler::new(options, true, 0);
        // A write every 100 ms never lets the debounce run out; the interval does.
        let writes: Vec<_> = (1..70).map(|i| (i * 100, Event::LocalWrite)).collect();
        let started = run(&mut s, 0, 6_999, &writes, 10, true);
        assert_eq!(started, vec![0, 2_000, 4_000, 6_000]);
        // After the burst: 500 ms after the last write (6.9 s).
        assert_eq!(run(&mut s, 7_000, 7_999, &[], 10, true), vec![7_400]);
    }

    #[test]
    fn interval_ticks_sync_and_a_late_wake_counts_once() {
        let options = AutoSyncOptions {
            debounce_ms: 50,
            interval_ms: 1_000,
        };
        let mut s = Scheduler::new(options, true, 0);
        assert_eq!(
            run(&mut s, 0, 3_500, &[], 10, true),
            vec![0, 1_000, 2_000, 3_000]
        );
        // Asleep for 10 s: one sync on waking, then the usual rhythm.
        assert!(s.poll(13_700));
        s.on(Event::Finished { ok: true }, 13_710);
        assert!(!s.poll(13_800));
        assert_eq!(s.next_wake(), Some(14_000));
        let never = AutoSyncOptions {
            debounce_ms: 50,
            interval_ms: 0,
        };
        let mut s = Scheduler::new(never, true, 0);
        assert_eq!(run(&mut s, 0, 100_000, &[], 10, true), vec![0]);
        assert_eq!(s.next_wake(), None, "no interval: nothing until an event");
    }

    #[test]
    fn offline_waits_and_coming_back_syncs_at_once() {
        let mut s = Scheduler::new(OPTIONS, false, 0);
        let events = [
            (100, Event::LocalWrite),
            (31_000, Event::LocalWrite),
            (40_000, Event::Online(true)),
            (40_100, Event::Online(false)),
            (40_200, Event::LocalWrite),
            (41_000, Event::Online(true)),
        ];
        // Nothing while offline (not even the interval); at once when back.
        assert_eq!(
            run(&mut s, 0, 41_500, &events, 10, true),
            vec![40_000, 41_000]
        );
        assert_eq!(Scheduler::new(OPTIONS, false, 0).next_wake(), None);
    }

    #[test]
    fn one_sync_at_a_time_and_writes_during_it_sync_after() {
        let mut s = Scheduler::new(OPTIONS, true, 0);
        let events = [(100, Event::LocalWrite), (2_000, Event::Nudge)];
        // The first sync runs 3 s: the write and the nudge wait for it to end.
        assert_eq!(run(&mut s, 0, 3_500, &events, 3_000, true), vec![0, 3_000]);
        assert_eq!(s.next_wake(), None, "a sync is running");
    }

    #[test]
    fn failures_retry_with_backoff_and_success_resets_it() {
        let options = AutoSyncOptions {
            debounce_ms: 10,
            interval_ms: 0,
        };
        let mut s = Scheduler::new(options, true, 0);
        // Fails after 1 ms each time: retries after 1 s, 2 s, 4 s, 8 s, ...
        let started = run(&mut s, 0, 20_000, &[], 1, false);
        assert_eq!(started, vec![0, 1_001, 3_002, 7_003, 15_004]);
        let mut s = Scheduler::new(options, true, 0);
        let mut now = 0;
        for _ in 0..30 {
            now = s.next_wake().unwrap();
            assert!(s.poll(now));
            s.on(Event::Finished { ok: false }, now);
        }
        assert_eq!(s.next_wake(), Some(now + RETRY_MAX_MS), "capped");
        s.on(Event::LocalWrite, now);
        assert_eq!(
            s.next_wake(),
            Some(now + 10),
            "a write does not wait for the backoff"
        );
        assert!(s.poll(now + 10));
        s.on(Event::Finished { ok: true }, now + 20);
        s.on(Event::LocalWrite, now + 20);
        assert!(s.poll(now + 30));
        s.on(Event::Finished { ok: false }, now + 40);
        let retry = now + 40 + RETRY_FIRST_MS;
        assert_eq!(s.next_wake(), Some(retry), "reset by the success");
    }
}
