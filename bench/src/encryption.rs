//! Section 9: what end-to-end encrypted columns cost. The same app table
//! (`notes`: title, body, n) with and without `"encrypted": true` on its
//! three columns, in the same run, taking turns: one-row inserts and a bulk
//! transaction (local; sealing happens at push, so these measure that the
//! local path is unchanged), the push of those rows to a fresh `tursodb`,
//! and a fresh device's first pull of them.

use crate::report::{Check, Row, Section};
use crate::stats::{self, count, Samples};
use crate::{start_server, Ctx};
use anyhow::{bail, Context, Result};
use erth_core::encrypted::ColumnKeys;
use erth_core::{Config, Database, SqlValue, Statement};
use std::path::Path;
use std::time::Instant;

fn schema(encrypted: bool) -> String {
    let e = if encrypted {
        r#", "encrypted": true"#
    } else {
        ""
    };
    format!(
        r#"{{"tables": {{"notes": {{"columns": {{
        "title": {{"type": "text", "notNull": true, "default": ""{e}}},
        "body": {{"type": "text"{e}}},
        "n": {{"type": "integer"{e}}}}}}}}}}}"#
    )
}

async fn open(path: &Path, url: &str, encrypted: bool) -> Result<Database> {
    let config = Config {
        url: Some(url.to_owned()),
        column_keys: encrypted
            .then(|| ColumnKeys::new(&[vec![0x5a; 32]]))
            .transpose()?,
        ..Config::default()
    }
    .with_schema_json(&schema(encrypted))?;
    Ok(Database::open_native(path, config).await?)
}

fn insert(i: u64) -> Statement {
    Statement::new(
        "INSERT INTO notes (title, body, n) VALUES (?, ?, ?)",
        vec![
            SqlValue::Text(format!("note number {i}")),
            SqlValue::Text(format!("a body of some length for the note numbered {i}")),
            SqlValue::Integer(i as i64),
        ],
    )
}

/// One mode's timings.
#[derive(Default)]
struct Mode {
    add: Samples,
    bulk: Samples,
    push: Samples,
    pull: Samples,
}

/// One round of one mode on a fresh server: `ops` one-row inserts, one
/// transaction of `rows` inserts, one push of them all, one fresh pull.
async fn round(dir: &Path, encrypted: bool, ops: u64, rows: u64, into: &mut Mode) -> Result<()> {
    let server = start_server(dir)?;
    let db = open(&dir.join("a.db"), server.url(), encrypted).await?;
    db.sync().await?;
    for i in 0..ops {
        let t = Instant::now();
        db.execute(&insert(i).sql, &insert(i).args).await?;
        into.add.push(t.elapsed());
    }
    let stmts: Vec<Statement> = (ops..ops + rows).map(insert).collect();
    let t = Instant::now();
    db.transaction(&stmts).await?;
    into.bulk.push(t.elapsed());
    let t = Instant::now();
    let pushed = db.sync().await?.pushed;
    into.push.push(t.elapsed());
    if pushed != ops + rows {
        bail!("pushed {pushed} of {} rows", ops + rows);
    }
    let fresh = open(&dir.join("b.db"), server.url(), encrypted).await?;
    let t = Instant::now();
    let pulled = fresh.sync().await?.pulled;
    into.pull.push(t.elapsed());
    if pulled != ops + rows {
        bail!("pulled {pulled} of {} rows", ops + rows);
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, title: &str) -> Result<Section> {
    let reps = ctx.pick(5, 2);
    let ops = ctx.pick(300, 50);
    let rows = ctx.pick(10_000, 2_000);
    let (mut on, mut off) = (Mode::default(), Mode::default());
    for rep in 0..reps {
        for encrypted in [rep % 2 == 0, rep % 2 == 1] {
            let dir = tempfile::tempdir().context("temp dir")?;
            let mode = if encrypted { &mut on } else { &mut off };
            round(dir.path(), encrypted, ops, rows, mode).await?;
        }
    }
    let mut s = Section::new(title, "encrypted columns", "the same columns in clear");
    s.about = format!(
        "An app table `notes` (title, body, n) declared twice: with its three columns \
         `\"encrypted\": true` (XChaCha20-Poly1305, one 32-byte key) and without. Each of {reps} \
         rounds runs both, taking turns, each on a fresh `tursodb --sync-server`: {} one-row \
         inserts through the view, one transaction of {} inserts, one `sync()` pushing them all, \
         and a fresh device's first `sync()` pulling them. Values are sealed at push and opened \
         at pull; the local file holds plaintext either way (encryption at rest is not built).",
        count(ops),
        count(rows)
    );
    let mut line = |what: &str, a: &Samples, b: &Samples| -> f64 {
        let ratio = a.median() / b.median();
        s.rows.push(Row::new(
            what,
            format!("{} (n={})", stats::duration(a.median()), a.len()),
            format!("{} (n={})", stats::duration(b.median()), b.len()),
            stats::times(ratio),
        ));
        ratio
    };
    let add = line("one-row insert (median)", &on.add, &off.add);
    let bulk = line(
        &format!("transaction of {} inserts", count(rows)),
        &on.bulk,
        &off.bulk,
    );
    let push = line(
        &format!("push of {} rows", count(ops + rows)),
        &on.push,
        &off.push,
    );
    let pull = line(
        &format!("fresh pull of {} rows", count(ops + rows)),
        &on.pull,
        &off.pull,
    );
    let check = |target: &str, ratio: f64, bound: f64, why: &str| {
        Check::new(target, stats::times(ratio), ratio <= bound, why).value(ratio, stats::times)
    };
    s.checks.push(check(
        "add with encrypted columns <= 1.3x the same add in clear (same run)",
        add,
        1.3,
        "sealing happens at push; a local insert takes the same path either way",
    ));
    s.checks.push(check(
        "bulk transaction with encrypted columns <= 1.3x in clear (same run)",
        bulk,
        1.3,
        "sealing happens at push; a local transaction takes the same path either way",
    ));
    s.checks.push(check(
        "fresh pull with encrypted columns <= 1.5x in clear (same run)",
        pull,
        1.5,
        "each value is opened (base64, XChaCha20-Poly1305, type check) before it is staged; sealed values are about 4/3 of the plaintext plus 63 bytes on the wire",
    ));
    s.notes.push(format!(
        "Push with encrypted columns: {} of the push in clear (each value sealed as the batch is encoded).",
        stats::times(push)
    ));
    Ok(s)
}
