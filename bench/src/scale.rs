//! Comparison 4: how Erth Sync scales with the size of the database.
//!
//! - The cost of a `sync()` that moves 10 changed rows (pushed from the
//!   replica, or pulled after a server-side change) when the database holds
//!   1,000 / 100,000 / 1,000,000 rows: it should stay flat.
//! - Pull throughput and peak memory: a fresh replica pulls the whole
//!   database in a child process that does nothing else, and reports its
//!   `VmHWM` from `/proc/self/status`; it should be bounded by the page size,
//!   not the row count.
//! - Push throughput for 100,000 rows made locally.
//! - Partial sync: a fresh device subscribed to 1% of the rows, its first
//!   sync's time, bytes and requests against the full pull's, and its
//!   10-row syncs (rows leaving and entering its filter) across sizes.
//!
//! The big server databases are built directly: a throwaway replica lets
//! Erth create its server schema through tursodb, the server is stopped, the
//! rows are generated with one recursive-CTE `INSERT` through rusqlite (ids,
//! clocks and `_seq` in Erth's row layout), and the server starts again.

use crate::report::{Check, Row, Section};
use crate::stats::{bytes, count, duration, factor, rate, times, Samples};
use crate::wire::{self, WireStats};
use crate::{run_json, start_server, Ctx};
use anyhow::{bail, Context as _, Result};
use erth_core::{Config, Database, NodeId, Timestamp};
use erth_tests::launch::LocalServer;
use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The hidden subcommand that runs one pull in a fresh process.
pub const PULL_CHILD: &str = "pull-child";
/// Rows changed per measured sync.
const CHANGED: u64 = 10;
/// Node ids of the generated rows and of the simulated server-side writer.
const FILL_NODE: u64 = 0x00b0_0000_0000_0001;
const SERVER_NODE: u64 = 0x00b0_0000_0000_0002;

/// What one child pull reported.
struct Pull {
    rows: u64,
    secs: f64,
    /// Seconds waiting for the server, and in how many requests.
    server_secs: f64,
    requests: u64,
    down_bytes: u64,
    hwm_kb: u64,
}

/// A fresh device subscribed to 1% of the rows (partial sync): its first
/// sync, then {CHANGED}-row syncs.
struct Partial {
    rows: u64,
    secs: f64,
    requests: u64,
    down_bytes: u64,
    pull10: Samples,
    pull10_requests: u64,
}

/// The subscription of [`Partial`]: generated titles are `todo <i>`, so
/// this is every hundredth row.
const ONE_PERCENT: (&str, &str) = ("title LIKE ?", "%00");

/// Most a fresh device's pull of the largest size may take, in multiples
/// of its floor (issue #26).
const PULL_FACTOR: f64 = 1.2;

/// How far tursodb's answer time for one request wanders on its own.
const JITTER_SECS: f64 = 0.010;

/// The largest median of `f` over all sizes.
fn worst_of(results: &[AtSize], f: fn(&AtSize) -> &Samples) -> f64 {
    results.iter().map(|r| f(r).median()).fold(0.0, f64::max)
}

/// Median local time of a sync: total minus waiting for the server.
fn local(total: &Samples, server: &Samples) -> f64 {
    (total.median() - server.median()).max(0.0)
}

impl AtSize {
    /// What any client must do for a fresh device's pull of these rows:
    /// tursodb's plain SELECT of them plus SQLite's plain local insert.
    fn floor(&self) -> f64 {
        self.select_floor.0 + self.insert_floor
    }
}

/// Measurements at one database size.
struct AtSize {
    rows: u64,
    fill_secs: f64,
    pull: Pull,
    /// The same rows as one plain `SELECT` (tursodb's floor): time, bytes.
    select_floor: (f64, u64),
    /// The same rows inserted locally in one transaction (SQLite's floor), seconds.
    insert_floor: f64,
    push10: Samples,
    pull10: Samples,
    /// Time waiting for the server during each measured sync.
    push10_server: Samples,
    pull10_server: Samples,
    /// Requests of a measured sync (the most seen).
    sync_requests: u64,
    partial: Partial,
}

