//! Comparison 5: the browser build, measured when the npm package has been
//! built into `bindings-wasm/pkg` (`cargo xtask bench` builds it first): the
//! size of its `.wasm`, raw and gzip -9, and, in Debian's headless Chromium
//! driven by playwright-core (`baselines/browser.mjs`), the latency of
//! `todos.add` on OPFS and of `todos.listActive()` over 1,000 rows as a page
//! sees them (the round trip to the package's Worker included), beside the
//! add's floor: the official SQLite WASM build (`@sqlite.org/sqlite-wasm`,
//! installed by `cargo xtask bench`) on its OPFS sahpool VFS in a Worker of
//! its own, doing a one-row insert transaction into the same table, timed
//! the same way, in erth's journal mode and pragmas, in its own defaults and
//! in the other modes considered for erth; plus a bare Worker round trip, so
//! the add's time can be split into message passing, engine and OPFS commit.

use crate::report::{Check, Row, Section};
use crate::stats::{bytes, count, duration, times, Samples};
use crate::{nums, run_json, script, text, Ctx};
use anyhow::{bail, Context as _, Result};
use std::path::Path;
use std::process::Command;

const SCRIPT: &str = include_str!("../baselines/browser.mjs");
/// What `browser.mjs` and `browser_sync.mjs` import.
pub const PAGE_SCRIPT: &str = include_str!("../baselines/browser_page.mjs");
const ADD_TARGET: &str = "browser add <= 1.3x the sqlite-wasm floor (a one-row INSERT transaction in erth's mode on OPFS, timed in the page)";
/// Most a browser add may take, in multiples of its floor (issue #26).
const ADD_FACTOR: f64 = 1.3;
const SIZE_TARGET: &str = "npm package wasm <= 1 MB gzip";
const LIST_ROWS: u64 = 1_000;
/// The floor's mode with erth's own pragmas, and the one with none.
const ERTH_MODE: &str = "erth";
const DEFAULT_MODE: &str = "default";
/// The floor's mode without a flush per commit (see [`floor_modes`]).
const WAL_NORMAL_MODE: &str = "wal-normal";

/// A journal and sync mode the floor is measured in.
struct FloorMode {
    /// Its database file's name in the floor's pool.
    id: &'static str,
    label: String,
    pragmas: Vec<String>,
}

/// erth's mode ([`erth_core::store::OPFS_PRAGMAS`]), sqlite-wasm's defaults
/// (no pragmas), and each other mode considered for erth's OPFS store
/// (exclusive locking: the sahpool VFS has no shared memory, which WAL
/// needs otherwise) that erth does not run.
fn floor_modes() -> Vec<FloorMode> {
    let exclusive = |journal: &str, sync: &str| {
        vec![
            "PRAGMA locking_mode = EXCLUSIVE".to_owned(),
            format!("PRAGMA journal_mode = {journal}"),
            format!("PRAGMA synchronous = {sync}"),
        ]
    };
    let erth: Vec<String> = erth_core::store::OPFS_PRAGMAS
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    let mut modes = vec![
        FloorMode {
            id: ERTH_MODE,
            label: "erth's pragmas".into(),
            pragmas: erth.clone(),
        },
        FloorMode {
            id: DEFAULT_MODE,
            label: "sqlite-wasm's defaults".into(),
            pragmas: Vec::new(),
        },
    ];
    for (id, journal, sync) in [
        ("truncate-full", "TRUNCATE", "FULL"),
        ("wal-full", "WAL", "FULL"),
        (WAL_NORMAL_MODE, "WAL", "NORMAL"),
    ] {
        let pragmas = exclusive(journal, sync);
        if pragmas.iter().all(|p| erth.contains(p)) {
            continue;
        }
        modes.push(FloorMode {
            id,
            label: format!("exclusive locking, {journal} journal, synchronous = {sync}"),
            pragmas,
        });
    }
    modes
}

