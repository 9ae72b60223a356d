//! Comparison 2: Turso Sync (the official engine, `@tursodatabase/sync` on
//! Node and `pyturso` on Python) against Erth Sync, both syncing through the
//! same `tursodb --sync-server` binary: device A creates 10,000 todos and
//! pushes them, a fresh device B pulls them, A makes 100 edits and pushes,
//! B pulls. Every run gets a fresh server; the engines take turns run by run
//! so that load from other work on the machine hits all of them alike.

use crate::report::{Check, Row, Section};
use crate::stats::{bytes, count, duration, factor, speedup, times, times3, Samples};
use crate::wire::{self, WireStats};
use crate::{num, run_json, script, start_server, text, Ctx};
use anyhow::{bail, Context as _, Result};
use erth_core::hrana::{self, HranaClient, RetryPolicy};
use erth_core::merge::{self, Target};
use erth_core::row::SyncRow;
use erth_core::schema::{todos_table, TableDef};
use erth_core::transport::native::NativeTransport;
use erth_core::{Config, Endpoint, SqlValue, Statement};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PY_SCRIPT: &str = include_str!("../baselines/turso_sync.py");
const NODE_SCRIPT: &str = include_str!("../baselines/turso_sync.mjs");
const ROWS: usize = 10_000;
const EDITS: usize = 100;
const STEPS: [(&str, &str); 5] = [
    (
        "create_ms",
        "create 10,000 todos on A, local only (Erth: 10,000 transactions, Turso: 1)",
    ),
    ("push_ms", "push 10,000 rows from A"),
    ("pull_ms", "pull 10,000 rows onto a fresh device B"),
    ("edit_push_ms", "push 100 edits from A"),
    ("edit_pull_ms", "pull 100 edits onto B"),
];

/// Samples per step, in `STEPS` order.
struct Engine {
    steps: Vec<Samples>,
    /// Erth only: per step, the time spent waiting for the server.
    server: Vec<Samples>,
    /// Erth only: per step, the last run's traffic.
    traffic: Vec<WireStats>,
    /// Erth only: tursodb's floors for the same rows (see [`server_floor`]):
    /// plain inserts, and Erth's own push statement (the merge upsert).
    floor: Samples,
    floor_upsert: Samples,
    /// Erth only: the same rows as one plain `SELECT` ([`wire::select_floor`]),
    /// and as one JSON cell (the form of Erth's pull pages).
    select_floor: Samples,
    select_bytes: u64,
    json_floor: Samples,
    json_bytes: u64,
    /// Erth only: the same rows inserted into a plain local table (see
    /// [`local_insert_floor`]): with `select_floor`, the floor of a pull.
    insert_floor: Samples,
    version: String,
}

impl Engine {
    fn new() -> Engine {
        Engine {
            steps: vec![Samples::new(); STEPS.len()],
            server: vec![Samples::new(); STEPS.len()],
            traffic: vec![WireStats::default(); STEPS.len()],
            floor: Samples::new(),
            floor_upsert: Samples::new(),
            select_floor: Samples::new(),
            select_bytes: 0,
            json_floor: Samples::new(),
            json_bytes: 0,
            insert_floor: Samples::new(),
            version: String::new(),
        }
    }

    /// Records one Erth step: its total time and what the wire saw.
    fn record(&mut self, step: usize, elapsed: Duration, wire: WireStats) {
        self.steps[step].push(elapsed);
        self.server[step].push_secs(wire.secs);
        self.traffic[step] = wire;
    }

    fn median(&self, step: &str) -> f64 {
        STEPS
            .iter()
            .position(|(k, _)| *k == step)
            .map_or(0.0, |i| self.steps[i].median())
    }

    fn add_json(&mut self, v: &serde_json::Value) -> Result<()> {
        for (i, (key, _)) in STEPS.iter().enumerate() {
            self.steps[i].push_secs(num(v, key)? / 1e3);
        }
        self.version = text(v, "version")?;
        Ok(())
    }
}