pub async fn run(ctx: &Ctx, title: &str) -> Result<Section> {
    let sizes: Vec<u64> = ctx.pick(
        vec![1_000, 100_000, 1_000_000],
        vec![1_000, 10_000, 100_000],
    );
    let reps = ctx.pick(7, 5);
    let push_rows: u64 = ctx.pick(100_000, 20_000);
    let exe = std::env::current_exe().context("locating erth-bench for the pull child")?;
    let base_ms = now_ms()? - 86_400_000;

    let mut results = Vec::new();
    for &n in &sizes {
        eprintln!("erth-bench:   {} rows", count(n));
        results.push(at_size(&exe, n, reps, base_ms).await?);
    }
    let push = push_throughput(push_rows).await?;

    let mut s = Section::new(title, "Erth Sync", "smallest database");
    s.about = format!(
        "One `tursodb` server per size, filled by SQL with {} rows in Erth's row layout; a fresh \
         replica pulls everything in a child process (`erth-bench {PULL_CHILD}`) that reports its \
         peak RSS (`VmHWM`). Then, {reps} times: the replica renames {CHANGED} rows and runs \
         `sync()` (push {CHANGED}, then an empty pull), and after {CHANGED} rows change on the server \
         it runs `sync()` again (pull {CHANGED}). Medians; the ratio column compares with the \
         smallest database. Push throughput: {} rows made locally (one `insert` each), then one \
         timed `sync()`. Partial sync: a fresh replica subscribes to `title LIKE '%00'` (1% of \
         the rows) and syncs; then, {reps} times, {CHANGED} of its rows leave the filter and \
         {CHANGED} others enter it on the server, and it syncs.",
        sizes.iter().map(|n| count(*n)).collect::<Vec<_>>().join(" / "),
        count(push_rows)
    );
    let first = &results[0];
    for r in &results {
        s.rows.push(Row::new(
            format!(
                "sync pushing {CHANGED} edited rows, {} rows in the database",
                count(r.rows)
            ),
            format!(
                "{}; server {}",
                r.push10.summary(),
                duration(r.push10_server.median())
            ),
            duration(first.push10.median()),
            factor(r.push10.median(), first.push10.median()),
        ));
    }
    for r in &results {
        s.rows.push(Row::new(
            format!(
                "sync pulling {CHANGED} changed rows, {} rows in the database",
                count(r.rows)
            ),
            format!(
                "{}; server {}",
                r.pull10.summary(),
                duration(r.pull10_server.median())
            ),
            duration(first.pull10.median()),
            factor(r.pull10.median(), first.pull10.median()),
        ));
    }
    for r in &results {
        s.rows.push(Row::new(
            format!("pull all {} rows onto a fresh replica", count(r.rows)),
            format!(
                "{} ({}); server {} in {} requests",
                duration(r.pull.secs),
                rate(r.pull.rows, r.pull.secs),
                duration(r.pull.server_secs),
                r.pull.requests
            ),
            "",
            "",
        ));
    }
    for r in &results {
        s.rows.push(Row::new(
            format!(
                "tursodb's floor: the same {} rows as one plain SELECT (answer received, not decoded)",
                count(r.rows)
            ),
            format!(
                "{} ({}; {})",
                duration(r.select_floor.0),
                rate(r.rows, r.select_floor.0),
                bytes(r.select_floor.1)
            ),
            "",
            format!(
                "the pull takes {} of it",
                factor(r.pull.secs, r.select_floor.0)
            ),
        ));
    }
    for r in &results {
        s.rows.push(Row::new(
            format!(
                "SQLite's floor: the same {} rows into a plain local table (one transaction, same disk); with the SELECT, the pull's floor",
                count(r.rows)
            ),
            format!("{} ({})", duration(r.insert_floor), rate(r.rows, r.insert_floor)),
            "",
            format!(
                "floor {}; the pull takes {} of it",
                duration(r.floor()),
                factor(r.pull.secs, r.floor())
            ),
        ));
    }
    for r in &results {
        let p = &r.partial;
        s.rows.push(Row::new(
            format!(
                "partial sync: a fresh device subscribed to 1% of {} rows ({}), first sync",
                count(r.rows),
                count(p.rows)
            ),
            format!(
                "{}; {} in {} requests",
                duration(p.secs),
                bytes(p.down_bytes),
                p.requests
            ),
            format!(
                "full pull {}; {} in {} requests",
                duration(r.pull.secs),
                bytes(r.pull.down_bytes),
                r.pull.requests
            ),
            format!(
                "time {}, bytes {}",
                factor(p.secs, r.pull.secs),
                factor(p.down_bytes as f64, r.pull.down_bytes as f64)
            ),
        ));
    }
    for r in &results {
        s.rows.push(Row::new(
            format!(
                "partial sync: the 1% device's sync, {CHANGED} rows leaving and {CHANGED} entering its filter, {} rows in the database",
                count(r.rows)
            ),
            format!("{} in {} requests", r.partial.pull10.summary(), r.partial.pull10_requests),
            duration(first.partial.pull10.median()),
            factor(r.partial.pull10.median(), first.partial.pull10.median()),
        ));
    }
    for r in &results {
        s.rows.push(Row::new(
            format!("peak RSS of a process pulling {} rows", count(r.rows)),
            bytes(r.pull.hwm_kb * 1024),
            bytes(first.pull.hwm_kb * 1024),
            factor(r.pull.hwm_kb as f64, first.pull.hwm_kb as f64),
        ));
    }
    s.rows.push(Row::new(
        format!("push {} rows made locally", count(push_rows)),
        format!(
            "{} ({}); server {} in {} requests",
            duration(push.0),
            rate(push_rows, push.0),
            duration(push.1.secs),
            push.1.requests
        ),
        "",
        "",
    ));
    s.notes.push(
        "tursodb answers a small request in either under 1 ms or about 10 ms, whatever the \
         database size (the `server` part of each 10-row sync shows which): compare the local \
         part, total minus server, across sizes."
            .into(),
    );
    for r in &results {
        s.notes.push(format!(
            "Generating the {}-row server database took {} (setup, not measured).",
            count(r.rows),
            duration(r.fill_secs)
        ));
    }

    let last = &results[results.len() - 1];
    let worst = |f: fn(&AtSize) -> f64| {
        results
            .iter()
            .map(|r| f(r) / f(first))
            .fold(0.0f64, f64::max)
    };
    let push_spread = worst(|r| r.push10.median());
    let pull_spread = worst(|r| r.pull10.median());
    // tursodb answers a request in anywhere from under 1 ms to about 10 ms
    // whatever the database size (its floor per request), so a growth within one
    // such step per request of the sync is jitter, not scaling. (Measured
    // 2026-11-30: the 1,000-row server answered all three requests of a
    // sync in under 1 ms each, 12 ms in all, the larger ones in about 10 ms
    // each, 32 ms, with the same local part, 0.7-0.9 ms.)
    let flat = |f: fn(&AtSize) -> &Samples| {
        results.iter().all(|r| {
            let (m, base) = (f(r).median(), f(first).median());
            m <= 1.5 * base || m - base <= JITTER_SECS * r.sync_requests.max(1) as f64
        })
    };
    s.checks.push(Check::new(
        format!(
            "{CHANGED}-row sync flat from {} to {} rows (each size within 1.5x, or within \
             tursodb's 10 ms jitter per request, of the smallest)",
            count(first.rows),
            count(last.rows)
        ),
        format!(
            "push {push_spread:.2}x, pull {pull_spread:.2}x (largest ratio; {} vs {} and {} vs {})",
            duration(worst_of(&results, |r| &r.push10)),
            duration(first.push10.median()),
            duration(worst_of(&results, |r| &r.pull10)),
            duration(first.pull10.median())
        ),
        flat(|r| &r.push10) && flat(|r| &r.pull10),
        format!(
            "With {} rows a 10-row push sync spent {} waiting for tursodb and {} locally ({} and {} \
             with {} rows); a pull-only sync {} and {} ({} and {}). Local time that grows with the \
             table means a local query scans instead of seeking (check the push and pull \
             statements with `EXPLAIN QUERY PLAN`); server time that grows means the same on \
             the server.",
            count(last.rows),
            duration(last.push10_server.median()),
            duration(local(&last.push10, &last.push10_server)),
            duration(first.push10_server.median()),
            duration(local(&first.push10, &first.push10_server)),
            count(first.rows),
            duration(last.pull10_server.median()),
            duration(local(&last.pull10, &last.pull10_server)),
            duration(first.pull10_server.median()),
            duration(local(&first.pull10, &first.pull10_server)),
        ),
    ).value(push_spread.max(pull_spread), times));
    let bytes_share = last.partial.down_bytes as f64 / last.pull.down_bytes as f64;
    s.checks.push(
        Check::new(
            format!(
                "a device subscribed to 1% of {} rows downloads <= 2% of a full pull's bytes",
                count(last.rows)
            ),
            format!(
                "{:.2}% ({} vs {}; {} vs {} requests; {} vs {})",
                100.0 * bytes_share,
                bytes(last.partial.down_bytes),
                bytes(last.pull.down_bytes),
                last.partial.requests,
                last.pull.requests,
                duration(last.partial.secs),
                duration(last.pull.secs)
            ),
            bytes_share <= 0.02,
            "The subscription's filter runs on the server inside the pull's statements, so only \
             matching rows travel; the rest is the size probes, the opening request and the \
             eviction check.",
        )
        .value(bytes_share * 100.0, |v| format!("{v:.2}%")),
    );
    let partial_flat = results.iter().all(|r| {
        let (m, base) = (r.partial.pull10.median(), first.partial.pull10.median());
        m <= 1.5 * base || m - base <= JITTER_SECS * r.partial.pull10_requests.max(1) as f64
    });
    s.checks.push(
        Check::new(
            format!(
                "a 1% device's {CHANGED}-row sync flat from {} to {} rows (within 1.5x, or \
                 tursodb's 10 ms jitter per request, of the smallest)",
                count(first.rows),
                count(last.rows)
            ),
            format!(
                "{} vs {}",
                duration(last.partial.pull10.median()),
                duration(first.partial.pull10.median())
            ),
            partial_flat,
            "Each sync of a partial table reads the rows after its cursor that match its filter, \
             and the ids of rows changed since its eviction cursor that no longer match: both \
             keyset reads by `_seq`, whatever the table's size.",
        )
        .value(
            last.partial.pull10.median() / first.partial.pull10.median(),
            times,
        ),
    );
    let middle = &results[results.len() / 2];
    s.checks.push(
        Check::new(
            format!(
                "peak RSS of a {}-row pull bounded by the page size (<= 1.25x of the {}-row pull)",
                count(last.rows),
                count(middle.rows)
            ),
            format!(
                "{} vs {}",
                bytes(last.pull.hwm_kb * 1024),
                bytes(middle.pull.hwm_kb * 1024)
            ),
            last.pull.hwm_kb as f64 <= 1.25 * middle.pull.hwm_kb as f64,
            "Each pull page is parsed and merged whole and then dropped; the growth comes from \
         SQLite's page cache and the allocator keeping freed pages, not from holding rows.",
        )
        .value(last.pull.hwm_kb as f64 / middle.pull.hwm_kb as f64, times),
    );
    let ratio = last.pull.secs / last.floor();
    s.checks.push(
        Check::new(
            format!(
                "{} rows onto a fresh device <= {PULL_FACTOR}x its floor (tursodb's plain SELECT \
                 of the rows + a plain local INSERT of them)",
                count(last.rows)
            ),
            format!(
                "{ratio:.2}x ({} vs {}: SELECT {} + INSERT {}); {}",
                duration(last.pull.secs),
                duration(last.floor()),
                duration(last.select_floor.0),
                duration(last.insert_floor),
                rate(last.rows, last.pull.secs)
            ),
            ratio <= PULL_FACTOR,
            format!(
                "Of the {} pull, {} was waiting for tursodb in {} requests (pages and size probes \
                 it builds as JSON; the next page is asked for while one is applied, so this \
                 overlaps local work) and {} was local beyond that (decoding, validating every \
                 row and clock, the merge upserts into the indexed engine table, committing each \
                 part of a page). tursodb alone sends the same rows as one plain SELECT in {}; \
                 SQLite alone inserts them into a plain table in {}.",
                duration(last.pull.secs),
                duration(last.pull.server_secs),
                last.pull.requests,
                duration((last.pull.secs - last.pull.server_secs).max(0.0)),
                duration(last.select_floor.0),
                duration(last.insert_floor)
            ),
        )
        .value(ratio, times),
    );
    Ok(s)
}

