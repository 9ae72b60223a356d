//! `cargo xtask bench [--quick] [--only SECTIONS]`: installs the benchmark
//! baselines into the cache (idempotent: each pinned set is one cache entry,
//! installed once), builds `erth-bench` in release, runs every comparison and
//! rewrites `BENCHMARKS.md` at the repository root.
//!
//! Baselines, pinned: `tursodb` (the test harness's), a Python venv with
//! `sqlmodel` (the original design) and `pyturso` (Turso Sync for Python),
//! and `@tursodatabase/sync` with its linux-x64 binary package (Turso Sync
//! for Node), plus `playwright-core` to drive Debian's Chromium for the
//! browser numbers and `@sqlite.org/sqlite-wasm` (the official SQLite WASM
//! build) as the browser add's floor. When the browser section runs, the
//! npm package (`bindings-wasm/pkg`) is built first, as `cargo xtask test
//! wasm` and the demo build it, so the numbers are of the tree as it is.
//! `--only` runs a subset and prints it without touching `BENCHMARKS.md`.

use crate::cargo::{cargo, repo_root};
use crate::Result;
use erth_tests::cache;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

const SQLMODEL: &str = "0.0.50";
const PYTURSO: &str = "0.8.3";
const TURSO_SYNC: &str = "0.7.2";
/// Drives headless Chromium for the browser numbers.
const PLAYWRIGHT_CORE: &str = "1.65.1";
/// The browser add's floor: the official SQLite WASM build, the same SQLite
/// (3.54.1) that sqlite-wasm-rs 0.6.3 compiles into the package.
const SQLITE_WASM: &str = "3.54.1-build1";
/// The Node packages, pinned exactly (the sync package's own dependencies
/// are caret ranges).
const NODE_PACKAGES: [&str; 4] = [
    "@tursodatabase/sync",
    "@tursodatabase/sync-linux-x64-gnu",
    "@tursodatabase/sync-common",
    "@tursodatabase/database-common",
];

pub fn run(args: &[String]) -> Result<()> {
    let mut forward = Vec::new();
    let mut partial = false;
    let mut browser = true;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => forward.push(arg.clone()),
            "--only" => {
                let sections = it.next().ok_or("--only needs a comma-separated list")?;
                forward.extend([arg.clone(), sections.clone()]);
                partial = true;
                browser = sections.split(',').any(|s| s == "browser");
            }
            other => {
                return Err(format!(
                "unknown argument {other:?}; usage: cargo xtask bench [--quick] [--only SECTIONS]"
            )
                .into())
            }
        }
    }
    eprintln!("xtask bench: baselines in {}", cache::cache_dir().display());
    erth_tests::tools::tursodb()?;
    let python = python_env()?;
    let node = node_env()?;
    if browser {
        eprintln!("xtask bench: building the npm package for the browser numbers ...");
        crate::wasm::build_wasm_package()?;
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
    crate::cargo::run(&mut cmd)
}

/// The venv's python with the pinned `sqlmodel` and `pyturso`.
fn python_env() -> Result<PathBuf> {
    let dir = cache::install_dir(
        &format!("bench-python-sqlmodel-{SQLMODEL}-pyturso-{PYTURSO}"),
        |dir| {
            eprintln!(
                "xtask bench: installing sqlmodel {SQLMODEL} and pyturso {PYTURSO} into a venv ..."
            );
            let venv = dir.join("venv");
            install_step(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv (Debian: apt-get install -y python3 python3-venv)",
            )?;
            install_step(
                Command::new(venv.join("bin").join("python"))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                    ])
                    .arg(format!("sqlmodel=={SQLMODEL}"))
                    .arg(format!("pyturso=={PYTURSO}")),
                "pip install from PyPI",
            )
        },
    )?;
    Ok(dir.join("venv").join("bin").join("python"))
}

/// The directory whose `node_modules` holds the pinned Turso Sync packages,
/// playwright-core and `@sqlite.org/sqlite-wasm` (served to the browser).
fn node_env() -> Result<PathBuf> {
    Ok(cache::install_dir(
        &format!(
            "bench-node-turso-sync-{TURSO_SYNC}-playwright-core-{PLAYWRIGHT_CORE}-sqlite-wasm-{SQLITE_WASM}"
        ),
        |dir| {
            eprintln!(
                "xtask bench: installing @tursodatabase/sync {TURSO_SYNC}, playwright-core {PLAYWRIGHT_CORE} \
                 and @sqlite.org/sqlite-wasm {SQLITE_WASM} ..."
            );
            let deps: Vec<String> = NODE_PACKAGES
                .iter()
                .map(|p| format!("\"{p}\": \"{TURSO_SYNC}\""))
                .chain([
                    format!("\"playwright-core\": \"{PLAYWRIGHT_CORE}\""),
                    format!("\"@sqlite.org/sqlite-wasm\": \"{SQLITE_WASM}\""),
                ])
                .collect();
            fs::write(
                dir.join("package.json"),
                format!(
                    "{{\"name\": \"erth-bench-baselines\", \"private\": true, \"dependencies\": {{{}}}}}\n",
                    deps.join(", ")
                ),
            )
            .map_err(|e| erth_tests::Error::Install(format!("writing package.json: {e}")))?;
            install_step(
                Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund", "--silent"])
                    .current_dir(dir),
                "npm install (Debian: apt-get install -y npm)",
            )
        },
    )?)
}

/// Runs an install step; failures become install errors with the output.
fn install_step(cmd: &mut Command, what: &str) -> erth_tests::Result<()> {
    let out = cmd
        .output()
        .map_err(|e| erth_tests::Error::Install(format!("could not run {what}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(erth_tests::Error::Install(format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
