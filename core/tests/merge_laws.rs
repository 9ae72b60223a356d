//! Property tests of the merge rules: the pure-Rust oracle obeys the laws
//! (commutative, idempotent, delete wins, independent columns survive), and
//! the generated SQL agrees with the oracle on every case, on three
//! replicas applying the same changes in different orders with duplicates.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::hlc::{NodeId, Timestamp};
use erth_core::merge::{self, Target};
use erth_core::row::SyncRow;
use erth_core::schema::todos_table;
use erth_core::store::sqlite::SqliteStore;
use erth_core::store::Store;
use erth_core::{SqlValue, Statement};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A change as a replica would push it: a full row with its clocks.
#[derive(Debug, Clone)]
struct Change {
    id: usize,
    title: u8,
    done: bool,
    deleted: bool,
    clocks: [u8; 3],
    created: u8,
    node: u8,
}

fn change() -> impl Strategy<Value = Change> {
    (
        0..3usize,
        0..4u8,
        any::<bool>(),
        prop::bool::weighted(0.2),
        any::<[u8; 3]>(),
        0..5u8,
        0..3u8,
    )
        .prop_map(|(id, title, done, deleted, clocks, created, node)| Change {
            id,
            title,
            done,
            deleted,
            clocks,
            created,
            node,
        })
}

/// Turns changes into rows; every clock is unique (its low bits are the
/// change's index), as real clocks are, so one clock always means one value.
fn rows(ids: &[String], changes: &[Change]) -> Vec<SyncRow> {
    changes
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let clocks: Vec<Timestamp> = c
                .clocks
                .iter()
                .enumerate()
                .map(|(col, &base)| Timestamp {
                    hlc: (u64::from(base) << 24) | ((k as u64) << 2) | col as u64,
                    node: NodeId(u64::from(c.node)),
                })
                .collect();
            let updated = clocks.iter().map(|t| t.hlc >> 16).max().unwrap_or(0) as i64;
            SyncRow {
                id: ids[c.id].clone(),
                values: vec![
                    SqlValue::Text(format!("title {}", c.title)),
                    SqlValue::from(c.done),
                ],
                is_deleted: c.deleted,
                created_at: i64::from(c.created),
                updated_at: updated,
                clocks,
            }
        })
        .collect()
}

fn oracle(order: &[usize], rows: &[SyncRow]) -> BTreeMap<String, SyncRow> {
    let mut state = BTreeMap::new();
    for &i in order {
        let r = &rows[i];
        if let Some(m) = merge::merge(state.get(&r.id), r) {
            state.insert(r.id.clone(), m);
        }
    }
    state
}

/// An order of all change indices, plus duplicates, shuffled.
fn order(n: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..n.max(1), 0..n + 1).prop_flat_map(move |dups| {
        let mut all: Vec<usize> = (0..n).collect();
        all.extend(dups.into_iter().filter(|_| n > 0));
        Just(all).prop_shuffle()
    })
}

fn case() -> impl Strategy<Value = (Vec<Change>, Vec<usize>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(change(), 1..24).prop_flat_map(|changes| {
        let n = changes.len();
        (Just(changes), order(n), order(n), order(n))
    })
}

async fn sql_replica(
    order: &[usize],
    rows: &[SyncRow],
    target: Target,
) -> (BTreeMap<String, SyncRow>, usize) {
    let def = todos_table();
    let store = SqliteStore::memory().unwrap();
    store
        .write(&[
            Statement::plain(def.create_table_sql()),
            Statement::plain(
                "CREATE TABLE \"_erth_meta\" (\"k\" TEXT PRIMARY KEY, \"v\" INTEGER NOT NULL)",
            ),
            Statement::plain("INSERT INTO \"_erth_meta\" VALUES ('seq', 0)"),
        ])
        .await
        .unwrap();
    let mut changed = 0;
    for (k, &i) in order.iter().enumerate() {
        let mut stmts = vec![merge::upsert(&def, &rows[i..=i], &[k as i64 + 1], target)];
        if target == Target::Server {
            stmts.push(Statement::plain(
                "UPDATE \"_erth_meta\" SET \"v\" = \"v\" + 1 WHERE \"k\" = 'seq'",
            ));
        }
        let out = store.write(&stmts).await.unwrap();
        changed += out[0].rows.len();
    }
    let dump = store
        .query(&Statement::plain(format!(
            "SELECT {} FROM \"todos\" ORDER BY \"id\"",
            def.row_column_list()
        )))
        .await
        .unwrap();
    let rows = dump
        .rows
        .iter()
        .map(|c| SyncRow::from_cells(&def, c).unwrap())
        .map(|r| (r.id.clone(), r))
        .collect();
    (rows, changed)
}

