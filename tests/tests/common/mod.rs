//! Shared pieces of the fault suites: a fleet of replicas doing random todo
//! operations (optionally each on its own skewed clock), a ledger of every
//! acknowledged local write kept outside the databases, and the checks that
//! the fleet converged to exactly what the ledger says.

#![allow(dead_code, clippy::unwrap_used)] // each suite uses a subset; test code

use erth_core::hlc::{Clock, SystemClock, Timestamp};
use erth_core::row::SyncRow;
use erth_core::store::sqlite::SqliteStore;
use erth_core::transport::native::NativeTransport;
use erth_core::{Config, Database, ErrorKind, SqlValue};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
    open_with_clock(dir, name, url, token, config, Arc::new(SystemClock)).await
}

/// [`open`] with the replica reading time from `clock`.
pub async fn open_with_clock(
    dir: &Path,
    name: &str,
    url: &str,
    token: Option<&str>,
    config: Config,
    clock: Arc<dyn Clock>,
) -> Database {
    let config = Config {
        url: Some(url.to_owned()),
        auth_token: token.map(str::to_owned),
        ..config
    };
    let store = SqliteStore::open(dir.join(format!("{name}.db"))).unwrap();
    let transport = NativeTransport::new(Duration::from_millis(config.request_timeout_ms)).unwrap();
    Database::open(Arc::new(store), Arc::new(transport), clock, config)
        .await
        .unwrap()
}

/// A wall clock that is `offset_ms` off and runs at `rate_permille` / 1000
/// of real speed (counted from when it was made).
#[derive(Debug)]
pub struct SkewedClock {
    start: u64,
    offset_ms: i64,
    rate_permille: u64,
}

impl SkewedClock {
    pub fn new(offset_ms: i64, rate_permille: u64) -> SkewedClock {
        SkewedClock {
            start: SystemClock.now_ms(),
            offset_ms,
            rate_permille,
        }
    }
}

impl Clock for SkewedClock {
    fn now_ms(&self) -> u64 {
        let elapsed = SystemClock.now_ms().saturating_sub(self.start);
        let local = self.start + elapsed * self.rate_permille / 1000;
        local.saturating_add_signed(self.offset_ms)
    }
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

/// The column a ledger entry is about: 0 `title`, 1 `is_completed`, 2 `is_deleted`.
const COLUMNS: usize = 3;
/// `is_deleted`: merged as max (deletes win), not by clock.
const DELETED: usize = 2;

/// A column's clock and value in a row.
fn column(row: &SyncRow, col: usize) -> (Timestamp, SqlValue) {
    let value = if col < 2 {
        row.values[col].clone()
    } else {
        SqlValue::from(row.is_deleted)
    };
    (row.clocks[col], value)
}

/// Every acknowledged local write, kept by the test: the ids it added, and
/// per (id, column) the newest write's clock (read from the replica that
/// made it) and the value the test asked for; for `is_deleted` the newest
/// clock and whether any write deleted the row (deletes win, whatever
/// their clock: a replica whose clock is held at the drift bound can
/// delete a row whose clocks are beyond it).
#[derive(Default)]
pub struct Ledger {
    ids: BTreeSet<String>,
    writes: BTreeMap<(String, usize), (Timestamp, SqlValue)>,
    /// Local writes whose row did not show the value just written.
    mismatches: Vec<String>,
    pub ops: u64,
}

impl Ledger {
    /// Records a successful write of `asked` (column, value) to row `id` on `db`.
    pub async fn record(&mut self, db: &Database, id: &str, asked: &[(usize, SqlValue)]) {
        self.ops += 1;
        let row = db.get_row("todos", id).await.unwrap().unwrap();
        for (col, value) in asked {
            let (clock, have) = column(&row, *col);
            if have != *value {
                self.mismatches.push(format!(
                    "row {id} column {col}: wrote {value:?}, the replica shows {have:?}"
                ));
            }
            let e = self
                .writes
                .entry((id.to_owned(), *col))
                .or_insert((clock, value.clone()));
            if *col == DELETED {
                // Deletes win: the value and its clock each merge as max.
                let deleted = e.1 == SqlValue::from(true) || *value == SqlValue::from(true);
                *e = (e.0.max(clock), SqlValue::from(deleted));
            } else if clock > e.0 {
                *e = (clock, value.clone());
            } else if clock == e.0 && *value != e.1 {
                self.mismatches.push(format!(
                    "row {id} column {col}: two writes with clock {clock}: {:?} and {value:?}",
                    e.1
                ));
            }
        }
    }

