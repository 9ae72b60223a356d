//! Samples and how the report prints them: medians, p95, durations, rates
//! and sizes.

use std::time::Duration;

/// Timings of repeated runs of one operation.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    secs: Vec<f64>,
}

impl Samples {
    pub fn new() -> Samples {
        Samples::default()
    }

    /// Samples given in milliseconds (what the baseline scripts print).
    pub fn from_ms(ms: impl IntoIterator<Item = f64>) -> Samples {
        Samples {
            secs: ms.into_iter().map(|m| m / 1e3).collect(),
        }
    }

    pub fn push(&mut self, d: Duration) {
        self.secs.push(d.as_secs_f64());
    }

    pub fn push_secs(&mut self, s: f64) {
        self.secs.push(s);
    }

    pub fn len(&self) -> usize {
        self.secs.len()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.secs.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Median in seconds (0 when empty).
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// The largest sample in seconds (0 when empty).
    pub fn max(&self) -> f64 {
        self.secs.iter().copied().fold(0.0, f64::max)
    }

    /// 95th percentile (nearest rank) in seconds (0 when empty).
    pub fn p95(&self) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return 0.0;
        }
        let rank = ((v.len() as f64) * 0.95).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    /// "median (p95 x, n runs)" for many samples, "median (n runs)" for few.
    pub fn summary(&self) -> String {
        if self.len() >= 20 {
            format!(
                "{} (p95 {}, n={})",
                duration(self.median()),
                duration(self.p95()),
                self.len()
            )
        } else {
            format!("{} (n={})", duration(self.median()), self.len())
        }
    }
}

/// A duration in seconds, with a unit that keeps three significant digits
/// (a difference of two durations may be negative: "-10.0 µs").
pub fn duration(secs: f64) -> String {
    if secs < 0.0 {
        format!("-{}", duration(-secs))
    } else if secs < 1e-6 {
        format!("{:.0} ns", secs * 1e9)
    } else if secs < 1e-3 {
        format!("{} µs", sig3(secs * 1e6))
    } else if secs < 1.0 {
        format!("{} ms", sig3(secs * 1e3))
    } else {
        format!("{} s", sig3(secs))
    }
}

fn sig3(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// How much faster `ours` is than `theirs` (both the same unit, lower is
/// better): "12.3x faster" or "2.0x slower".
pub fn speedup(ours: f64, theirs: f64) -> String {
    if ours <= 0.0 || theirs <= 0.0 {
        return "—".into();
    }
    let r = theirs / ours;
    if (r - 1.0).abs() < 0.005 {
        "same".into()
    } else if r >= 1.0 {
        format!("{}x faster", sig3(r))
    } else {
        format!("{}x slower", sig3(1.0 / r))
    }
}

/// `value / base` as "1.05x".
pub fn factor(value: f64, base: f64) -> String {
    if base <= 0.0 {
        return "—".into();
    }
    format!("{}x", sig3(value / base))
}

/// Rows per second.
pub fn rate(rows: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "—".into();
    }
    let r = rows as f64 / secs;
    if r >= 1e6 {
        format!("{} M rows/s", sig3(r / 1e6))
    } else if r >= 1e3 {
        format!("{} k rows/s", sig3(r / 1e3))
    } else {
        format!("{} rows/s", sig3(r))
    }
}

/// A byte count in KiB or MiB.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 {
        format!("{} MiB", sig3(n / 1024.0 / 1024.0))
    } else {
        format!("{} KiB", sig3(n / 1024.0))
    }
}

/// `1000000` as "1,000,000".
pub fn count(mut n: u64) -> String {
    let mut groups = Vec::new();
    while n >= 1000 {
        groups.push(format!("{:03}", n % 1000));
        n /= 1000;
    }
    groups.push(n.to_string());
    groups.reverse();
    groups.join(",")
}

/// A ratio with two decimals: `1.23x`.
pub fn times(x: f64) -> String {
    format!("{x:.2}x")
}

/// A ratio with one decimal: `36.1x`.
pub fn times1(x: f64) -> String {
    format!("{x:.1}x")
}

/// A ratio with three decimals, for ratios near their target: `1.298x`.
pub fn times3(x: f64) -> String {
    format!("{x:.3}x")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p95() {
        let s = Samples::from_ms((1..=100).map(f64::from));
        assert!((s.median() - 0.0505).abs() < 1e-9);
        assert!((s.p95() - 0.095).abs() < 1e-9);
        assert_eq!(Samples::new().median(), 0.0);
    }

    #[test]
    fn formatting() {
        assert_eq!(duration(0.000_042_1), "42.1 µs");
        assert_eq!(duration(0.25), "250 ms");
        assert_eq!(duration(1.234), "1.23 s");
        assert_eq!(speedup(0.5, 1.0), "2.00x faster");
        assert_eq!(speedup(2.0, 1.0), "2.00x slower");
        assert_eq!(speedup(1.0, 0.998), "same");
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(count(999), "999");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(rate(100_000, 2.0), "50.0 k rows/s");
    }
}