/// A `tursodb` server in `dir` holding `n` todos in Erth's row layout
/// (ids from [`row_id`] with `base_ms`), and the seconds its generation took.
pub async fn filled_server(dir: &Path, n: u64, base_ms: u64) -> Result<(LocalServer, f64)> {
    let server_db = dir.join("server.db");
    let log = dir.join("server.log");
    {
        let mut server = LocalServer::start(&server_db, &log, None)?;
        let db = Database::open_native(dir.join("bootstrap.db"), config(server.url())).await?;
        db.sync().await?;
        drop(db);
        server.stop()?;
    }
    let t = Instant::now();
    fill_server(&server_db, n, base_ms)?;
    let fill_secs = t.elapsed().as_secs_f64();
    Ok((LocalServer::start(&server_db, &log, None)?, fill_secs))
}

async fn at_size(exe: &Path, n: u64, reps: usize, base_ms: u64) -> Result<AtSize> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let (server, fill_secs) = filled_server(dir.path(), n, base_ms).await?;
    let url = server.url();

    let replica = dir.path().join("replica.db");
    let pull = pull_in_child(exe, url, &replica)?;
    if pull.rows != n {
        bail!("the child pulled {} of {n} rows", pull.rows);
    }
    let (t, size) = wire::select_floor(
        url,
        &format!(
            "SELECT {}, \"_seq\" FROM \"todos\" ORDER BY \"_seq\"",
            erth_core::schema::todos_table().row_column_list()
        ),
    )
    .await
    .context("tursodb's floor: the rows as one SELECT")?;
    let select_floor = (t.as_secs_f64(), size);
    let insert_floor = local_insert_floor(dir.path(), n, base_ms)
        .context("SQLite's floor: the rows inserted locally")?;

    let (db, wire) = wire::open(&replica, url).await?;
    db.sync().await?;
    let mut push10 = Samples::new();
    let mut pull10 = Samples::new();
    let mut push10_server = Samples::new();
    let mut pull10_server = Samples::new();
    let mut sync_requests = 0;
    for rep in 0..reps as u64 {
        for k in 0..CHANGED {
            db.rename_todo(
                &row_id(base_ms, 1 + k * (n / CHANGED)),
                &format!("replica edit {rep}"),
            )
            .await?;
        }
        wire.take();
        let t = Instant::now();
        let r = db.sync().await?;
        push10.push(t.elapsed());
        let w = wire.take();
        push10_server.push_secs(w.secs);
        sync_requests = sync_requests.max(w.requests);
        if r.pushed != CHANGED {
            bail!("a 10-row sync pushed {} rows", r.pushed);
        }
        server_edit(url, n, rep, base_ms)
            .await
            .context("changing rows on the server")?;
        wire.take();
        let t = Instant::now();
        let r = db.sync().await?;
        pull10.push(t.elapsed());
        let w = wire.take();
        pull10_server.push_secs(w.secs);
        sync_requests = sync_requests.max(w.requests);
        if r.pulled != CHANGED {
            bail!("a 10-row sync pulled {} rows", r.pulled);
        }
    }
    let partial = partial_device(dir.path(), url, n, reps, base_ms).await?;
    Ok(AtSize {
        partial,
        rows: n,
        fill_secs,
        pull,
        select_floor,
        insert_floor,
        push10,
        pull10,
        push10_server,
        pull10_server,
        sync_requests,
    })
}

