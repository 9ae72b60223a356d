//! Rows the server refuses: a rule on the real server (a trigger that
//! `RAISE(ABORT)`s on some titles, as an app's server-side validation
//! would) refuses rows; the push narrows each refused batch down to the
//! rows at fault, pushes everything else in the same sync and sets the
//! refused rows aside with the server's code and message. They are listed,
//! pushed again after a local fix or `retry_rejected`, and
//! `discard_rejected` restores the server's version. Under random refusals
//! and network faults the fleet converges to exactly the ledger.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::hrana::RetryPolicy;
use erth_core::{Config, Database, ErrorKind};
use erth_tests::{hrana, FaultProxy, Faults, TestServer};
use rand::Rng;
use std::collections::BTreeMap;
use std::time::Instant;

/// The server's rule: a live todo whose title holds `#bad` is refused.
const RULE: [&str; 2] = [
    "CREATE TRIGGER test_refuse_insert BEFORE INSERT ON todos \
     WHEN new.title LIKE '%#bad%' AND new.is_deleted = 0 \
     BEGIN SELECT RAISE(ABORT, 'title refused by the server rule'); END",
    "CREATE TRIGGER test_refuse_update BEFORE UPDATE ON todos \
     WHEN new.title LIKE '%#bad%' AND new.is_deleted = 0 \
     BEGIN SELECT RAISE(ABORT, 'title refused by the server rule'); END",
];

async fn server_count(server: &TestServer, filter: &str) -> u64 {
    let res = hrana::execute(
        server.url(),
        server.token(),
        &[&format!("SELECT count(*) FROM todos {filter}")],
    )
    .await
    .unwrap();
    res[0]["rows"][0][0]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn server_title(server: &TestServer, id: &str) -> Option<String> {
    let res = hrana::execute(
        server.url(),
        server.token(),
        &[&format!(
            "SELECT title FROM todos WHERE id = '{}'",
            id.replace('\'', "")
        )],
    )
    .await
    .unwrap();
    res[0]["rows"][0][0]["value"].as_str().map(str::to_owned)
}

/// Bootstraps the server's tables through `db`, then installs the rule.
async fn install_rule(server: &TestServer, db: &Database) {
    db.sync().await.unwrap();
    hrana::execute(server.url(), server.token(), &RULE)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_row_among_5000_does_not_block_the_others() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = common::open(
        dir.path(),
        "a",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    install_rule(&server, &a).await;

    let mut ids = Vec::new();
    for i in 0..5_000 {
        let title = if i == 2_345 {
            "todo #bad".to_owned()
        } else {
            format!("todo {i}")
        };
        ids.push(a.add_todo(&title).await.unwrap().id);
    }
    let bad = ids[2_345].clone();
    let report = a.sync().await.unwrap();
    let on_server = server_count(&server, "").await;
    let status = a.status().await.unwrap();
    let rejected = a.rejected_rows().await.unwrap();
    println!(
        "faults_refused: 5000 pushed with 1 refused: pushed {}, on the server {on_server}, rejected {} ({:?})",
        report.pushed, status.rejected, rejected
    );
    assert_eq!(report.pushed, 4_999, "every other row in the same sync");
    assert_eq!(on_server, 4_999);
    assert_eq!(status.rejected, 1);
    assert_eq!(status.pending_changes, 1, "the refused row stays pending");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].id, bad);
    assert_eq!(rejected[0].table, "todos");
    assert!(!rejected[0].code.is_empty(), "the server's code is kept");
    assert!(
        rejected[0]
            .message
            .contains("title refused by the server rule"),
        "the server's message is kept: {:?}",
        rejected[0]
    );
    assert!(status.last_error.is_none(), "the sync itself succeeded");

    // A later sync does not push it again while it is unchanged.
    assert_eq!(a.sync().await.unwrap().pushed, 0);
    assert_eq!(a.status().await.unwrap().rejected, 1);

    // Fixed locally: it syncs.
    a.rename_todo(&bad, "todo fixed").await.unwrap();
    assert_eq!(
        a.status().await.unwrap().rejected,
        0,
        "a changed row is pending, not refused"
    );
    assert_eq!(a.sync().await.unwrap().pushed, 1);
    assert_eq!(server_count(&server, "").await, 5_000);
    assert_eq!(
        server_title(&server, &bad).await.as_deref(),
        Some("todo fixed")
    );
    let status = a.status().await.unwrap();
    assert_eq!((status.rejected, status.pending_changes), (0, 0));

    // An edit of a synced row refused, then discarded: the server's version is back.
    let synced = ids[7].clone();
    a.rename_todo(&synced, "renamed #bad").await.unwrap();
    a.set_todo_completed(&synced, true).await.unwrap();
    a.sync().await.unwrap();
    assert_eq!(a.status().await.unwrap().rejected, 1);
    a.discard_rejected("todos", &synced).await.unwrap();
    let row = a.get_todo(&synced).await.unwrap();
    assert_eq!(row.title, "todo 7");
    assert!(
        !row.is_completed,
        "every local change of the row is dropped"
    );
    let status = a.status().await.unwrap();
    assert_eq!((status.rejected, status.pending_changes), (0, 0));
    let server_row = a.dump("todos").await.unwrap();
    let b = common::open(
        dir.path(),
        "b",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    b.sync().await.unwrap();
    assert_eq!(
        b.dump("todos").await.unwrap(),
        server_row,
        "the replica holds the server's rows"
    );

    // A new row refused, then discarded: it never existed on the server, so it is gone.
    let fresh = a.add_todo("new #bad").await.unwrap().id;
    a.sync().await.unwrap();
    a.discard_rejected("todos", &fresh).await.unwrap();
    assert!(a.get_row("todos", &fresh).await.unwrap().is_none());
    let e = a.discard_rejected("todos", &fresh).await.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::NotFound,
        "only refused rows are discarded"
    );

    // Refused, then the rule is lifted: retry_rejected pushes it again.
    let later = a.add_todo("later #bad").await.unwrap().id;
    a.sync().await.unwrap();
    hrana::execute(
        server.url(),
        server.token(),
        &["DROP TRIGGER test_refuse_insert"],
    )
    .await
    .unwrap();
    assert_eq!(a.sync().await.unwrap().pushed, 0, "not retried unasked");
    assert_eq!(a.retry_rejected().await.unwrap(), 1);
    assert_eq!(a.sync().await.unwrap().pushed, 1);
    assert_eq!(
        server_title(&server, &later).await.as_deref(),
        Some("later #bad")
    );
    assert_eq!(a.status().await.unwrap().pending_changes, 0);
}

