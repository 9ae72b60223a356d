//! The merge-law cases, shared by the native property test
//! (`core/tests/merge_laws.rs`: proptest draws the seeds) and the wasm suite
//! (`bindings-wasm/tests/node.rs`: fixed seeds, run in Node on the wasm
//! SQLite). Both include this file with `#[path]`.
//!
//! A case is drawn from a seed so that it hits what real use hits and
//! unique-by-construction clocks never would:
//! - clocks from a tiny range (physical 0 (1970), 1..=3, a year ahead of
//!   2027 and the two largest 48-bit values, counters 0, 1 and 0xffff),
//!   every change with its own node, so equal `hlc`s are common and the
//!   node breaks the tie;
//! - a table with one column of every SQLite type, NULLs, and a column added
//!   by a migration: "old" changes come from replicas that do not know it
//!   (they write it with the old table's upsert; the oracle sees its
//!   default with the zero clock);
//! - multi-row statements (production merges several rows per statement),
//!   sometimes with one id twice;
//! - three replicas that exchange their merged states (associativity).

// Each including test uses its own subset.
#![allow(dead_code)]

use erth_core::hlc::{NodeId, Timestamp, MAX_PHYSICAL_MS};
use erth_core::merge::{self, Target, META_TABLE};
use erth_core::row::SyncRow;
use erth_core::schema::{ColumnDef, SqlType, TableDef};
use erth_core::store::Store;
use erth_core::{SqlValue, Statement};
use std::collections::{BTreeMap, BTreeSet};

/// A small deterministic generator (64-bit LCG), so native and wasm draw
/// the same case from the same seed.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }

    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// Index of the column a migration added, in [`table`]'s columns.
const ADDED: usize = 4;

/// The merged table: every SQLite type, nullable columns, and `added`
/// (a column a later migration added, with a default).
pub fn table() -> TableDef {
    let mut columns = old_table().columns;
    columns.push(ColumnDef::new("added", SqlType::Text).default_value("d"));
    TableDef::new("items", columns).unwrap()
}

/// [`table`] before the migration that added `added`.
pub fn old_table() -> TableDef {
    TableDef::new(
        "items",
        vec![
            ColumnDef::new("title", SqlType::Text),
            ColumnDef::new("n", SqlType::Integer).nullable(),
            ColumnDef::new("r", SqlType::Real).nullable(),
            ColumnDef::new("b", SqlType::Blob).nullable(),
        ],
    )
    .unwrap()
}

/// One change as a replica pushes it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The full row (for an old change: `added` at its default, zero clock).
    pub row: SyncRow,
    /// Written by a replica that does not know `added`.
    pub old: bool,
}

impl Change {
    /// The row as the replica that wrote it sends it.
    fn sent(&self) -> (SyncRow, TableDef) {
        if !self.old {
            return (self.row.clone(), table());
        }
        let mut row = self.row.clone();
        row.values.remove(ADDED);
        row.clocks.remove(ADDED);
        (row, old_table())
    }
}

/// A case: the changes, and how each replica receives them.
#[derive(Debug, Clone)]
pub struct Case {
    pub seed: u64,
    pub changes: Vec<Change>,
    /// Per replica: every change at least once, some twice, shuffled, cut
    /// into statements of 1 to 4 rows.
    pub deliveries: [Vec<Vec<usize>>; 3],
    /// Per replica, for the exchange: the changes it sees first (together
    /// they cover every change).
    pub shares: [Vec<usize>; 3],
}

const ZERO: Timestamp = Timestamp {
    hlc: 0,
    node: NodeId(0),
};

fn clock(rng: &mut Lcg, node: NodeId) -> Timestamp {
    // 1970 (0), small values, a device a year ahead of 2027, and the
    // 48-bit limit: merging must not care what the wall clocks said.
    let physical = rng.pick(&[
        0,
        1,
        2,
        3,
        1_830_000_000_000 + 365 * 86_400_000,
        MAX_PHYSICAL_MS - 1,
        MAX_PHYSICAL_MS,
    ]);
    let counter = rng.pick(&[0, 1, 0xffff]);
    Timestamp {
        hlc: (physical << 16) | counter,
        node,
    }
}

