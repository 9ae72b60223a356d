//! `erth-bench`: Erth Sync measured against the original Python design and
//! against Turso Sync, every comparison side by side in one run (issue 6).
//! `cargo xtask bench` installs the baselines, builds this in release, runs
//! it and lets it rewrite `BENCHMARKS.md`.
//!
//! ```text
//! erth-bench --python VENV/bin/python --node-dir DIR [--quick] [--only a,b]
//!            [--runs N] [--report BENCHMARKS.md] [--command "cargo xtask bench"]
//!            [--chromium /usr/bin/chromium] [--faces FILE]
//! ```
//!
//! `--runs N` (default 3; 1 with `--quick`) runs every section N times in a
//! row: each target is then reported as the median and range of its N
//! numbers and counts as met only if every run met it (a target that sits
//! on its boundary flips between runs and machines; one run cannot tell).
//!
//! Sections (`--only` takes their names): `original` (the Python SQLModel
//! design vs the native core), `turso-sync` (device A/B sync vs
//! `@tursodatabase/sync` and `pyturso`), `uuid-keys` (UUIDv7 vs UUIDv4 keys
//! in SQLite), `scale` (10-row syncs at growing sizes, throughput, peak RSS),
//! `browser` (the wasm package, when built), `local` (the schema API's
//! local writes and live queries against SQLite's floor), `browser-sync`
//! (a browser's first sync of 100,000 and 1,000,000 rows, and reads from
//! the owner tab and a second tab), `faces` (a one-row insert and a point
//! read through Python, Kotlin and Swift against Rust, on the same file),
//! `encryption` (end-to-end encrypted columns against the same columns in
//! clear: add, bulk, push, fresh pull). Every server is a fresh
//! `tursodb --sync-server` from the test harness.
//!
//! Timings are printed, never asserted: a missed target is reported, with
//! the reason, not failed. The process fails only when a comparison could
//! not run at all.

mod browser;
mod browser_sync;
mod encryption;
mod faces;
mod local;
mod original;
mod report;
mod scale;
mod stats;
mod turso_sync;
mod uuid_keys;
mod wire;

use anyhow::{bail, Context as _, Result};
use report::{Machine, Report, Section};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime};

/// What every section needs to know about the run.
#[derive(Debug)]
pub struct Ctx {
    /// Smaller sizes and fewer repetitions.
    pub quick: bool,
    /// The venv's python with `sqlmodel` and `pyturso`.
    pub python: PathBuf,
    /// The directory whose `node_modules` holds `@tursodatabase/sync`,
    /// `playwright-core` and `@sqlite.org/sqlite-wasm`.
    pub node_dir: PathBuf,
    /// The workspace root (for `bindings-wasm/pkg`).
    pub workspace: PathBuf,
    /// The Chromium binary for the browser numbers.
    pub chromium: PathBuf,
    /// The native faces' benchmark commands (`faces`): per line a name,
    /// then a command, tab-separated.
    pub faces: Option<PathBuf>,
}

