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
use crate::suite::{kotlin, mobile, swift};
use crate::tools::swift as swift_tools;
use crate::tools::{self, apt, npm, python};
use crate::{package, Result};
use erth_tests::cache;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let mut forward = Vec::new();
    let mut partial = false;
    let mut browser = true;
    let mut native_faces = true;
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
                native_faces = sections.split(',').any(|s| s == "faces");
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

    let faces_work = tempfile::Builder::new()
        .prefix("erth-bench-faces-")
        .tempdir()
        .map_err(|e| format!("creating a work directory: {e}"))?;
    let faces = if native_faces {
        eprintln!("xtask bench: building the Python, Kotlin and Swift faces ...");
        Some(Faces::build(faces_work.path())?)
    } else {
        None
    };

    let mut cmd = cargo(&["run", "--release", "--package", "erth-bench", "--"]);
    cmd.arg("--python")
        .arg(&python)
        .arg("--node-dir")
        .arg(&node)
        .args(&forward);
    if let Some(faces) = &faces {
        cmd.arg("--faces").arg(&faces.list);
    }
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

/// The native faces for erth-bench's `faces` section, built in `work`: the
/// x86-64 wheel and its library ([`crate::dist::native_library`], as the
/// faces' suites use), a venv with the wheel (Python), the Kotlin bindings
/// generated from the library and compiled with
/// `bench/baselines/faces/FaceBench.kt`, and the SwiftPM package
/// `bench/baselines/faces/swift/` built in the Swift chroot. Holds the
/// chroot (its lock, `/proc` and `/dev` mounted) while it lives.
struct Faces {
    /// What erth-bench takes as `--faces`: per line a name, then a command,
    /// tab-separated. It sits in the chroot's `/tmp`, where erth-bench makes
    /// the database the faces share, so that the Swift face reaches it too.
    list: PathBuf,
    _mounts: swift_tools::Mounts,
    _package: swift::Package,
    _lock: cache::CacheLock,
}

impl Faces {
    fn build(work: &Path) -> Result<Faces> {
        apt::ensure(&apt::JVM)?;
        let kotlin = npm::kotlin_home()?;
        let root = swift_tools::chroot()?;
        let (wheel, library) = crate::dist::native_library(work)?;
        let lib_dir = library
            .parent()
            .ok_or_else(|| format!("{} has no directory", library.display()))?;
        let baselines = repo_root().join("bench").join("baselines").join("faces");

        let venv = work.join("venv");
        cargo::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        let python = python::python_in(&venv);
        cargo::run(
            Command::new(&python)
                .args(python::PIP)
                .args(["install", "--no-index"])
                .arg(&wheel),
        )?;

        let bindings = work.join("bindings-kotlin");
        mobile::generate(&library, "kotlin", &bindings)?;
        let jar = work.join("faces.jar");
        let cp = kotlin::compile(
            &kotlin,
            &bindings,
            &[baselines.join("FaceBench.kt")],
            &[],
            &jar,
        )?;

        let lock = cache::lock(&format!("use-{}", swift_tools::CHROOT))?;
        let bindings = work.join("bindings-swift");
        mobile::generate(&library, "swift", &bindings)?;
        let package =
            swift::Package::assemble(&root, &baselines.join("swift"), &bindings, lib_dir)?;
        let mounts = swift_tools::Mounts::new(&root)?;
        let mut build = package.command(&[], "swift");
        build
            .args([
                "build",
                "-c",
                "release",
                "--product",
                "FaceBench",
                "--package-path",
            ])
            .arg(&package.inside);
        cargo::run(&mut build)?;
        let mut swift_argv = package.argv(
            &[],
            &package
                .inside
                .join(".build")
                .join("release")
                .join("FaceBench")
                .display()
                .to_string(),
        );
        swift_argv.extend(["--root".to_owned(), root.display().to_string()]);

        // One face per line: its name, then its command, tab-separated.
        let line = |name: &str, argv: &[String]| format!("{name}\t{}\n", argv.join("\t"));
        let list = [
            line(
                "Python",
                &[
                    python.display().to_string(),
                    baselines.join("face_bench.py").display().to_string(),
                ],
            ),
            line(
                "Kotlin",
                &[
                    apt::JAVA_BIN.to_owned(),
                    format!("-Djna.library.path={}", lib_dir.display()),
                    "-cp".to_owned(),
                    cp,
                    "FaceBenchKt".to_owned(),
                ],
            ),
            line("Swift", &swift_argv),
        ]
        .concat();
        let path = package.tmp().join("faces.tsv");
        std::fs::write(&path, list).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(Faces {
            list: path,
            _mounts: mounts,
            _package: package,
            _lock: lock,
        })
    }
}