fn value(rng: &mut Lcg, col: usize) -> SqlValue {
    if (1..=3).contains(&col) && rng.chance(25) {
        return SqlValue::Null;
    }
    match col {
        0 => rng.pick(&["", "a", "b", "nul \u{0} é"]).into(),
        1 => SqlValue::Integer(rng.pick(&[0, -1, 7, i64::MAX, i64::MIN])),
        2 => SqlValue::Real(rng.pick(&[0.5, -2.0, 1e300, 0.1])),
        3 => SqlValue::Blob(rng.pick(&[vec![], vec![0], vec![0xff, 0, 1]])),
        _ => rng.pick(&["d", "x", "y"]).into(),
    }
}

impl Case {
    pub fn generate(seed: u64) -> Case {
        let rng = &mut Lcg(seed);
        let ids: Vec<String> = (0..3).map(|_| erth_core::ids::new_id()).collect();
        let n = 1 + rng.below(16) as usize;
        let width = table().columns.len();
        let changes: Vec<Change> = (0..n)
            .map(|k| {
                // Every change has its own node; half of them with the top bit set.
                let top = if rng.chance(50) { 1 << 63 } else { 0 };
                let node = NodeId((k as u64 + 1) | top);
                let old = rng.chance(25);
                let mut values: Vec<SqlValue> = (0..width).map(|c| value(rng, c)).collect();
                let mut clocks: Vec<Timestamp> = (0..=width).map(|_| clock(rng, node)).collect();
                if old {
                    values[ADDED] = "d".into();
                    clocks[ADDED] = ZERO;
                }
                let created_at = rng.below(5) as i64;
                let updated_at = clocks.iter().map(Timestamp::physical_ms).max().unwrap() as i64;
                Change {
                    row: SyncRow {
                        id: ids[rng.below(3) as usize].clone(),
                        values,
                        is_deleted: rng.chance(20),
                        created_at,
                        updated_at,
                        clocks,
                    },
                    old,
                }
            })
            .collect();
        let mut delivery = || {
            let mut order: Vec<usize> = (0..n).collect();
            for _ in 0..rng.below(n as u64 + 1) {
                order.push(rng.below(n as u64) as usize);
            }
            rng.shuffle(&mut order);
            let mut statements = Vec::new();
            let mut rest = &order[..];
            while !rest.is_empty() {
                let take = (1 + rng.below(4) as usize).min(rest.len());
                statements.push(rest[..take].to_vec());
                rest = &rest[take..];
            }
            statements
        };
        let deliveries = [delivery(), delivery(), delivery()];
        let mut shares: [Vec<usize>; 3] = Default::default();
        for k in 0..n {
            let owner = rng.below(3) as usize;
            for (r, share) in shares.iter_mut().enumerate() {
                if r == owner || rng.chance(30) {
                    share.push(k);
                }
            }
        }
        for share in &mut shares {
            rng.shuffle(share);
        }
        Case {
            seed,
            changes,
            deliveries,
            shares,
        }
    }

    fn rows<'a>(&'a self, order: impl IntoIterator<Item = &'a usize>) -> Vec<&'a SyncRow> {
        order.into_iter().map(|&i| &self.changes[i].row).collect()
    }
}

/// Merged state: id -> row.
pub type State = BTreeMap<String, SyncRow>;

/// Merges `rows` into `state` with the oracle; returns how many changed it.
fn oracle_apply<'a>(state: &mut State, rows: impl IntoIterator<Item = &'a SyncRow>) -> usize {
    let mut changed = 0;
    for r in rows {
        if let Some(m) = merge::merge(&table(), state.get(&r.id), r) {
            state.insert(r.id.clone(), m);
            changed += 1;
        }
    }
    changed
}

