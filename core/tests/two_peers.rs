//! Deterministic multi-replica tests without a network or wall-clock time:
//! replicas sync through `LocalServer`, a Transport that executes Hrana
//! pipelines against an in-memory SQLite database (conditions included),
//! and each replica reads time from its own fake clock. The server can lose
//! a response after committing its request, and hold a push after
//! committing it, so a test can edit while the push is in flight.

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
use tokio::sync::oneshot;

struct FakeClock(AtomicU64);

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

const T0: u64 = 1_800_000_000_000;

/// A push the server holds after executing it: it says so on `executed`
/// and answers only once `release` fires.
struct HeldPush {
    executed: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// A Hrana server in memory.
struct LocalServer {
    db: Mutex<Arc<SqliteStore>>,
    requests: AtomicU32,
    /// Execute the next N requests, then fail as if the response was lost.
    lose_responses: AtomicU32,
    /// `(id, _seq)` of every row at the moment a response was lost.
    seqs_at_loss: Mutex<Option<Vec<Vec<SqlValue>>>>,
    /// Hold the next push request (see [`HeldPush`]).
    held_push: Mutex<Option<HeldPush>>,
    /// For each coming push request, in order: fail it before executing
    /// (a dropped request) when `true`.
    fail_pushes: Mutex<std::collections::VecDeque<bool>>,
}

impl LocalServer {
    fn new() -> Arc<LocalServer> {
        Arc::new(LocalServer {
            db: Mutex::new(Arc::new(SqliteStore::memory().unwrap())),
            requests: AtomicU32::new(0),
            lose_responses: AtomicU32::new(0),
            seqs_at_loss: Mutex::new(None),
            held_push: Mutex::new(None),
            fail_pushes: Mutex::new(std::collections::VecDeque::new()),
        })
    }

    /// `(id, _seq)` of every server row, by id.
    async fn seqs(&self) -> Vec<Vec<SqlValue>> {
        self.store()
            .query(&Statement::plain("SELECT id, _seq FROM todos ORDER BY id"))
            .await
            .unwrap()
            .rows
    }

