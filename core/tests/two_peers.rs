//! Deterministic multi-replica tests without a network or wall-clock time:
//! replicas sync through `LocalServer`, a Transport that executes Hrana
//! pipelines against an in-memory SQLite database (conditions included),
//! and each replica reads time from its own fake clock.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::hlc::Clock;
use erth_core::hrana::{from_proto, to_proto};
use erth_core::store::sqlite::SqliteStore;
use erth_core::store::Store;
use erth_core::transport::{HttpRequest, HttpResponse, Transport, TransportError};
use erth_core::{ChangeOrigin, Config, Database, Error, ErrorKind, SqlValue, Statement};
use libsql_hrana::proto;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

struct FakeClock(AtomicU64);

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

const T0: u64 = 1_800_000_000_000;

/// A Hrana server in memory.
struct LocalServer {
    db: Mutex<Arc<SqliteStore>>,
    requests: AtomicU32,
    /// Execute the next N requests, then fail as if the response was lost.
    lose_responses: AtomicU32,
}

impl LocalServer {
    fn new() -> Arc<LocalServer> {
        Arc::new(LocalServer {
            db: Mutex::new(Arc::new(SqliteStore::memory().unwrap())),
            requests: AtomicU32::new(0),
            lose_responses: AtomicU32::new(0),
        })
    }

    fn store(&self) -> Arc<SqliteStore> {
        self.db.lock().unwrap().clone()
    }

    /// Replaces the database with an empty one (a reset server).
    fn reset(&self) {
        *self.db.lock().unwrap() = Arc::new(SqliteStore::memory().unwrap());
    }

    async fn run_batch(&self, batch: proto::Batch) -> proto::BatchResult {
        let store = self.store();
        let n = batch.steps.len();
        let mut out = proto::BatchResult {
            step_results: vec![None; n],
            step_errors: vec![None; n],
            replication_index: None,
        };
        for (i, step) in batch.steps.into_iter().enumerate() {
            if let Some(cond) = &step.condition {
                if !eval(cond, &out) {
                    continue;
                }
            }
            let args = step
                .stmt
                .args
                .into_iter()
                .map(|v| from_proto(v).unwrap())
                .collect();
            match store
                .query(&Statement::new(step.stmt.sql.unwrap_or_default(), args))
                .await
            {
                Ok(rows) => {
                    out.step_results[i] = Some(proto::StmtResult {
                        cols: rows
                            .columns
                            .into_iter()
                            .map(|c| proto::Col {
                                name: Some(c),
                                decltype: None,
                            })
                            .collect(),
                        rows: rows
                            .rows
                            .into_iter()
                            .map(|r| proto::Row {
                                values: r.iter().map(to_proto).collect(),
                            })
                            .collect(),
                        affected_row_count: 0,
                        last_insert_rowid: None,
                        replication_index: None,
                        rows_read: 0,
                        rows_written: 0,
                        query_duration_ms: 0.0,
                    })
                }
                Err(e) => {
                    out.step_errors[i] = Some(proto::Error {
                        message: e.message,
                        code: "SQLITE_ERROR".into(),
                    })
                }
            }
        }
        out
    }
}

fn eval(cond: &proto::BatchCond, out: &proto::BatchResult) -> bool {
    match cond {
        proto::BatchCond::Ok { step } => out.step_results[*step as usize].is_some(),
        proto::BatchCond::Error { step } => out.step_errors[*step as usize].is_some(),
        proto::BatchCond::Not { cond } => !eval(cond, out),
        proto::BatchCond::And(l) => l.conds.iter().all(|c| eval(c, out)),
        proto::BatchCond::Or(l) => l.conds.iter().any(|c| eval(c, out)),
        _ => false,
    }
}