pub async fn run(ctx: &Ctx, title: &str) -> Result<Section> {
    let runs = ctx.pick(5, 3);
    let scripts = tempfile::tempdir().context("temp dir")?;
    let py = script(scripts.path(), "turso_sync.py", PY_SCRIPT)?;
    let js = script(scripts.path(), "turso_sync.mjs", NODE_SCRIPT)?;
    let mut erth = Engine::new();
    let mut pyturso = Engine::new();
    let mut node = Engine::new();
    for run in 1..=runs {
        eprintln!("erth-bench:   run {run}/{runs}");
        let dir = tempfile::tempdir().context("temp dir")?;
        let server = start_server(dir.path())?;
        erth_once(&mut erth, server.url(), dir.path()).await?;
        drop(server);

        let dir = tempfile::tempdir().context("temp dir")?;
        let server = start_server(dir.path())?;
        let v = run_json(
            Command::new(&ctx.python)
                .arg(&py)
                .args(["--url", server.url()])
                .arg("--dir")
                .arg(dir.path())
                .args(["--rows", &ROWS.to_string(), "--edits", &EDITS.to_string()]),
            "turso_sync.py (pyturso)",
        )?;
        pyturso.add_json(&v)?;
        drop(server);

        let dir = tempfile::tempdir().context("temp dir")?;
        let server = start_server(dir.path())?;
        let v = run_json(
            Command::new("node")
                .arg(&js)
                .env("ERTH_BENCH_NODE_DIR", &ctx.node_dir)
                .args(["--url", server.url()])
                .arg("--dir")
                .arg(dir.path())
                .args(["--rows", &ROWS.to_string(), "--edits", &EDITS.to_string()]),
            "turso_sync.mjs (@tursodatabase/sync)",
        )?;
        node.add_json(&v)?;
        drop(server);
    }

    let mut s = Section::new(title, "Erth Sync", "Turso Sync");
    s.about = format!(
        "Each engine syncs through a fresh `tursodb {} --sync-server` per run ({runs} runs, medians). \
         Turso Sync writes the {} todos in one local transaction (its cheapest way) and makes each of \
         the {} edits its own commit; B's pull is `connect()` of a new database, which bootstraps it \
         from the server. Erth Sync writes every todo in its own transaction (`insert`), edits with \
         `rename_todo`, and both its push and its pull are `sync()` (push, then pull; A's pull finds \
         nothing new), so Erth's push times include one extra empty pull round trip. tursodb serves \
         one request at a time and answers a small one in anywhere from under 1 ms to about 10 ms.",
        erth_tests::tools::TURSODB_VERSION,
        count(ROWS as u64),
        EDITS
    );
    s.versions.push(pyturso.version.clone());
    s.versions.push(node.version.clone());
    s.versions.push(format!(
        "tursodb {} (npm @tursodatabase/cli-linux-x64-gnu)",
        erth_tests::tools::TURSODB_VERSION
    ));
    for (i, (_, label)) in STEPS.iter().enumerate() {
        for (name, other) in [("pyturso", &pyturso), ("Node", &node)] {
            s.rows.push(Row::new(
                format!("{label} — vs {name}"),
                erth.steps[i].summary(),
                format!("{} ({name})", other.steps[i].summary()),
                speedup(erth.steps[i].median(), other.steps[i].median()),
            ));
        }
        if i == 1 {
            s.rows.push(Row::new(
                "tursodb's floor: the same 10,000 rows as plain multi-row INSERTs, same batching",
                erth.floor.summary(),
                "",
                format!(
                    "Erth's push takes {} of it",
                    factor(erth.steps[1].median(), erth.floor.median())
                ),
            ));
            s.rows.push(Row::new(
                "tursodb, the same rows as Erth's merge upserts (the push's statements alone)",
                erth.floor_upsert.summary(),
                "",
                format!(
                    "{} of the plain floor",
                    factor(erth.floor_upsert.median(), erth.floor.median())
                ),
            ));
        }
        if i == 2 {
            s.rows.push(Row::new(
                "tursodb's floor: the same 10,000 rows as one plain SELECT (answer received, not decoded)",
                format!(
                    "{} ({})",
                    erth.select_floor.summary(),
                    bytes(erth.select_bytes)
                ),
                "",
                format!(
                    "Erth's pull takes {} of it",
                    factor(erth.steps[2].median(), erth.select_floor.median())
                ),
            ));
            s.rows.push(Row::new(
                "tursodb, the same SELECT as one JSON cell (the form of Erth's pull pages)",
                format!("{} ({})", erth.json_floor.summary(), bytes(erth.json_bytes)),
                "",
                format!(
                    "{} of the plain SELECT",
                    factor(erth.json_floor.median(), erth.select_floor.median())
                ),
            ));
            let floor = erth.select_floor.median() + erth.insert_floor.median();
            s.rows.push(Row::new(
                "SQLite's floor: the same rows into a plain local table (one transaction, same disk); with the SELECT, the pull's floor",
                erth.insert_floor.summary(),
                "",
                format!(
                    "floor {}; Erth's pull takes {} of it",
                    duration(floor),
                    factor(erth.steps[2].median(), floor)
                ),
            ));
        }
        let w = &erth.traffic[i];
        if w.requests > 0 {
            s.rows.push(Row::new(
                format!("{label}: Erth's share waiting for tursodb"),
                format!(
                    "{} in {} requests ({} up, {} down)",
                    duration(erth.server[i].median()),
                    w.requests,
                    bytes(w.up_bytes),
                    bytes(w.down_bytes)
                ),
                "",
                "",
            ));
        }
    }

    let push = erth.median("push_ms");
    let push_server = erth.server[1].median();
    let plain = erth.floor.median();
    let upsert = erth.floor_upsert.median();
    let push_why = format!(
        "Of Erth's {} push sync, {} is waiting for tursodb ({} requests, the empty pull after the \
         push included: {}) and {} is local (reading the pending rows, building the requests, clearing \
         `_dirty`). On the same server the same rows in the same batching take {} as plain \
         multi-row INSERTs (tursodb's floor) and {} as Erth's merge upserts alone: the conflict \
         clause costs tursodb about {} over a plain insert; the rest of the server time ({}) is \
         the push's bookkeeping (counter bump and read-back) and round trips.",
        duration(push),
        duration(push_server),
        erth.traffic[1].requests,
        erth.traffic[1]
            .each
            .iter()
            .map(|s| duration(*s))
            .collect::<Vec<_>>()
            .join(", "),
        duration((push - push_server).max(0.0)),
        duration(plain),
        duration(upsert),
        duration((upsert - plain).max(0.0)),
        duration((push_server - upsert).max(0.0)),
    );
    s.checks.push(Check::new(
        "push of 10,000 rows <= 1.3x tursodb's plain multi-row INSERT floor (same rows, same batching)",
        // Three decimals: the ratio sits near the target, where two round
        // a miss to "1.30x".
        format!(
            "{:.3}x ({} vs {})",
            push / plain,
            duration(push),
            duration(plain)
        ),
        push <= 1.3 * plain,
        push_why.clone(),
    ).value(push / plain, times3));
    s.checks.push(
        Check::new(
            "push of 10,000 rows <= 0.3 s on tursodb",
            duration(push),
            push <= 0.3,
            push_why,
        )
        .value(push, duration),
    );
    let (best_name, best) = fastest(&[("pyturso", &pyturso), ("Node", &node)], "push_ms");
    s.checks.push(
        Check::new(
            "push of 10,000 rows >= 3x faster than Turso Sync",
            format!(
                "{} than {best_name} ({} vs {})",
                speedup(push, best),
                duration(push),
                duration(best)
            ),
            best / push >= 3.0,
            format!(
            "{} of Erth's {} is tursodb executing the push (its plain-INSERT floor for the same \
             rows is {}). Turso Sync's push sends its change log to the same server and took {}.",
            duration(push_server),
            duration(push),
            duration(plain),
            duration(best)
        ),
        )
        .value(best / push, times),
    );
    let pull = erth.median("pull_ms");
    let pull_server = erth.server[2].median();
    let bootstrap = pyturso.median("pull_ms");
    let select = erth.select_floor.median();
    // Replaces "<= 3x Turso Sync's bootstrap" (issue 26): Turso Sync copies
    // database pages, which no SQL client can reach; the floor is what any
    // client must do for the same rows: the server's read of them plus a
    // plain local insert of them, on this server and this disk.
    let insert = erth.insert_floor.median();
    let floor = select + insert;
    s.checks.push(
        Check::new(
            "fresh device, 10,000 rows: <= 2x its floor (tursodb's plain SELECT of the rows + a plain local INSERT of them)",
            format!(
                "{:.2}x ({} vs {}: SELECT {} + INSERT {}); Turso Sync's page copy (pyturso): {}",
                pull / floor,
                duration(pull),
                duration(floor),
                duration(select),
                duration(insert),
                duration(bootstrap)
            ),
            pull <= 2.0 * floor,
            format!(
                "Erth's {} pull ({} down) spent {} waiting for tursodb in {} requests ({}: the \
                 server schema, the size probe, which has tursodb read every row's lengths, and the \
                 page) and {} locally (opening the new replica, decoding, validating rows and clocks, \
                 the merge upserts into the indexed engine table). The page itself, the rows as one \
                 JSON cell, takes tursodb {} ({}) against {} for the plain SELECT ({}).",
                duration(pull),
                bytes(erth.traffic[2].down_bytes),
                duration(pull_server),
                erth.traffic[2].requests,
                erth.traffic[2]
                    .each
                    .iter()
                    .map(|s| duration(*s))
                    .collect::<Vec<_>>()
                    .join(", "),
                duration((pull - pull_server).max(0.0)),
                duration(erth.json_floor.median()),
                bytes(erth.json_bytes),
                duration(select),
                bytes(erth.select_bytes),
            ),
        )
        .value(pull / floor, times),
    );
    Ok(s)
}

