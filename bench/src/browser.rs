//! Comparison 5: the browser build, measured only when the npm package has
//! been built into `bindings-wasm/pkg` (this benchmark never builds it): the
//! size of its `.wasm`, raw and gzip -9, and, in Debian's headless Chromium
//! driven by playwright-core (`baselines/browser.mjs`), the latency of
//! `todos.add` on OPFS and of `todos.listActive()` over 1,000 rows as a page
//! sees them (the round trip to the package's Worker included).

use crate::report::{Check, Row, Section};
use crate::stats::{bytes, count, Samples};
use crate::{nums, run_json, script, text, Ctx};
use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::process::Command;

const SCRIPT: &str = include_str!("../baselines/browser.mjs");
const ADD_TARGET: &str = "browser add median <= 1 ms (OPFS)";
const SIZE_TARGET: &str = "npm package wasm <= 1 MB gzip";
const LIST_ROWS: u64 = 1_000;

pub fn run(ctx: &Ctx, title: &str) -> Result<Section> {
    let pkg = ctx.workspace.join("bindings-wasm").join("pkg");
    let mut s = Section::new(title, "erth-sync npm package", "target");
    // A package is usable once its entry points exist (a build in progress
    // may have written only some of its files).
    let missing: Vec<&str> = ["package.json", "index.js"]
        .into_iter()
        .filter(|f| !pkg.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        s.notes.push(format!(
            "not measured: package not built (`{}` lacks {}; build the npm package first, \
             this benchmark does not).",
            pkg.strip_prefix(&ctx.workspace).unwrap_or(&pkg).display(),
            missing.join(" and ")
        ));
        s.checks
            .push(Check::not_measured(ADD_TARGET, "package not built"));
        s.checks
            .push(Check::not_measured(SIZE_TARGET, "package not built"));
        return Ok(s);
    }

    if ctx.chromium.is_file() {
        let adds = ctx.pick(200, 50);
        let reps = ctx.pick(20, 5);
        let work = tempfile::tempdir().context("temp dir")?;
        let js = script(work.path(), "browser.mjs", SCRIPT)?;
        let v = run_json(
            Command::new("node")
                .arg(&js)
                .env("ERTH_PKG_DIR", &pkg)
                .env("ERTH_BENCH_NODE_DIR", &ctx.node_dir)
                .env("ERTH_CHROMIUM", &ctx.chromium)
                .arg("--work")
                .arg(work.path())
                .args(["--adds", &adds.to_string()])
                .args(["--list-rows", &LIST_ROWS.to_string()])
                .args(["--list-reps", &reps.to_string()]),
            "browser.mjs (headless Chromium)",
        )?;
        let add = Samples::from_ms(nums(&v["add"])?);
        let list = Samples::from_ms(nums(&v["list"])?);
        let memory_add = Samples::from_ms(nums(&v["memoryAdd"])?);
        s.versions.push(text(&v, "version")?);
        s.about = format!(
            "The built package served from 127.0.0.1 to headless Chromium (a persistent profile, \
             OPFS storage in the package's Worker); the page times each call as an app would see \
             it: {adds} `todos.add`, then `todos.listActive()` {reps} times over {} live todos, \
             then {adds} adds on an in-memory database.",
            count(LIST_ROWS)
        );
        s.rows.push(Row::new(
            "todos.add, OPFS, timed in the page",
            add.summary(),
            "1 ms",
            "",
        ));
        s.rows.push(Row::new(
            "todos.add, in-memory storage (`storage: \"memory\"`), timed in the page",
            memory_add.summary(),
            "",
            "",
        ));
        s.rows.push(Row::new(
            format!("todos.listActive(), {} rows", count(LIST_ROWS)),
            list.summary(),
            "",
            "",
        ));
        s.checks.push(Check::new(
            ADD_TARGET,
            add.summary(),
            add.median() <= 1e-3,
            format!(
                "The same add on an in-memory database takes {}: the Worker round trip and the \
                 engine are a small share. The rest is the OPFS commit: the sahpool VFS has no \
                 shared memory, so the browser store runs a rollback journal (`TRUNCATE`) with \
                 `synchronous = FULL`, and every commit writes and flushes the journal and the \
                 database file through the sync access handles. The lever to try is WAL under \
                 `locking_mode = EXCLUSIVE` (which needs no shared memory) with `synchronous = \
                 NORMAL`, as natively; whether the sahpool VFS accepts it is untested here.",
                crate::stats::duration(memory_add.median())
            ),
        ));
    } else {
        let reason = format!(
            "{} not found (Debian: apt-get install -y chromium)",
            ctx.chromium.display()
        );
        s.notes
            .push(format!("Browser latencies not measured: {reason}."));
        s.checks.push(Check::not_measured(ADD_TARGET, &reason));
    }

    let mut wasm: Vec<_> = std::fs::read_dir(&pkg)
        .with_context(|| format!("listing {}", pkg.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    wasm.sort();
    if wasm.is_empty() {
        bail!("{} holds no .wasm file", pkg.display());
    }
    let mut total_gzip = 0;
    for file in &wasm {
        let raw = std::fs::metadata(file)
            .with_context(|| format!("size of {}", file.display()))?
            .len();
        let gz = gzip_size(file)?;
        total_gzip += gz;
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        s.rows
            .push(Row::new(format!("{name}: raw"), bytes(raw), "", ""));
        s.rows
            .push(Row::new(format!("{name}: gzip -9"), bytes(gz), "1 MB", ""));
    }
    s.checks.push(Check::new(
        SIZE_TARGET,
        bytes(total_gzip),
        total_gzip <= 1_000_000,
        "SQLite itself is most of the module; see the size profile in TOOLCHAIN.md.",
    ));
    Ok(s)
}

fn gzip_size(file: &Path) -> Result<u64> {
    let out = Command::new("gzip")
        .arg("-9c")
        .arg(file)
        .output()
        .context("running gzip (Debian: apt-get install -y gzip)")?;
    if !out.status.success() {
        bail!(
            "gzip {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout.len() as u64)
}
