//! Comparison 6: the schema API's local paths against SQLite's own floor
//! (issue 13): app SQL through a synced table's view and its `INSTEAD OF`
//! triggers (`Database::transaction`, `Database::execute`) and a live
//! query's re-run (`Database::watch`), each beside the same work done with
//! rusqlite alone on a file with the engine table's columns and indexes.
//!
//! A section of its own rather than rows of section 1: section 1 compares
//! the todos API with the Python design; these rows compare the app-SQL
//! paths with SQLite, need no baseline process, and run alone with
//! `--only local`.
//!
//! The floors are what SQLite costs with no engine at all: one prepared
//! `INSERT` of the full engine row (id, user columns, timestamps, clocks,
//! `_dirty`) into a plain table created with the engine table's own DDL
//! and indexes, with the store's pragmas plus exclusive locking (as
//! section 1's floor). Values are built before the clock starts
//! on both sides; Erth's triggers additionally draw the ids (UUIDv7), the
//! floor draws them inside its loop too.
//!
//! A third bulk side splits Erth's cost: the same app INSERTs through the
//! engine's own view and `INSTEAD OF` trigger (`TableDef::view_sql`) on a
//! rusqlite connection whose engine functions are stubs, so the trigger
//! path's SQLite cost and the engine's Rust around it show apart.

use crate::report::{Check, Row, Section};
use crate::stats::{count, duration, factor, times, Samples};
use crate::Ctx;
use anyhow::{bail, Context as _, Result};
use erth_core::{Config, Database, Schema, SqlValue, Statement, TableDef};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The app's table: two text columns, two integers, one app index.
const SCHEMA: &str = r#"{"tables": {"notes": {
    "columns": {"title": {"type": "text", "notNull": true, "default": ""},
                "body": {"type": "text"},
                "priority": {"type": "integer", "notNull": true, "default": 0},
                "done": {"type": "integer", "notNull": true, "default": false}},
    "indexes": [["done", "priority"]]}}}"#;
/// How an app inserts a row: through the synced table's view.
const INSERT: &str = "INSERT INTO notes (title, body, priority, done) VALUES (?, ?, ?, ?)";
/// The live query: every live row, ordered (a sort over the whole table).
const WATCHED: &str = "SELECT id, title, priority, done FROM notes ORDER BY priority, id";
/// Rows of the bulk transaction and of the watched table.
const BULK_ROWS: usize = 10_000;
/// A fixed clock for the floor's clock columns (the engine's text format).
const FLOOR_CLOCK: &str = "0190000000000000-0000000000000001";
const FLOOR_MS: i64 = 1_767_225_600_000;
/// The native store's pragmas (`erth_core::store::sqlite::SqliteStore::open`).
pub const STORE_PRAGMAS: [&str; 4] = [
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
];

struct Params {
    /// Bulk transactions per side (after one unmeasured warm-up).
    bulk_reps: usize,
    /// One-row writes per side (after 20 unmeasured).
    ops: usize,
    /// Watched writes (after one unmeasured).
    watch_reps: usize,
}

/// One row's user values: title, body, priority, done.
fn values(rep: usize, i: usize) -> [SqlValue; 4] {
    [
        SqlValue::Text(format!("note {rep}-{i}")),
        SqlValue::Text("a body of a few words".into()),
        SqlValue::Integer((i % 5) as i64),
        SqlValue::Integer(0),
    ]
}

fn notes_def() -> Result<TableDef> {
    Schema::from_json(SCHEMA)?
        .tables
        .into_iter()
        .next()
        .context("the schema has no table")
}

async fn open(path: &Path) -> Result<Database> {
    Ok(Database::open_native(path, Config::default().with_schema_json(SCHEMA)?).await?)
}

