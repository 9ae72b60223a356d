//! Another device's transaction arrives whole. A writer's transactions keep
//! an invariant across two tables (a project's `notes` column counts its
//! notes, and every note's project exists); a reader on another device,
//! syncing through a proxy that drops, resets, truncates and delays, checks
//! the invariant in every live-query callback and after every sync, for
//! 200 rounds. Then a fresh device pulls 100,000 rows with a live query
//! watching from before its first sync: it sees nothing, then everything,
//! never a part.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::hrana::RetryPolicy;
use erth_core::{Config, Database, Rows, SqlValue, Statement};
use erth_tests::{hrana, FaultProxy, Faults, TestServer};
use rand::Rng;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = r#"{"tables": {
    "projects": {"columns": {"name": {"type": "text", "notNull": true, "default": ""},
                             "notes": {"type": "integer", "notNull": true, "default": 0}}},
    "notes": {"columns": {"project_id": {"type": "text", "notNull": true, "default": ""},
                          "body": {"type": "text", "notNull": true, "default": ""}},
              "indexes": [["project_id"]]}
}}"#;

/// Projects whose count is wrong, and notes without a project: 0 and 0
/// whenever the replica holds whole transactions. Also the totals.
const CHECK: &str = "SELECT \
    (SELECT count(*) FROM projects p WHERE p.notes != (SELECT count(*) FROM notes n WHERE n.project_id = p.id)), \
    (SELECT count(*) FROM notes n WHERE NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = n.project_id)), \
    (SELECT count(*) FROM projects), (SELECT count(*) FROM notes)";

fn config(url: &str, token: Option<&str>) -> Config {
    Config {
        url: Some(url.to_owned()),
        auth_token: token.map(str::to_owned),
        push_batch_rows: 500,
        pull_page_rows: 50,
        retry: RetryPolicy {
            attempts: 2,
            base_delay_ms: 10,
            max_delay_ms: 50,
        },
        ..Config::default()
    }
    .with_schema_json(SCHEMA)
    .unwrap()
}

/// `(bad counts, orphan notes, projects, notes)` of one [`CHECK`] answer.
fn counts(rows: &Rows) -> [i64; 4] {
    let row = &rows.rows[0];
    [0, 1, 2, 3].map(|i| row[i].as_i64().unwrap())
}

/// A live query of [`CHECK`] recording every answer it delivers.
fn watch_invariant(db: &Database) -> (erth_core::LiveQuery, Arc<Mutex<Vec<[i64; 4]>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let live = db
        .watch(
            CHECK,
            &[],
            Arc::new(move |rows: &Rows| sink.lock().unwrap().push(counts(rows))),
        )
        .unwrap();
    (live, seen)
}

/// One transaction of the writer: a new project with 1 to 4 notes, or a
/// note more in a project it made.
async fn write(db: &Database, rng: &mut impl Rng, projects: &mut Vec<String>) {
    if projects.is_empty() || rng.random_bool(0.5) {
        let id = erth_core::ids::new_id();
        let n = rng.random_range(1..=4);
        let mut stmts = vec![Statement::new(
            "INSERT INTO projects (id, name, notes) VALUES (?, ?, ?)",
            vec![id.as_str().into(), "p".into(), SqlValue::Integer(n)],
        )];
        for k in 0..n {
            stmts.push(Statement::new(
                "INSERT INTO notes (project_id, body) VALUES (?, ?)",
                vec![id.as_str().into(), format!("note {k}").into()],
            ));
        }
        db.transaction(&stmts).await.unwrap();
        projects.push(id);
    } else {
        let id = projects[rng.random_range(0..projects.len())].clone();
        db.transaction(&[
            Statement::new(
                "UPDATE projects SET notes = notes + 1 WHERE id = ?",
                vec![id.as_str().into()],
            ),
            Statement::new(
                "INSERT INTO notes (project_id, body) VALUES (?, 'one more')",
                vec![id.into()],
            ),
        ])
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_reader_never_sees_part_of_a_transaction_under_network_faults() {
    let seed = common::seed();
    println!("faults_transactions: seed {seed} (replay with ERTH_FAULTS_SEED={seed})");
    let mut rng = common::rng(seed);
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), seed).await.unwrap();
    proxy.set_faults(Faults {
        drop_response: 0.05,
        drop_request: 0.03,
        reset: 0.03,
        status_5xx: 0.03,
        truncate: 0.03,
        delay_ms: (0, 15),
        ..Faults::none()
    });
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        let config = config(proxy.url(), server.token());
        let path = dir.path().join(format!("{name}.db"));
        async move { Database::open_native(path, config).await.unwrap() }
    };
    let (writer, reader) = (open("writer").await, open("reader").await);
    let (_live, seen) = watch_invariant(&reader);
    let mut projects = Vec::new();
    let (mut synced, mut failed) = (0, 0);
    for _ in 0..200 {
        for _ in 0..rng.random_range(0..3) {
            write(&writer, &mut rng, &mut projects).await;
        }
        // The writer and the reader sync at the same time, each maybe failing.
        let (w, r) = tokio::join!(writer.sync(), reader.sync());
        for result in [w, r] {
            match result {
                Ok(_) => synced += 1,
                Err(_) => failed += 1,
            }
        }
        let now = counts(&reader.query(CHECK, &[]).await.unwrap());
        assert_eq!(
            now[..2],
            [0, 0],
            "the reader sees part of a transaction: {now:?}"
        );
    }
    // Without faults, both catch up and hold the same.
    proxy.set_faults(Faults::none());
    writer.sync().await.unwrap();
    reader.sync().await.unwrap();
    let end = counts(&reader.query(CHECK, &[]).await.unwrap());
    assert_eq!(end, counts(&writer.query(CHECK, &[]).await.unwrap()));
    let seen = seen.lock().unwrap().clone();
    let partial: Vec<_> = seen.iter().filter(|c| c[..2] != [0, 0]).collect();
    println!(
        "faults_transactions: rounds 200, syncs {synced} ok and {failed} failed, writer projects {}, reader live-query callbacks {} (partial states 0 expected: {})",
        projects.len(),
        seen.len(),
        partial.len()
    );
    assert!(
        partial.is_empty(),
        "live query saw part of a transaction: {partial:?}"
    );
    assert!(
        seen.len() > 10,
        "the live query heard of too few changes: {}",
        seen.len()
    );
    assert!(
        failed > 0,
        "no fault reached a sync: the test proved nothing"
    );
    assert_eq!(end[2], projects.len() as i64);
}

