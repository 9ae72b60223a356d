//! Hybrid logical clocks: every mergeable column value carries a
//! [`Timestamp`] `(hlc, node)` where `hlc = physical_ms << 16 | counter`.
//!
//! The text form (`16 hex digits - 16 hex digits`, lowercase) sorts like the
//! clock itself, so SQL compares clocks with plain `>` on text.
//! Physical time comes from a [`Clock`] (tests inject a fake one).
//!
//! Drift policy: a remote clock further ahead of local physical time than
//! `max_drift_ms` is still *accepted* (the row merges normally, so every
//! replica converges on the same value), but the local clock does not jump
//! past `now + max_drift_ms`; [`HybridClock::observe`] reports the clamp so
//! the engine can surface it. Rejecting such rows would need every replica
//! to agree on "now", which they cannot, and would stall the pull cursor on
//! the offending page forever. A local edit of a column whose clock is past
//! the bound still wins: it takes that column's clock + 1 (see
//! `Database::update`), so user intent and convergence both hold while the
//! replica's own clock stays bounded.

use std::fmt;
use std::sync::Arc;

/// Source of physical time in milliseconds since the Unix epoch.
pub trait Clock: crate::platform::SendOutsideWasm + crate::platform::SyncOutsideWasm {
    fn now_ms(&self) -> u64;
}

/// The platform's wall clock (`SystemTime` natively, `Date.now()` on wasm).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[cfg(not(target_arch = "wasm32"))]
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    #[cfg(target_arch = "wasm32")]
    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }
}

/// Identifies one replica (random, persisted in the replica's database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    /// A random node id: 64 bits from the operating system's random source
    /// (a UUIDv4's 122 random bits folded; a dedicated RNG dependency buys
    /// nothing). Not a UUIDv7: its time and counter bits are shared by ids
    /// drawn in the same moment.
    pub fn random() -> NodeId {
        NodeId::from_uuid_bits(uuid::Uuid::new_v4().as_u128())
    }

    /// A UUID's 128 bits folded into 64: every bit of either half reaches
    /// the id (the low half holds most of the random bits, the high half
    /// the time and the counter).
    fn from_uuid_bits(bits: u128) -> NodeId {
        NodeId((bits as u64) ^ ((bits >> 64) as u64).rotate_left(17))
    }
}

/// Largest physical time a clock can hold (48 bits of milliseconds).
pub const MAX_PHYSICAL_MS: u64 = (1 << 48) - 1;

/// One clock value: ordered by `hlc`, then by `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub hlc: u64,
    pub node: NodeId,
}

impl Timestamp {
    /// Milliseconds since the epoch of this clock value.
    pub fn physical_ms(&self) -> u64 {
        self.hlc >> 16
    }

    /// Parses the canonical text form; anything else (case, length, sign) is refused.
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let bytes = text.as_bytes();
        let ok = bytes.len() == 33
            && bytes[16] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 16 || matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(format!(
                "{:?} is not a clock (16 hex digits, '-', 16 hex digits)",
                crate::error::clip(text, 64)
            ));
        }
        let hlc = u64::from_str_radix(&text[..16], 16).map_err(|e| e.to_string())?;
        let node = u64::from_str_radix(&text[17..], 16).map_err(|e| e.to_string())?;
        Ok(Timestamp {
            hlc,
            node: NodeId(node),
        })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{:016x}", self.hlc, self.node.0)
    }
}

/// The clock a local write gives a column whose current clock is `old`,
/// when the write's own clock is `now`: `now`, or `old + 1` (on `now`'s node)
/// when `old` is not older — a remote clock past the drift bound, which the
/// local clock does not follow, must still lose to a later local edit.
/// Every local write (todo API, row API, the views' triggers; tombstones
/// included) takes its column clocks by this rule, and `updated_at` from
/// `now`, so replicas hold the same bytes whatever their wall clocks.
///
/// `None` when no clock is greater than `old` (`hlc` at `u64::MAX`, year
/// 10889): the column cannot change any more, since a write with a clock
/// that does not win would keep its value here and lose everywhere else.
pub fn clock_after(now: Timestamp, old: Timestamp) -> Option<Timestamp> {
    if old < now {
        return Some(now);
    }
    Some(Timestamp {
        hlc: old.hlc.checked_add(1)?,
        node: now.node,
    })
}