pub async fn run(ctx: &Ctx, title: &str) -> Result<Section> {
    let p = Params {
        bulk_reps: ctx.pick(20, 3),
        ops: ctx.pick(500, 100),
        watch_reps: ctx.pick(50, 10),
    };
    let dir = tempfile::tempdir().context("temp dir")?;
    let dir = dir.path();

    let Bulk {
        erth: bulk,
        floor: bulk_floor,
        view: bulk_view,
    } = bulk(dir, p.bulk_reps).await?;
    let (one, one_floor) = one_row(dir, p.ops).await?;
    let watch = watch(&dir.join("watch.db"), p.watch_reps).await?;
    let watch_floor = &watch.floor;

    let mut s = Section::new(title, "Erth Sync (native)", "SQLite floor (rusqlite)");
    s.about = format!(
        "The app's own table through the schema API: `notes` (title, body, priority, done; an app \
         index on (done, priority)) declared with `Config::with_schema_json`, written with `{INSERT}` \
         through its view, whose `INSTEAD OF` trigger checks the id, clocks every column and marks \
         the row pending. Floors: rusqlite alone, one prepared `INSERT` of the full engine row into \
         a plain table made with the engine table's DDL and indexes (the store's pragmas: WAL, \
         `synchronous=NORMAL`, `temp_store=MEMORY`; plus exclusive locking), no triggers, no clock. Bulk: {} transactions of {} rows per side on \
         one growing table, the two sides taking turns (one warm-up each first). One-row writes: {} per side. Live query: `{WATCHED}` \
         over {} rows, {} one-row inserts, each timed from the change event (right after the commit) \
         to the callback holding the new rows; its floor runs the same statement on the same file \
         through a second rusqlite connection into owned values, taking turns with `query` \
         before the writes.",
        p.bulk_reps,
        count(BULK_ROWS as u64),
        p.ops,
        count(BULK_ROWS as u64),
        p.watch_reps,
    );
    s.versions
        .push(format!("SQLite {} (bundled in Erth)", rusqlite::version()));

    let pair = |what: &str, ours: &Samples, floor: &Samples| {
        Row::new(
            what,
            ours.summary(),
            floor.summary(),
            factor(ours.median(), floor.median()),
        )
    };
    s.rows.push(pair(
        &format!(
            "`transaction` of {} one-row INSERTs through the view (one transaction)",
            count(BULK_ROWS as u64)
        ),
        &bulk,
        &bulk_floor,
    ));
    s.rows.push(pair(
        "the same through the engine's view and trigger in SQLite alone (its functions as stubs)",
        &bulk_view,
        &bulk_floor,
    ));
    s.rows.push(pair(
        "`execute` of a one-row INSERT through the view (its own transaction)",
        &one,
        &one_floor,
    ));
    s.rows.push(pair(
        &format!(
            "`watch` over {} rows: change event to callback with the new rows",
            count(BULK_ROWS as u64)
        ),
        &watch.event_to_callback,
        watch_floor,
    ));
    s.rows.push(pair(
        "`watch`: from calling `execute` to the callback (write included)",
        &watch.execute_to_callback,
        watch_floor,
    ));
    s.rows.push(pair(
        "`query` of the watched statement (what each re-run reads)",
        &watch.query,
        &watch.query_floor,
    ));
    s.notes.push(format!(
        "Per-row cost of the bulk transaction: Erth {} vs the floor {}.",
        duration(bulk.median() / BULK_ROWS as f64),
        duration(bulk_floor.median() / BULK_ROWS as f64)
    ));
    s.notes
        .push("The ratio column is Erth's median over the floor's (1.00x: no engine cost).".into());
    s.notes.push(format!(
        "Where the bulk time goes, per row: the plain INSERT {}; the app's INSERT through the \
         engine's view and trigger in SQLite alone {} (+{}: the trigger's id probe, engine \
         functions, value check and the statement journal SQLite keeps for a statement that runs \
         a trigger); Erth {} (+{}: the engine's Rust around it: authorizer and change capture \
         per statement, the clock read and persisted, the changed rows' ids read back, the event).",
        duration(bulk_floor.median() / BULK_ROWS as f64),
        duration(bulk_view.median() / BULK_ROWS as f64),
        duration((bulk_view.median() - bulk_floor.median()).max(0.0) / BULK_ROWS as f64),
        duration(bulk.median() / BULK_ROWS as f64),
        duration((bulk.median() - bulk_view.median()).max(0.0) / BULK_ROWS as f64),
    ));

    let ratio = bulk.median() / bulk_floor.median();
    s.checks.push(
        Check::new(
            format!(
                "bulk `transaction` of {} rows within 2x of rusqlite",
                count(BULK_ROWS as u64)
            ),
            format!(
                "{ratio:.2}x ({} vs floor {})",
                duration(bulk.median()),
                duration(bulk_floor.median())
            ),
            ratio <= 2.0,
            format!(
                "Per row: Erth {} vs floor {}. The same INSERTs through the engine's view and \
             trigger in SQLite alone (the engine's functions as stubs) took {} per row: the \
             trigger path itself (an id probe, the engine row's INSERT into five b-trees, a \
             value check reading the row back, and the statement journal SQLite keeps for every \
             statement that runs a trigger) is {} of the {} Erth adds; the engine's Rust around \
             it (authorizer, change capture, id lookup, event) the rest, {}.",
                duration(bulk.median() / BULK_ROWS as f64),
                duration(bulk_floor.median() / BULK_ROWS as f64),
                duration(bulk_view.median() / BULK_ROWS as f64),
                duration((bulk_view.median() - bulk_floor.median()).max(0.0)),
                duration((bulk.median() - bulk_floor.median()).max(0.0)),
                duration((bulk.median() - bulk_view.median()).max(0.0)),
            ),
        )
        .value(ratio, times),
    );
    let one_median = one.median();
    s.checks.push(
        Check::new(
            "`execute` of a one-row INSERT through the view: median <= 50 µs (native), as add",
            format!(
                "{} (floor {}, {})",
                duration(one_median),
                duration(one_floor.median()),
                factor(one_median, one_floor.median())
            ),
            one_median <= 50e-6,
            format!(
                "SQLite's own floor for a one-row INSERT transaction on this table took {}; the \
             engine's share (clock read and persist, trigger, change lookup, event) is about {}.",
                duration(one_floor.median()),
                duration((one_median - one_floor.median()).max(0.0))
            ),
        )
        .value(one_median, duration),
    );
    Ok(s)
}