/// Random operations on three replicas through network faults, some of
/// them giving titles the server refuses. Refused rows are fixed (renamed)
/// at the end; the fleet then converges to exactly the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_refusals_and_network_faults_converge() {
    let seed = common::seed();
    println!("faults_refused: seed {seed} (replay with ERTH_FAULTS_SEED={seed})");
    let started = Instant::now();
    let mut rng = common::rng(seed);
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), seed).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let replicas = 3;
    let config = Config {
        push_batch_rows: 6,
        rows_per_statement: 2,
        pull_page_rows: 5,
        retry: RetryPolicy {
            attempts: 2,
            base_delay_ms: 5,
            max_delay_ms: 20,
        },
        ..Config::default()
    };
    let fleet =
        common::open_fleet(dir.path(), replicas, proxy.url(), server.token(), &config).await;
    install_rule(&server, &fleet[0]).await;
    proxy.set_faults(Faults {
        drop_request: 0.04,
        drop_response: 0.06,
        reset: 0.03,
        status_5xx: 0.04,
        truncate: 0.03,
        non_json: 0.03,
        delay_ms: (0, 10),
    });
    let mut known: Vec<Vec<String>> = vec![Vec::new(); replicas];
    let mut ledger = common::Ledger::default();
    let rounds = 200 * common::scale();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut ok, mut bad_writes, mut most_rejected) = (0, 0, 0);
    for _ in 0..rounds {
        let r = rng.random_range(0..replicas);
        for _ in 0..rng.random_range(0..4) {
            if rng.random_bool(0.2) {
                // A write the server refuses: a new row or a rename.
                let title = format!("refused #bad {}", rng.random::<u16>());
                if known[r].is_empty() || rng.random_bool(0.5) {
                    let t = fleet[r].add_todo(&title).await.unwrap();
                    known[r].push(t.id.clone());
                    ledger.record_add(&fleet[r], &t.id, &title).await;
                } else {
                    let id = known[r][rng.random_range(0..known[r].len())].clone();
                    match fleet[r].rename_todo(&id, &title).await {
                        Ok(_) => {
                            ledger
                                .record(&fleet[r], &id, &[(0, title.as_str().into())])
                                .await
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => panic!("rename failed: {e}"),
                    }
                }
                bad_writes += 1;
            } else {
                common::random_op(&mut rng, &fleet[r], &mut known[r], &mut ledger).await;
            }
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
                    "untyped or unexpected error: {e:?}"
                );
                *errors.entry(format!("{:?}", e.kind())).or_default() += 1;
            }
        }
        most_rejected = most_rejected.max(fleet[r].status().await.unwrap().rejected);
    }
    let stats = proxy.stats();
    proxy.set_faults(Faults::none());
    // Fix every refused row where it was refused, until none is left.
    let mut fixes = 0;
    for _ in 0..5 {
        let mut left = 0;
        for db in &fleet {
            db.sync().await.unwrap();
            let mut deleted_since = false;
            for row in db.rejected_rows().await.unwrap() {
                left += 1;
                let title = format!("fixed {fixes}");
                fixes += 1;
                match db.rename_todo(&row.id, &title).await {
                    Ok(_) => {
                        ledger
                            .record(db, &row.id, &[(0, title.as_str().into())])
                            .await
                    }
                    // Deleted meanwhile (here or by a replica it pulled
                    // from): a tombstone passes the rule, so push it again.
                    Err(e) if e.kind() == ErrorKind::NotFound => deleted_since = true,
                    Err(e) => panic!("fixing {row:?} failed: {e}"),
                }
            }
            if deleted_since {
                db.retry_rejected().await.unwrap();
            }
        }
        if left == 0 {
            break;
        }
    }
    common::final_round(&fleet).await;
    let refs: Vec<_> = fleet.iter().collect();
    let divergences = common::check(&refs, &ledger).await;
    let rejected_left: u64 = {
        let mut n = 0;
        for db in &fleet {
            n += db.status().await.unwrap().rejected;
        }
        n
    };
    let refused_on_server =
        server_count(&server, "WHERE title LIKE '%#bad%' AND is_deleted = 0").await;
    println!(
        "faults_refused: replicas {replicas}, rounds {rounds}, operations {}, refused writes {bad_writes}, \
         most rows set aside at once {most_rejected}, fixes {fixes}, syncs ok {ok}, typed errors {errors:?}, \
         requests {}, faults injected {}, rows {}, divergences {divergences} ({:.1} s)",
        ledger.ops,
        stats.requests,
        stats.faults_injected,
        fleet[0].dump("todos").await.unwrap().len(),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        bad_writes > 0 && most_rejected > 0,
        "no row was ever refused"
    );
    assert!(stats.faults_injected > 0, "no fault was injected");
    assert_eq!(rejected_left, 0);
    assert_eq!(refused_on_server, 0, "a refused title reached the server");
    assert_eq!(divergences, 0, "seed {seed}");
}