/// A fresh device subscribed to 1% of the server's rows ([`ONE_PERCENT`]):
/// its first sync; then, `reps` times, {CHANGED} of its rows change on the
/// server (they leave its filter) and {CHANGED} others enter it, and it
/// syncs.
async fn partial_device(
    dir: &Path,
    url: &str,
    n: u64,
    reps: usize,
    base_ms: u64,
) -> Result<Partial> {
    let (db, wire) = wire::open(&dir.join("partial.db"), url).await?;
    db.add_subscription(
        "one percent",
        "todos",
        ONE_PERCENT.0,
        &[ONE_PERCENT.1.into()],
        None,
    )
    .await?;
    wire.take();
    let t = Instant::now();
    let first = db.sync().await?;
    let secs = t.elapsed().as_secs_f64();
    let w = wire.take();
    if first.pulled != n / 100 {
        bail!("the 1% device pulled {} of {} rows", first.pulled, n / 100);
    }
    let mut pull10 = Samples::new();
    let mut pull10_requests = 0;
    for rep in 0..reps as u64 {
        // Rows 100, 200, ... leave (renamed); rows 101, 201, ... enter.
        let mut stmts = Vec::new();
        for k in 0..CHANGED {
            let leaving = 100 * (1 + k + rep * CHANGED) % n.max(100);
            let entering = leaving + 1;
            stmts.push(format!(
                "UPDATE todos SET title = 'moved out', _seq = (SELECT v FROM _erth_meta WHERE k = 'seq') + 1 WHERE id = '{}'",
                row_id(base_ms, leaving.max(100))
            ));
            stmts.push("UPDATE _erth_meta SET v = v + 1 WHERE k = 'seq'".to_owned());
            stmts.push(format!(
                "UPDATE todos SET title = 'moved in 00', _seq = (SELECT v FROM _erth_meta WHERE k = 'seq') + 1 WHERE id = '{}'",
                row_id(base_ms, entering)
            ));
            stmts.push("UPDATE _erth_meta SET v = v + 1 WHERE k = 'seq'".to_owned());
        }
        let stmts: Vec<&str> = stmts.iter().map(String::as_str).collect();
        erth_tests::hrana::execute(url, None, &stmts)
            .await
            .context("moving rows in and out of the 1% filter on the server")?;
        wire.take();
        let t = Instant::now();
        let r = db.sync().await?;
        pull10.push(t.elapsed());
        pull10_requests = pull10_requests.max(wire.take().requests);
        if r.pulled != CHANGED {
            bail!("a 1% device's sync pulled {} rows, not {CHANGED}", r.pulled);
        }
    }
    Ok(Partial {
        rows: first.pulled,
        secs,
        requests: w.requests,
        down_bytes: w.down_bytes,
        pull10,
        pull10_requests,
    })
}