/// `Database::transaction` of `BULK_ROWS` one-row INSERTs through the view
/// and the floor's one prepared INSERT of as many rows in one transaction,
/// taking turns (the machine is shared: both sides see the same load).
async fn bulk(dir: &Path, reps: usize) -> Result<Bulk> {
    let db = open(&dir.join("bulk.db")).await?;
    let (conn, sql) = floor_conn(&dir.join("bulk-floor.db"))?;
    let view_conn = view_floor_conn(&dir.join("bulk-view.db"))?;
    let (mut erth, mut floor, mut view) = (Samples::new(), Samples::new(), Samples::new());
    for rep in 0..=reps {
        let stmts: Vec<Statement> = (0..BULK_ROWS)
            .map(|i| Statement::new(INSERT, values(rep, i).to_vec()))
            .collect();
        let t = Instant::now();
        let out = db.transaction(&stmts).await?;
        let elapsed = t.elapsed();
        if out.len() != BULK_ROWS || out.iter().any(|r| r.rows_affected != 1) {
            bail!("the bulk transaction did not insert {BULK_ROWS} rows one by one");
        }
        if rep > 0 {
            erth.push(elapsed);
        }

        let rows: Vec<[SqlValue; 4]> = (0..BULK_ROWS).map(|i| values(rep, i)).collect();
        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut stmt = conn.prepare_cached(&sql)?;
        for v in &rows {
            floor_insert(&mut stmt, v)?;
        }
        drop(stmt);
        conn.execute_batch("COMMIT")?;
        if rep > 0 {
            floor.push(t.elapsed());
        }

        let t = Instant::now();
        view_conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut stmt = view_conn.prepare_cached(INSERT)?;
        for v in &rows {
            stmt.execute(rusqlite::params_from_iter(v.iter().map(value_ref)))?;
        }
        drop(stmt);
        view_conn.execute_batch("COMMIT")?;
        if rep > 0 {
            view.push(t.elapsed());
        }
    }
    let want = ((reps + 1) * BULK_ROWS) as i64;
    let live = db.query("SELECT count(*) FROM notes", &[]).await?;
    if live.rows.first().and_then(|r| r.first()) != Some(&SqlValue::Integer(want)) {
        bail!("after the bulk transactions notes holds {:?}", live.rows);
    }
    let through_view: i64 = view_conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))?;
    if through_view != want {
        bail!("the view floor's notes holds {through_view} rows, not {want}");
    }
    Ok(Bulk { erth, floor, view })
}

/// The bulk samples of the three sides.
struct Bulk {
    erth: Samples,
    /// One prepared INSERT into the plain table.
    floor: Samples,
    /// The app's INSERT through the engine's own view and trigger, SQLite alone.
    view: Samples,
}