#[async_trait::async_trait]
impl Transport for LocalServer {
    async fn post(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        // Yield like a real network round trip, so concurrent callers interleave.
        tokio::task::yield_now().await;
        let body: proto::PipelineReqBody = serde_json::from_slice(&request.body).unwrap();
        let mut results = Vec::new();
        for r in body.requests {
            results.push(match r {
                proto::StreamRequest::Batch(b) => proto::StreamResult::Ok {
                    response: proto::StreamResponse::Batch(proto::BatchStreamResp {
                        result: self.run_batch(b.batch).await,
                    }),
                },
                proto::StreamRequest::Close(_) => proto::StreamResult::Ok {
                    response: proto::StreamResponse::Close(proto::CloseStreamResp {}),
                },
                other => panic!("unexpected request {other:?}"),
            });
        }
        let lose = self.lose_responses.load(Ordering::SeqCst);
        if lose > 0 {
            self.lose_responses.store(lose - 1, Ordering::SeqCst);
            return Err(TransportError::Io("connection reset after commit".into()));
        }
        let body = serde_json::to_vec(&proto::PipelineRespBody {
            baton: None,
            base_url: None,
            results,
        })
        .unwrap();
        Ok(HttpResponse { status: 200, body })
    }

    async fn sleep(&self, _ms: u64) {}
}

struct Peer {
    db: Database,
    clock: Arc<FakeClock>,
}

async fn peer(server: &Arc<LocalServer>, skew_ms: i64) -> Peer {
    let clock = Arc::new(FakeClock(AtomicU64::new((T0 as i64 + skew_ms) as u64)));
    let config = Config {
        url: Some("http://127.0.0.1:1".into()),
        pull_page_rows: 7,
        push_batch_rows: 5,
        rows_per_statement: 2,
        ..Config::default()
    };
    let db = Database::open(
        Arc::new(SqliteStore::memory().unwrap()),
        server.clone(),
        clock.clone(),
        config,
    )
    .await
    .unwrap();
    Peer { db, clock }
}

impl Peer {
    fn advance(&self, ms: u64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }
}

async fn assert_converged(peers: &[&Peer]) {
    let first = peers[0].db.dump("todos").await.unwrap();
    for p in &peers[1..] {
        assert_eq!(p.db.dump("todos").await.unwrap(), first);
    }
    for p in peers {
        assert_eq!(p.db.status().await.unwrap().pending_changes, 0);
    }
}

#[tokio::test]
async fn offline_edits_converge_in_every_sync_order() {
    for order in [[0, 1, 0], [1, 0, 1]] {
        let server = LocalServer::new();
        let (a, b) = (peer(&server, 0).await, peer(&server, 250).await);
        let t1 = a.db.add_todo("one").await.unwrap();
        let t2 = a.db.add_todo("two").await.unwrap();
        let t3 = a.db.add_todo("three").await.unwrap();
        a.db.sync().await.unwrap();
        b.db.sync().await.unwrap();
        assert_eq!(b.db.list_active_todos().await.unwrap().len(), 3);

        a.advance(10);
        b.advance(20);
        a.db.rename_todo(&t1.id, "one (A)").await.unwrap();
        a.db.set_todo_completed(&t2.id, true).await.unwrap();
        assert!(a.db.delete_todo(&t3.id).await.unwrap());
        b.db.set_todo_completed(&t1.id, true).await.unwrap();
        b.db.rename_todo(&t3.id, "three (B)").await.unwrap();
        b.db.add_todo("four (B)").await.unwrap();

        let peers = [&a, &b];
        for i in order {
            peers[i].db.sync().await.unwrap();
        }
        assert_converged(&peers).await;
        let list = a.db.list_active_todos().await.unwrap();
        let titles: Vec<_> = list
            .iter()
            .map(|t| (t.title.as_str(), t.is_completed))
            .collect();
        assert_eq!(
            titles,
            vec![("four (B)", false), ("two", true), ("one (A)", true)],
            "order {order:?}"
        );
        // The deleted todo never comes back, even after more edits elsewhere.
        assert!(matches!(
            b.db.rename_todo(&t3.id, "again").await,
            Err(Error::NotFound { .. })
        ));
        assert!(!b.db.delete_todo(&t3.id).await.unwrap());
    }
}

