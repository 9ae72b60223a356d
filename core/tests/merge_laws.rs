//! Property tests of the merge rules: the pure-Rust oracle obeys the laws
//! (commutative, associative, idempotent, delete wins, last writer wins per
//! column with the node breaking equal clocks), and the generated SQL agrees
//! with the oracle on replicas and on the server, in multi-row statements,
//! on a migrated table, and when replicas merge each other's merged states.
//! The cases (`support/merge_cases.rs`) are shared with the wasm suite.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "support/merge_cases.rs"]
mod merge_cases;

use erth_core::hlc::{NodeId, Timestamp};
use erth_core::row::SyncRow;
use erth_core::store::sqlite::SqliteStore;
use erth_core::store::Store;
use erth_core::SqlValue;
use merge_cases::{check_oracle_laws, check_sql, check_sql_exchange, merged_in_sql, oracle, Case};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn memory() -> Box<dyn Store> {
    Box::new(SqliteStore::memory().unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn oracle_obeys_the_laws(seed in any::<u64>()) {
        check_oracle_laws(&Case::generate(seed)).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn generated_sql_agrees_with_the_oracle(seed in any::<u64>()) {
        let case = Case::generate(seed);
        let rt = runtime();
        rt.block_on(check_sql(&case, &memory)).map_err(TestCaseError::fail)?;
        rt.block_on(check_sql_exchange(&case, &memory)).map_err(TestCaseError::fail)?;
    }
}

fn row(id: &str, title: &str, n: i64, clocks: [(u64, u64); 6]) -> SyncRow {
    let clocks: Vec<Timestamp> = clocks
        .iter()
        .map(|&(hlc, node)| Timestamp {
            hlc: hlc << 16,
            node: NodeId(node),
        })
        .collect();
    SyncRow {
        id: id.to_owned(),
        values: vec![
            title.into(),
            SqlValue::Integer(n),
            SqlValue::Null,
            SqlValue::Null,
            "d".into(),
        ],
        is_deleted: false,
        created_at: 1,
        updated_at: clocks.iter().map(Timestamp::physical_ms).max().unwrap() as i64,
        clocks,
    }
}

#[test]
fn concurrent_edits_of_different_columns_both_survive_in_sql() {
    let id = erth_core::ids::new_id();
    let base = row(&id, "t", 0, [(1, 1); 6]);
    let mut renamed = row(&id, "renamed", 0, [(1, 1); 6]);
    renamed.clocks[0].hlc = 5 << 16;
    let mut counted = row(&id, "t", 9, [(1, 1); 6]);
    counted.clocks[1] = Timestamp {
        hlc: 6 << 16,
        node: NodeId(2),
    };
    let rows = [base, renamed, counted];
    for order in [[0, 1, 2], [0, 2, 1], [2, 1, 0]] {
        let rows: Vec<SyncRow> = order.iter().map(|&i| rows[i].clone()).collect();
        let state = runtime().block_on(merged_in_sql(&rows, &memory));
        assert_eq!(
            state[&id].values[..2],
            ["renamed".into(), SqlValue::Integer(9)]
        );
        assert_eq!(state, oracle(&rows));
    }
}

#[test]
fn equal_clocks_are_broken_by_the_node_in_sql_and_in_the_oracle() {
    let id = erth_core::ids::new_id();
    // The same hlc on every column, written by node 7 and by node 9: node 9 wins.
    let low = row(&id, "from node 7", 7, [(4, 7); 6]);
    let high = row(&id, "from node 9", 9, [(4, 9); 6]);
    for rows in [[low.clone(), high.clone()], [high.clone(), low.clone()]] {
        let state = runtime().block_on(merged_in_sql(&rows, &memory));
        assert_eq!(
            state[&id].values[..2],
            ["from node 9".into(), SqlValue::Integer(9)]
        );
        assert_eq!(state, oracle(&rows));
    }
}
