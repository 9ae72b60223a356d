//! Comparison 1: the original Python design (SQLModel over SQLite, one
//! session and commit per operation, hand-written UUIDv7) against Erth's
//! native core doing the same work on a file database.
//!
//! The Python side runs `baselines/original_design.py` twice: as the original
//! (SQLAlchemy's SQLite defaults: rollback journal, `synchronous=FULL`) and
//! with Erth's journal settings (WAL, `synchronous=NORMAL`), which separates
//! the ORM's cost from the cost of a stricter fsync policy.

use crate::report::{Check, Row, Section};
use crate::stats::{count, duration, speedup, times, times1, Samples};
use crate::{nums, run_json, script, text, Ctx};
use anyhow::{bail, Context as _, Result};
use erth_core::{Config, Database};
use std::process::Command;
use std::time::Instant;

const SCRIPT: &str = include_str!("../baselines/original_design.py");
const LIST_SIZES: [u64; 2] = [1_000, 10_000];

struct Params {
    ops: usize,
    list_reps: usize,
    ids: usize,
    id_reps: usize,
}

/// Raw samples of one side.
struct Side {
    add: Samples,
    /// Erth only: `Database::insert` (no read-back), and SQLite's floors
    /// for a one-row write and for reading the largest list.
    insert: Samples,
    floor: Samples,
    list_floor: Samples,
    delete: Samples,
    list: Vec<Samples>,
    /// Seconds per id, one sample per batch.
    id: Samples,
}

pub async fn run(ctx: &Ctx, title: &str) -> Result<Section> {
    let p = Params {
        ops: ctx.pick(300, 100),
        list_reps: ctx.pick(15, 5),
        ids: ctx.pick(100_000, 20_000),
        id_reps: 5,
    };
    let dir = tempfile::tempdir().context("temp dir")?;
    let py = script(dir.path(), "original_design.py", SCRIPT)?;

    let (original, versions) = python(ctx, &py, &p, false)?;
    let (original_wal, _) = python(ctx, &py, &p, true)?;
    let erth = erth(dir.path(), &p).await?;
    let raw_v7 = raw_now_v7(&p);

    let mut s = Section::new(title, "Erth Sync (native)", "original design");
    s.about = format!(
        "The original design re-created in Python 3 with SQLModel (`bench/baselines/original_design.py`): \
         one `Session` and one commit per operation, `refresh` after insert, ids from a hand-written UUIDv7 \
         (`time` + `os.urandom`), SQLAlchemy's SQLite defaults (rollback journal, `synchronous=FULL`). \
         Erth Sync: `Database::open_native` on a file (WAL, `synchronous=NORMAL`, durable against process \
         crashes), `add_todo`, `list_active_todos`, `delete_todo` (tombstone). \
         {} adds then {} deletes per side; lists over fresh databases of {} and {} live rows, {} runs each. \
         Python ran in its own process; Erth in this one. The Python versions: {}.",
        p.ops,
        p.ops,
        count(LIST_SIZES[0]),
        count(LIST_SIZES[1]),
        p.list_reps,
        versions
    );
    s.versions.push(format!("Python design: {versions}"));
    s.versions
        .push(format!("SQLite {} (bundled in Erth)", rusqlite::version()));

    let pair = |what: &str, ours: &Samples, theirs: &Samples| {
        Row::new(
            what,
            ours.summary(),
            theirs.summary(),
            speedup(ours.median(), theirs.median()),
        )
    };
    s.rows.push(pair("add_todo", &erth.add, &original.add));
    s.rows.push(Row::new(
        "`Database::insert` (the generic row API) for comparison",
        erth.insert.summary(),
        "",
        "",
    ));
    s.rows.push(Row::new(
        "SQLite's floor: a one-row INSERT transaction through rusqlite, same table, indexes and pragmas",
        erth.floor.summary(),
        "",
        "",
    ));
    s.rows.push(pair(
        "add_todo vs original on WAL + synchronous=NORMAL",
        &erth.add,
        &original_wal.add,
    ));
    for (i, n) in LIST_SIZES.iter().enumerate() {
        s.rows.push(pair(
            &format!("list_active_todos / get_active_todos, {} rows", count(*n)),
            &erth.list[i],
            &original.list[i],
        ));
    }
    s.rows.push(Row::new(
        format!(
            "SQLite's floor: the same {} live rows, newest first, into plain tuples via rusqlite",
            count(LIST_SIZES[1])
        ),
        erth.list_floor.summary(),
        "",
        "",
    ));
    s.rows.push(pair(
        "delete_todo / soft_delete_todo",
        &erth.delete,
        &original.delete,
    ));
    s.rows.push(pair(
        "delete vs original on WAL + synchronous=NORMAL",
        &erth.delete,
        &original_wal.delete,
    ));
    s.rows.push(Row::new(
        "new id: `erth_core::ids::new_id()` (text) vs hand-written uuid7()",
        duration(erth.id.median()),
        duration(original.id.median()),
        speedup(erth.id.median(), original.id.median()),
    ));
    s.rows.push(Row::new(
        "new id: `uuid::Uuid::now_v7()` (binary) vs hand-written uuid7()",
        duration(raw_v7.median()),
        duration(original.id.median()),
        speedup(raw_v7.median(), original.id.median()),
    ));
    s.notes.push(format!(
        "Per-id times are medians of {} batches of {} ids.",
        p.id_reps,
        count(p.ids as u64)
    ));

    let add = erth.add.median();
    s.checks.push(
        Check::new(
            "Local durable add median <= 50 µs (native)",
            duration(add),
            add <= 50e-6,
            format!(
            "An `add_todo` is one write transaction (the row plus the persisted clock). SQLite's \
             own floor on this machine, a prepared one-row INSERT transaction with the same table, \
             indexes and pragmas and no engine at all, took {}, so the engine's share \
             (validation, clock, statement building, converting the result) is about {}; on this \
             shared 2-core VM the floor alone uses most of the 50 µs.",
            duration(erth.floor.median()),
            duration((add - erth.floor.median()).max(0.0))
        ),
        )
        .value(add, duration),
    );
    // Replaces "add >= 50x faster than the original design" (issue 26): the
    // original's add is an fsync whose cost depends on the disk, so that
    // ratio measured the disk; the rusqlite floor runs on the same disk in
    // this process.
    let floor = erth.floor.median();
    s.checks.push(
        Check::new(
            "add <= 1.3x the rusqlite floor (a one-row INSERT transaction, same table, indexes and pragmas)",
            format!(
                "{:.2}x ({} vs {}); the original design: {} ({:.1}x slower than Erth)",
                add / floor,
                duration(add),
                duration(floor),
                duration(original.add.median()),
                original.add.median() / add
            ),
            add <= 1.3 * floor,
            format!(
                "The engine's share of an add is {} over SQLite's own one-row INSERT transaction: \
                 the clock read, tick and persist (one more row written in the same transaction), \
                 the insert through the view and its trigger (the row plus its per-column clocks \
                 and the pending mark), the id, and the todo built back from the row.",
                duration((add - floor).max(0.0))
            ),
        )
        .value(add / floor, times),
    );
    let ratio = original.list[1].median() / erth.list[1].median();
    s.checks.push(
        Check::new(
            "list_active over 10,000 rows >= 20x faster than get_active_todos",
            format!(
                "{ratio:.1}x ({} vs {})",
                duration(erth.list[1].median()),
                duration(original.list[1].median())
            ),
            ratio >= 20.0,
            format!(
            "SQLite alone needs {} to return the same 10,000 rows into plain tuples (the floor \
             row), so against this run's {} for the original no engine on SQLite could exceed \
             about {:.0}x; Erth adds {} on top of the floor.",
            duration(erth.list_floor.median()),
            duration(original.list[1].median()),
            original.list[1].median() / erth.list_floor.median(),
            duration((erth.list[1].median() - erth.list_floor.median()).max(0.0))
        ),
        )
        .value(ratio, times1),
    );
    Ok(s)
}

