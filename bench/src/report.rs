//! One run's results: sections of measurements plus the targets of issue 6,
//! printed as a terminal table and rendered as `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One measured line: Erth Sync's number, the baseline's, and how they compare.
#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    pub erth: String,
    pub baseline: String,
    pub ratio: String,
}

impl Row {
    pub fn new(
        what: impl Into<String>,
        erth: impl Into<String>,
        baseline: impl Into<String>,
        ratio: impl Into<String>,
    ) -> Row {
        Row {
            what: what.into(),
            erth: erth.into(),
            baseline: baseline.into(),
            ratio: ratio.into(),
        }
    }
}

/// Whether a target was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Met,
    Missed,
    NotMeasured,
}

/// A target from the issue, checked against this run (never an assertion).
#[derive(Debug, Clone)]
pub struct Check {
    pub target: String,
    pub measured: String,
    pub status: Status,
    /// Why the number is where it is; printed when the target is missed.
    pub why: String,
}

impl Check {
    pub fn new(
        target: impl Into<String>,
        measured: String,
        met: bool,
        why: impl Into<String>,
    ) -> Check {
        Check {
            target: target.into(),
            measured,
            status: if met { Status::Met } else { Status::Missed },
            why: why.into(),
        }
    }

    pub fn not_measured(target: &str, reason: &str) -> Check {
        Check {
            target: target.into(),
            measured: format!("not measured: {reason}"),
            status: Status::NotMeasured,
            why: String::new(),
        }
    }
}

/// One comparison of the issue.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    /// What was run, on what, how often.
    pub about: String,
    /// Header of the Erth column.
    pub erth_name: String,
    /// Header of the baseline column.
    pub baseline_name: String,
    pub rows: Vec<Row>,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    /// Versions of the tools this section ran ("pyturso 0.8.3").
    pub versions: Vec<String>,
}

impl Section {
    pub fn new(title: &str, erth_name: &str, baseline_name: &str) -> Section {
        Section {
            title: title.into(),
            erth_name: erth_name.into(),
            baseline_name: baseline_name.into(),
            ..Section::default()
        }
    }
}

/// The machine the run happened on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| format!("{:.1} GiB RAM", kb / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown RAM".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| format!("Linux {}", k.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.into());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory,
            kernel,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} CPUs (nproc), {}, {}, {}",
            self.cpus, self.cpu_model, self.memory, self.kernel
        )
    }
}

/// Everything one run produced.
#[derive(Debug)]
pub struct Report {
    pub sections: Vec<Section>,
    pub command: String,
    pub quick: bool,
    pub started: SystemTime,
    pub elapsed: Duration,
    pub machine: Machine,
}

impl Report {
    fn checks(&self) -> impl Iterator<Item = &Check> {
        self.sections.iter().flat_map(|s| s.checks.iter())
    }