    /// Records a new row.
    pub async fn record_add(&mut self, db: &Database, id: &str, title: &str) {
        self.ids.insert(id.to_owned());
        let fresh = [
            (0, SqlValue::from(title)),
            (1, SqlValue::from(false)),
            (2, SqlValue::from(false)),
        ];
        self.record(db, id, &fresh).await;
    }
}

/// Does one random local operation on `db` (add, rename, toggle, delete,
/// including rows other replicas touch) and records it if it succeeded.
pub async fn random_op(
    rng: &mut StdRng,
    db: &Database,
    known: &mut Vec<String>,
    ledger: &mut Ledger,
) {
    let pick = |rng: &mut StdRng, known: &[String]| known[rng.random_range(0..known.len())].clone();
    let roll = rng.random_range(0..100);
    if known.is_empty() || roll < 25 {
        let title = format!("todo {}", rng.random::<u32>());
        let t = db.add_todo(&title).await.unwrap();
        known.push(t.id.clone());
        ledger.record_add(db, &t.id, &title).await;
        return;
    }
    let id = pick(rng, known);
    let (asked, result) = match roll {
        25..=54 => {
            let title = format!("title {}", rng.random::<u16>());
            let r = db.rename_todo(&id, &title).await.map(|_| true);
            ((0, SqlValue::from(title)), r)
        }
        55..=89 => {
            let done: bool = rng.random();
            let r = db.set_todo_completed(&id, done).await.map(|_| true);
            ((1, SqlValue::from(done)), r)
        }
        _ => ((2, SqlValue::from(true)), db.delete_todo(&id).await),
    };
    match result {
        Ok(true) => ledger.record(db, &id, &[asked]).await,
        Ok(false) => {}
        // The row is deleted here, or not pulled yet: a real app sees the same.
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => panic!("local op failed: {e}"),
    }
}

/// Checks the converged fleet: identical dumps, nothing pending, exactly the
/// ledger's rows (no lost and no phantom ids), and in every column exactly
/// the clock and value the ledger expects (not an older write, not a newer
/// clock nobody wrote; a tombstone's user columns cleared). Returns the number of divergences found (the caller
/// asserts 0).
pub async fn check(fleet: &[&Database], ledger: &Ledger) -> usize {
    let mut divergences = ledger.mismatches.len();
    for m in &ledger.mismatches {
        eprintln!("{m}");
    }
    let first = fleet[0].dump("todos").await.unwrap();
    for (i, db) in fleet.iter().enumerate().skip(1) {
        let dump = db.dump("todos").await.unwrap();
        if dump != first {
            let theirs: BTreeMap<&str, &SyncRow> =
                dump.iter().map(|r| (r.id.as_str(), r)).collect();
            let first_diff = first
                .iter()
                .find(|r| theirs.get(r.id.as_str()) != Some(r))
                .map(|r| format!("{r:?} vs {:?}", theirs.get(r.id.as_str())));
            eprintln!(
                "replica {i} differs from replica 0 ({} rows vs {}), first at {}",
                dump.len(),
                first.len(),
                first_diff.unwrap_or_else(|| "a row replica 0 lacks".into())
            );
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
    let rows: BTreeMap<&str, &SyncRow> = first.iter().map(|r| (r.id.as_str(), r)).collect();
    for id in rows.keys().filter(|id| !ledger.ids.contains(**id)) {
        eprintln!("row {id} was never added");
        divergences += 1;
    }
    for id in &ledger.ids {
        let Some(row) = rows.get(id.as_str()) else {
            eprintln!("row {id} lost");
            divergences += 1;
            continue;
        };
        let todos = erth_core::schema::todos_table();
        for col in 0..COLUMNS {
            let mut want = ledger.writes[&(id.clone(), col)].clone();
            if row.is_deleted && col < DELETED {
                // A tombstone keeps the newest clock but no user data.
                want.1 = todos.columns[col].cleared();
            }
            let want = &want;
            let have = column(row, col);
            if have != *want {
                eprintln!(
                    "row {id} column {col}: newest write {:?}@{} but the fleet holds {:?}@{}",
                    want.1, want.0, have.1, have.0
                );
                divergences += 1;
            }
        }
    }
    divergences
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