/// What [`HybridClock::observe`] did with a remote clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// The local clock now is at least the remote one.
    Advanced,
    /// The remote clock is beyond the drift bound; the local clock stopped at the bound.
    Clamped { ahead_ms: u64 },
}

/// The state of one replica's hybrid logical clock.
#[derive(Debug, Clone)]
pub struct HybridClock {
    node: NodeId,
    last: u64,
    max_drift_ms: u64,
}

impl HybridClock {
    /// A clock for `node` that has already issued `last` (0 for a new replica).
    pub fn new(node: NodeId, last: u64, max_drift_ms: u64) -> Self {
        HybridClock {
            node,
            last,
            max_drift_ms,
        }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The last value issued or observed (persist it).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Moves the clock up to `last`, a value another session sharing the
    /// file persisted (read inside the write transaction that then ticks),
    /// so clocks stay monotonic across processes.
    pub fn catch_up(&mut self, last: u64) {
        self.last = self.last.max(last);
    }

    /// A new clock value for a local write: strictly greater than every value
    /// issued or observed before, whatever the physical clock does.
    pub fn tick(&mut self, physical_ms: u64) -> Timestamp {
        let wall = physical_ms.min(MAX_PHYSICAL_MS) << 16;
        self.last = if wall > self.last {
            wall
        } else {
            // Stalled or backwards wall clock: count up (overflowing the
            // counter moves into the next millisecond, still monotonic).
            self.last.saturating_add(1)
        };
        Timestamp {
            hlc: self.last,
            node: self.node,
        }
    }

    /// Standard HLC receive, bounded by the drift policy (see module docs).
    pub fn observe(&mut self, remote: Timestamp, physical_ms: u64) -> Observed {
        let bound = physical_ms
            .saturating_add(self.max_drift_ms)
            .min(MAX_PHYSICAL_MS)
            << 16
            | 0xffff;
        if remote.hlc > bound {
            self.last = self.last.max(bound & !0xffff);
            Observed::Clamped {
                ahead_ms: remote.physical_ms().saturating_sub(physical_ms),
            }
        } else {
            self.last = self.last.max(remote.hlc);
            Observed::Advanced
        }
    }
}

/// A replica's clocks: the wall clock and the hybrid logical clock it
/// drives, behind one async lock that local writes and pulled pages take in
/// turn (a write ticks it; a page observes the clocks it brings).
pub(crate) struct ReplicaClock {
    wall: Arc<dyn Clock>,
    hlc: futures::lock::Mutex<HybridClock>,
}

impl ReplicaClock {
    pub(crate) fn new(wall: Arc<dyn Clock>, hlc: HybridClock) -> ReplicaClock {
        ReplicaClock {
            wall,
            hlc: futures::lock::Mutex::new(hlc),
        }
    }

    /// Wall-clock milliseconds since the epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        self.wall.now_ms()
    }

    /// The hybrid clock, once no other write or page holds it.
    pub(crate) async fn lock(&self) -> futures::lock::MutexGuard<'_, HybridClock> {
        self.hlc.lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // On wasm these vectors run in Node through wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NODE: NodeId = NodeId(0xabc);

    #[test]
    fn text_form_sorts_like_clock() {
        let a = Timestamp {
            hlc: 5,
            node: NodeId(u64::MAX),
        };
        let b = Timestamp {
            hlc: 6,
            node: NodeId(0),
        };
        let c = Timestamp {
            hlc: 6,
            node: NodeId(1),
        };
        assert!(a < b && b < c);
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
        for t in [a, b, c] {
            assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        }
    }

