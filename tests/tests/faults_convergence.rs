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
    let mut fleet = Vec::new();
    for i in 0..replicas {
        fleet.push(
            common::open(
                dir.path(),
                &format!("r{i}"),
                server.url(),
                server.token(),
                config.clone(),
            )
            .await,
        );
    }
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
            known[s] = fleet[s]
                .list_active_todos()
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.id)
                .collect();
        }
    }
    // Final round: everyone pushes, then everyone pulls.
    for _ in 0..2 {
        for db in &fleet {
            db.sync().await.unwrap();
            syncs += 1;
        }
    }
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
