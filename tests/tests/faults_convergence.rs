//! Convergence fuzzing: N replicas do random adds, renames, toggles and
//! deletes (on shared rows too) and sync in random interleavings with the
//! real server; after a final round every dump is identical, no deleted row
//! is alive, and every acknowledged write is present unless a later-clocked
//! write to the same column superseded it. Seeded: a failure prints the
//! seed; `ERTH_FAULTS_SEED=<seed>` replays it; `ERTH_FAULTS_LONG=1` runs 100x.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::Config;
use erth_tests::TestServer;
use rand::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_and_interleavings_converge() {
    let seed = common::seed();
    println!("faults_convergence: seed {seed} (replay with ERTH_FAULTS_SEED={seed})");
    let mut rng = common::rng(seed);
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let replicas = 4;
    let rounds = 60 * common::scale();
    let config = Config {
        push_batch_rows: 7,
        pull_page_rows: 5,
        ..Config::default()
    };
    let fleet =
        common::open_fleet(dir.path(), replicas, server.url(), server.token(), &config).await;
    let mut known: Vec<Vec<String>> = vec![Vec::new(); replicas];
    let mut ledger = common::Ledger::default();
    let mut syncs = 0;
    for _ in 0..rounds {
        let r = rng.random_range(0..replicas);
        for _ in 0..rng.random_range(0..4) {
            common::random_op(&mut rng, &fleet[r], &mut known[r], &mut ledger).await;
        }
        if rng.random_bool(0.5) {
            let s = rng.random_range(0..replicas);
            fleet[s].sync().await.unwrap();
            syncs += 1;
            // What a replica pulled it may now edit too.
            known[s] = common::live_ids(&fleet[s]).await;
        }
    }
    syncs += common::final_round(&fleet).await;
    let refs: Vec<_> = fleet.iter().collect();
    let divergences = common::check(&refs, &ledger).await;
    let rows = fleet[0].dump("todos").await.unwrap();
    println!(
        "faults_convergence: replicas {replicas}, rounds {rounds}, operations {}, syncs {syncs}, rows {}, tombstones {}, divergences {divergences}",
        ledger.ops,
        rows.len(),
        rows.iter().filter(|r| r.is_deleted).count()
    );
    assert_eq!(divergences, 0, "seed {seed}");
}