fn ids() -> Vec<String> {
    (0..3).map(|_| erth_core::ids::new_id()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn oracle_is_order_and_duplicate_independent((changes, a, b, c) in case()) {
        let rows = rows(&ids(), &changes);
        let ra = oracle(&a, &rows);
        prop_assert_eq!(&ra, &oracle(&b, &rows));
        prop_assert_eq!(&ra, &oracle(&c, &rows));
        // Idempotent: applying everything again changes nothing.
        let mut again = ra.clone();
        for r in &rows {
            if let Some(m) = merge::merge(again.get(&r.id), r) {
                prop_assert_eq!(Some(&m), ra.get(&r.id));
                again.insert(r.id.clone(), m);
            }
        }
        prop_assert_eq!(&again, &ra);
    }

    #[test]
    fn deletes_win_and_columns_are_last_writer_wins((changes, a, _b, _c) in case()) {
        let rows = rows(&ids(), &changes);
        let state = oracle(&a, &rows);
        for (id, row) in &state {
            let mine: Vec<&SyncRow> = rows.iter().filter(|r| &r.id == id).collect();
            prop_assert_eq!(row.is_deleted, mine.iter().any(|r| r.is_deleted), "delete wins");
            for col in 0..2 {
                let newest = mine.iter().max_by_key(|r| r.clocks[col]).unwrap();
                prop_assert_eq!(&row.values[col], &newest.values[col], "column {} is the newest write", col);
            }
            prop_assert_eq!(row.created_at, mine.iter().map(|r| r.created_at).min().unwrap());
            prop_assert_eq!(row.updated_at, mine.iter().map(|r| r.updated_at).max().unwrap());
        }
    }

    #[test]
    fn generated_sql_agrees_with_oracle_on_three_replicas((changes, a, b, c) in case()) {
        let rows = rows(&ids(), &changes);
        let expected = oracle(&a, &rows);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (ra, _) = rt.block_on(sql_replica(&a, &rows, Target::Replica));
        let (rb, _) = rt.block_on(sql_replica(&b, &rows, Target::Replica));
        let (rc, changed) = rt.block_on(sql_replica(&c, &rows, Target::Server));
        prop_assert_eq!(&ra, &expected);
        prop_assert_eq!(&rb, &expected);
        prop_assert_eq!(&rc, &expected);
        // A merge that changes nothing returns nothing: exactly the oracle's changes.
        let mut state = BTreeMap::new();
        let mut oracle_changes = 0;
        for &i in &c {
            if let Some(m) = merge::merge(state.get(&rows[i].id), &rows[i]) {
                oracle_changes += 1;
                state.insert(rows[i].id.clone(), m);
            }
        }
        prop_assert_eq!(changed, oracle_changes);
    }
}

#[test]
fn concurrent_edits_of_different_columns_both_survive_in_sql() {
    let id = erth_core::ids::new_id();
    let t = |h: u64, n: u64| Timestamp {
        hlc: h << 16,
        node: NodeId(n),
    };
    let base = SyncRow {
        id: id.clone(),
        values: vec!["t".into(), SqlValue::Integer(0)],
        is_deleted: false,
        created_at: 1,
        updated_at: 1,
        clocks: vec![t(1, 1); 3],
    };
    let mut renamed = base.clone();
    renamed.values[0] = "renamed".into();
    renamed.clocks[0] = t(5, 1);
    let mut done = base.clone();
    done.values[1] = SqlValue::Integer(1);
    done.clocks[1] = t(6, 2);
    let rows = vec![base, renamed, done];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for order in [[0, 1, 2], [0, 2, 1], [2, 1, 0]] {
        let (state, _) = rt.block_on(sql_replica(&order, &rows, Target::Replica));
        assert_eq!(
            state[&id].values,
            vec![SqlValue::from("renamed"), SqlValue::Integer(1)]
        );
    }
}