fn value_ref(v: &SqlValue) -> rusqlite::types::ToSqlOutput<'_> {
    use rusqlite::types::ValueRef;
    rusqlite::types::ToSqlOutput::Borrowed(match v {
        SqlValue::Null => ValueRef::Null,
        SqlValue::Integer(i) => ValueRef::Integer(*i),
        SqlValue::Real(r) => ValueRef::Real(*r),
        SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
        SqlValue::Blob(b) => ValueRef::Blob(b),
    })
}

/// The floor's file with the engine's view and `INSTEAD OF` triggers
/// (`TableDef::view_sql`) over it, and the engine's SQL functions as
/// stubs: a fixed clock and time, ids from `erth_core::ids::new_id`. What
/// the trigger path costs in SQLite, without the engine's Rust around it.
fn view_floor_conn(path: &Path) -> Result<rusqlite::Connection> {
    use rusqlite::functions::FunctionFlags;
    let (conn, _) = floor_conn(path)?;
    let flags = FunctionFlags::SQLITE_UTF8;
    conn.create_scalar_function("erth_clock", 0, flags, |_| Ok(FLOOR_CLOCK))?;
    conn.create_scalar_function("erth_clock_after", 1, flags, |_| Ok(FLOOR_CLOCK))?;
    conn.create_scalar_function("erth_now_ms", 0, flags, |_| Ok(FLOOR_MS))?;
    conn.create_scalar_function("erth_new_id", 1, flags, |ctx| {
        Ok(ctx
            .get::<Option<String>>(0)?
            .unwrap_or_else(erth_core::ids::new_id))
    })?;
    // The replica's state, which the view reads (whether a first pull's
    // rows show).
    conn.execute_batch(erth_core::schema::local::STATE_TABLE_SQL)?;
    for (_, sql) in notes_def()?.view_sql() {
        conn.execute_batch(&sql)?;
    }
    Ok(conn)
}

/// `Database::execute` of one INSERT through the view and the floor's
/// one-row INSERT transaction, taking turns, `ops` times each.
async fn one_row(dir: &Path, ops: usize) -> Result<(Samples, Samples)> {
    let db = open(&dir.join("one.db")).await?;
    let (conn, sql) = floor_conn(&dir.join("one-floor.db"))?;
    let (mut erth, mut floor) = (Samples::new(), Samples::new());
    for i in 0..ops + 20 {
        let args = values(0, i);
        let t = Instant::now();
        let out = db.execute(INSERT, &args).await?;
        let elapsed = t.elapsed();
        if out.rows_affected != 1 {
            bail!("execute inserted {} rows", out.rows_affected);
        }
        if i >= 20 {
            erth.push(elapsed);
        }

        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        floor_insert(&mut conn.prepare_cached(&sql)?, &args)?;
        conn.execute_batch("COMMIT")?;
        if i >= 20 {
            floor.push(t.elapsed());
        }
    }
    Ok((erth, floor))
}

/// A file with the engine table's DDL and indexes under rusqlite alone, and
/// the floor's INSERT of a full engine row.
fn floor_conn(path: &Path) -> Result<(rusqlite::Connection, String)> {
    let def = notes_def()?;
    let conn = rusqlite::Connection::open(path)?;
    for pragma in STORE_PRAGMAS
        .iter()
        .chain(&["PRAGMA locking_mode = EXCLUSIVE"])
    {
        // Some pragmas answer with a row, some with none.
        conn.prepare(pragma)?.query([])?.next()?;
    }
    conn.execute_batch(&def.create_local_table_sql())?;
    for index in def.local_index_sql() {
        conn.execute_batch(&index)?;
    }
    let columns = def.row_columns();
    // id, 4 user columns, is_deleted, created_at, updated_at, 5 clocks.
    if columns.len() != 13 {
        bail!("the floor binds 13 columns; the engine row has {columns:?}");
    }
    let sql = format!(
        "INSERT INTO {} ({}, \"_seq\", \"_dirty\") VALUES ({}, NULL, 1)",
        def.local_name(),
        def.row_column_list(),
        vec!["?"; columns.len()].join(", ")
    );
    Ok((conn, sql))
}

/// Binds one full engine row to the floor's prepared INSERT and runs it.
fn floor_insert(stmt: &mut rusqlite::CachedStatement<'_>, v: &[SqlValue; 4]) -> Result<()> {
    let text = |v: &SqlValue| v.as_str().map(str::to_owned);
    let int = |v: &SqlValue| v.as_i64();
    let c = FLOOR_CLOCK;
    stmt.execute(rusqlite::params![
        erth_core::ids::new_id(),
        text(&v[0]),
        text(&v[1]),
        int(&v[2]),
        int(&v[3]),
        0,
        FLOOR_MS,
        FLOOR_MS,
        c,
        c,
        c,
        c,
        c
    ])?;
    Ok(())
}

