//! `cargo xtask bench [--quick] [--only SECTIONS] [--runs N]`: installs the benchmark
//! baselines into the cache (idempotent: each pinned set is one cache entry,
//! installed once), builds `erth-bench` in release, runs every comparison and
//! rewrites `BENCHMARKS.md` at the repository root.
//!
//! Baselines, installed and pinned by [`crate::tools`]: `tursodb`, a Python
//! venv with `sqlmodel` (the original design) and `pyturso` (Turso Sync for
//! Python), and `@tursodatabase/sync` with its linux-x64 binary package
//! (Turso Sync for Node), plus `playwright-core` to drive Debian's Chromium
//! for the browser numbers and `@sqlite.org/sqlite-wasm` (the official
//! SQLite WASM build) as the browser add's floor. When the browser section
//! runs, the npm package (`bindings-wasm/pkg`) is built first
//! ([`crate::package`]), so the numbers are of the tree as it is.
//! `--only` runs a subset and prints it without touching `BENCHMARKS.md`.
//! Every section runs 3 times (`--runs N`; once with `--quick`): a target
//! is reported over all runs and is met only if every run met it.

use crate::cargo::{self, cargo, repo_root};
use crate::tools::{self, apt, npm, python};
use crate::{package, Result};
use erth_tests::cache;

pub fn run(args: &[String]) -> Result<()> {
    let mut forward = Vec::new();
    let mut partial = false;
    let mut browser = true;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => forward.push(arg.clone()),
            "--runs" => {
                let runs = it.next().ok_or("--runs needs a number")?;
                forward.extend([arg.clone(), runs.clone()]);
            }
            "--only" => {
                let sections = it.next().ok_or("--only needs a comma-separated list")?;
                forward.extend([arg.clone(), sections.clone()]);
                partial = true;
                browser = sections
                    .split(',')
                    .any(|s| s == "browser" || s == "browser-sync");
            }
            other => {
                return Err(format!(
                "unknown argument {other:?}; usage: cargo xtask bench [--quick] [--only SECTIONS] [--runs N]"
            )
                .into())
            }
        }
    }
    eprintln!("xtask bench: baselines in {}", cache::cache_dir().display());
    tools::tursodb()?;
    let python = python::bench_baselines()?;
    let node = npm::bench_baselines()?;
    if browser {
        apt::ensure(&apt::CHROMIUM)?;
        eprintln!("xtask bench: building the npm package for the browser numbers ...");
        package::build()?;
    }

    let mut cmd = cargo(&["run", "--release", "--package", "erth-bench", "--"]);
    cmd.arg("--python")
        .arg(&python)
        .arg("--node-dir")
        .arg(&node)
        .args(&forward);
    if !partial {
        let command = std::iter::once("cargo xtask bench")
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        cmd.arg("--report")
            .arg(repo_root().join("BENCHMARKS.md"))
            .args(["--command", &command]);
    }
    cargo::run(&mut cmd)
}