    /// Holds the next push after the server committed it: returns a
    /// receiver that fires then, and the sender that lets the answer go.
    fn hold_next_push(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (executed, in_flight) = oneshot::channel();
        let (release, released) = oneshot::channel();
        *self.held_push.lock().unwrap() = Some(HeldPush {
            executed,
            release: released,
        });
        (in_flight, release)
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
        let is_push = body.requests.iter().any(|r| {
            matches!(r, proto::StreamRequest::Batch(b) if b.batch.steps.iter().any(|s| {
                s.stmt.sql.as_deref().is_some_and(|sql| {
                    sql.starts_with("INSERT INTO \"") && !sql.starts_with("INSERT INTO \"_erth")
                })
            }))
        });
        if is_push && self.fail_pushes.lock().unwrap().pop_front() == Some(true) {
            return Err(TransportError::Io(
                "connection reset before the request arrived".into(),
            ));
        }
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
        let held = if is_push {
            self.held_push.lock().unwrap().take()
        } else {
            None
        };
        if let Some(held) = held {
            held.executed.send(()).unwrap();
            held.release.await.unwrap();
        }
        let lose = self.lose_responses.load(Ordering::SeqCst);
        if lose > 0 {
            self.lose_responses.store(lose - 1, Ordering::SeqCst);
            *self.seqs_at_loss.lock().unwrap() = Some(self.seqs().await);
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
        // The in-memory server's sleep passes no time: a sync deadline
        // (a sleep raced against the sync) would pass at once.
        sync_timeout_ms: 0,
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
async fn lost_push_response_is_retried_without_reapplying() {
    let server = LocalServer::new();
    let (a, b) = (peer(&server, 0).await, peer(&server, 0).await);
    a.db.sync().await.unwrap();
    for i in 0..3 {
        a.db.add_todo(&format!("t{i}")).await.unwrap();
    }
    // The server commits the push, its answer is lost, the client retries.
    server.lose_responses.store(1, Ordering::SeqCst);
    let report = a.db.sync().await.unwrap();
    assert_eq!(report.pushed, 3);
    let at_loss = server
        .seqs_at_loss
        .lock()
        .unwrap()
        .take()
        .expect("a response was lost");
    assert_eq!(at_loss.len(), 3, "the lost push had committed");
    // A duplicate apply would give the rows new sequence numbers (and send
    // them to every replica again): the retry must leave them untouched.
    assert_eq!(
        server.seqs().await,
        at_loss,
        "the retried push re-applied rows"
    );
    b.db.sync().await.unwrap();
    assert_eq!(b.db.list_active_todos().await.unwrap().len(), 3);
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

const TEN_DAYS: i64 = 10 * 24 * 3_600_000;

/// A, ten days ahead, adds a row; A then B sync: B holds a row whose clocks
/// are far past its drift bound.
async fn row_from_the_future(server: &Arc<LocalServer>) -> (Peer, Peer, erth_core::Todo) {
    let (a, b) = (peer(server, TEN_DAYS).await, peer(server, 0).await);
    let t = a.db.add_todo("from the future").await.unwrap();
    a.db.sync().await.unwrap();
    b.db.sync().await.unwrap();
    (a, b, t)
}

#[tokio::test]
async fn far_future_clock_is_accepted_but_clamped() {
    let server = LocalServer::new();
    let (a, b, t) = row_from_the_future(&server).await;
    assert_eq!(b.db.get_todo(&t.id).await.unwrap().title, "from the future");
    let s = b.db.status().await.unwrap();
    assert!(s.clock_ahead_ms.unwrap() >= TEN_DAYS as u64 - 1_000);
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

const CLK: &str = "0000000000000001-0000000000000001";

#[tokio::test]
async fn far_future_row_deleted_by_a_clamped_replica_converges() {
    let server = LocalServer::new();
    let (a, b, t) = row_from_the_future(&server).await;
    // B's clock stops at now + max drift, below the row's clocks; its
    // delete must still not take the row's is_deleted clock backwards.
    assert!(b.db.delete_todo(&t.id).await.unwrap());
    let row = b.db.get_row("todos", &t.id).await.unwrap().unwrap();
    let added = a.db.get_row("todos", &t.id).await.unwrap().unwrap();
    assert!(
        row.clocks[2] > added.clocks[2],
        "the delete's clock went back"
    );
    b.db.sync().await.unwrap();
    a.db.sync().await.unwrap();
    assert_converged(&[&a, &b]).await;
    assert!(
        a.db.get_row("todos", &t.id)
            .await
            .unwrap()
            .unwrap()
            .is_deleted
    );
}

#[tokio::test]
async fn invalid_server_rows_are_quarantined_and_the_others_sync() {
    let server = LocalServer::new();
    // A server whose `todos` ignores the row layout's types and NOT NULLs
    // (made before the first sync, which keeps an existing table), so every
    // hostile row below can be planted.
    server
        .store()
        .write(&[Statement::plain(
            "CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, title, is_completed, is_deleted, \
             created_at, updated_at, _clk_title, _clk_is_completed, _clk_is_deleted, _seq INTEGER, _dirty)",
        )])
        .await
        .unwrap();
    let (a, b) = (peer(&server, 0).await, peer(&server, 0).await);
    let good = a.db.add_todo("good").await.unwrap();
    a.db.sync().await.unwrap();
    b.db.sync().await.unwrap();
    b.db.add_todo("pending on B").await.unwrap();
    let cols = "id, title, is_completed, is_deleted, created_at, updated_at, _clk_title, _clk_is_completed, _clk_is_deleted";
    let saved = server
        .store()
        .query(&Statement::new(
            format!("SELECT {cols} FROM todos WHERE id = ?"),
            vec![good.id.clone().into()],
        ))
        .await
        .unwrap()
        .rows
        .remove(0);
    let id = &good.id;
    // (what, SQL planting it with _seq = ?1, what the error must name)
    let cases = [
        (
            "invalid id",
            format!("INSERT INTO todos VALUES ('not-an-id', 't', 0, 0, 1, 1, '{CLK}', '{CLK}', '{CLK}', ?1, 0)"),
            "\"not-an-id\" is not a UUID",
        ),
        (
            "broken clock",
            format!("UPDATE todos SET _clk_title = 'garbage', _seq = ?1 WHERE id = '{id}'"),
            "clock of title",
        ),
        (
            "NULL in a NOT NULL column",
            format!("UPDATE todos SET title = NULL, _seq = ?1 WHERE id = '{id}'"),
            "column title may not be NULL",
        ),
        (
            "wrong type",
            format!("UPDATE todos SET is_completed = 'yes', _seq = ?1 WHERE id = '{id}'"),
            "column is_completed is INTEGER but got TEXT",
        ),
    ];
    for (k, (what, sql, names)) in cases.iter().enumerate() {
        let seq = 100 * (k as i64 + 1);
        let before = b.db.dump("todos").await.unwrap();
        let store = server.store();
        // A valid row right after the hostile one, on the same pull page.
        let bystander = erth_core::ids::new_id();
        store
            .write(&[
                Statement::new(sql.clone(), vec![SqlValue::Integer(seq)]),
                Statement::new(
                    format!("INSERT INTO todos VALUES (?, 'bystander', 0, 0, 1, 1, '{CLK}', '{CLK}', '{CLK}', ?, 0)"),
                    vec![bystander.clone().into(), SqlValue::Integer(seq + 1)],
                ),
            ])
            .await
            .unwrap_or_else(|e| panic!("{what}: could not plant the rows: {e}"));
        // The sync succeeds: the hostile row is quarantined with its
        // reason, the bystander on the same page arrives, B's pending row
        // goes up.
        b.db.sync()
            .await
            .unwrap_or_else(|e| panic!("{what}: one bad row failed the sync: {e}"));
        let quarantined = b.db.quarantined_rows().await.unwrap();
        assert_eq!(quarantined.len(), 1, "{what}: {quarantined:?}");
        assert_eq!(quarantined[0].table, "todos", "{what}");
        assert_eq!(quarantined[0].seq, seq, "{what}");
        assert!(
            quarantined[0].reason.contains(names),
            "{what}: the reason names another fault: {}",
            quarantined[0].reason
        );
        let status = b.db.status().await.unwrap();
        assert_eq!(status.quarantined, 1, "{what}");
        assert_eq!(status.last_error, None, "{what}");
        assert_eq!(status.last_error_kind, None, "{what}");
        assert_eq!(status.pending_changes, 0, "{what}: B's own row was pushed");
        assert_eq!(
            b.db.get_todo(&bystander).await.unwrap().title,
            "bystander",
            "{what}"
        );
        // Nothing of the hostile row was applied.
        let after: Vec<_> =
            b.db.dump("todos")
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.id != bystander && before.iter().all(|o| o.id != r.id))
                .filter(|r| r.values[0] != SqlValue::from("pending on B"))
                .collect();
        assert!(after.is_empty(), "{what}: unexpected rows {after:?}");
        assert_eq!(
            b.db.get_row("todos", id).await.unwrap(),
            before.iter().find(|r| &r.id == id).cloned(),
            "{what}: the good row changed"
        );
        // Repair: drop the intruder, restore the good row with a newer _seq.
        let mut args = saved.clone();
        args.push(SqlValue::Integer(seq + 2));
        store
            .write(&[
                Statement::plain("DELETE FROM todos WHERE id = 'not-an-id'"),
                Statement::new(
                    format!("INSERT OR REPLACE INTO todos ({cols}, _seq, _dirty) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"),
                    args,
                ),
            ])
            .await
            .unwrap();
        b.db.sync()
            .await
            .unwrap_or_else(|e| panic!("{what}: sync after the repair: {e}"));
        assert_eq!(b.db.get_todo(id).await.unwrap().title, "good", "{what}");
        // A quarantined row that arrives valid leaves the quarantine; one
        // that the server dropped stays listed (it never arrives again).
        let left = b.db.quarantined_rows().await.unwrap();
        if *what == "invalid id" {
            assert_eq!(left.len(), 1, "{what}: {left:?}");
            assert_eq!(b.db.forget_quarantined().await.unwrap(), 1, "{what}");
            assert_eq!(b.db.status().await.unwrap().quarantined, 0, "{what}");
        } else {
            assert!(left.is_empty(), "{what}: {left:?}");
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
            sync_timeout_ms: 0,
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
    // What one sync costs: a fresh replica with one pending row, synced once.
    let lone = LocalServer::new();
    let p = peer(&lone, 0).await;
    p.db.add_todo("x").await.unwrap();
    p.db.sync().await.unwrap();
    let one_sync = lone.requests.load(Ordering::SeqCst);
    assert!(one_sync > 0);
    // Two overlapping calls on a replica in the same state.
    let server = LocalServer::new();
    let a = peer(&server, 0).await;
    a.db.add_todo("x").await.unwrap();
    let (r1, r2) = tokio::join!(a.db.sync(), a.db.sync());
    assert_eq!(
        r1.unwrap(),
        r2.unwrap(),
        "the second caller reused the first sync's report"
    );
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        one_sync,
        "the server saw the requests of one sync, not two"
    );
    assert_eq!(a.db.status().await.unwrap().pending_changes, 0);
}

#[tokio::test]
async fn edits_during_push_stay_pending() {
    let server = LocalServer::new();
    let (a, b) = (peer(&server, 0).await, peer(&server, 0).await);
    let t = a.db.add_todo("x").await.unwrap();
    a.db.sync().await.unwrap();
    b.db.sync().await.unwrap();
    a.advance(1);
    a.db.rename_todo(&t.id, "pushed").await.unwrap();
    // The server holds the push after committing it; meanwhile A edits the
    // row again, then the answer arrives.
    let (in_flight, release) = server.hold_next_push();
    let edit = async {
        in_flight.await.unwrap();
        a.advance(1);
        a.db.rename_todo(&t.id, "edited during the push")
            .await
            .unwrap();
        release.send(()).unwrap();
    };
    let (report, ()) = tokio::join!(a.db.sync(), edit);
    assert_eq!(report.unwrap().pushed, 1);
    assert_eq!(
        a.db.status().await.unwrap().pending_changes,
        1,
        "the edit made during the push is still pending"
    );
    assert_eq!(
        a.db.get_todo(&t.id).await.unwrap().title,
        "edited during the push"
    );
    b.db.sync().await.unwrap();
    assert_eq!(b.db.get_todo(&t.id).await.unwrap().title, "pushed");
    // The next sync sends the edit, and B gets it.
    assert_eq!(a.db.sync().await.unwrap().pushed, 1);
    b.db.sync().await.unwrap();
    assert_eq!(
        b.db.get_todo(&t.id).await.unwrap().title,
        "edited during the push"
    );
    assert_converged(&[&a, &b]).await;
}

const YEAR: i64 = 365 * 24 * 3_600_000;

/// Live row ids of `p`, sorted.
async fn live_ids(p: &Peer) -> Vec<String> {
    let mut ids: Vec<String> =
        p.db.dump("todos")
            .await
            .unwrap()
            .into_iter()
            .filter(|r| !r.is_deleted)
            .map(|r| r.id)
            .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn replicas_hold_the_same_bytes_whatever_their_wall_clocks() {
    let server = LocalServer::new();
    // Wall clocks: 1970, a year ahead (both beyond the others' drift
    // bound), and true time.
    let peers = [
        peer(&server, -(T0 as i64)).await,
        peer(&server, YEAR).await,
        peer(&server, 0).await,
    ];
    let sync_all = |order: [usize; 3]| {
        let peers = &peers;
        async move {
            for i in order {
                peers[i].db.sync().await.unwrap();
            }
        }
    };
    for (i, p) in peers.iter().enumerate() {
        p.db.add_todo(&format!("api {i}")).await.unwrap();
        p.db.execute(
            "INSERT INTO todos (title) VALUES (?)",
            &[format!("sql {i}").as_str().into()],
        )
        .await
        .unwrap();
    }
    sync_all([0, 1, 2]).await;
    sync_all([2, 1, 0]).await;

    // Three rounds of concurrent edits of the same rows through both faces
    // (rename, toggle, delete), each replica on its own clock.
    for round in 0..3usize {
        for (i, p) in peers.iter().enumerate() {
            let ids = live_ids(p).await;
            let pick = |k: usize| ids[(k + i + round) % ids.len()].clone();
            p.db.rename_todo(&pick(0), &format!("renamed by {i} in {round}"))
                .await
                .unwrap();
            p.db.execute(
                "UPDATE todos SET is_completed = 1 - is_completed, title = title || '!' WHERE id = ?",
                &[pick(1).as_str().into()],
            )
            .await
            .unwrap();
            if round == 1 {
                if i % 2 == 0 {
                    assert!(p.db.delete_todo(&pick(2)).await.unwrap());
                } else {
                    p.db.execute("DELETE FROM todos WHERE id = ?", &[pick(2).as_str().into()])
                        .await
                        .unwrap();
                }
            }
            p.advance(7);
        }
        let order = [[0, 1, 2], [1, 2, 0], [2, 0, 1]][round];
        sync_all(order).await;
    }
    sync_all([0, 1, 2]).await;
    sync_all([0, 1, 2]).await;
    assert_converged(&[&peers[0], &peers[1], &peers[2]]).await;

    // An edit made after seeing every other wins everywhere, whatever the
    // editor's wall clock: the 1970 replica renames, then the year-ahead one.
    for (i, p) in [(0, &peers[0]), (1, &peers[1])] {
        let id = live_ids(p).await[0].clone();
        p.db.rename_todo(&id, &format!("last word of {i}"))
            .await
            .unwrap();
        sync_all([i, 2, 1 - i]).await;
        sync_all([0, 1, 2]).await;
        for q in &peers {
            assert_eq!(
                q.db.get_todo(&id).await.unwrap().title,
                format!("last word of {i}")
            );
        }
    }
    assert_converged(&[&peers[0], &peers[1], &peers[2]]).await;
    let dump = peers[0].db.dump("todos").await.unwrap();
    let tombstones = dump.iter().filter(|r| r.is_deleted).count();
    assert_eq!(tombstones, 3, "one delete per replica");
    for r in dump.iter().filter(|r| r.is_deleted) {
        assert_eq!(r.values, [SqlValue::from(""), SqlValue::Integer(0)]);
    }
}

#[tokio::test]
async fn a_sync_waits_for_another_process_syncing_the_file_then_fails_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let server = LocalServer::new();
    let config = Config {
        url: Some("http://127.0.0.1:1".into()),
        sync_lock_timeout_ms: 100,
        sync_timeout_ms: 0,
        ..Config::default()
    };
    let db = Database::open(
        Arc::new(SqliteStore::open(&path).unwrap()),
        server.clone(),
        Arc::new(FakeClock(AtomicU64::new(T0))),
        config,
    )
    .await
    .unwrap();
    db.add_todo("written while another process syncs")
        .await
        .unwrap();
    // Another process sharing the file is syncing: it holds the sync lock.
    let other = SqliteStore::open(&path).unwrap();
    let held = other.try_lock_sync().unwrap().expect("the lock is free");
    let before = server.requests.load(Ordering::SeqCst);
    let e = db.sync().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::DatabaseLocked(erth_core::LockHolder::OtherProcess)
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("another process"), "{e}");
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        before,
        "no request while waiting"
    );
    assert_eq!(db.status().await.unwrap().pending_changes, 1);
    // Its sync ends: this one runs.
    drop(held);
    assert_eq!(db.sync().await.unwrap().pushed, 1);
    assert_eq!(db.status().await.unwrap().pending_changes, 0);
}

#[tokio::test]
async fn rows_that_outgrow_the_page_budget_are_planned_one_by_one() {
    // B's first size probe counts 7 small rows (`pull_page_rows`); the
    // probe riding on their page counts and sums the next rows, three of
    // 1.5 MB: 4.5 MB, over the 4 MB page budget, so they are listed row by
    // row: a page of two (3 MB), then the last. Taken whole, the three
    // would be one 4.5 MB page: [7, 10].
    let server = LocalServer::new();
    let (a, b) = (peer(&server, 0).await, peer(&server, 0).await);
    for i in 0..7 {
        a.db.add_todo(&format!("small {i}")).await.unwrap();
    }
    for i in 0..3 {
        a.db.add_todo(&format!("{i}{}", "x".repeat(1_500_000)))
            .await
            .unwrap();
    }
    a.db.sync().await.unwrap();
    let pages = Arc::new(Mutex::new(Vec::new()));
    let p2 = pages.clone();
    let report =
        b.db.sync_with_progress(&move |p| {
            if let erth_core::SyncProgress::Pulled { rows, .. } = p {
                p2.lock().unwrap().push(rows);
            }
        })
        .await
        .unwrap();
    assert_eq!(report.pulled, 10);
    assert_eq!(*pages.lock().unwrap(), vec![7, 9, 10]);
    assert_converged(&[&a, &b]).await;
}

#[tokio::test]
async fn a_large_pull_is_staged_in_parts_whole_and_reads_take_the_right_index() {
    // One page of 4,500 rows (pages of at most 5,000) is merged in five
    // local transactions of at most 1,000 rows, the last with the cursor:
    // every row arrives once, at its latest version.
    let server = LocalServer::new();
    let a = peer(&server, 0).await.db;
    let config = Config {
        url: Some("http://127.0.0.1:1".into()),
        pull_page_rows: 5_000,
        push_batch_rows: 1_000,
        sync_timeout_ms: 0,
        ..Config::default()
    };
    let b_store = Arc::new(SqliteStore::memory().unwrap());
    let b = Database::open(
        b_store.clone(),
        server.clone(),
        Arc::new(FakeClock(AtomicU64::new(T0))),
        config,
    )
    .await
    .unwrap();
    let stats = Statement::plain("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'");
    let mut ids = Vec::new();
    for i in 0..4_500 {
        ids.push(a.add_todo(&format!("todo {i}")).await.unwrap().id);
    }
    a.rename_todo(&ids[4_499], "renamed").await.unwrap();
    a.sync().await.unwrap();
    let pages = Arc::new(Mutex::new(Vec::new()));
    let p2 = pages.clone();
    let report = b
        .sync_with_progress(&move |p| {
            if let erth_core::SyncProgress::Pulled { rows, .. } = p {
                p2.lock().unwrap().push(rows);
            }
        })
        .await
        .unwrap();
    assert_eq!(report.pulled, 4_500);
    assert_eq!(*pages.lock().unwrap(), vec![4_500]);
    assert_eq!(
        b.dump("todos").await.unwrap(),
        a.dump("todos").await.unwrap()
    );
    assert_eq!(b.get_todo(&ids[4_499]).await.unwrap().title, "renamed");
    // Nothing new: the cursor stands after the page's last row.
    assert_eq!(b.sync().await.unwrap().pulled, 0);
    // With 10,000 rows and no statistics (none are made), a range by id
    // through the view reads the primary key, and the newest live rows the
    // live rows' index.
    for i in 0..5_500 {
        a.add_todo(&format!("more {i}")).await.unwrap();
    }
    a.sync().await.unwrap();
    assert_eq!(b.sync().await.unwrap().pulled, 5_500);
    assert_eq!(
        b_store.query(&stats).await.unwrap().rows[0][0],
        SqlValue::Integer(0)
    );
    for (sql, index) in [
        (
            "SELECT id FROM todos WHERE id >= '0' ORDER BY id LIMIT 100",
            "autoindex",
        ),
        (
            "SELECT id FROM todos ORDER BY created_at DESC LIMIT 20",
            "_erth_ix_todos_alive",
        ),
    ] {
        let plan = b_store
            .query(&Statement::plain(format!("EXPLAIN QUERY PLAN {sql}")))
            .await
            .unwrap();
        let plan = format!("{:?}", plan.rows);
        assert!(
            plan.contains(index) && !plan.contains("TEMP B-TREE"),
            "{sql}: {plan}"
        );
    }
}

#[tokio::test]
async fn a_first_pull_shows_nothing_until_it_is_applied_whole() {
    // B's first pull comes in pages of 7 rows, written straight into its
    // engine table: while it runs, B's app sees only its own row (through
    // the view, the typed API and a dump); once applied, everything, with
    // one change event.
    let server = LocalServer::new();
    let a = peer(&server, 0).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(a.db.add_todo(&format!("todo {i}")).await.unwrap().id);
    }
    a.db.sync().await.unwrap();
    let b_store = Arc::new(SqliteStore::memory().unwrap());
    let b = Database::open(
        b_store.clone(),
        server.clone(),
        Arc::new(FakeClock(AtomicU64::new(T0))),
        Config {
            url: Some("http://127.0.0.1:1".into()),
            pull_page_rows: 7,
            sync_timeout_ms: 0,
            ..Config::default()
        },
    )
    .await
    .unwrap();
    let own = b.add_todo("B's own").await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    let _sub = b.subscribe(Arc::new(move |e: &erth_core::ChangeEvent| {
        if e.origin == ChangeOrigin::Remote {
            e2.lock().unwrap().push(e.ids.len());
        }
    }));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s2, store) = (seen.clone(), b_store.clone());
    let report = b
        .sync_with_progress(&move |p| {
            if let erth_core::SyncProgress::Pulled { rows, .. } = p {
                let count = store
                    .query_app(&[], &Statement::plain("SELECT count(*) FROM todos"))
                    .unwrap();
                s2.lock()
                    .unwrap()
                    .push((rows, count.rows[0][0].as_i64().unwrap()));
            }
        })
        .await
        .unwrap();
    assert_eq!(
        report.pulled, 31,
        "A's 30 rows and B's own, back from the server"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 4, "pages: {seen:?}");
    for (pulled, visible) in &seen {
        assert_eq!(
            *visible, 1,
            "after {pulled} rows pulled, the app saw {visible} rows"
        );
    }
    assert_eq!(b.list_active_todos().await.unwrap().len(), 31);
    assert_eq!(b.get_todo(&ids[0]).await.unwrap().title, "todo 0");
    assert_eq!(b.get_todo(&own.id).await.unwrap().title, "B's own");
    assert_eq!(
        *events.lock().unwrap(),
        vec![30],
        "one event, naming A's rows"
    );
    a.db.sync().await.unwrap();
    assert_eq!(
        b.dump("todos").await.unwrap(),
        a.db.dump("todos").await.unwrap()
    );
}

/// Threads named like the auto-sync driver's, in this process (Linux).
fn auto_sync_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim() == "erth-auto-sync")
                .count()
        })
        .unwrap_or(0)
}

