//! Comparison 3: UUIDv7 against UUIDv4 text primary keys in SQLite — the
//! original design's claim that time-ordered ids insert faster and pack
//! tighter. Plain rusqlite on a file with Erth's settings (WAL,
//! `synchronous=NORMAL`, default page cache), the original `todos` layout,
//! ids generated before the clock starts; the time includes the final WAL
//! checkpoint, the size is the database file after it.

use crate::report::{Row, Section};
use crate::stats::{bytes, count, duration, factor, speedup, Samples};
use crate::Ctx;
use anyhow::{Context as _, Result};
use std::time::Instant;

const BATCH: usize = 1_000;

pub fn run(ctx: &Ctx, title: &str) -> Result<Section> {
    let sizes: Vec<usize> = ctx.pick(vec![200_000, 1_000_000], vec![200_000]);
    let mut s = Section::new(title, "UUIDv7 keys", "UUIDv4 keys");
    s.about = format!(
        "`todos(id TEXT PRIMARY KEY, title, is_completed, is_deleted, created_at, updated_at)` in a \
         fresh file per run (WAL, `synchronous=NORMAL`), rows inserted through one prepared statement, \
         either all in one transaction or in transactions of {} rows. v7 ids from \
         `erth_core::ids::new_id()`, v4 from `uuid::Uuid::new_v4()`, both canonical text, generated \
         beforehand. Time includes the closing `wal_checkpoint(TRUNCATE)`. 200,000 rows: median of {} \
         runs; 1,000,000 rows: one run.",
        count(BATCH as u64),
        ctx.pick(3, 1)
    );
    for n in sizes {
        let reps = if n > 200_000 { 1 } else { ctx.pick(3, 1) };
        eprintln!("erth-bench:   {} rows", count(n as u64));
        let v7: Vec<String> = (0..n).map(|_| erth_core::ids::new_id()).collect();
        let v4: Vec<String> = (0..n)
            .map(|_| uuid::Uuid::new_v4().hyphenated().to_string())
            .collect();
        for (mode, batch) in [("one transaction", n), ("batches of 1,000", BATCH)] {
            let mut time = [Samples::new(), Samples::new()];
            let mut size = [0u64; 2];
            let mut fill = [0f64; 2];
            for _ in 0..reps {
                for (k, ids) in [&v7, &v4].into_iter().enumerate() {
                    let (secs, file, used) = insert_run(ids, batch)?;
                    time[k].push_secs(secs);
                    size[k] = file;
                    fill[k] = used;
                }
            }
            let [t7, t4] = &time;
            s.rows.push(Row::new(
                format!("insert {} rows, {mode}: time", count(n as u64)),
                duration(t7.median()),
                duration(t4.median()),
                speedup(t7.median(), t4.median()),
            ));
            s.rows.push(Row::new(
                format!("insert {} rows, {mode}: file size", count(n as u64)),
                bytes(size[0]),
                bytes(size[1]),
                format!("v4 is {} of v7", factor(size[1] as f64, size[0] as f64)),
            ));
            s.rows.push(Row::new(
                format!(
                    "insert {} rows, {mode}: primary-key index pages in use",
                    count(n as u64)
                ),
                format!("{:.1}%", fill[0] * 100.0),
                format!("{:.1}%", fill[1] * 100.0),
                "",
            ));
        }
    }
    s.notes.push(
        "v7 ids arrive in key order, so every insert lands on the rightmost page of the key index, \
         which stays in the page cache; v4 ids land on random pages, so once the index outgrows \
         SQLite's page cache (2 MB by default) inserts turn into random page reads and writes, and \
         small transactions rewrite many scattered pages each. The file size barely differs: the \
         table itself is ordered by rowid either way, and SQLite's page balancing keeps randomly \
         filled index pages about as full as sequentially filled ones (see the page-use rows)."
            .into(),
    );
    Ok(s)
}

/// Inserts `ids` into a fresh database in transactions of `batch` rows;
/// returns (seconds, file bytes, share of the key index's page bytes in use).
fn insert_run(ids: &[String], batch: usize) -> Result<(f64, u64, f64)> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let path = dir.path().join("keys.db");
    let mut conn = rusqlite::Connection::open(&path).context("opening the database")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, \
         is_completed INTEGER NOT NULL DEFAULT 0, is_deleted INTEGER NOT NULL DEFAULT 0, \
         created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)",
    )?;
    let now = 1_767_225_600_000i64;
    let t = Instant::now();
    for (c, chunk) in ids.chunks(batch).enumerate() {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO todos (id, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
            )?;
            for (i, id) in chunk.iter().enumerate() {
                let title = format!("todo {}", c * batch + i);
                insert.execute(rusqlite::params![id, title, now])?;
            }
        }
        tx.commit()?;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let secs = t.elapsed().as_secs_f64();
    let (pages, unused): (i64, i64) = conn
        .query_row(
            "SELECT sum(pgsize), sum(unused) FROM dbstat WHERE name = 'sqlite_autoindex_todos_1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("reading page use from dbstat")?;
    drop(conn);
    let size = std::fs::metadata(&path)
        .with_context(|| format!("size of {}", path.display()))?
        .len();
    Ok((secs, size, 1.0 - unused as f64 / pages.max(1) as f64))
}
