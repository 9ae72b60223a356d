//! Comparison 7: a fresh browser device's first sync, and reads from the
//! owner tab and from a second tab, with the npm package as built into
//! `bindings-wasm/pkg`, in Debian's headless Chromium driven by
//! playwright-core (`baselines/browser_sync.mjs`; it says exactly what is
//! timed).
//!
//! Each size gets a `tursodb` server filled by SQL (as the scale section's,
//! [`scale::filled_server`]). The floor of a first pull, measured in the
//! same run and profile: the official SQLite WASM build in a Worker on its
//! OPFS sahpool VFS, in erth's pragmas, fetching the same rows from the same
//! server as plain `SELECT` pages over Hrana and inserting them into a plain
//! table in one transaction; what any SQL client in a browser must do for
//! the same rows. The floors of a read: a bare Worker round trip, and the
//! same query in that sqlite-wasm Worker, both timed in the page.

use crate::report::{Check, Row, Section};
use crate::stats::{bytes, count, duration, factor, rate, times, Samples};
use crate::{num, nums, run_json, scale, script, text, Ctx};
use anyhow::{Context as _, Result};
use erth_core::schema::todos_table;
use std::process::Command;

const SCRIPT: &str = include_str!("../baselines/browser_sync.mjs");
/// The columns apps read (the `todos` view's), for the read queries.
const READ_COLUMNS: &str = "id, title, is_completed, created_at, updated_at";
/// Most a read may wait while a pull runs (issue #26).
const STALL_LIMIT_SECS: f64 = 0.100;
/// Most a first pull may take, in multiples of its floor (issue #26).
const PULL_FACTOR: f64 = 1.5;

/// What `browser_sync.mjs` measured at one size.
struct AtSize {
    rows: u64,
    secs: f64,
    /// Every read's time during the pull, from the owner tab and a second tab.
    stalls_owner: Samples,
    stalls_client: Samples,
    rss_before: u64,
    rss_peak: u64,
    /// The package Worker's heap after the pull and a garbage collection.
    worker_heap: u64,
    floor_fetch: f64,
    floor_insert: f64,
    floor_bytes: u64,
    floor_requests: u64,
}

impl AtSize {
    fn read(v: &serde_json::Value) -> Result<AtSize> {
        let floor = &v["floor"];
        Ok(AtSize {
            rows: num(v, "rows")? as u64,
            secs: num(v, "ms")? / 1e3,
            stalls_owner: Samples::from_ms(nums(&v["readsA"])?),
            stalls_client: Samples::from_ms(nums(&v["readsB"])?),
            rss_before: num(v, "rssBefore")? as u64,
            rss_peak: num(v, "rssPeak")? as u64,
            worker_heap: num(v, "workerHeap")? as u64,
            floor_fetch: num(floor, "fetchMs")? / 1e3,
            floor_insert: num(floor, "insertMs")? / 1e3,
            floor_bytes: num(floor, "bytes")? as u64,
            floor_requests: num(floor, "requests")? as u64,
        })
    }

    fn floor(&self) -> f64 {
        self.floor_fetch + self.floor_insert
    }

    fn worst_stall(&self) -> f64 {
        self.stalls_owner.max().max(self.stalls_client.max())
    }
}

fn pull_target(rows: u64) -> String {
    format!(
        "browser: {} rows onto a fresh device (Chromium, OPFS) <= {PULL_FACTOR}x its floor \
         (the rows fetched by the page + sqlite-wasm inserting them in one transaction)",
        count(rows)
    )
}

const STALL_TARGET: &str =
    "browser: no read from the page or a second tab waits more than 100 ms during a first pull";
const POINT_TARGET: &str =
    "browser point read by id from the owner tab: median <= a bare Worker round trip + 0.1 ms";
const CLIENT_TARGET: &str =
    "browser point read by id from a second tab: median <= 2x the owner tab's";

fn memory_target(small: u64, large: u64) -> String {
    format!(
        "browser: peak RSS of the tabs' renderer during a {}-row first pull <= 1.25x the {}-row pull's",
        count(large),
        count(small)
    )
}