/// Polls `check` every 10 ms for up to 10 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..1_000 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_sync_pushes_after_writes_pulls_on_its_interval_waits_offline_and_stops() {
    use erth_core::{AutoSync, AutoSyncOptions};
    let server = LocalServer::new();
    let open = |options: AutoSyncOptions| {
        let server = server.clone();
        async move {
            let config = Config {
                url: Some("http://127.0.0.1:1".into()),
                auto_sync: Some(options),
                // The in-memory server's sleep passes no time (see `peer`).
                sync_timeout_ms: 0,
                ..Config::default()
            };
            let clock = Arc::new(FakeClock(AtomicU64::new(T0)));
            let store = Arc::new(SqliteStore::memory().unwrap());
            Arc::new(Database::open(store, server, clock, config).await.unwrap())
        }
    };
    let a = open(AutoSyncOptions {
        debounce_ms: 20,
        interval_ms: 0,
    })
    .await;
    let b = open(AutoSyncOptions {
        debounce_ms: 20,
        interval_ms: 50,
    })
    .await;
    let started = Arc::new(AtomicU32::new(0));
    let seen = started.clone();
    let observer: erth_core::autosync::SyncObserver = Arc::new(move |syncing| {
        if syncing {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let auto_a = AutoSync::start(&a, Some(observer)).unwrap();
    let auto_b = AutoSync::start(&b, None).unwrap();
    assert!(a.status().await.unwrap().auto_sync);

    // A's write is pushed after the debounce; B's interval pulls it. No sync() call.
    let todo = a.add_todo("by itself").await.unwrap();
    eventually("B to pull A's write", async || {
        b.get_todo(&todo.id).await.is_ok()
    })
    .await;
    eventually("A's push to be acknowledged", async || {
        a.status().await.unwrap().pending_changes == 0
    })
    .await;
    // One sync at start, one after the write (which the first may also have carried).
    eventually("the observer to hear two syncs start", async || {
        started.load(Ordering::SeqCst) >= 2
    })
    .await;

    // Offline: sync() fails with Network at once, auto-sync waits; back online, it syncs.
    // (A sync already running when the app goes offline runs to its end.)
    a.set_online(false);
    eventually("A's running auto-sync to end", async || {
        !a.status().await.unwrap().syncing
    })
    .await;
    let e = a.sync().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network);
    let requests = server.requests.load(Ordering::SeqCst);
    let offline = a.add_todo("written offline").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let status = a.status().await.unwrap();
    assert!(!status.online);
    assert_eq!(status.pending_changes, 1, "nothing synced while offline");
    a.set_online(true);
    eventually("A's sync when back online", async || {
        a.status().await.unwrap().pending_changes == 0
    })
    .await;
    eventually("B to pull the offline write", async || {
        b.get_todo(&offline.id).await.is_ok()
    })
    .await;
    assert!(server.requests.load(Ordering::SeqCst) > requests);

    // Dropping the handles stops the drivers: no thread is left, the
    // databases are whole, and nothing syncs any more.
    assert_eq!(auto_sync_threads(), 2);
    drop((auto_a, auto_b));
    assert_eq!(auto_sync_threads(), 0);
    let requests = server.requests.load(Ordering::SeqCst);
    a.add_todo("after stop").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(server.requests.load(Ordering::SeqCst), requests);
    assert_eq!(
        Arc::strong_count(&a),
        1,
        "the driver let go of the database"
    );

    // Every request fails: the first auto-sync's error is in the status, with its kind.
    server.lose_responses.store(u32::MAX, Ordering::SeqCst);
    let db = open(AutoSyncOptions::default()).await;
    let auto = AutoSync::start(&db, None).unwrap();
    eventually("the failed first sync", async || {
        db.status().await.unwrap().last_error_kind == Some(ErrorKind::Network)
    })
    .await;
    let status = db.status().await.unwrap();
    assert!(status.last_error.is_some() && !status.syncing);
    // The database goes first: the driver notices and ends; the handle's drop waits for that.
    drop(db);
    drop(auto);
    assert_eq!(auto_sync_threads(), 0);
}

/// The rows of one local transaction across two tables travel in one
/// server transaction, also when a push fails for the network: the sync
/// fails with every row pending, never sending the tables one by one (the
/// first could commit and be pulled by another device before the second).
#[tokio::test]
async fn a_transaction_across_tables_is_never_pushed_in_part() {
    const SCHEMA: &str = r#"{"tables": {
        "projects": {"columns": {"notes": {"type": "integer", "notNull": true, "default": 0}}},
        "notes": {"columns": {"project_id": {"type": "text", "notNull": true, "default": ""}}}
    }}"#;
    let server = LocalServer::new();
    let config = Config {
        url: Some("http://127.0.0.1:1".into()),
        sync_timeout_ms: 0,
        retry: erth_core::hrana::RetryPolicy {
            attempts: 1,
            base_delay_ms: 0,
            max_delay_ms: 0,
        },
        ..Config::default()
    }
    .with_schema_json(SCHEMA)
    .unwrap();
    let clock = Arc::new(FakeClock(AtomicU64::new(T0)));
    let db = Database::open(
        Arc::new(SqliteStore::memory().unwrap()),
        server.clone(),
        clock,
        config,
    )
    .await
    .unwrap();
    db.sync().await.unwrap();
    db.transaction(&[
        Statement::new(
            "INSERT INTO projects (id, notes) VALUES ('01900000-0000-7000-8000-000000000001', 1)",
            vec![],
        ),
        Statement::new(
            "INSERT INTO notes (project_id) VALUES ('01900000-0000-7000-8000-000000000001')",
            vec![],
        ),
    ])
    .await
    .unwrap();
    // The batch of both tables is dropped; a push of one table alone would
    // land; one of the other alone would be dropped again.
    server
        .fail_pushes
        .lock()
        .unwrap()
        .extend([true, false, true]);
    let e = db.sync().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    let count = |table: &str| {
        let server = server.clone();
        let sql = format!("SELECT count(*) FROM {table}");
        async move {
            server
                .store()
                .query(&Statement::plain(sql))
                .await
                .unwrap()
                .rows[0][0]
                .clone()
        }
    };
    assert_eq!(
        (count("projects").await, count("notes").await),
        (SqlValue::Integer(0), SqlValue::Integer(0)),
        "the server holds part of the transaction"
    );
    assert_eq!(db.pending_changes().await.unwrap(), 2);
    server.fail_pushes.lock().unwrap().clear();
    db.sync().await.unwrap();
    assert_eq!(
        (count("projects").await, count("notes").await),
        (SqlValue::Integer(1), SqlValue::Integer(1))
    );
}