#[tokio::test]
async fn a_first_pull_of_100000_rows_shows_no_partial_state() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = || Config {
        push_batch_rows: 2_000,
        ..config(server.url(), server.token())
    };
    // A replica makes the server's tables; the 100,000 rows are written on
    // the server itself (20,000 projects of 4 notes each, in one
    // transaction), as a writer's pushes would leave them.
    let writer = Database::open_native(dir.path().join("writer.db"), cfg())
        .await
        .unwrap();
    writer.sync().await.unwrap();
    let clk = "0000000000010000-0000000000000001";
    let id = |n: &str| format!("printf('01900000-0000-7000-8000-%012x', {n})");
    hrana::execute(
        server.url(),
        server.token(),
        &[
            "BEGIN",
            &format!(
                "INSERT INTO projects (id, name, notes, is_deleted, created_at, updated_at, _clk_name, _clk_notes, _clk_is_deleted, _seq, _dirty) \
                 SELECT {}, 'p' || value, 4, 0, 1, 1, '{clk}', '{clk}', '{clk}', value, 0 FROM generate_series(1, 20000)",
                id("value")
            ),
            &format!(
                "INSERT INTO notes (id, project_id, body, is_deleted, created_at, updated_at, _clk_project_id, _clk_body, _clk_is_deleted, _seq, _dirty) \
                 SELECT {}, {}, 'note', 0, 1, 1, '{clk}', '{clk}', '{clk}', 20000 + value, 0 FROM generate_series(1, 80000)",
                id("100000 + value"),
                id("(value + 3) / 4")
            ),
            "UPDATE _erth_meta SET v = 100000 WHERE k = 'seq'",
            "COMMIT",
        ],
    )
    .await
    .unwrap();
    let fresh = Database::open_native(dir.path().join("fresh.db"), cfg())
        .await
        .unwrap();
    let (_live, seen) = watch_invariant(&fresh);
    let t0 = std::time::Instant::now();
    let report = fresh.sync().await.unwrap();
    println!(
        "faults_transactions: the fresh device pulled them in {:?}",
        t0.elapsed()
    );
    assert_eq!(report.pulled, 100_000);
    let after = counts(&fresh.query(CHECK, &[]).await.unwrap());
    let seen = seen.lock().unwrap().clone();
    println!("faults_transactions: a fresh pull of 100,000 rows: live-query states {seen:?}, after {after:?}");
    assert_eq!(seen.first(), Some(&[0, 0, 0, 0]), "empty before");
    assert_eq!(seen.last(), Some(&[0, 0, 20_000, 80_000]), "whole after");
    assert!(
        seen.iter()
            .all(|c| *c == [0, 0, 0, 0] || *c == [0, 0, 20_000, 80_000]),
        "a partial state was visible: {seen:?}"
    );
}