/// The job `browser_sync.mjs` gets as `--job`, for servers `urls` (with their row counts).
fn job(sizes: &[(String, u64)], base_ms: u64, reads: usize) -> serde_json::Value {
    let def = todos_table();
    let columns = def.row_column_list();
    let first_rows = sizes[0].1;
    // Ids spread over the first database, each with 100 rows after it.
    let ids: Vec<String> = (0..50)
        .map(|k| scale::row_id(base_ms, 1 + k * (first_rows - 101) / 50))
        .collect();
    let query = |table: &str| {
        (
            format!("SELECT {READ_COLUMNS} FROM {table} WHERE id = ?"),
            format!("SELECT {READ_COLUMNS} FROM {table} WHERE id >= ? ORDER BY id LIMIT 100"),
        )
    };
    let (point, range) = query("todos");
    let (floor_point, floor_range) = query("floor");
    serde_json::json!({
        "sizes": sizes.iter().map(|(url, rows)| serde_json::json!({
            "url": url,
            "rows": rows,
            "probe": scale::row_id(base_ms, rows / 2),
        })).collect::<Vec<_>>(),
        "reads": reads,
        "ids": ids,
        "point": point,
        "range": range,
        "floor": {
            "pragmas": erth_core::store::OPFS_PRAGMAS,
            "ddl": [format!("CREATE TABLE floor ({columns}, PRIMARY KEY (\"id\")) WITHOUT ROWID")],
            "select": format!("SELECT {columns}, \"_seq\" FROM \"todos\" WHERE \"_seq\" > ? ORDER BY \"_seq\" LIMIT ?"),
            "insert": format!(
                "INSERT INTO floor ({columns}) VALUES ({})",
                vec!["?"; def.row_columns().len()].join(", ")
            ),
            "pageRows": erth_core::Config::default().pull_page_rows,
            "point": floor_point,
            "range": floor_range,
        },
    })
}