fn fastest<'a>(engines: &[(&'a str, &Engine)], step: &str) -> (&'a str, f64) {
    engines
        .iter()
        .map(|(n, e)| (*n, e.median(step)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or(("none", 0.0))
}

async fn erth_once(engine: &mut Engine, url: &str, dir: &Path) -> Result<()> {
    let (a, wire_a) = wire::open(&dir.join("a.db"), url).await?;
    a.sync().await?;

    let t = Instant::now();
    let mut ids = Vec::with_capacity(ROWS);
    for i in 0..ROWS {
        ids.push(
            a.insert("todos", &[("title", format!("todo {i}").into())])
                .await?,
        );
    }
    engine.steps[0].push(t.elapsed());
    wire_a.take();
    let t = Instant::now();
    let r = a.sync().await?;
    engine.record(1, t.elapsed(), wire_a.take());
    expect("A pushed", r.pushed, ROWS)?;

    let t = Instant::now();
    let (b, wire_b) = wire::open(&dir.join("b.db"), url).await?;
    let r = b.sync().await?;
    engine.record(2, t.elapsed(), wire_b.take());
    expect("B pulled", r.pulled, ROWS)?;

    let step = ROWS / EDITS;
    for k in 0..EDITS {
        a.rename_todo(&ids[k * step], &format!("edited {k}"))
            .await?;
    }
    let t = Instant::now();
    let r = a.sync().await?;
    engine.record(3, t.elapsed(), wire_a.take());
    expect("A pushed edits", r.pushed, EDITS)?;
    let t = Instant::now();
    let r = b.sync().await?;
    engine.record(4, t.elapsed(), wire_b.take());
    expect("B pulled edits", r.pulled, EDITS)?;

    let todos = b.list_active_todos().await?;
    let edited = todos
        .iter()
        .filter(|t| t.title.starts_with("edited "))
        .count();
    if todos.len() != ROWS || edited != EDITS {
        bail!(
            "device B holds {} todos with {edited} edits, expected {ROWS} and {EDITS}",
            todos.len()
        );
    }
    let columns = format!("{}, \"_seq\"", todos_table().row_column_list());
    let select = format!("SELECT {columns} FROM \"todos\" ORDER BY \"_seq\"");
    let (t, size) = wire::select_floor(url, &select).await?;
    engine.select_floor.push(t);
    engine.select_bytes = size;
    let (t, size) =
        wire::select_floor(url, &erth_core::page::as_one_cell(&columns, &select)).await?;
    engine.json_floor.push(t);
    engine.json_bytes = size;
    let rows = a.dump("todos").await?;
    engine
        .insert_floor
        .push(local_insert_floor(&dir.join("floor.db"), &rows)?);
    engine
        .floor
        .push(server_floor(url, &rows, "floor_plain", false).await?);
    engine
        .floor_upsert
        .push(server_floor(url, &rows, "floor_upsert", true).await?);
    Ok(())
}

/// How long SQLite takes to store `rows` in a plain table of a new file on
/// the same disk (the row columns, `id` the key; the native store's
/// pragmas; one transaction, one prepared INSERT per row): the local part
/// of what any client must do to receive them.
fn local_insert_floor(path: &Path, rows: &[SyncRow]) -> Result<Duration> {
    let def = todos_table();
    let conn = rusqlite::Connection::open(path)?;
    for pragma in crate::local::STORE_PRAGMAS {
        conn.prepare(pragma)?.query([])?.next()?;
    }
    let columns = def.row_columns();
    conn.execute_batch(&format!(
        "CREATE TABLE floor ({}, PRIMARY KEY (\"id\")) WITHOUT ROWID",
        def.row_column_list()
    ))?;
    let sql = format!(
        "INSERT INTO floor ({}) VALUES ({})",
        def.row_column_list(),
        vec!["?"; columns.len()].join(", ")
    );
    let t = Instant::now();
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare(&sql)?;
        for row in rows {
            let cells: Vec<rusqlite::types::Value> =
                row.to_cells().into_iter().map(plain).collect();
            stmt.execute(rusqlite::params_from_iter(cells))?;
        }
    }
    tx.commit()?;
    Ok(t.elapsed())
}

fn plain(v: SqlValue) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::Integer(i),
        SqlValue::Real(r) => Value::Real(r),
        SqlValue::Text(t) => Value::Text(t),
        SqlValue::Blob(b) => Value::Blob(b),
    }
}