/// What the generated SQL does with one change, exactly: a change from a
/// replica that does not declare `added` is merged on the other columns
/// only (its upsert cannot name `added`), so such a tombstone leaves
/// `added` as it was, or at the column default for a new row, until a
/// merge that declares it clears it (rule 5). Returns whether it changed.
fn model_apply(state: &mut State, change: &Change) -> bool {
    if !change.old {
        return oracle_apply(state, [&change.row]) == 1;
    }
    let (sent, old_def) = change.sent();
    let project = |row: &SyncRow| {
        let mut r = row.clone();
        r.values.remove(ADDED);
        r.clocks.remove(ADDED);
        r
    };
    let existing = state.get(&sent.id).cloned();
    let Some(merged) = merge::merge(&old_def, existing.as_ref().map(project).as_ref(), &sent)
    else {
        return false;
    };
    let (added, clock) = match &existing {
        Some(e) => (e.values[ADDED].clone(), e.clocks[ADDED]),
        None => ("d".into(), ZERO),
    };
    let mut row = merged;
    row.values.insert(ADDED, added);
    row.clocks.insert(ADDED, clock);
    state.insert(row.id.clone(), row);
    true
}

/// `state` as a replica that declares every column holds it after merging
/// it: tombstones cleared.
pub fn cleared(state: &State) -> State {
    state
        .iter()
        .map(|(id, r)| {
            let r = if r.is_deleted {
                r.clone().cleared(&table())
            } else {
                r.clone()
            };
            (id.clone(), r)
        })
        .collect()
}