struct Watched {
    event_to_callback: Samples,
    execute_to_callback: Samples,
    query: Samples,
    /// The floor, taking turns with `query`.
    query_floor: Samples,
    /// The floor, taking turns with the watched writes (after each one,
    /// over the same rows the callback got).
    floor: Samples,
}

/// A live query over `BULK_ROWS` rows; each of `reps` one-row inserts is
/// timed from the change event to the callback delivering the new rows.
/// `Database::query` of the statement and its floor take turns before; the
/// floor runs again after each watched write.
async fn watch(path: &Path, reps: usize) -> Result<Watched> {
    let db = open(path).await?;
    let seed: Vec<Statement> = (0..BULK_ROWS)
        .map(|i| Statement::new(INSERT, values(0, i).to_vec()))
        .collect();
    db.transaction(&seed).await?;

    // Another connection reads the same file (WAL: readers share it).
    let conn = rusqlite::Connection::open(path)?;
    for pragma in STORE_PRAGMAS {
        conn.prepare(pragma)?.query([])?.next()?;
    }
    let mut floor_stmt = conn.prepare(WATCHED)?;
    let mut query = Samples::new();
    let mut query_floor = Samples::new();
    for rep in 0..=reps {
        let t = Instant::now();
        let rows = db.query(WATCHED, &[]).await?;
        if rep > 0 {
            query.push(t.elapsed());
        }
        if rows.rows.len() != BULK_ROWS {
            bail!(
                "the watched query read {} of {BULK_ROWS} rows",
                rows.rows.len()
            );
        }
        let t = Instant::now();
        let n = floor_query(&mut floor_stmt)?;
        if rep > 0 {
            query_floor.push(t.elapsed());
        }
        if n != BULK_ROWS {
            bail!("the floor query read {n} of {BULK_ROWS} rows");
        }
    }

    // Listeners run in the order they subscribed: this one hears the
    // change before the live query re-runs.
    let event_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let e = event_at.clone();
    let _events = db.subscribe(Arc::new(move |_| {
        *e.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }));
    let delivered: Arc<Mutex<Option<(Instant, usize)>>> = Arc::default();
    let d = delivered.clone();
    let live = db.watch(
        WATCHED,
        &[],
        Arc::new(move |rows| {
            *d.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), rows.rows.len()));
        }),
    )?;
    let take = |m: &Mutex<Option<Instant>>| m.lock().unwrap_or_else(|p| p.into_inner()).take();
    delivered
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .context("the live query did not deliver its first rows")?;
    let mut event_to_callback = Samples::new();
    let mut execute_to_callback = Samples::new();
    let mut floor = Samples::new();
    for rep in 0..=reps {
        let args = values(1, rep);
        let t = Instant::now();
        db.execute(INSERT, &args).await?;
        let (at, n) = delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .context("the live query did not call back after a write")?;
        let event = take(&event_at).context("no change event after a write")?;
        if n != BULK_ROWS + rep + 1 {
            bail!(
                "the live query delivered {n} rows, not {}",
                BULK_ROWS + rep + 1
            );
        }
        let started = Instant::now();
        let floor_rows = floor_query(&mut floor_stmt)?;
        let floor_elapsed = started.elapsed();
        if floor_rows != n {
            bail!("the floor query read {floor_rows} rows, the live query {n}");
        }
        if rep > 0 {
            event_to_callback.push(at.duration_since(event));
            execute_to_callback.push(at.duration_since(t));
            floor.push(floor_elapsed);
        }
    }
    drop(live);
    Ok(Watched {
        event_to_callback,
        execute_to_callback,
        query,
        query_floor,
        floor,
    })
}

/// The watched statement through rusqlite into owned values (what a
/// generic result holds); returns how many rows it read.
fn floor_query(stmt: &mut rusqlite::Statement<'_>) -> Result<usize> {
    let n = stmt.column_count();
    let rows: Vec<Vec<rusqlite::types::Value>> = stmt
        .query_map([], |r| (0..n).map(|i| r.get(i)).collect())?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows.len())
}
