//! A bench's results: sections of measurements plus the targets, printed as
//! a terminal table and rendered as `BENCHMARKS.md`. With several runs, each
//! target is reported over all of them (its number's median and range) and
//! counts as met only if every run met it; the sections' tables are the
//! last run's.

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

/// A target's number and how to show it (`stats::times`, `stats::duration`).
pub type Value = (f64, fn(f64) -> String);

/// A target from the issue, checked against this run (never an assertion).
#[derive(Debug, Clone)]
pub struct Check {
    pub target: String,
    pub measured: String,
    pub status: Status,
    /// Why the number is where it is; printed when the target is missed.
    pub why: String,
    /// The number the target compares (a ratio, a time), with how to show
    /// it: what several runs report as median and range.
    pub value: Option<Value>,
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
            value: None,
        }
    }

    /// This check with the number it compares, shown by `show`.
    pub fn value(mut self, value: f64, show: fn(f64) -> String) -> Check {
        self.value = Some((value, show));
        self
    }

    pub fn not_measured(target: &str, reason: &str) -> Check {
        Check {
            target: target.into(),
            measured: format!("not measured: {reason}"),
            status: Status::NotMeasured,
            why: String::new(),
            value: None,
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
    /// The last run's sections.
    pub sections: Vec<Section>,
    /// The checks of the runs before the last (empty for one run).
    pub earlier: Vec<Vec<Check>>,
    pub command: String,
    pub quick: bool,
    pub started: SystemTime,
    pub elapsed: Duration,
    pub machine: Machine,
}

/// One target over every run.
#[derive(Debug, Clone)]
pub struct Target {
    pub target: String,
    pub measured: String,
    pub status: Status,
    /// `met (3/3 runs)`, `MISSED (met in 1 of 3 runs)`.
    pub verdict: String,
    pub why: String,
}

impl Report {
    /// The targets, each over every run that checked it: met only if every
    /// run met it; its number as the median and range of the runs'.
    pub fn targets(&self) -> Vec<Target> {
        let last = self.sections.iter().flat_map(|s| s.checks.iter());
        last.map(|c| {
            let mut runs: Vec<&Check> = self
                .earlier
                .iter()
                .filter_map(|run| run.iter().find(|e| e.target == c.target))
                .collect();
            runs.push(c);
            aggregate(&runs)
        })
        .collect()
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
        for t in self.targets() {
            let _ = writeln!(out, "  [{}] {}: {}", t.verdict, t.target, t.measured);
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
        let runs = self.earlier.len() + 1;
        if runs > 1 {
            let _ = writeln!(
                md,
                "- **Runs:** every section ran {runs} times in a row; a target's figure is the \
                 median and range of its {runs} runs (with the last run's details), and it counts \
                 as met only if every run met it. The sections' tables show the last run."
            );
        }
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
        let targets = self.targets();
        for t in &targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                cell(&t.target),
                cell(&t.measured),
                cell(&t.verdict)
            );
        }
        let missed: Vec<&Target> = targets
            .iter()
            .filter(|t| t.status == Status::Missed)
            .collect();
        if missed.is_empty() {
            let _ = writeln!(md, "\nEvery measured target was met in every run.");
        } else {
            let _ = writeln!(md, "\n### Missed targets, and why\n");
            for t in missed {
                let _ = writeln!(
                    md,
                    "- **{}** — measured {}. {}",
                    t.target, t.measured, t.why
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

/// One target over `runs` (the same target's check in each run, in order).
fn aggregate(runs: &[&Check]) -> Target {
    let last = runs[runs.len() - 1];
    let n = runs.len();
    let met = runs.iter().filter(|c| c.status == Status::Met).count();
    let measured_runs = runs
        .iter()
        .filter(|c| c.status != Status::NotMeasured)
        .count();
    let status = if measured_runs == 0 {
        Status::NotMeasured
    } else if met == n {
        Status::Met
    } else {
        Status::Missed
    };
    if n == 1 {
        return Target {
            target: last.target.clone(),
            measured: last.measured.clone(),
            status,
            verdict: status_word(status).into(),
            why: last.why.clone(),
        };
    }
    let values: Option<Vec<Value>> = runs.iter().map(|c| c.value).collect();
    let measured = match values {
        Some(values) => {
            let show = values[0].1;
            let mut xs: Vec<f64> = values.iter().map(|v| v.0).collect();
            xs.sort_by(f64::total_cmp);
            let median = if n % 2 == 1 {
                xs[n / 2]
            } else {
                (xs[n / 2 - 1] + xs[n / 2]) / 2.0
            };
            format!(
                "median {} (range {} to {}, {n} runs); last run: {}",
                show(median),
                show(xs[0]),
                show(xs[n - 1]),
                last.measured
            )
        }
        None => {
            let each: Vec<&str> = runs.iter().map(|c| c.measured.as_str()).collect();
            format!("runs: {}", each.join(" / "))
        }
    };
    let verdict = match status {
        Status::Met => format!("met ({n}/{n} runs)"),
        Status::Missed => format!("MISSED (met in {met} of {n} runs)"),
        Status::NotMeasured => status_word(status).into(),
    };
    Target {
        target: last.target.clone(),
        measured,
        status,
        verdict,
        why: last.why.clone(),
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
            earlier: Vec::new(),
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

    #[test]
    fn a_target_over_several_runs_is_met_only_if_every_run_met_it() {
        let show: fn(f64) -> String = |x| format!("{x:.2}x");
        let check = |x: f64| {
            Check::new("ratio <= 1.3x", format!("{x:.2}x"), x <= 1.3, "Why.").value(x, show)
        };
        let mut last = Section::new("t", "Erth", "base");
        last.checks.push(check(1.2));
        last.checks
            .push(Check::new("no number", "ok".into(), true, ""));
        let r = Report {
            sections: vec![last],
            earlier: vec![
                vec![check(1.4), Check::new("no number", "fine".into(), true, "")],
                vec![check(1.1), Check::new("no number", "good".into(), true, "")],
            ],
            command: "cargo xtask bench".into(),
            quick: false,
            started: UNIX_EPOCH,
            elapsed: Duration::from_secs(1),
            machine: Machine::probe(),
        };
        let targets = r.targets();
        assert_eq!(targets[0].status, Status::Missed);
        assert_eq!(targets[0].verdict, "MISSED (met in 2 of 3 runs)");
        assert_eq!(
            targets[0].measured,
            "median 1.20x (range 1.10x to 1.40x, 3 runs); last run: 1.20x"
        );
        assert_eq!(targets[1].verdict, "met (3/3 runs)");
        assert_eq!(targets[1].measured, "runs: fine / good / ok");
        let md = r.markdown();
        assert!(md.contains("- **Runs:** every section ran 3 times"), "{md}");
        assert!(md.contains("| ratio <= 1.3x | median 1.20x (range 1.10x to 1.40x, 3 runs); last run: 1.20x | MISSED (met in 2 of 3 runs) |"), "{md}");
    }
}