/// The oracle's state after `rows`, in that order.
pub fn oracle<'a>(rows: impl IntoIterator<Item = &'a SyncRow>) -> State {
    let mut state = State::new();
    oracle_apply(&mut state, rows);
    state
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// The laws, on the oracle alone: order, duplicates and grouping do not
/// matter; merging again changes nothing; per column the greatest
/// `(hlc, node)` wins; deletes win; `created_at` min, `updated_at` max.
pub fn check_oracle_laws(case: &Case) -> Result<(), String> {
    let seed = case.seed;
    let states: Vec<State> = case
        .deliveries
        .iter()
        .map(|d| oracle(case.rows(d.iter().flatten())))
        .collect();
    for (k, s) in states.iter().enumerate().skip(1) {
        ensure(*s == states[0], || {
            format!("seed {seed}: delivery {k} gives another state than delivery 0")
        })?;
    }
    let state = &states[0];
    // Idempotent: every change merged again is a no-op.
    for c in &case.changes {
        let again = merge::merge(&table(), state.get(&c.row.id), &c.row);
        ensure(again.is_none(), || {
            format!(
                "seed {seed}: merging {:?} again changed {again:?}",
                c.row.id
            )
        })?;
    }
    for (id, row) in state {
        let mine: Vec<&SyncRow> = case
            .changes
            .iter()
            .map(|c| &c.row)
            .filter(|r| &r.id == id)
            .collect();
        ensure(row.is_deleted == mine.iter().any(|r| r.is_deleted), || {
            format!("seed {seed}: {id}: delete did not win")
        })?;
        for col in 0..row.clocks.len() {
            let newest = mine.iter().max_by_key(|r| r.clocks[col]).unwrap();
            ensure(row.clocks[col] == newest.clocks[col], || {
                format!("seed {seed}: {id}: column {col} lost its newest clock")
            })?;
            if col < row.values.len() {
                // A tombstone keeps no user data, whatever wrote last.
                let want = if row.is_deleted {
                    table().columns[col].cleared()
                } else {
                    newest.values[col].clone()
                };
                ensure(row.values[col] == want, || {
                    format!("seed {seed}: {id}: column {col} is not the newest write (or cleared)")
                })?;
            }
        }
        let created = mine.iter().map(|r| r.created_at).min().unwrap();
        let updated = mine.iter().map(|r| r.updated_at).max().unwrap();
        ensure(
            row.created_at == created && row.updated_at == updated,
            || format!("seed {seed}: {id}: created_at/updated_at not min/max"),
        )?;
    }
    // Associative: merging merged states is merging everything.
    let shares: Vec<State> = case.shares.iter().map(|s| oracle(case.rows(s))).collect();
    let mut all = shares[0].clone();
    oracle_apply(&mut all, shares[1].values());
    oracle_apply(&mut all, shares[2].values());
    ensure(all == *state, || {
        format!("seed {seed}: merging the merged shares differs from merging every change")
    })
}

/// Opens a fresh, empty store.
pub type NewStore<'a> = &'a dyn Fn() -> Box<dyn Store>;

/// A replica (or the server) of [`table`] running the generated SQL.
struct SqlReplica {
    store: Box<dyn Store>,
    target: Target,
}

impl SqlReplica {
    /// Created directly with [`table`], or with [`old_table`] and then
    /// migrated the way the engine migrates.
    async fn new(new_store: NewStore<'_>, target: Target, migrated: bool) -> SqlReplica {
        let store = new_store();
        let first = if migrated { old_table() } else { table() };
        store
            .write(&[
                Statement::plain(first.create_table_sql()),
                Statement::plain(format!(
                    "CREATE TABLE \"{META_TABLE}\" (\"k\" TEXT PRIMARY KEY, \"v\" INTEGER NOT NULL)"
                )),
                Statement::plain(format!("INSERT INTO \"{META_TABLE}\" VALUES ('seq', 0)")),
            ])
            .await
            .unwrap();
        if migrated {
            let existing = store
                .query(&Statement::plain(table().probe_columns_sql(&table().name)))
                .await
                .unwrap()
                .columns;
            let alters = table().migration_sql(&table().name, &existing).unwrap();
            assert_eq!(
                alters.len(),
                2,
                "the migration adds the column and its clock"
            );
            let alters: Vec<Statement> = alters.into_iter().map(Statement::plain).collect();
            store.write(&alters).await.unwrap();
        }
        SqlReplica { store, target }
    }

    /// Merges `rows` in one multi-row statement (per table version, in
    /// order); returns how many rows the statements said they changed.
    async fn apply(&self, rows: &[(SyncRow, TableDef)]) -> usize {
        let mut changed = 0;
        let mut start = 0;
        while start < rows.len() {
            let def = &rows[start].1;
            let end = start
                + rows[start..]
                    .iter()
                    .take_while(|(_, d)| d.columns.len() == def.columns.len())
                    .count();
            let group: Vec<SyncRow> = rows[start..end].iter().map(|(r, _)| r.clone()).collect();
            let seqs: Vec<i64> = (1..=group.len() as i64).collect();
            let mut stmts = vec![merge::upsert(def, &group, &seqs, self.target)];
            if self.target == Target::Server {
                // The server's upsert returns nothing: SQLite counts the rows
                // it inserted or updated (a row twice in one statement, twice).
                stmts.push(Statement::plain("SELECT changes()"));
                stmts.push(Statement::plain(format!(
                    "UPDATE \"{META_TABLE}\" SET \"v\" = \"v\" + {} WHERE \"k\" = 'seq'",
                    group.len()
                )));
            }
            let out = self.store.write(&stmts).await.unwrap();
            changed += match self.target {
                Target::Server => out[1].rows[0][0].as_i64().unwrap() as usize,
                Target::Replica | Target::Staged | Target::Hidden => out[0].rows.len(),
            };
            start = end;
        }
        changed
    }

    async fn dump(&self) -> State {
        let def = table();
        self.store
            .query(&Statement::plain(format!(
                "SELECT {} FROM \"{}\" ORDER BY \"id\"",
                def.row_column_list(),
                def.name
            )))
            .await
            .unwrap()
            .rows
            .iter()
            .map(|c| SyncRow::from_cells(&def, c).unwrap())
            .map(|r| (r.id.clone(), r))
            .collect()
    }
}

/// The generated SQL against the oracle: three replicas (created with the
/// table; migrated, as a replica; migrated, as the server) each receive
/// every change in their own order, in multi-row statements. Each ends in
/// exactly the state of [`model_apply`] (the oracle, except that a
/// tombstone from a replica without `added` cannot clear `added`), each
/// statement reports exactly the rows the model says changed, and once a
/// replica that declares every column has merged it (tombstones cleared),
/// each holds the oracle's state.
pub async fn check_sql(case: &Case, new_store: NewStore<'_>) -> Result<(), String> {
    let seed = case.seed;
    let expected = oracle(case.rows(case.deliveries[0].iter().flatten()));
    let setups = [
        (Target::Replica, false),
        (Target::Replica, true),
        (Target::Server, true),
    ];
    for (k, (delivery, (target, migrated))) in case.deliveries.iter().zip(setups).enumerate() {
        let replica = SqlReplica::new(new_store, target, migrated).await;
        let mut model = State::new();
        for statement in delivery {
            let rows: Vec<(SyncRow, TableDef)> =
                statement.iter().map(|&i| case.changes[i].sent()).collect();
            let changed = replica.apply(&rows).await;
            let want = statement
                .iter()
                .filter(|&&i| model_apply(&mut model, &case.changes[i]))
                .count();
            ensure(changed == want, || {
                format!("seed {seed}: replica {k} ({target:?}): a statement changed {changed} rows, the model {want}")
            })?;
        }
        let got = replica.dump().await;
        ensure(got == model, || {
            format!("seed {seed}: replica {k} ({target:?}, migrated {migrated}) differs from the model:\n  sql   {got:?}\n  model {model:?}")
        })?;
        ensure(cleared(&got) == expected, || {
            format!("seed {seed}: replica {k} ({target:?}, migrated {migrated}) differs from the oracle:\n  sql    {got:?}\n  oracle {expected:?}")
        })?;
    }
    Ok(())
}

/// Associativity in SQL: three replicas merge their share of the changes,
/// then pass their merged states around (A to B, B to C, C to A, A to B),
/// the way pulls spread rows. After every pass the receiver holds the
/// oracle's merge of everything it has seen (tombstones cleared, see
/// [`cleared`]); at the end all three hold the
/// merge of every change.
pub async fn check_sql_exchange(case: &Case, new_store: NewStore<'_>) -> Result<(), String> {
    let seed = case.seed;
    let mut replicas = Vec::new();
    let mut seen: Vec<BTreeSet<usize>> = Vec::new();
    for share in &case.shares {
        let replica = SqlReplica::new(new_store, Target::Replica, true).await;
        let rows: Vec<(SyncRow, TableDef)> =
            share.iter().map(|&i| case.changes[i].sent()).collect();
        for statement in rows.chunks(3) {
            replica.apply(statement).await;
        }
        replicas.push(replica);
        seen.push(share.iter().copied().collect());
    }
    for (from, to) in [(0, 1), (1, 2), (2, 0), (0, 1)] {
        let state = replicas[from].dump().await;
        let rows: Vec<(SyncRow, TableDef)> = state.into_values().map(|r| (r, table())).collect();
        for statement in rows.chunks(2) {
            replicas[to].apply(statement).await;
        }
        let union: BTreeSet<usize> = seen[from].union(&seen[to]).copied().collect();
        seen[to] = union;
        let got = cleared(&replicas[to].dump().await);
        let want = oracle(case.rows(&seen[to]));
        ensure(got == want, || {
            format!("seed {seed}: replica {to} after merging replica {from}'s state differs from the oracle:\n  sql    {got:?}\n  oracle {want:?}")
        })?;
    }
    let everything = oracle(case.rows(case.deliveries[0].iter().flatten()));
    for (k, replica) in replicas.iter().enumerate() {
        let got = cleared(&replica.dump().await);
        ensure(got == everything, || {
            format!("seed {seed}: replica {k} did not end with every change merged")
        })?;
    }
    Ok(())
}

/// Merges `rows` one statement each, in order, into a fresh replica of
/// [`table`]; returns its state (for hand-written scenarios).
pub async fn merged_in_sql(rows: &[SyncRow], new_store: NewStore<'_>) -> State {
    let replica = SqlReplica::new(new_store, Target::Replica, false).await;
    for r in rows {
        replica.apply(&[(r.clone(), table())]).await;
    }
    replica.dump().await
}