fn python(ctx: &Ctx, py: &std::path::Path, p: &Params, wal: bool) -> Result<(Side, String)> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let sizes: Vec<String> = LIST_SIZES.iter().map(u64::to_string).collect();
    let mut cmd = Command::new(&ctx.python);
    cmd.arg(py)
        .arg("--dir")
        .arg(dir.path())
        .args(["--ops", &p.ops.to_string()])
        .args(["--list-sizes", &sizes.join(",")])
        .args(["--list-reps", &p.list_reps.to_string()])
        .args(["--ids", &p.ids.to_string()])
        .args(["--id-reps", &p.id_reps.to_string()]);
    if wal {
        cmd.arg("--wal");
    }
    let v = run_json(&mut cmd, "original_design.py")?;
    let list = LIST_SIZES
        .iter()
        .map(|n| Ok(Samples::from_ms(nums(&v["list_ms"][n.to_string()])?)))
        .collect::<Result<Vec<_>>>()?;
    let mut id = Samples::new();
    for ns in nums(&v["id_ns"])? {
        id.push_secs(ns / 1e9);
    }
    let ver = &v["versions"];
    let versions = format!(
        "Python {}, SQLModel {}, SQLAlchemy {}, SQLite {}",
        text(ver, "python")?,
        text(ver, "sqlmodel")?,
        text(ver, "sqlalchemy")?,
        text(ver, "sqlite")?
    );
    Ok((
        Side {
            add: Samples::from_ms(nums(&v["add_ms"])?),
            insert: Samples::new(),
            floor: Samples::new(),
            list_floor: Samples::new(),
            delete: Samples::from_ms(nums(&v["delete_ms"])?),
            list,
            id,
        },
        versions,
    ))
}

