//! Network faults: replicas sync through a fault-injecting proxy in front of
//! the real server (dropped requests, responses lost after the server
//! committed, delays, resets, 5xx, truncated bodies, non-JSON). Hundreds of
//! sync rounds; typed errors while faults last; then the faults stop and a
//! clean round converges to exactly the ledger of acknowledged writes,
//! without any reset of the replicas. A trigger on the server records every
//! row update that takes a new `_seq`: a retried push after a lost response
//! must never re-apply a row (a new `_seq` with nothing changed).

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::hrana::RetryPolicy;
use erth_core::{Config, ErrorKind};
use erth_tests::{hrana, FaultProxy, Faults, TestServer};
use rand::Rng;
use std::collections::BTreeMap;
use std::time::Instant;

/// Records, on the server, every update of a `todos` row that gives it a new
/// `_seq`, and whether any synced column changed with it.
const SEQ_AUDIT: [&str; 2] = [
    "CREATE TABLE test_seq_audit (id TEXT, old_seq INTEGER, new_seq INTEGER, unchanged INTEGER)",
    "CREATE TRIGGER test_seq_audit AFTER UPDATE ON todos WHEN old._seq IS NOT new._seq BEGIN \
     INSERT INTO test_seq_audit VALUES (new.id, old._seq, new._seq, \
       old.title IS new.title AND old.is_completed IS new.is_completed \
       AND old.is_deleted IS new.is_deleted AND old.created_at IS new.created_at \
       AND old.updated_at IS new.updated_at AND old._clk_title IS new._clk_title \
       AND old._clk_is_completed IS new._clk_is_completed \
       AND old._clk_is_deleted IS new._clk_is_deleted); END",
];

/// `(updates that took a new _seq, of them with nothing changed)`.
async fn seq_audit(server: &TestServer) -> (u64, u64) {
    let res = hrana::execute(
        server.url(),
        server.token(),
        &["SELECT count(*), coalesce(sum(unchanged), 0) FROM test_seq_audit"],
    )
    .await
    .unwrap();
    let cell = |i: usize| {
        res[0]["rows"][0][i]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    (cell(0), cell(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_through_faults_lose_nothing_and_resume() {
    let seed = common::seed();
    println!("faults_network: seed {seed} (replay with ERTH_FAULTS_SEED={seed})");
    let started = Instant::now();
    let mut rng = common::rng(seed);
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), seed).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let replicas = 3;
    // Few retries, short backoff: let the faults reach the caller often.
    let config = Config {
        push_batch_rows: 4,
        pull_page_rows: 4,
        retry: RetryPolicy {
            attempts: 2,
            base_delay_ms: 5,
            max_delay_ms: 20,
        },
        ..Config::default()
    };
    let fleet =
        common::open_fleet(dir.path(), replicas, proxy.url(), server.token(), &config).await;
    // Bootstrap the server's tables, then put the audit trigger on them.
    fleet[0].sync().await.unwrap();
    hrana::execute(server.url(), server.token(), &SEQ_AUDIT)
        .await
        .unwrap();
    proxy.set_faults(Faults {
        drop_request: 0.06,
        drop_response: 0.08,
        reset: 0.05,
        status_5xx: 0.06,
        truncate: 0.05,
        non_json: 0.05,
        delay_ms: (0, 15),
    });
    let mut known: Vec<Vec<String>> = vec![Vec::new(); replicas];
    let mut ledger = common::Ledger::default();
    let rounds = 300 * common::scale();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut ok = 0;
    for _ in 0..rounds {
        let r = rng.random_range(0..replicas);
        for _ in 0..rng.random_range(0..3) {
            common::random_op(&mut rng, &fleet[r], &mut known[r], &mut ledger).await;
        }
        match fleet[r].sync().await {
            Ok(_) => {
                ok += 1;
                known[r] = common::live_ids(&fleet[r]).await;
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::Network | ErrorKind::Server | ErrorKind::Protocol
                    ),
                    "untyped or unexpected error under network faults: {e:?}"
                );
                assert_eq!(
                    fleet[r].status().await.unwrap().last_error,
                    Some(e.to_string())
                );
                *errors.entry(format!("{:?}", e.kind())).or_default() += 1;
            }
        }
    }
    let stats = proxy.stats();
    proxy.set_faults(Faults::none());
    common::final_round(&fleet).await;
    let refs: Vec<_> = fleet.iter().collect();
    let divergences = common::check(&refs, &ledger).await;
    // The server holds what the fleet holds: a fresh replica pulls the same rows.
    let fresh = common::open(
        dir.path(),
        "fresh",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    fresh.sync().await.unwrap();
    let fresh_differs = fresh.dump("todos").await.unwrap() != fleet[0].dump("todos").await.unwrap();
    let (seq_updates, reapplied) = seq_audit(&server).await;
    println!(
        "faults_network: replicas {replicas}, rounds {rounds}, operations {}, syncs ok {ok}, typed errors {errors:?}, \
         requests {}, faults injected {} (drop_request {}, drop_response {}, reset {}, 5xx {}, truncate {}, non_json {}, delayed {}), \
         server row updates with a new _seq {seq_updates}, re-applied rows (new _seq, nothing changed) {reapplied}, \
         fresh replica differs {}, divergences {divergences} ({:.1} s)",
        ledger.ops,
        stats.requests,
        stats.faults_injected,
        stats.drop_request,
        stats.drop_response,
        stats.reset,
        stats.status_5xx,
        stats.truncate,
        stats.non_json,
        stats.delayed,
        u8::from(fresh_differs),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        stats.faults_injected >= 50 && stats.drop_response > 0,
        "too few faults to mean anything: {stats:?}"
    );
    assert!(!errors.is_empty(), "faults never reached the caller");
    assert!(seq_updates > 0, "the audit trigger saw no update at all");
    assert_eq!(reapplied, 0, "retried pushes re-applied rows; seed {seed}");
    assert!(
        !fresh_differs,
        "a fresh replica differs from the fleet; seed {seed}"
    );
    assert_eq!(divergences, 0, "seed {seed}");
}
