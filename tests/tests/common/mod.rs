//! Shared pieces of the fault suites: a fleet of replicas doing random todo
//! operations, a record of every acknowledged local write, and the checks
//! that the fleet converged without losing anything.

#![allow(dead_code, clippy::unwrap_used)] // each suite uses a subset; test code

use erth_core::hlc::Timestamp;
use erth_core::{Config, Database, ErrorKind, SqlValue};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The seed: `ERTH_FAULTS_SEED` to replay a failure, else time-based.
pub fn seed() -> u64 {
    std::env::var("ERTH_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// 1 normally, 100 with `ERTH_FAULTS_LONG=1` (`cargo xtask test faults --long`).
pub fn scale() -> usize {
    if std::env::var("ERTH_FAULTS_LONG").is_ok_and(|v| v == "1") {
        100
    } else {
        1
    }
}

pub async fn open(
    dir: &Path,
    name: &str,
    url: &str,
    token: Option<&str>,
    config: Config,
) -> Database {
    let config = Config {
        url: Some(url.to_owned()),
        auth_token: token.map(str::to_owned),
        ..config
    };
    Database::open_native(dir.join(format!("{name}.db")), config)
        .await
        .unwrap()
}

/// Opens `n` replicas `r0..r{n-1}` on `url`.
pub async fn open_fleet(
    dir: &Path,
    n: usize,
    url: &str,
    token: Option<&str>,
    config: &Config,
) -> Vec<Database> {
    let mut fleet = Vec::with_capacity(n);
    for i in 0..n {
        fleet.push(open(dir, &format!("r{i}"), url, token, config.clone()).await);
    }
    fleet
}

/// Ids of the live todos a replica holds (what it may edit next).
pub async fn live_ids(db: &Database) -> Vec<String> {
    db.list_active_todos()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect()
}

/// The final clean round: everyone pushes, then everyone pulls. Returns the syncs made.
pub async fn final_round(fleet: &[Database]) -> usize {
    for _ in 0..2 {
        for db in fleet {
            db.sync().await.unwrap();
        }
    }
    2 * fleet.len()
}

/// Every acknowledged write: (id, column index) -> (clock, value); column 2 is `is_deleted`.
#[derive(Default)]
pub struct Ledger {
    writes: BTreeMap<(String, usize), (Timestamp, SqlValue)>,
    pub ops: u64,
}

impl Ledger {
    /// Records the row's current clocks/values after a successful local write.
    pub async fn record(&mut self, db: &Database, id: &str) {
        self.ops += 1;
        let row = db.get_row("todos", id).await.unwrap().unwrap();
        let mut cells = row.values.clone();
        cells.push(SqlValue::from(row.is_deleted));
        for (col, (clock, value)) in row.clocks.iter().zip(cells).enumerate() {
            let e = self
                .writes
                .entry((id.to_owned(), col))
                .or_insert((*clock, value.clone()));
            if *clock > e.0 {
                *e = (*clock, value);
            }
        }
    }
}

/// Does one random local operation on `db` (add, rename, toggle, delete,
/// including rows other replicas touch).
pub async fn random_op(
    rng: &mut StdRng,
    db: &Database,
    known: &mut Vec<String>,
    ledger: &mut Ledger,
) {
    let pick = |rng: &mut StdRng, known: &[String]| known[rng.random_range(0..known.len())].clone();
    let roll = rng.random_range(0..100);
    if known.is_empty() || roll < 25 {
        let t = db
            .add_todo(&format!("todo {}", rng.random::<u32>()))
            .await
            .unwrap();
        known.push(t.id.clone());
        ledger.record(db, &t.id).await;
        return;
    }
    let id = pick(rng, known);
    let result = match roll {
        25..=54 => db
            .rename_todo(&id, &format!("title {}", rng.random::<u16>()))
            .await
            .map(|_| true),
        55..=89 => db.set_todo_completed(&id, rng.random()).await.map(|_| true),
        _ => db.delete_todo(&id).await,
    };
    match result {
        Ok(true) => ledger.record(db, &id).await,
        Ok(false) => {}
        // The row is deleted here, or not pulled yet: a real app sees the same.
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => panic!("local op failed: {e}"),
    }
}

/// Checks the converged fleet: identical dumps, nothing pending, deletes
/// everywhere, and every column holds its newest acknowledged write.
/// Returns the number of divergences found (the caller asserts 0).
pub async fn check(fleet: &[&Database], ledger: &Ledger) -> usize {
    let mut divergences = 0;
    let first = fleet[0].dump("todos").await.unwrap();
    for (i, db) in fleet.iter().enumerate().skip(1) {
        if db.dump("todos").await.unwrap() != first {
            eprintln!("replica {i} differs from replica 0");
            divergences += 1;
        }
    }
    for db in fleet {
        let pending = db.status().await.unwrap().pending_changes;
        if pending != 0 {
            eprintln!("{pending} changes still pending");
            divergences += 1;
        }
    }
    let rows: HashMap<&str, _> = first.iter().map(|r| (r.id.as_str(), r)).collect();
    let ids: BTreeSet<&str> = ledger.writes.keys().map(|(id, _)| id.as_str()).collect();
    for id in ids {
        let Some(row) = rows.get(id) else {
            eprintln!("row {id} lost");
            divergences += 1;
            continue;
        };
        for col in 0..3 {
            let Some((clock, value)) = ledger.writes.get(&(id.to_owned(), col)) else {
                continue;
            };
            let (have_clock, have) = if col < 2 {
                (row.clocks[col], row.values[col].clone())
            } else {
                (row.clocks[2], SqlValue::from(row.is_deleted))
            };
            if have_clock < *clock || (have_clock == *clock && have != *value) {
                eprintln!("row {id} column {col}: newest write {value:?}@{clock} lost (have {have:?}@{have_clock})");
                divergences += 1;
            }
        }
        if ledger
            .writes
            .get(&(id.to_owned(), 2))
            .is_some_and(|(_, v)| *v == SqlValue::Integer(1))
            && !row.is_deleted
        {
            eprintln!("deleted row {id} is alive");
            divergences += 1;
        }
    }
    divergences
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