#[tokio::test]
async fn lost_push_response_is_retried_without_duplicates() {
    let server = LocalServer::new();
    let (a, b) = (peer(&server, 0).await, peer(&server, 0).await);
    a.db.sync().await.unwrap();
    for i in 0..3 {
        a.db.add_todo(&format!("t{i}")).await.unwrap();
    }
    server.lose_responses.store(1, Ordering::SeqCst);
    let report = a.db.sync().await.unwrap();
    assert_eq!(report.pushed, 3);
    b.db.sync().await.unwrap();
    assert_eq!(b.db.list_active_todos().await.unwrap().len(), 3);
    let seq = server
        .store()
        .query(&Statement::plain(
            "SELECT count(*), count(DISTINCT _seq) FROM todos",
        ))
        .await
        .unwrap();
    assert_eq!(
        seq.rows[0],
        vec![SqlValue::Integer(3), SqlValue::Integer(3)]
    );
    assert_converged(&[&a, &b]).await;
}

#[tokio::test]
async fn skewed_clocks_are_ordered_by_hlc_and_receive_catches_up() {
    let server = LocalServer::new();
    // A's wall clock runs 30 minutes ahead (within the 1 h drift bound).
    let (a, b) = (peer(&server, 30 * 60_000).await, peer(&server, 0).await);
    let t = a.db.add_todo("x").await.unwrap();
    a.db.sync().await.unwrap();
    b.db.sync().await.unwrap();
    // B's next write is later in real time; its clock observed A's, so it wins.
    b.advance(1);
    b.db.rename_todo(&t.id, "B wins").await.unwrap();
    b.db.sync().await.unwrap();
    a.db.sync().await.unwrap();
    assert_eq!(a.db.get_todo(&t.id).await.unwrap().title, "B wins");
    assert!(b.db.status().await.unwrap().clock_ahead_ms.is_none());
}

#[tokio::test]
async fn far_future_clock_is_accepted_but_clamped() {
    let server = LocalServer::new();
    let ten_days = 10 * 24 * 3_600_000;
    let (a, b) = (peer(&server, ten_days).await, peer(&server, 0).await);
    let t = a.db.add_todo("from the future").await.unwrap();
    a.db.sync().await.unwrap();
    b.db.sync().await.unwrap();
    assert_eq!(b.db.get_todo(&t.id).await.unwrap().title, "from the future");
    let s = b.db.status().await.unwrap();
    assert!(s.clock_ahead_ms.unwrap() >= ten_days as u64 - 1_000);
    let clk = b.db.last_clock().await;
    assert!(
        clk.physical_ms() <= T0 + 3_600_000,
        "B's clock stopped at now + max drift"
    );
    // An explicit local edit of that row still wins (its column clock is the
    // row's + 1), without dragging B's clock along, and everyone converges.
    b.db.rename_todo(&t.id, "edited on B").await.unwrap();
    assert!(b.db.last_clock().await.physical_ms() <= T0 + 3_600_000);
    b.db.sync().await.unwrap();
    a.db.sync().await.unwrap();
    assert_converged(&[&a, &b]).await;
    assert_eq!(a.db.get_todo(&t.id).await.unwrap().title, "edited on B");
}

#[tokio::test]
async fn invalid_server_rows_are_typed_errors_and_change_nothing() {
    let server = LocalServer::new();
    let (a, b) = (peer(&server, 0).await, peer(&server, 0).await);
    a.db.add_todo("good").await.unwrap();
    a.db.sync().await.unwrap();
    b.db.add_todo("pending on B").await.unwrap();
    let before = b.db.dump("todos").await.unwrap();
    let bad_rows = [
        "INSERT INTO todos VALUES ('not-an-id', 't', 0, 0, 1, 1, '0000000000000001-0000000000000001', '0000000000000001-0000000000000001', '0000000000000001-0000000000000001', 100, 0)",
        "UPDATE todos SET _clk_title = 'garbage', _seq = 101",
        "UPDATE todos SET title = NULL, _seq = 102",
        "UPDATE todos SET is_completed = 'yes', _seq = 103",
    ];
    for sql in bad_rows {
        let store = server.store();
        store
            .query(&Statement::plain(
                "DELETE FROM todos WHERE id = 'not-an-id'",
            ))
            .await
            .unwrap();
        let _ = store.query(&Statement::plain(sql)).await; // NOT NULL may refuse; then the row stays good
        let r = b.db.sync().await;
        if let Err(e) = r {
            assert_eq!(e.kind(), ErrorKind::Protocol, "{sql}: {e}");
            let after = b.db.dump("todos").await.unwrap();
            assert_eq!(after, before, "{sql}: local rows changed");
            assert_eq!(b.db.status().await.unwrap().last_error, Some(e.to_string()));
        } else {
            panic!("{sql}: sync accepted an invalid row");
        }
    }
}