pub async fn run(ctx: &Ctx, title: &str) -> Result<Section> {
    let mut s = Section::new(title, "erth-sync npm package", "floor");
    let sizes: Vec<u64> = ctx.pick(vec![100_000, 1_000_000], vec![10_000, 100_000]);
    let (small, large) = (sizes[0], sizes[sizes.len() - 1]);
    let targets = [
        pull_target(small),
        pull_target(large),
        STALL_TARGET.to_owned(),
        memory_target(small, large),
        POINT_TARGET.to_owned(),
        CLIENT_TARGET.to_owned(),
    ];
    let pkg = ctx.workspace.join("bindings-wasm").join("pkg");
    let missing = if !pkg.join("index.js").is_file() {
        Some(format!(
            "the package is not built ({} lacks index.js; `cargo xtask bench` builds it)",
            pkg.display()
        ))
    } else if !ctx.chromium.is_file() {
        Some(format!(
            "{} not found (Debian: apt-get install -y chromium)",
            ctx.chromium.display()
        ))
    } else {
        None
    };
    if let Some(reason) = missing {
        s.notes.push(format!("not measured: {reason}."));
        for t in &targets {
            s.checks.push(Check::not_measured(t, &reason));
        }
        return Ok(s);
    }

    let reads = ctx.pick(300, 100);
    let base_ms = scale::now_ms()? - 86_400_000;
    let mut servers = Vec::new();
    let mut fill = Vec::new();
    for &n in &sizes {
        let dir = tempfile::tempdir().context("temp dir")?;
        let (server, secs) = scale::filled_server(dir.path(), n, base_ms).await?;
        fill.push(secs);
        servers.push((dir, server, n));
    }
    let urls: Vec<(String, u64)> = servers
        .iter()
        .map(|(_, server, n)| (server.url().to_owned(), *n))
        .collect();
    let work = tempfile::tempdir().context("temp dir")?;
    script(work.path(), "browser_page.mjs", crate::browser::PAGE_SCRIPT)?;
    let js = script(work.path(), "browser_sync.mjs", SCRIPT)?;
    let v = run_json(
        Command::new("node")
            .arg(&js)
            .env("ERTH_PKG_DIR", &pkg)
            .env("ERTH_BENCH_NODE_DIR", &ctx.node_dir)
            .env("ERTH_CHROMIUM", &ctx.chromium)
            .arg("--work")
            .arg(work.path())
            .arg("--job")
            .arg(job(&urls, base_ms, reads).to_string()),
        "browser_sync.mjs (headless Chromium)",
    )?;
    drop(servers);
    s.versions.push(text(&v, "version")?);
    s.versions.push(format!(
        "{} (SQLite {})",
        text(&v, "package")?,
        text(&v, "sqliteVersion")?
    ));
    let results = v["sizes"]
        .as_array()
        .context("no sizes in browser_sync.mjs's output")?
        .iter()
        .map(AtSize::read)
        .collect::<Result<Vec<_>>>()?;
    let r = &v["sizes"][0]["reads"];
    let point_owner = Samples::from_ms(nums(&r["pointA"])?);
    let point_client = Samples::from_ms(nums(&r["pointB"])?);
    let range_owner = Samples::from_ms(nums(&r["rangeA"])?);
    let range_client = Samples::from_ms(nums(&r["rangeB"])?);
    let round_trip = Samples::from_ms(nums(&r["roundTrip"])?);
    let floor_point = Samples::from_ms(nums(&r["floorPoint"])?);
    let floor_range = Samples::from_ms(nums(&r["floorRange"])?);

    s.about = format!(
        "One `tursodb` server per size ({}), filled by SQL in Erth's row layout. In headless \
         Chromium (a persistent profile), tab A opens a new OPFS database on the server and \
         times `db.sync()`, its first pull of every row, while tab A and tab B (a second page, \
         a client of tab A's Worker) each read one row by id back to back, and the renderer \
         processes' RSS is sampled every 25 ms. The floor, in the same profile: the official \
         SQLite WASM build in a Worker on its OPFS sahpool VFS (erth's pragmas) fetches the \
         same rows from the same server as plain `SELECT` pages of {} rows over Hrana and \
         inserts them into a plain table (primary key `id`, WITHOUT ROWID) in one transaction. \
         Then, on the {}-row database, {reads} point reads by id and {reads} 100-row range \
         reads from each tab, beside a bare Worker round trip and the same queries in the \
         sqlite-wasm Worker, all timed in the page.",
        sizes
            .iter()
            .map(|n| count(*n))
            .collect::<Vec<_>>()
            .join(" / "),
        count(erth_core::Config::default().pull_page_rows as u64),
        count(small)
    );
    for (a, secs) in results.iter().zip(&fill) {
        s.rows.push(Row::new(
            format!(
                "first pull of {} rows (`db.sync()` on a new OPFS database)",
                count(a.rows)
            ),
            format!("{} ({})", duration(a.secs), rate(a.rows, a.secs)),
            format!(
                "{} (fetch {}, {} in {} requests; insert {})",
                duration(a.floor()),
                duration(a.floor_fetch),
                bytes(a.floor_bytes),
                a.floor_requests,
                duration(a.floor_insert)
            ),
            factor(a.secs, a.floor()),
        ));
        s.rows.push(Row::new(
            format!(
                "reads during the {}-row pull: owner tab / second tab",
                count(a.rows)
            ),
            format!(
                "{} / {}; longest {} / {}",
                a.stalls_owner.summary(),
                a.stalls_client.summary(),
                duration(a.stalls_owner.max()),
                duration(a.stalls_client.max())
            ),
            "100 ms",
            "",
        ));
        s.rows.push(Row::new(
            format!(
                "renderer RSS during the {}-row pull: before / peak; the package Worker's heap after it",
                count(a.rows)
            ),
            format!(
                "{} / {}; {}",
                bytes(a.rss_before),
                bytes(a.rss_peak),
                bytes(a.worker_heap)
            ),
            "",
            "",
        ));
        s.notes.push(format!(
            "Generating the {}-row server database took {} (setup, not measured).",
            count(a.rows),
            duration(*secs)
        ));
    }
    for (label, erth, floor) in [
        ("point read by id, owner tab", &point_owner, &floor_point),
        ("point read by id, second tab", &point_client, &floor_point),
        ("100-row range read, owner tab", &range_owner, &floor_range),
        (
            "100-row range read, second tab",
            &range_client,
            &floor_range,
        ),
    ] {
        s.rows.push(Row::new(
            label,
            erth.summary(),
            format!("{} (sqlite-wasm in a Worker)", floor.summary()),
            factor(erth.median(), floor.median()),
        ));
    }
    s.rows.push(Row::new(
        "a postMessage round trip to a Worker that does nothing",
        round_trip.summary(),
        "",
        "",
    ));

    for a in &results {
        s.checks.push(
            Check::new(
                pull_target(a.rows),
                format!(
                    "{:.2}x ({} vs {}: fetch {} + insert {})",
                    a.secs / a.floor(),
                    duration(a.secs),
                    duration(a.floor()),
                    duration(a.floor_fetch),
                    duration(a.floor_insert)
                ),
                a.secs <= PULL_FACTOR * a.floor(),
                format!(
                    "{} rows/s for erth against {} for the floor; PowerSync's web SDK reports \
                     about 60 s for 1,000,000 operations.",
                    rate(a.rows, a.secs),
                    rate(a.rows, a.floor())
                ),
            )
            .value(a.secs / a.floor(), times),
        );
    }
    let worst = results.iter().map(AtSize::worst_stall).fold(0.0, f64::max);
    s.checks.push(
        Check::new(
            STALL_TARGET,
            results
                .iter()
                .map(|a| {
                    format!(
                        "{} rows: {} (owner) / {} (second tab)",
                        count(a.rows),
                        duration(a.stalls_owner.max()),
                        duration(a.stalls_client.max())
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            worst <= STALL_LIMIT_SECS,
            "Reads wait while the Worker applies a page (one SQLite transaction in its thread); \
             between pages, and while the next page is fetched, they run at once.",
        )
        .value(worst, duration),
    );
    let (first, last) = (&results[0], &results[results.len() - 1]);
    let growth = last.rss_peak as f64 / first.rss_peak as f64;
    s.checks.push(
        Check::new(
            memory_target(first.rows, last.rows),
            format!("{} vs {}", bytes(last.rss_peak), bytes(first.rss_peak)),
            growth <= 1.25,
            format!(
                "The package's Worker holds one page at a time: its own heap (JavaScript and \
                 WebAssembly, after a garbage collection) was {} after the {}-row pull and {} \
                 after the {}-row one. The renderer's growth beyond it is memory the browser \
                 had not collected or returned yet (the pages' response buffers among it).",
                bytes(first.worker_heap),
                count(first.rows),
                bytes(last.worker_heap),
                count(last.rows)
            ),
        )
        .value(growth, times),
    );
    let point_limit = round_trip.median() + 1e-4;
    s.checks.push(
        Check::new(
            POINT_TARGET,
            format!(
                "{} vs round trip {} + 0.1 ms; sqlite-wasm's own point read in a Worker: {}",
                duration(point_owner.median()),
                duration(round_trip.median()),
                duration(floor_point.median())
            ),
            point_owner.median() <= point_limit,
            "The owner tab's read is one postMessage round trip to the package's Worker and a \
             prepared statement there; the round trip alone wanders by tens of µs from run to \
             run.",
        )
        .value(point_owner.median(), duration),
    );
    let client = point_client.median() / point_owner.median();
    s.checks.push(
        Check::new(
            CLIENT_TARGET,
            format!(
                "{:.2}x ({} vs {})",
                client,
                duration(point_client.median()),
                duration(point_owner.median())
            ),
            client <= 2.0,
            "A second tab's call travels over a BroadcastChannel to the owner tab's Worker, \
             sealed with the tabs' shared key, and back.",
        )
        .value(client, times),
    );
    Ok(s)
}
