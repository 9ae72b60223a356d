//! Convergence fuzzing: N replicas, each on its own clock (true, fast, slow,
//! ahead within the drift bound, far beyond it), do random adds, renames,
//! toggles and deletes (on shared rows too) while other replicas sync
//! concurrently with the real server, sometimes with two overlapping
//! `sync()` calls on one replica. After a final round every dump is
//! identical and holds exactly the ledger's rows, and every column holds
//! the clock and value of its newest acknowledged write. Seeded: a failure
//! prints the seed; `ERTH_FAULTS_SEED=<seed>` replays the operations (the
//! interleaving of concurrent syncs is up to the runtime);
//! `ERTH_FAULTS_LONG=1` runs 100x.

#![allow(clippy::unwrap_used)] // test code

mod common;

use common::SkewedClock;
use erth_core::Config;
use erth_tests::TestServer;
use rand::Rng;
use std::sync::Arc;
use std::time::Instant;

const MINUTE: i64 = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_and_interleavings_converge() {
    let seed = common::seed();
    println!("faults_convergence: seed {seed} (replay with ERTH_FAULTS_SEED={seed})");
    let started = Instant::now();
    let mut rng = common::rng(seed);
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rounds = 60 * common::scale();
    let config = Config {
        push_batch_rows: 7,
        pull_page_rows: 5,
        ..Config::default()
    };
    let bound = config.max_clock_drift_ms as i64;
    // (name, offset, speed in 1/1000): the drift bound is one hour.
    let clocks = [
        ("true", 0, 1000),
        ("fast", 20 * MINUTE, 1500),
        ("slow", -30 * MINUTE, 500),
        ("ahead within the bound", bound - 5 * MINUTE, 1000),
        ("beyond the bound", 10 * 24 * 60 * MINUTE, 1000),
    ];
    let replicas = clocks.len();
    let mut fleet = Vec::with_capacity(replicas);
    for (i, (_, offset, rate)) in clocks.iter().enumerate() {
        let clock = Arc::new(SkewedClock::new(*offset, *rate));
        fleet.push(
            common::open_with_clock(
                dir.path(),
                &format!("r{i}"),
                server.url(),
                server.token(),
                config.clone(),
                clock,
            )
            .await,
        );
    }
    let mut known: Vec<Vec<String>> = vec![Vec::new(); replicas];
    let mut ledger = common::Ledger::default();
    let (mut syncs, mut overlapping, mut coalesce_pairs) = (0, 0, 0);
    let mut writes_by = vec![0; replicas];
    for _ in 0..rounds {
        // Replica `r` works locally while 0 to 3 others sync at the same
        // time (a replica drawn twice gets two overlapping sync() calls).
        let r = rng.random_range(0..replicas);
        let ops = rng.random_range(0..4);
        let syncing: Vec<usize> = (0..rng.random_range(0..4))
            .map(|_| rng.random_range(0..replicas))
            .filter(|&s| s != r)
            .collect();
        let before = ledger.ops;
        let work = async {
            for _ in 0..ops {
                common::random_op(&mut rng, &fleet[r], &mut known[r], &mut ledger).await;
            }
        };
        let sync_all = futures::future::join_all(syncing.iter().map(|&s| fleet[s].sync()));
        let ((), results) = tokio::join!(work, sync_all);
        for result in results {
            result.unwrap();
        }
        writes_by[r] += ledger.ops - before;
        syncs += syncing.len();
        overlapping += usize::from(syncing.len() > 1 || (ops > 0 && !syncing.is_empty()));
        coalesce_pairs += (1..syncing.len())
            .filter(|&i| syncing[..i].contains(&syncing[i]))
            .count();
        // What a replica pulled it may now edit too.
        for &s in &syncing {
            known[s] = common::live_ids(&fleet[s]).await;
        }
    }
    syncs += common::final_round(&fleet).await;
    let refs: Vec<_> = fleet.iter().collect();
    let divergences = common::check(&refs, &ledger).await;
    let rows = fleet[0].dump("todos").await.unwrap();
    let mut clamped = Vec::new();
    for (db, (name, ..)) in fleet.iter().zip(&clocks) {
        if db.status().await.unwrap().clock_ahead_ms.is_some() {
            clamped.push(*name);
        }
    }
    let names: Vec<&str> = clocks.iter().map(|c| c.0).collect();
    println!(
        "faults_convergence: replicas {replicas} (clocks: {}), rounds {rounds}, operations {}, syncs {syncs}, \
         rounds with concurrent work {overlapping}, overlapping sync() pairs on one replica {coalesce_pairs}, \
         replicas that clamped a far-future clock {}, rows {}, tombstones {}, divergences {divergences} ({:.1} s)",
        names.join(", "),
        ledger.ops,
        clamped.len(),
        rows.len(),
        rows.iter().filter(|r| r.is_deleted).count(),
        started.elapsed().as_secs_f64(),
    );
    assert_eq!(divergences, 0, "seed {seed}");
    if writes_by[replicas - 1] > 0 {
        assert!(
            !clamped.is_empty(),
            "the far-future replica wrote, yet no replica clamped its clock"
        );
    }
}