    /// The plain-text table printed at the end of a run.
    pub fn terminal(&self) -> String {
        let mut out = String::new();
        for s in &self.sections {
            let _ = writeln!(out, "\n== {}", s.title);
            let mut lines = vec![[
                "measurement",
                s.erth_name.as_str(),
                s.baseline_name.as_str(),
                "ratio",
            ]
            .map(String::from)];
            lines.extend(
                s.rows
                    .iter()
                    .map(|r| [&r.what, &r.erth, &r.baseline, &r.ratio].map(String::clone)),
            );
            let widths: Vec<usize> = (0..4)
                .map(|i| {
                    lines
                        .iter()
                        .map(|l| l[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for l in &lines {
                let cells: Vec<String> = l
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                    .collect();
                let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
            }
            for n in &s.notes {
                let _ = writeln!(out, "  note: {n}");
            }
        }
        let _ = writeln!(out, "\n== targets");
        for c in self.checks() {
            let _ = writeln!(
                out,
                "  [{}] {}: {}",
                status_word(c.status),
                c.target,
                c.measured
            );
        }
        out
    }

    /// The whole `BENCHMARKS.md`.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "Generated by `erth-bench` on {} — do not edit by hand; rerun the command to refresh it. \
             Benchmarks print numbers and ratios against baselines run in the same run; they never \
             fail on a timing.\n",
            utc_timestamp(self.started)
        );
        let _ = writeln!(md, "- **Command:** `{}`", self.command);
        let _ = writeln!(
            md,
            "- **Mode:** {}; the run took {}",
            if self.quick {
                "quick (`--quick`: smaller sizes and fewer repetitions)"
            } else {
                "full"
            },
            crate::stats::duration(self.elapsed.as_secs_f64())
        );
        let _ = writeln!(md, "- **Machine:** {}", self.machine.describe());
        let mut versions: Vec<&String> = self
            .sections
            .iter()
            .flat_map(|s| s.versions.iter())
            .collect();
        versions.dedup();
        if !versions.is_empty() {
            let list: Vec<&str> = versions.iter().map(|v| v.as_str()).collect();
            let _ = writeln!(md, "- **Versions:** {}", list.join("; "));
        }
        let _ = writeln!(
            md,
            "\nThe machine is shared with other work (builds, tests), so single numbers move by \
             10-30% between runs; medians of repeated runs and ratios measured side by side in the \
             same run are the numbers to compare.\n"
        );

        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| Target | Measured | Status |\n| --- | --- | --- |");
        for c in self.checks() {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                cell(&c.target),
                cell(&c.measured),
                status_word(c.status)
            );
        }
        let missed: Vec<&Check> = self
            .checks()
            .filter(|c| c.status == Status::Missed)
            .collect();
        if missed.is_empty() {
            let _ = writeln!(md, "\nEvery measured target was met in this run.");
        } else {
            let _ = writeln!(md, "\n### Missed targets, and why\n");
            for c in missed {
                let _ = writeln!(
                    md,
                    "- **{}** — measured {}. {}",
                    c.target, c.measured, c.why
                );
            }
        }

        for s in &self.sections {
            let _ = writeln!(md, "\n## {}\n", s.title);
            if !s.about.is_empty() {
                let _ = writeln!(md, "{}\n", s.about);
            }
            if !s.rows.is_empty() {
                let _ = writeln!(
                    md,
                    "| Measurement | {} | {} | Ratio |\n| --- | --- | --- | --- |",
                    cell(&s.erth_name),
                    cell(&s.baseline_name)
                );
                for r in &s.rows {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} |",
                        cell(&r.what),
                        cell(&r.erth),
                        cell(&r.baseline),
                        cell(&r.ratio)
                    );
                }
            }
            if !s.notes.is_empty() {
                let _ = writeln!(md);
                for n in &s.notes {
                    let _ = writeln!(md, "- {n}");
                }
            }
        }
        md
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Met => "met",
        Status::Missed => "MISSED",
        Status::NotMeasured => "not measured",
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// `YYYY-MM-DD HH:MM UTC`.
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(
            utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_660)),
            "2000-02-29 01:01 UTC"
        );
    }

    #[test]
    fn markdown_lists_missed_targets_with_reasons() {
        let mut s = Section::new("1. Thing", "Erth", "Base");
        s.rows.push(Row::new("op", "1 ms", "2 ms", "2.00x faster"));
        s.checks
            .push(Check::new("op <= 0.5 ms", "1 ms".into(), false, "Because."));
        s.checks
            .push(Check::not_measured("browser", "package not built"));
        let r = Report {
            sections: vec![s],
            command: "cargo xtask bench".into(),
            quick: false,
            started: UNIX_EPOCH,
            elapsed: Duration::from_secs(1),
            machine: Machine::probe(),
        };
        let md = r.markdown();
        assert!(md.contains("| op <= 0.5 ms | 1 ms | MISSED |"), "{md}");
        assert!(
            md.contains("- **op <= 0.5 ms** — measured 1 ms. Because."),
            "{md}"
        );
        assert!(md.contains("not measured: package not built"), "{md}");
        assert!(r.terminal().contains("[MISSED] op <= 0.5 ms"));
    }
}