async fn erth(dir: &std::path::Path, p: &Params) -> Result<Side> {
    let db = Database::open_native(dir.join("ops.db"), Config::default()).await?;
    for i in 0..5 {
        let t = db.add_todo(&format!("warm {i}")).await?;
        db.delete_todo(&t.id).await?;
    }
    let mut add = Samples::new();
    let mut ids = Vec::with_capacity(p.ops);
    for i in 0..p.ops {
        let t = Instant::now();
        let todo = db.add_todo(&format!("todo {i}")).await?;
        add.push(t.elapsed());
        ids.push(todo.id);
    }
    let mut insert = Samples::new();
    for i in 0..p.ops {
        let t = Instant::now();
        db.insert("todos", &[("title", format!("todo {i}").into())])
            .await?;
        insert.push(t.elapsed());
    }
    let mut delete = Samples::new();
    for id in &ids {
        let t = Instant::now();
        let deleted = db.delete_todo(id).await?;
        delete.push(t.elapsed());
        if !deleted {
            bail!("delete_todo({id}) found nothing");
        }
    }
    drop(db);
    let floor = sqlite_floor(&dir.join("floor.db"), p.ops)?;

    let mut list = Vec::new();
    for n in LIST_SIZES {
        let db = Database::open_native(dir.join(format!("list-{n}.db")), Config::default()).await?;
        for i in 0..n {
            db.insert("todos", &[("title", format!("todo {i}").into())])
                .await?;
        }
        db.list_active_todos().await?;
        let mut samples = Samples::new();
        for _ in 0..p.list_reps {
            let t = Instant::now();
            let todos = db.list_active_todos().await?;
            samples.push(t.elapsed());
            if todos.len() as u64 != n {
                bail!("list_active_todos returned {} of {n}", todos.len());
            }
        }
        list.push(samples);
    }

    let mut id = Samples::new();
    for _ in 0..p.id_reps {
        let t = Instant::now();
        for _ in 0..p.ids {
            std::hint::black_box(erth_core::ids::new_id());
        }
        id.push_secs(t.elapsed().as_secs_f64() / p.ids as f64);
    }
    let list_floor = list_floor(
        &dir.join(format!("list-{}.db", LIST_SIZES[1])),
        LIST_SIZES[1],
        p.list_reps,
    )?;
    Ok(Side {
        add,
        insert,
        floor,
        list_floor,
        delete,
        list,
        id,
    })
}

fn raw_now_v7(p: &Params) -> Samples {
    let mut s = Samples::new();
    for _ in 0..p.id_reps {
        let t = Instant::now();
        for _ in 0..p.ids {
            std::hint::black_box(uuid::Uuid::now_v7());
        }
        s.push_secs(t.elapsed().as_secs_f64() / p.ids as f64);
    }
    s
}

/// The cheapest durable one-row write SQLite offers here: a prepared
/// `INSERT` of a full todo row in its own `BEGIN IMMEDIATE` transaction, on
/// a file with Erth's table, indexes and pragmas, without the engine.
fn sqlite_floor(path: &std::path::Path, ops: usize) -> Result<Samples> {
    let def = erth_core::schema::todos_table();
    let conn = rusqlite::Connection::open(path)?;
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA locking_mode = EXCLUSIVE",
    ] {
        // Some pragmas answer with a row, some with none.
        conn.prepare(pragma)?.query([])?.next()?;
    }
    conn.execute_batch(&def.create_local_table_sql())?;
    for index in def.local_index_sql() {
        conn.execute_batch(&index)?;
    }
    let columns = def.row_columns();
    let sql = format!(
        "INSERT INTO {} ({}, _dirty) VALUES ({}, 1)",
        def.local_name(),
        def.row_column_list(),
        vec!["?"; columns.len()].join(", ")
    );
    let clock = "0190000000000000-0000000000000001";
    let mut samples = Samples::new();
    for i in 0..ops + 5 {
        let id = erth_core::ids::new_id();
        let title = format!("todo {i}");
        let t = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.prepare_cached(&sql)?.execute(rusqlite::params![
            id,
            title,
            0,
            0,
            1_767_225_600_000i64,
            1_767_225_600_000i64,
            clock,
            clock,
            clock
        ])?;
        conn.execute_batch("COMMIT")?;
        if i >= 5 {
            samples.push(t.elapsed());
        }
    }
    Ok(samples)
}

/// Reading the `n` live todos of Erth's database at `path`, newest first,
/// with rusqlite into plain tuples: what the list costs without the engine.
fn list_floor(path: &std::path::Path, n: u64, reps: usize) -> Result<Samples> {
    type Tuple = (String, String, i64, i64, i64);
    let conn = rusqlite::Connection::open(path)?;
    let mut stmt = conn.prepare(
        "SELECT id, title, is_completed, created_at, updated_at FROM _erth_rows_todos \
         WHERE is_deleted = 0 ORDER BY is_deleted, created_at DESC, id DESC",
    )?;
    let mut samples = Samples::new();
    for rep in 0..=reps {
        let t = Instant::now();
        let rows: Vec<Tuple> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if rep > 0 {
            samples.push(t.elapsed());
        }
        if rows.len() as u64 != n {
            bail!("the floor query returned {} of {n} rows", rows.len());
        }
    }
    Ok(samples)
}
