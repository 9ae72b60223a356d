//! Network faults: replicas sync through a fault-injecting proxy in front of
//! the real server (dropped requests, responses lost after the server
//! committed, delays, resets, 5xx, truncated bodies, non-JSON). Hundreds of
//! sync rounds; typed errors while faults last; then the faults stop and a
//! clean round converges with no duplicates and no loss, without any reset
//! of the replicas.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::hrana::RetryPolicy;
use erth_core::{Config, ErrorKind};
use erth_tests::{FaultProxy, Faults, TestServer};
use rand::Rng;
use std::collections::BTreeMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_through_faults_lose_nothing_and_resume() {
    let seed = common::seed();
    println!("faults_network: seed {seed} (replay with ERTH_FAULTS_SEED={seed})");
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
    // No duplicates: every row id exactly once on the server side (a fresh replica).
    let fresh = common::open(
        dir.path(),
        "fresh",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    fresh.sync().await.unwrap();
    assert_eq!(
        fresh.dump("todos").await.unwrap(),
        fleet[0].dump("todos").await.unwrap()
    );
    println!(
        "faults_network: replicas {replicas}, rounds {rounds}, operations {}, syncs ok {ok}, typed errors {errors:?}, \
         requests {}, faults injected {} (drop_request {}, drop_response {}, reset {}, 5xx {}, truncate {}, non_json {}, delayed {}), divergences {divergences}",
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
    );
    assert!(
        stats.faults_injected >= 50,
        "too few faults to mean anything: {}",
        stats.faults_injected
    );
    assert!(!errors.is_empty(), "faults never reached the caller");
    assert_eq!(divergences, 0, "seed {seed}");
}