/// How long tursodb takes to store `rows` in a scratch table `table` with
/// the same layout, in the push's batching (one transaction per
/// `push_batch_rows`, one statement per `rows_per_statement`), through
/// Erth's own Hrana client: as plain multi-row `INSERT`s, or (`upsert`) as
/// the push's own merge upsert (`Target::Server`, reading the server's
/// `_seq` counter once per statement), without the push's counter bump and
/// read-back.
async fn server_floor(url: &str, rows: &[SyncRow], table: &str, upsert: bool) -> Result<Duration> {
    let def = TableDef::new(table, todos_table().columns).map_err(anyhow::Error::msg)?;
    let config = Config::default();
    let (endpoint, _) = Endpoint::parse(url, false)?;
    let client = HranaClient::new(
        endpoint,
        None,
        Arc::new(NativeTransport::new(Duration::from_secs(30))?),
        RetryPolicy::default(),
    );
    client
        .execute(Statement::plain(def.create_table_sql()))
        .await?;
    let tuple = format!("({})", vec!["?"; def.row_columns().len()].join(", "));
    let t = Instant::now();
    for batch in rows.chunks(config.push_batch_rows) {
        let stmts = batch
            .chunks(config.rows_per_statement)
            .map(|chunk| {
                if upsert {
                    let seqs: Vec<i64> = (1..=chunk.len() as i64).collect();
                    return merge::upsert(&def, chunk, &seqs, Target::Server);
                }
                Statement::new(
                    format!(
                        "INSERT INTO {table} ({}) VALUES {}",
                        def.row_column_list(),
                        vec![tuple.as_str(); chunk.len()].join(", ")
                    ),
                    chunk.iter().flat_map(SyncRow::to_cells).collect(),
                )
            })
            .collect();
        let (steps, commit) = hrana::transaction(stmts);
        let out = client.batch(&steps).await?;
        if out.results.get(commit).is_none_or(Option::is_none) {
            bail!(
                "the floor transaction did not commit: {:?}",
                out.first_error()
            );
        }
    }
    Ok(t.elapsed())
}

fn expect(what: &str, got: u64, want: usize) -> Result<()> {
    if got != want as u64 {
        bail!("{what} {got} rows, expected {want}");
    }
    Ok(())
}