/// What `browser.mjs` gets as `--floor`: erth's `todos` engine table, its
/// indexes and the INSERT of one new row (the native floor's, in
/// `original.rs`), plus the modes.
fn floor_job(modes: &[FloorMode]) -> serde_json::Value {
    let def = erth_core::schema::todos_table();
    let columns = def.row_columns();
    let clock = "0190000000000000-0000000000000001";
    let at = 1_767_225_600_000i64;
    let params: Vec<serde_json::Value> = columns
        .iter()
        .map(|c| match c.as_str() {
            "id" => "$id".into(),
            "title" => "$title".into(),
            "created_at" | "updated_at" => at.into(),
            c if c.starts_with("_clk_") => clock.into(),
            _ => 0.into(),
        })
        .collect();
    let mut ddl = vec![def.create_local_table_sql()];
    ddl.extend(def.local_index_sql());
    serde_json::json!({
        "ddl": ddl,
        "insert": format!(
            "INSERT INTO {} ({}, _dirty) VALUES ({}, 1)",
            def.local_name(),
            def.row_column_list(),
            vec!["?"; columns.len()].join(", ")
        ),
        "params": params,
        "count": format!("SELECT count(*) FROM {}", def.local_name()),
        "modes": modes
            .iter()
            .map(|m| serde_json::json!({ "name": m.id, "pragmas": m.pragmas }))
            .collect::<Vec<_>>(),
    })
}

/// The floor's samples, per mode.
struct Floor {
    round_trip: Samples,
    modes: Vec<FloorRun>,
}

struct FloorRun {
    id: String,
    label: String,
    /// The modes SQLite reports it really ran in.
    read_back: String,
    page: Samples,
    worker: Samples,
}

impl Floor {
    fn read(v: &serde_json::Value, modes: &[FloorMode]) -> Result<Floor> {
        let runs = v["modes"]
            .as_array()
            .context("no floor modes in browser.mjs's output")?;
        let mut out = Vec::new();
        for (run, mode) in runs.iter().zip(modes) {
            let actual = &run["actual"];
            let read_back = format!(
                "journal_mode {}, synchronous {}, locking_mode {}",
                text(actual, "journal")?,
                text(actual, "sync")?,
                text(actual, "locking")?
            );
            out.push(FloorRun {
                id: text(run, "name")?,
                label: format!("{} ({read_back})", mode.label),
                read_back,
                page: Samples::from_ms(nums(&run["page"])?),
                worker: Samples::from_ms(nums(&run["worker"])?),
            });
        }
        Ok(Floor {
            round_trip: Samples::from_ms(nums(&v["roundTrip"])?),
            modes: out,
        })
    }

