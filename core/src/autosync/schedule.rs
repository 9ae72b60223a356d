//! When to sync by itself: [`AutoSyncOptions`] (plain data, part of
//! `Config`) and the [`Scheduler`], sans I/O: given events and the time, it
//! says when a sync is due. Unit-tested without a clock or a network; the
//! driver in [`super`] feeds it.

/// When auto-sync syncs ([`Config::auto_sync`]; `None` there: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "js",
    derive(serde::Deserialize, tsify::Tsify),
    serde(rename_all = "camelCase", default, deny_unknown_fields)
)]
pub struct AutoSyncOptions {
    /// Sync this many ms after the last local write (default 500).
    #[cfg_attr(feature = "uniffi", uniffi(default = 500))]
    pub debounce_ms: u64,
    /// Also sync every this many ms, to pull other devices' changes
    /// (default 30000; 0: only after writes and when the network returns).
    #[cfg_attr(feature = "uniffi", uniffi(default = 30000))]
    pub interval_ms: u64,
}

impl Default for AutoSyncOptions {
    fn default() -> Self {
        AutoSyncOptions {
            debounce_ms: 500,
            interval_ms: 30_000,
        }
    }
}

/// The first retry after a failed auto-sync waits this long (ms); each
/// further failure doubles it, up to [`RETRY_MAX_MS`].
pub const RETRY_FIRST_MS: u64 = 1_000;
/// The longest wait before retrying a failed auto-sync (ms).
pub const RETRY_MAX_MS: u64 = 300_000;

/// What the scheduler hears of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A local write committed: sync `debounce_ms` after the last one.
    LocalWrite,
    /// The network was switched off (`false`) or on: on means sync now.
    Online(bool),
    /// Sync now: the server, the token or the refused rows changed.
    Nudge,
    /// The sync the scheduler started ([`Scheduler::poll`]) ended.
    Finished { ok: bool },
}

/// When to sync, from events and the time (ms on any clock that does not
/// go back); no I/O. Call [`Scheduler::poll`] after every event and by
/// [`Scheduler::next_wake`] at the latest.
#[derive(Debug, Clone)]
pub struct Scheduler {
    options: AutoSyncOptions,
    online: bool,
    /// When the next sync is due, if one is.
    due: Option<u64>,
    /// The next interval tick, if there is an interval.
    next_tick: Option<u64>,
    running: bool,
    failures: u32,
}

impl Scheduler {
    /// A scheduler whose first sync is due at once (at `now`).
    pub fn new(options: AutoSyncOptions, online: bool, now: u64) -> Scheduler {
        Scheduler {
            options,
            online,
            due: Some(now),
            next_tick: (options.interval_ms > 0).then(|| now + options.interval_ms),
            running: false,
            failures: 0,
        }
    }

    /// Takes an event that happened at `now`.
    pub fn on(&mut self, event: Event, now: u64) {
        match event {
            // Debounced: each write moves the sync later, unless one is due already.
            Event::LocalWrite if self.due.is_none_or(|d| d > now) => {
                self.due = Some(now + self.options.debounce_ms);
            }
            Event::LocalWrite => {}
            Event::Online(online) => {
                self.online = online;
                if online {
                    self.due = Some(now);
                }
            }
            Event::Nudge => self.due = Some(now),
            Event::Finished { ok } => {
                self.running = false;
                if ok {
                    self.failures = 0;
                } else {
                    self.failures = self.failures.saturating_add(1);
                    let wait = RETRY_FIRST_MS
                        .saturating_mul(1 << (self.failures - 1).min(20))
                        .min(RETRY_MAX_MS);
                    self.due = Some(self.due.map_or(now + wait, |d| d.min(now + wait)));
                }
            }
        }
    }

    /// Whether a sync should start at `now`; if so the scheduler counts it
    /// as running until [`Event::Finished`]. Never while offline or while a
    /// sync runs.
    pub fn poll(&mut self, now: u64) -> bool {
        if let Some(tick) = self.next_tick.filter(|t| *t <= now) {
            // Missed ticks (a sleeping device) count once.
            let late = (now - tick) / self.options.interval_ms;
            self.next_tick = Some(tick + (late + 1) * self.options.interval_ms);
            if !self.running {
                self.due = Some(self.due.map_or(now, |d| d.min(now)));
            }
        }
        if self.running || !self.online || self.due.is_none_or(|d| d > now) {
            return false;
        }
        self.due = None;
        self.running = true;
        true
    }

    /// The latest time to call [`Scheduler::poll`] again; `None`: only
    /// after the next event (offline, or a sync runs).
    pub fn next_wake(&self) -> Option<u64> {
        if self.running || !self.online {
            return None;
        }
        match (self.due, self.next_tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