impl Ctx {
    /// `quick` in quick mode, else `full`.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

const SECTIONS: [(&str, &str); 9] = [
    (
        "original",
        "1. The original Python design vs the native core",
    ),
    (
        "turso-sync",
        "2. Turso Sync vs Erth Sync: device A pushes, device B pulls",
    ),
    ("uuid-keys", "3. UUIDv7 vs UUIDv4 primary keys in SQLite"),
    ("scale", "4. Scale: 10-row syncs, throughput and memory"),
    ("browser", "5. Browser"),
    (
        "local",
        "6. Local writes and live queries vs SQLite's floor",
    ),
    (
        "browser-sync",
        "7. Browser: a fresh device's first sync, and reads from two tabs",
    ),
    ("faces", "8. What the native faces add per call"),
    (
        "encryption",
        "9. End-to-end encrypted columns: what sealing costs",
    ),
];

#[derive(Debug)]
struct Options {
    ctx: Ctx,
    only: Option<Vec<String>>,
    /// How many times every section runs.
    runs: u32,
    report: Option<PathBuf>,
    command: String,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut quick = false;
    let mut runs = None;
    let mut python = None;
    let mut node_dir = None;
    let mut only = None;
    let mut report = None;
    let mut command = None;
    let mut chromium = PathBuf::from("/usr/bin/chromium");
    let mut faces = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--quick" => quick = true,
            "--runs" => {
                let n: u32 = value(arg)?
                    .parse()
                    .context("--runs takes a number of runs (1 or more)")?;
                if n == 0 {
                    bail!("--runs takes a number of runs (1 or more)");
                }
                runs = Some(n);
            }
            "--python" => python = Some(PathBuf::from(value(arg)?)),
            "--node-dir" => node_dir = Some(PathBuf::from(value(arg)?)),
            "--report" => report = Some(PathBuf::from(value(arg)?)),
            "--command" => command = Some(value(arg)?),
            "--chromium" => chromium = PathBuf::from(value(arg)?),
            "--faces" => faces = Some(PathBuf::from(value(arg)?)),
            "--only" => {
                let names: Vec<String> = value(arg)?.split(',').map(str::to_owned).collect();
                for n in &names {
                    if !SECTIONS.iter().any(|(s, _)| s == n) {
                        bail!(
                            "unknown section {n:?}; sections: {}",
                            SECTIONS.map(|(s, _)| s).join(", ")
                        );
                    }
                }
                only = Some(names);
            }
            other => bail!(
                "unknown argument {other:?}\nusage: erth-bench --python PY --node-dir DIR \
                 [--quick] [--only SECTIONS] [--runs N] [--report FILE] [--command TEXT] \
                 [--chromium BIN] [--faces FILE]"
            ),
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate has no parent directory")?
        .to_path_buf();
    Ok(Options {
        ctx: Ctx {
            quick,
            python: python.context("--python VENV/bin/python is required")?,
            node_dir: node_dir.context("--node-dir DIR is required")?,
            workspace,
            chromium,
            faces,
        },
        only,
        runs: runs.unwrap_or(if quick { 1 } else { 3 }),
        report,
        command: command.unwrap_or_else(|| {
            std::iter::once("erth-bench".to_string())
                .chain(args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ")
        }),
    })
}

fn main() -> ExitCode {
    match main_inner() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("erth-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    if args.first().map(String::as_str) == Some(scale::PULL_CHILD) {
        return runtime.block_on(scale::pull_child(&args[1..]));
    }
    let options = parse_args(&args)?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> Result<()> {
    let started = SystemTime::now();
    let clock = Instant::now();
    let ctx = &options.ctx;
    let mut earlier = Vec::new();
    let mut sections = Vec::new();
    let mut failed = Vec::new();
    for run in 1..=options.runs {
        if run > 1 {
            earlier.push(sections.drain(..).flat_map(|s: Section| s.checks).collect());
        }
        eprintln!("erth-bench: run {run} of {}", options.runs);
        for (name, title) in SECTIONS {
            if options
                .only
                .as_ref()
                .is_some_and(|only| !only.iter().any(|o| o == name))
            {
                continue;
            }
            match section(ctx, name, title).await {
                Ok(section) => sections.push(section),
                Err(e) => {
                    eprintln!("erth-bench: {name} failed: {e:#}");
                    let mut section = Section::new(title, "Erth Sync", "baseline");
                    section
                        .notes
                        .push(format!("not measured: the run failed: {e:#}"));
                    sections.push(section);
                    if !failed.contains(&name) {
                        failed.push(name);
                    }
                }
            }
        }
    }
    let report = Report {
        sections,
        earlier,
        command: options.command.clone(),
        quick: ctx.quick,
        started,
        elapsed: clock.elapsed(),
        machine: Machine::probe(),
    };
    print!("{}", report.terminal());
    if let Some(path) = &options.report {
        std::fs::write(path, report.markdown())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("erth-bench: wrote {}", path.display());
    }
    if !failed.is_empty() {
        bail!("these comparisons could not run: {}", failed.join(", "));
    }
    Ok(())
}

/// Runs one section.
async fn section(ctx: &Ctx, name: &str, title: &str) -> Result<Section> {
    eprintln!("erth-bench: {title} ...");
    let t = Instant::now();
    let result = match name {
        "original" => original::run(ctx, title).await,
        "turso-sync" => turso_sync::run(ctx, title).await,
        "uuid-keys" => uuid_keys::run(ctx, title),
        "scale" => scale::run(ctx, title).await,
        "local" => local::run(ctx, title).await,
        "browser-sync" => browser_sync::run(ctx, title).await,
        "faces" => faces::run(ctx, title).await,
        "encryption" => encryption::run(ctx, title).await,
        _ => browser::run(ctx, title),
    };
    eprintln!(
        "erth-bench: {name} took {}",
        stats::duration(t.elapsed().as_secs_f64())
    );
    result
}

/// Runs a baseline script to completion and parses the JSON object it prints
/// last on stdout; a failure carries the script's stderr.
pub fn run_json(cmd: &mut Command, what: &str) -> Result<serde_json::Value> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: could not start {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{what} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .with_context(|| format!("{what} printed nothing"))?;
    serde_json::from_str(last).with_context(|| format!("{what} printed no JSON: {last}"))
}

/// A number from a script's JSON output.
pub fn num(v: &serde_json::Value, key: &str) -> Result<f64> {
    v[key]
        .as_f64()
        .with_context(|| format!("no number {key:?} in {v}"))
}

/// A list of numbers from a script's JSON output.
pub fn nums(v: &serde_json::Value) -> Result<Vec<f64>> {
    v.as_array()
        .with_context(|| format!("expected a list of numbers, got {v}"))?
        .iter()
        .map(|x| x.as_f64().with_context(|| format!("not a number: {x}")))
        .collect()
}

/// A string from a script's JSON output.
pub fn text(v: &serde_json::Value, key: &str) -> Result<String> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no string {key:?} in {v}"))
}

/// Starts a fresh `tursodb --sync-server` on a new database in `dir`.
pub fn start_server(dir: &Path) -> Result<erth_tests::launch::LocalServer> {
    erth_tests::launch::LocalServer::start(&dir.join("server.db"), &dir.join("server.log"), None)
        .context("starting tursodb --sync-server")
}

/// Writes an embedded baseline script into `dir` and returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