#[tokio::test]
async fn reset_server_gets_everything_again() {
    let server = LocalServer::new();
    let a = peer(&server, 0).await;
    for i in 0..4 {
        a.db.add_todo(&format!("t{i}")).await.unwrap();
    }
    a.db.sync().await.unwrap();
    server.reset();
    // A new handle (a reconnect) notices the new server identity.
    a.db.set_remote(Some("http://127.0.0.1:1"), None).unwrap();
    let r = a.db.sync().await.unwrap();
    assert_eq!(r.pushed, 4);
    let b = peer(&server, 0).await;
    b.db.sync().await.unwrap();
    assert_converged(&[&a, &b]).await;
}

#[tokio::test]
async fn local_only_until_a_remote_is_set() {
    let server = LocalServer::new();
    let clock = Arc::new(FakeClock(AtomicU64::new(T0)));
    let db = Database::open(
        Arc::new(SqliteStore::memory().unwrap()),
        server.clone(),
        clock,
        Config {
            // An empty URL is local-only, not an invalid URL.
            url: Some(String::new()),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    db.add_todo("offline").await.unwrap();
    assert!(matches!(db.sync().await, Err(Error::NoRemote)));
    db.set_remote(Some(" "), None).unwrap();
    assert!(matches!(db.sync().await, Err(Error::NoRemote)));
    assert_eq!(db.status().await.unwrap().remote_url, None);
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    assert_eq!(db.status().await.unwrap().pending_changes, 1);
    db.set_remote(Some("http://127.0.0.1:1"), Some("tok"))
        .unwrap();
    assert_eq!(db.sync().await.unwrap().pushed, 1);
    assert_eq!(db.status().await.unwrap().pending_changes, 0);
}

#[tokio::test]
async fn subscriptions_see_local_and_remote_changes_and_progress_is_reported() {
    let server = LocalServer::new();
    let (a, b) = (peer(&server, 0).await, peer(&server, 0).await);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let sub = b.db.subscribe(Arc::new(move |e| {
        s2.lock().unwrap().push((e.origin, e.ids.len()))
    }));
    b.db.add_todo("local").await.unwrap();
    for i in 0..12 {
        a.db.add_todo(&format!("remote {i}")).await.unwrap();
    }
    a.db.sync().await.unwrap();
    let pages = Arc::new(Mutex::new(Vec::new()));
    let p2 = pages.clone();
    b.db.sync_with_progress(&move |p| p2.lock().unwrap().push(p))
        .await
        .unwrap();
    let got = seen.lock().unwrap().clone();
    assert_eq!(got[0], (ChangeOrigin::Local, 1));
    let remote: usize = got
        .iter()
        .filter(|(o, _)| *o == ChangeOrigin::Remote)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(remote, 12, "pulled rows, not B's own echo");
    assert!(
        pages.lock().unwrap().len() >= 3,
        "one push batch and two pull pages at least"
    );
    drop(sub);
    b.db.add_todo("after unsubscribe").await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), got.len());
}

#[tokio::test]
async fn concurrent_syncs_coalesce() {
    let server = LocalServer::new();
    let a = peer(&server, 0).await;
    a.db.add_todo("x").await.unwrap();
    let (r1, r2) = tokio::join!(a.db.sync(), a.db.sync());
    assert_eq!(
        r1.unwrap(),
        r2.unwrap(),
        "the second caller reused the first sync's report"
    );
    assert_eq!(a.db.status().await.unwrap().pending_changes, 0);
}

#[tokio::test]
async fn edits_during_push_stay_pending() {
    let server = LocalServer::new();
    let a = peer(&server, 0).await;
    let t = a.db.add_todo("x").await.unwrap();
    a.db.sync().await.unwrap();
    // Simulate "edited while the push was in flight": the pushed _dirty value no longer matches.
    a.db.rename_todo(&t.id, "y").await.unwrap();
    let dirty_before = a.db.status().await.unwrap().pending_changes;
    assert_eq!(dirty_before, 1);
    a.db.sync().await.unwrap();
    assert_eq!(a.db.status().await.unwrap().pending_changes, 0);
}
