//! Slow links finish: a fresh replica pulls 40 MB of 100 KB rows through a
//! proxy that sends answers at 1 MB/s, with a request timeout (1.5 s) that
//! the first page size (2 MB) cannot meet on that link. Pages are sized in
//! bytes; the page that timed out is asked again at half its size and the
//! pull runs to the end, every row intact. Pushes too big for the link (a
//! request that never gets through within the timeout, or one answered
//! HTTP 413) are split until they pass, and every row lands exactly once.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::hlc::SystemClock;
use erth_core::store::sqlite::SqliteStore;
use erth_core::transport::native::NativeTransport;
use erth_core::{Config, Database};
use erth_tests::{hrana, FaultProxy, Oversize, TestServer};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROWS: usize = 400;
const ROW_BYTES: usize = 100_000;
const LINK_BYTES_PER_SECOND: u64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_replica_pulls_40_mb_through_a_1_mb_per_s_link() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The writer talks to the server directly.
    let writer = common::open(
        dir.path(),
        "writer",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    for i in 0..ROWS {
        let fill = char::from(b'a' + (i % 26) as u8);
        let title = format!("{i:04} {}", fill.to_string().repeat(ROW_BYTES - 5));
        writer.add_todo(&title).await.unwrap();
    }
    assert_eq!(writer.sync().await.unwrap().pushed, ROWS as u64);

    let proxy = FaultProxy::start(server.url(), 1).await.unwrap();
    proxy.set_throttle(Some(LINK_BYTES_PER_SECOND));
    let config = Config {
        url: Some(proxy.url().to_owned()),
        auth_token: server.token().map(str::to_owned),
        ..Config::default()
    };
    let store = SqliteStore::open(dir.path().join("fresh.db")).unwrap();
    let transport = NativeTransport::new(Duration::from_millis(1_500)).unwrap();
    let fresh = Database::open(
        Arc::new(store),
        Arc::new(transport),
        Arc::new(SystemClock),
        config,
    )
    .await
    .unwrap();
    let started = Instant::now();
    let progress = std::sync::Mutex::new(Vec::new());
    let report = fresh
        .sync_with_progress(&|p| progress.lock().unwrap().push(p))
        .await
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let stats = proxy.stats();
    let pages = progress.lock().unwrap().len();
    println!(
        "faults_slow: {ROWS} rows of {ROW_BYTES} bytes at {LINK_BYTES_PER_SECOND} B/s with a 1.5 s timeout: \
         pulled {} in {pages} pages, requests {}, timed-out answers {}, {seconds:.1} s ({:.2} MB/s)",
        report.pulled,
        stats.requests,
        stats.abandoned,
        (ROWS * ROW_BYTES) as f64 / seconds / 1e6,
    );
    assert_eq!(report.pulled, ROWS as u64, "the pull ran to the end");
    assert!(pages > 1, "pulled in pages");
    assert!(
        stats.abandoned > 0,
        "the first page (2 MB at 1 MB/s) cannot arrive within 1.5 s: the shrink was not exercised"
    );
    assert_eq!(
        fresh.dump("todos").await.unwrap(),
        writer.dump("todos").await.unwrap(),
        "every row arrived intact"
    );
    assert_eq!(fresh.status().await.unwrap().pending_changes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_too_big_for_the_link_are_split_and_land_once() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        url: Some(proxy.url().to_owned()),
        auth_token: server.token().map(str::to_owned),
        ..Config::default()
    };
    let store = SqliteStore::open(dir.path().join("pusher.db")).unwrap();
    let transport = NativeTransport::new(Duration::from_millis(1_500)).unwrap();
    let db = Database::open(
        Arc::new(store),
        Arc::new(transport),
        Arc::new(SystemClock),
        config,
    )
    .await
    .unwrap();
    db.sync().await.unwrap();
    hrana::execute(
        server.url(),
        server.token(),
        &[
            "CREATE TABLE test_inserts (id TEXT)",
            "CREATE TRIGGER test_inserts AFTER INSERT ON todos BEGIN \
             INSERT INTO test_inserts VALUES (new.id); END",
        ],
    )
    .await
    .unwrap();
    let title = |i: usize| format!("{i:04} {}", "p".repeat(ROW_BYTES - 5));
    let mut pushed = 0;
    // 30 rows of 100 KB (one 3 MB batch at first): the link never carries
    // more than 1 MB per request within the timeout, then the server
    // answers 413 over 500 KB.
    for (i, limit) in [
        (0, (1_000_000, Oversize::Stall)),
        (1, (500_000, Oversize::Status413)),
    ] {
        for j in 0..30 {
            db.add_todo(&title(i * 30 + j)).await.unwrap();
        }
        proxy.refuse_bodies_over(Some(limit));
        let report = db.sync().await.unwrap();
        assert_eq!(report.pushed, 30, "{limit:?}");
        pushed += 30;
    }
    let stats = proxy.stats();
    let res = hrana::execute(
        server.url(),
        server.token(),
        &["SELECT count(*), count(DISTINCT id) FROM test_inserts"],
    )
    .await
    .unwrap();
    let n = |i: usize| -> u64 {
        res[0]["rows"][0][i]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    println!(
        "faults_slow: pushed {pushed} rows of {ROW_BYTES} bytes through a link refusing big bodies: \
         requests {}, refused or stalled {}, rows inserted on the server {} ({} distinct)",
        stats.requests,
        stats.oversize,
        n(0),
        n(1)
    );
    assert!(stats.oversize >= 2, "both limits were met");
    assert_eq!(
        (n(0), n(1)),
        (pushed, pushed),
        "every row inserted exactly once"
    );
    assert_eq!(db.status().await.unwrap().pending_changes, 0);
}