    #[test]
    fn parse_refuses_non_canonical() {
        let good = Timestamp {
            hlc: 1 << 20,
            node: NODE,
        }
        .to_string();
        assert!(Timestamp::parse(&good).is_ok());
        for bad in [
            good.to_uppercase(),
            good.replace('-', "+"),
            format!("{good}0"),
            good[1..].to_string(),
            "+000000000000001-0000000000000abc".to_string(),
            String::new(),
        ] {
            assert!(Timestamp::parse(&bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn monotonic_with_stalled_clock() {
        let mut c = HybridClock::new(NODE, 0, 60_000);
        let mut prev = c.tick(1_000);
        for _ in 0..100_000 {
            let t = c.tick(1_000);
            assert!(t > prev);
            prev = t;
        }
        // 100,000 ticks overflowed the 16-bit counter into later milliseconds.
        assert!(prev.physical_ms() > 1_000);
    }

    #[test]
    fn monotonic_with_backwards_clock() {
        let mut c = HybridClock::new(NODE, 0, 60_000);
        let a = c.tick(10_000);
        let b = c.tick(5_000);
        let d = c.tick(9_999);
        assert!(a < b && b < d);
        assert_eq!(d.physical_ms(), 10_000);
        let e = c.tick(20_000);
        assert_eq!(e.hlc, 20_000 << 16);
    }

    #[test]
    fn resumes_from_persisted_last() {
        let mut c = HybridClock::new(NODE, 50_000 << 16, 60_000);
        assert!(c.tick(1_000).hlc > 50_000 << 16);
    }

    #[test]
    fn receive_advances_past_remote() {
        let mut c = HybridClock::new(NODE, 0, 60_000);
        let remote = Timestamp {
            hlc: (2_000 << 16) | 7,
            node: NodeId(1),
        };
        assert_eq!(c.observe(remote, 1_000), Observed::Advanced);
        let t = c.tick(1_000);
        assert!(t > remote);
        assert_eq!(t.hlc, (2_000 << 16) | 8);
    }

    #[test]
    fn receive_of_older_remote_changes_nothing() {
        let mut c = HybridClock::new(NODE, 0, 60_000);
        let t1 = c.tick(5_000);
        c.observe(
            Timestamp {
                hlc: 1 << 16,
                node: NodeId(1),
            },
            5_000,
        );
        assert_eq!(c.last(), t1.hlc);
    }

    #[test]
    fn far_future_remote_is_clamped_at_drift_bound() {
        let mut c = HybridClock::new(NODE, 0, 60_000);
        let remote = Timestamp {
            hlc: (10_000_000 << 16),
            node: NodeId(1),
        };
        let got = c.observe(remote, 1_000);
        assert_eq!(
            got,
            Observed::Clamped {
                ahead_ms: 9_999_000
            }
        );
        let t = c.tick(1_000);
        assert_eq!(
            t.physical_ms(),
            61_000,
            "local clock stops at now + max drift"
        );
        assert!(
            t < remote,
            "the far-future value keeps winning until time catches up"
        );
        // Within the bound, receive is exact.
        let near = Timestamp {
            hlc: (61_500 << 16),
            node: NodeId(1),
        };
        assert_eq!(c.observe(near, 1_500), Observed::Advanced);
        assert!(c.tick(1_500) > near);
    }

    #[test]
    fn a_local_write_always_takes_a_greater_clock_or_none() {
        let now = Timestamp {
            hlc: 5 << 16,
            node: NODE,
        };
        let older = Timestamp {
            hlc: 4 << 16,
            node: NodeId(u64::MAX),
        };
        assert_eq!(clock_after(now, older), Some(now));
        let ahead = Timestamp {
            hlc: 9 << 16,
            node: NodeId(1),
        };
        let after = clock_after(now, ahead).unwrap();
        assert!(after > ahead && after.node == NODE);
        // The same clock (a copy of this replica wrote it): still greater.
        assert!(clock_after(now, now).unwrap() > now);
        let last = Timestamp {
            hlc: u64::MAX,
            node: NodeId(0),
        };
        assert_eq!(clock_after(now, last), None);
    }

    /// The platform clock reads real time: on every target a time after
    /// this test was written (2026-01-01), natively between two readings
    /// of `SystemTime` taken around it (to the millisecond).
    #[test]
    fn the_system_clock_reads_real_time() {
        let read = SystemClock.now_ms();
        assert!(read > 1_767_225_600_000, "SystemClock read {read}");
        #[cfg(not(target_arch = "wasm32"))]
        {
            let ms = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
            };
            let before = ms(std::time::SystemTime::now());
            let read = SystemClock.now_ms();
            let after = ms(std::time::SystemTime::now());
            assert!(
                before <= read && read <= after,
                "SystemClock read {read}, SystemTime {before}..={after}"
            );
        }
    }

    /// Every one of a UUID's 128 bits reaches the node id made of it:
    /// flipping any one of them changes the id (an OR or AND of the two
    /// halves, or a lost half, would not).
    #[test]
    fn every_uuid_bit_reaches_the_node_id() {
        let bits: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        let id = NodeId::from_uuid_bits(bits);
        for i in 0..128 {
            assert_ne!(
                NodeId::from_uuid_bits(bits ^ (1 << i)),
                id,
                "bit {i} is lost"
            );
        }
        // Ids drawn one after another differ.
        let ids: std::collections::BTreeSet<NodeId> = (0..256).map(|_| NodeId::random()).collect();
        assert_eq!(ids.len(), 256);
    }

    /// Node ids drawn in the same moment share no structure: consecutive
    /// ones differ in half their bits on average (32 of 64; the mean of 255
    /// draws has a standard deviation of 0.25 bits, so 28..=36 never fails
    /// by chance). Ids folded from UUIDv7s drawn in a row differed in about
    /// 18 (time and counter bits alike).
    #[test]
    fn node_ids_drawn_together_differ_in_half_their_bits() {
        let ids: Vec<u64> = (0..256).map(|_| NodeId::random().0).collect();
        let total: u32 = ids.windows(2).map(|w| (w[0] ^ w[1]).count_ones()).sum();
        let mean = f64::from(total) / 255.0;
        assert!((28.0..=36.0).contains(&mean), "mean distance {mean}");
    }

    /// `catch_up` moves the clock to a value another process persisted,
    /// never back; the next tick is past it even with the wall clock behind.
    #[test]
    fn catch_up_follows_a_later_persisted_clock_and_never_goes_back() {
        let mut c = HybridClock::new(NODE, 10 << 16, 60_000);
        c.catch_up(50 << 16);
        assert_eq!(c.last(), 50 << 16);
        c.catch_up(20 << 16);
        assert_eq!(c.last(), 50 << 16, "caught up backwards");
        assert_eq!(c.tick(30).hlc, (50 << 16) + 1);
    }

    /// The drift bound is inclusive: a remote clock at exactly
    /// `now + max_drift` (any counter) is followed; one step past it is
    /// clamped.
    #[test]
    fn a_remote_clock_exactly_at_the_drift_bound_is_followed() {
        let bound = (61_000 << 16) | 0xffff;
        let mut c = HybridClock::new(NODE, 0, 60_000);
        let at = Timestamp {
            hlc: bound,
            node: NodeId(1),
        };
        assert_eq!(c.observe(at, 1_000), Observed::Advanced);
        assert_eq!(c.last(), bound);
        let mut c = HybridClock::new(NODE, 0, 60_000);
        let past = Timestamp {
            hlc: bound + 1,
            node: NodeId(1),
        };
        assert_eq!(
            c.observe(past, 1_000),
            Observed::Clamped {
                ahead_ms: 61_001 - 1_000
            }
        );
        assert_eq!(c.last(), 61_000 << 16);
    }

    #[test]
    fn physical_time_is_capped_at_48_bits() {
        let mut c = HybridClock::new(NODE, 0, u64::MAX);
        let t = c.tick(u64::MAX);
        assert_eq!(t.physical_ms(), MAX_PHYSICAL_MS);
        assert!(c.tick(u64::MAX) > t);
    }
}