fn config(url: &str) -> Config {
    Config {
        url: Some(url.to_owned()),
        ..Config::default()
    }
}

pub fn now_ms() -> Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_millis() as u64)
}

/// The id of generated row `i` (1-based): a valid UUIDv7 whose timestamp is
/// `base_ms` and whose random bits are `i`. [`fill_server`]'s SQL makes the same.
pub fn row_id(base_ms: u64, i: u64) -> String {
    format!(
        "{:08x}-{:04x}-7000-8000-{i:012x}",
        base_ms >> 16,
        base_ms & 0xffff
    )
}

/// Adds rows 1..=n (ids from [`row_id`], `_seq` = i) to the stopped server's
/// `todos` table and moves its sequence counter to `n`.
fn fill_server(path: &Path, n: u64, base_ms: u64) -> Result<()> {
    let conn = rusqlite::Connection::open(path).context("opening the server database")?;
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('todos')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    conn.execute_batch(&format!(
        "BEGIN; {} UPDATE _erth_meta SET v = {n} WHERE k = 'seq'; COMMIT;",
        generated_rows("todos", &columns, n, base_ms)?
    ))
    .context("generating rows on the server database")?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// One `INSERT` of rows 1..=n (ids from [`row_id`], `_seq` = i) into
/// `table`, whose columns are `columns` (Erth's row layout), generated by a
/// recursive CTE.
fn generated_rows(table: &str, columns: &[String], n: u64, base_ms: u64) -> Result<String> {
    let clock = Timestamp {
        hlc: base_ms << 16,
        node: NodeId(FILL_NODE),
    };
    let values = columns
        .iter()
        .map(|c| {
            Ok(match c.as_str() {
                "id" => format!(
                    "printf('%08x-%04x-7000-8000-%012x', {}, {}, i)",
                    base_ms >> 16,
                    base_ms & 0xffff
                ),
                "title" => "'todo ' || i".into(),
                "is_completed" | "is_deleted" | "_dirty" => "0".into(),
                "created_at" | "updated_at" => base_ms.to_string(),
                "_seq" => "i".into(),
                c if c.starts_with("_clk_") => format!("'{clock}'"),
                other => bail!("the todos table has an unexpected column {other:?}"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let names: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    Ok(format!(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {n}) \
         INSERT INTO \"{table}\" ({}) SELECT {} FROM c;",
        names.join(", "),
        values.join(", ")
    ))
}

/// SQLite's floor of a fresh device's local work: the same `n` rows
/// inserted into a plain table (the row layout, primary key `id`, WITHOUT
/// ROWID) in one transaction, in a new file on the same disk with the
/// native store's pragmas; generated inside SQLite, so no client can do
/// the same insert for less. Returns the seconds it took.
fn local_insert_floor(dir: &Path, n: u64, base_ms: u64) -> Result<f64> {
    let def = erth_core::schema::todos_table();
    let conn = rusqlite::Connection::open(dir.join("floor.db"))?;
    for pragma in crate::local::STORE_PRAGMAS {
        conn.prepare(pragma)?.query([])?.next()?;
    }
    conn.execute_batch(&format!(
        "CREATE TABLE floor ({}, PRIMARY KEY (\"id\")) WITHOUT ROWID",
        def.row_column_list()
    ))?;
    let insert = generated_rows("floor", &def.row_columns(), n, base_ms)?;
    let t = Instant::now();
    conn.execute_batch(&format!("BEGIN; {insert} COMMIT;"))?;
    Ok(t.elapsed().as_secs_f64())
}

/// What another replica's push would do to 10 rows: newer title clocks and
/// fresh sequence numbers, as plain SQL on the server.
async fn server_edit(url: &str, n: u64, rep: u64, base_ms: u64) -> Result<()> {
    let ms = now_ms()?;
    let clock = Timestamp {
        hlc: (ms << 16) | rep,
        node: NodeId(SERVER_NODE),
    };
    let mut sql: Vec<String> = (0..CHANGED)
        .map(|k| {
            format!(
                "UPDATE todos SET title = 'server edit {rep}', _clk_title = '{clock}', \
                 updated_at = {ms}, _seq = (SELECT v FROM _erth_meta WHERE k = 'seq') + {} \
                 WHERE id = '{}'",
                k + 1,
                row_id(base_ms, 2 + k * (n / CHANGED))
            )
        })
        .collect();
    sql.push(format!(
        "UPDATE _erth_meta SET v = v + {CHANGED} WHERE k = 'seq'"
    ));
    let refs: Vec<&str> = sql.iter().map(String::as_str).collect();
    erth_tests::hrana::execute(url, None, &refs).await?;
    Ok(())
}

/// Runs one pull of the whole server database into `db` in a fresh process.
fn pull_in_child(exe: &Path, url: &str, db: &Path) -> Result<Pull> {
    let v = run_json(
        Command::new(exe).arg(PULL_CHILD).arg(url).arg(db),
        "the pull child",
    )?;
    let int = |k: &str| v[k].as_u64().with_context(|| format!("no {k} in {v}"));
    Ok(Pull {
        rows: int("rows")?,
        secs: crate::num(&v, "secs")?,
        server_secs: crate::num(&v, "server_secs")?,
        requests: int("requests")?,
        down_bytes: int("down_bytes")?,
        hwm_kb: int("hwm_kb")?,
    })
}

/// The child side: open a replica, `sync()` once, print rows, seconds and
/// peak RSS as JSON.
pub async fn pull_child(args: &[String]) -> Result<()> {
    let [url, db] = args else {
        bail!("usage: erth-bench {PULL_CHILD} URL DB");
    };
    let (database, wire) = wire::open(Path::new(db), url).await?;
    let t = Instant::now();
    let report = database.sync().await?;
    let secs = t.elapsed().as_secs_f64();
    let w = wire.take();
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .context("no VmHWM in /proc/self/status")?;
    println!(
        "{}",
        serde_json::json!({
            "rows": report.pulled,
            "secs": secs,
            "server_secs": w.secs,
            "requests": w.requests,
            "down_bytes": w.down_bytes,
            "hwm_kb": hwm_kb,
        })
    );
    Ok(())
}

/// Seconds for one `sync()` pushing `rows` rows made locally, on a fresh
/// server, and what the wire saw.
async fn push_throughput(rows: u64) -> Result<(f64, WireStats)> {
    eprintln!("erth-bench:   push of {} rows", count(rows));
    let dir = tempfile::tempdir().context("temp dir")?;
    let server = start_server(dir.path())?;
    let (db, wire) = wire::open(&dir.path().join("push.db"), server.url()).await?;
    db.sync().await?;
    for i in 0..rows {
        db.insert("todos", &[("title", format!("todo {i}").into())])
            .await?;
    }
    wire.take();
    let t = Instant::now();
    let r = db.sync().await?;
    let secs = t.elapsed().as_secs_f64();
    if r.pushed != rows {
        bail!("pushed {} of {rows} rows", r.pushed);
    }
    Ok((secs, wire.take()))
}