    fn mode(&self, id: &str) -> Result<&FloorRun> {
        self.modes
            .iter()
            .find(|m| m.id == id)
            .with_context(|| format!("no floor run in mode {id}"))
    }
}

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
            "not measured: package not built (`{}` lacks {}; `cargo xtask bench` builds it, \
             erth-bench alone does not).",
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
        script(work.path(), "browser_page.mjs", PAGE_SCRIPT)?;
        let js = script(work.path(), "browser.mjs", SCRIPT)?;
        let modes = floor_modes();
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
                .args(["--list-reps", &reps.to_string()])
                .arg("--floor")
                .arg(floor_job(&modes).to_string()),
            "browser.mjs (headless Chromium)",
        )?;
        let add = Samples::from_ms(nums(&v["add"])?);
        let list = Samples::from_ms(nums(&v["list"])?);
        let memory_add = Samples::from_ms(nums(&v["memoryAdd"])?);
        let status = Samples::from_ms(nums(&v["status"])?);
        let floor = Floor::read(&v["floor"], &modes)?;
        s.versions.push(text(&v, "version")?);
        s.versions.push(format!(
            "{} (SQLite {})",
            text(&v["floor"], "package")?,
            text(&v["floor"], "sqliteVersion")?
        ));
        s.about = format!(
            "The built package served from 127.0.0.1 to headless Chromium (a persistent profile, \
             OPFS storage in the package's Worker; the page is cross-origin isolated only so that \
             `performance.now()` resolves 5 µs instead of 100 µs); the page times each call as an \
             app would see it: {adds} `todos.add`, then `todos.listActive()` {reps} times over {} \
             live todos, `db.status()` {adds} times, then {adds} adds on an in-memory database. \
             The floor: the official SQLite \
             WASM build in a dedicated Worker of its own on its OPFS sahpool VFS \
             (`installOpfsSAHPoolVfs`), {adds} one-row INSERT transactions (`BEGIN IMMEDIATE`, \
             INSERT, `COMMIT`) into the same table and indexes as erth's `todos` engine table, \
             timed in the page around the postMessage round trip as erth's add is, and in its \
             Worker around the transaction alone; once in erth's journal mode and pragmas, once \
             in sqlite-wasm's defaults, and once in each other mode considered for erth.",
            count(LIST_ROWS)
        );
        let same = floor.mode(ERTH_MODE)?;
        let default = floor.mode(DEFAULT_MODE)?;
        s.rows.push(Row::new(
            "todos.add, OPFS, timed in the page",
            add.summary(),
            "",
            format!(
                "{} of the floor in the same mode",
                crate::stats::factor(add.median(), same.page.median())
            ),
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
        s.rows.push(Row::new(
            "db.status() on the OPFS database (the Worker computes it for its \"status\" event, \
             once per 16 ms of writes), timed in the page",
            status.summary(),
            "",
            "",
        ));
        s.rows.push(Row::new(
            "a postMessage round trip to a dedicated Worker that does nothing, timed in the page",
            floor.round_trip.summary(),
            "",
            "",
        ));
        for m in &floor.modes {
            s.rows.push(Row::new(
                format!(
                    "SQLite's floor, {}: one-row INSERT transaction, timed in the page",
                    m.label
                ),
                m.page.summary(),
                "",
                "",
            ));
            s.rows.push(Row::new(
                format!(
                    "SQLite's floor, {}: the same, BEGIN..COMMIT inside its Worker",
                    m.label
                ),
                m.worker.summary(),
                "",
                "",
            ));
        }
        let round_trip = floor.round_trip.median();
        // What the flush per commit costs, when erth does not already run
        // without it: the same floor with `synchronous = NORMAL`.
        let no_flush = floor
            .mode(WAL_NORMAL_MODE)
            .map(|m| {
                format!(
                    " The same transaction without the flush per commit (WAL with `synchronous = \
                     NORMAL`) takes {} inside the Worker, so the flush alone is about {} of the \
                     floor; {} in the page. erth keeps `FULL`: without the flush a commit that \
                     resolved could be lost on power loss, which the package README promises \
                     against.",
                    duration(m.worker.median()),
                    duration((same.worker.median() - m.worker.median()).max(0.0)),
                    duration(m.page.median())
                )
            })
            .unwrap_or_default();
        let headroom = format!(
            "leaves {} over it for the round trip and erth's engine",
            duration((ADD_FACTOR - 1.0) * same.page.median())
        );
        let ratio = add.median() / same.page.median();
        s.checks.push(
            Check::new(
                ADD_TARGET,
                format!(
                    "{ratio:.2}x ({} vs {}); the floor in sqlite-wasm's defaults: {}",
                    add.summary(),
                    duration(same.page.median()),
                    duration(default.page.median()),
                ),
                ratio <= ADD_FACTOR,
                format!(
                "Where the median add goes, measured in this run: a postMessage round trip to a \
                 Worker costs {} by itself; the same add on an in-memory database takes {}, so \
                 erth's engine (the add's statements and change tracking, the change event it \
                 posts) adds about {}. (The status the Worker recomputes for its \"status\" event, \
                 about {} of Worker time: `db.status()` timed in the page, {}, less a round trip, \
                 runs once per 16 ms of writes, after the add has resolved.) Storing the add in \
                 OPFS adds {} more. The official \
                 SQLite WASM build doing a bare one-row insert transaction in erth's mode ({}) on \
                 the same VFS takes {} in the page, {} of it inside its Worker; the target \
                 {headroom}. In sqlite-wasm's defaults ({}) the floor takes {}.{no_flush}",
                duration(round_trip),
                duration(memory_add.median()),
                duration((memory_add.median() - round_trip).max(0.0)),
                duration((status.median() - round_trip).max(0.0)),
                duration(status.median()),
                duration((add.median() - memory_add.median()).max(0.0)),
                same.read_back,
                duration(same.page.median()),
                duration(same.worker.median()),
                default.read_back,
                duration(default.page.median()),
            ),
            )
            .value(ratio, times),
        );
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
        "SQLite itself is most of the module (the size profile: `[profile.release-wasm]` in Cargo.toml, then wasm-opt -Oz).",
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
