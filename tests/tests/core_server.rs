//! The core engine against a real Hrana server (`tursodb --sync-server`
//! started by the harness, or `ERTH_TEST_HRANA_URL`): offline edits
//! converge in every order, deletes stick, a lost push response is retried
//! without duplicates, 10,000 rows page through, a reopened replica keeps
//! its pending changes, hostile text round-trips, bad answers are typed
//! errors that change nothing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::{Config, Database, Error, ErrorKind};
use erth_tests::proxy::{FaultProxy, Faults};
use erth_tests::server::TestServer;
use std::path::Path;

async fn replica(dir: &Path, name: &str, url: &str, token: Option<&str>) -> Database {
    let config = Config {
        url: Some(url.to_owned()),
        auth_token: token.map(str::to_owned),
        ..Config::default()
    };
    Database::open_native(dir.join(format!("{name}.db")), config)
        .await
        .unwrap()
}

async fn assert_converged(dbs: &[&Database]) {
    let first = dbs[0].dump("todos").await.unwrap();
    for db in &dbs[1..] {
        assert_eq!(db.dump("todos").await.unwrap(), first, "replicas differ");
    }
    for db in dbs {
        assert_eq!(db.status().await.unwrap().pending_changes, 0);
    }
}

#[tokio::test]
async fn offline_edits_converge_in_several_orders_and_deletes_stick() {
    for order in [[0usize, 1, 0], [1, 0, 1]] {
        let server = TestServer::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let a = replica(dir.path(), "a", server.url(), server.token()).await;
        let b = replica(dir.path(), "b", server.url(), server.token()).await;
        let t1 = a.add_todo("buy milk").await.unwrap();
        let t2 = a.add_todo("walk dog").await.unwrap();
        let t3 = a.add_todo("file taxes").await.unwrap();
        a.sync().await.unwrap();
        assert_eq!(b.sync().await.unwrap().pulled, 3);

        // Offline on both, including the same todos.
        a.rename_todo(&t1.id, "buy oat milk").await.unwrap();
        a.set_todo_completed(&t2.id, true).await.unwrap();
        assert!(a.delete_todo(&t3.id).await.unwrap());
        b.set_todo_completed(&t1.id, true).await.unwrap();
        b.rename_todo(&t3.id, "file taxes (late)").await.unwrap();
        let t4 = b.add_todo("call mom").await.unwrap();

        let dbs = [&a, &b];
        for i in order {
            dbs[i].sync().await.unwrap();
        }
        assert_converged(&dbs).await;
        let list = a.list_active_todos().await.unwrap();
        let got: Vec<_> = list
            .iter()
            .map(|t| (t.id.as_str(), t.title.as_str(), t.is_completed))
            .collect();
        assert_eq!(
            got,
            vec![
                (t4.id.as_str(), "call mom", false),
                (t2.id.as_str(), "walk dog", true),
                (t1.id.as_str(), "buy oat milk", true)
            ],
            "order {order:?}"
        );
        // The deleted todo never comes back: not on a fresh replica, not after edits.
        assert!(matches!(
            b.get_todo(&t3.id).await,
            Err(Error::NotFound { .. })
        ));
        let c = replica(dir.path(), "c", server.url(), server.token()).await;
        c.sync().await.unwrap();
        assert_converged(&[&a, &b, &c]).await;
        assert!(
            c.get_row("todos", &t3.id)
                .await
                .unwrap()
                .unwrap()
                .is_deleted
        );
    }
}

#[tokio::test]
async fn lost_push_response_is_retried_without_duplicates_or_loss() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), 7).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", proxy.url(), server.token()).await;
    let b = replica(dir.path(), "b", server.url(), server.token()).await;
    a.sync().await.unwrap(); // bootstrap through the proxy
    for i in 0..5 {
        a.add_todo(&format!("todo {i}")).await.unwrap();
    }
    // The server commits the push, the answer never arrives; the client retries.
    proxy.drop_next_responses(1);
    let report = a.sync().await.unwrap();
    assert_eq!(report.pushed, 5);
    assert!(
        proxy.stats().faults_injected >= 1,
        "the fault really happened"
    );
    b.sync().await.unwrap();
    assert_eq!(b.list_active_todos().await.unwrap().len(), 5);
    a.sync().await.unwrap();
    assert_converged(&[&a, &b]).await;
}

#[tokio::test]
async fn ten_thousand_todos_sync_to_a_fresh_replica_in_pages() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", server.url(), server.token()).await;
    for i in 0..10_000 {
        a.insert("todos", &[("title", format!("todo #{i}").into())])
            .await
            .unwrap();
    }
    let pushed = a.sync().await.unwrap();
    assert_eq!(pushed.pushed, 10_000);
    assert_eq!(
        pushed.pulled, 0,
        "a replica does not pull back its own push"
    );
    // Pages of at most 2,000 rows: five pages, each asked for together
    // with the size probe of the next rows.
    let b = Database::open_native(
        dir.path().join("b.db"),
        Config {
            url: Some(server.url().to_owned()),
            auth_token: server.token().map(str::to_owned),
            pull_page_rows: 2_000,
            ..Config::default()
        },
    )
    .await
    .unwrap();
    let pages = std::sync::Mutex::new(0);
    let report = b
        .sync_with_progress(&|p| {
            if matches!(p, erth_core::SyncProgress::Pulled { .. }) {
                *pages.lock().unwrap() += 1;
            }
        })
        .await
        .unwrap();
    assert_eq!(report.pulled, 10_000);
    assert_eq!(
        *pages.lock().unwrap(),
        5,
        "pulled in pages of at most 2,000 rows"
    );
    assert_eq!(b.list_active_todos().await.unwrap().len(), 10_000);
    assert_converged(&[&a, &b]).await;
}

#[tokio::test]
async fn reopened_replica_keeps_rows_pending_changes_and_clock() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (node, clock, kept) = {
        let a = replica(dir.path(), "a", server.url(), server.token()).await;
        let synced = a.add_todo("synced").await.unwrap();
        a.sync().await.unwrap();
        a.add_todo("pending 1").await.unwrap();
        a.rename_todo(&synced.id, "renamed while offline")
            .await
            .unwrap();
        (a.node_id().await, a.last_clock().await, synced.id)
    };
    let a = replica(dir.path(), "a", server.url(), server.token()).await;
    // Every open is a new node (a copied file must not reissue clocks); the
    // clock value carries on.
    assert_ne!(a.node_id().await, node);
    assert!(a.last_clock().await.hlc >= clock.hlc);
    assert_eq!(a.status().await.unwrap().pending_changes, 2);
    assert!(a.status().await.unwrap().last_sync_at_ms.is_some());
    assert_eq!(
        a.get_todo(&kept).await.unwrap().title,
        "renamed while offline"
    );
    let t = a.add_todo("after reopen").await.unwrap();
    assert!(a.get_row("todos", &t.id).await.unwrap().unwrap().clocks[0] > clock);
    assert_eq!(a.sync().await.unwrap().pushed, 3);
    let b = replica(dir.path(), "b", server.url(), server.token()).await;
    b.sync().await.unwrap();
    assert_converged(&[&a, &b]).await;
}

#[tokio::test]
async fn hostile_titles_round_trip_unchanged() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", server.url(), server.token()).await;
    let b = replica(dir.path(), "b", server.url(), server.token()).await;
    let titles = [
        "it's \"quoted\" `back` \\ slash".to_owned(),
        "'; DROP TABLE todos; --".to_owned(),
        "Robert'); DELETE FROM _erth_meta; --".to_owned(),
        "ünïcødé 日本語 🎉 \u{202e}rtl".to_owned(),
        "nul \u{0} inside".to_owned(),
        "x".repeat(1_000_000),
        " \t\n ".to_owned(),
        String::new(),
    ];
    let mut ids = Vec::new();
    for t in &titles {
        ids.push(a.add_todo(t).await.unwrap().id);
    }
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    for (id, title) in ids.iter().zip(&titles) {
        assert_eq!(&b.get_todo(id).await.unwrap().title, title);
    }
    assert_converged(&[&a, &b]).await;
}

#[tokio::test]
async fn bad_ids_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_native(dir.path().join("x.db"), Config::default())
        .await
        .unwrap();
    let unknown = erth_core::ids::new_id();
    for e in [
        db.get_todo(&unknown).await.unwrap_err(),
        db.rename_todo(&unknown, "x").await.unwrap_err(),
        db.set_todo_completed(&unknown, true).await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
    assert!(!db.delete_todo(&unknown).await.unwrap());
    for bad in [
        "",
        "'; DROP TABLE todos; --",
        "01A20EB5-82A3-7688-BF9C-D0D1958E1E52",
    ] {
        assert_eq!(
            db.get_todo(bad).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            db.delete_todo(bad).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    assert_eq!(db.sync().await.unwrap_err().kind(), ErrorKind::NoRemote);
}

#[tokio::test]
async fn malformed_server_responses_are_typed_errors_and_change_nothing() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), 11).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", proxy.url(), server.token()).await;
    let seed = replica(dir.path(), "seed", server.url(), server.token()).await;
    seed.add_todo("on the server").await.unwrap();
    seed.sync().await.unwrap();
    a.add_todo("local").await.unwrap();
    let before = a.dump("todos").await.unwrap();
    // Each fault has one class, the same the browser suite asserts: an
    // answer that is not Hrana is `Protocol`, an HTTP error status is
    // `Server`, a connection that fails before or during the answer
    // (including a body cut short) is `Network`.
    type Case = (&'static str, fn(&mut Faults), ErrorKind);
    let cases: [Case; 6] = [
        ("non-JSON answer", |f| f.non_json = 1.0, ErrorKind::Protocol),
        ("truncated body", |f| f.truncate = 1.0, ErrorKind::Network),
        ("HTTP 5xx", |f| f.status_5xx = 1.0, ErrorKind::Server),
        ("connection reset", |f| f.reset = 1.0, ErrorKind::Network),
        (
            "dropped request",
            |f| f.drop_request = 1.0,
            ErrorKind::Network,
        ),
        (
            "lost response",
            |f| f.drop_response = 1.0,
            ErrorKind::Network,
        ),
    ];
    for (what, set, kind) in cases {
        let mut faults = Faults::none();
        set(&mut faults);
        proxy.set_faults(faults);
        let e = a.sync().await.unwrap_err();
        assert_eq!(e.kind(), kind, "{what}: {e:?}");
        assert_eq!(
            a.dump("todos").await.unwrap(),
            before,
            "local rows changed after {e}"
        );
        assert_eq!(a.status().await.unwrap().pending_changes, 1);
        assert_eq!(a.status().await.unwrap().last_error, Some(e.to_string()));
    }
    // Nobody listening at all: `Network` too.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    a.set_remote(Some(&closed_url), server.token()).unwrap();
    let e = a.sync().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "connection refused: {e:?}");
    assert_eq!(a.dump("todos").await.unwrap(), before);
    a.set_remote(Some(proxy.url()), server.token()).unwrap();
    proxy.set_faults(Faults::none());
    let r = a.sync().await.unwrap();
    assert_eq!(r.pushed, 1);
    // Faulty answers may have hidden a push the server committed: that row
    // comes back once as an (idempotent) echo.
    assert!((1..=2).contains(&r.pulled), "pulled {}", r.pulled);
    seed.sync().await.unwrap();
    assert_converged(&[&a, &seed]).await;
}

/// A wall clock running `ahead_ms` fast (a device with a wrong clock).
#[derive(Debug)]
struct FastClock(u64);

impl erth_core::Clock for FastClock {
    fn now_ms(&self) -> u64 {
        erth_core::SystemClock.now_ms() + self.0
    }
}

#[tokio::test]
async fn copies_of_one_replica_file_never_issue_the_same_clock() {
    use erth_core::store::sqlite::SqliteStore;
    use erth_core::transport::native::NativeTransport;
    use std::sync::Arc;
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        url: Some(server.url().to_owned()),
        auth_token: server.token().map(str::to_owned),
        ..Config::default()
    };
    // A device running 30 minutes fast (inside the 1 h drift bound) edits a todo.
    let fast = Database::open(
        Arc::new(SqliteStore::open(dir.path().join("fast.db")).unwrap()),
        Arc::new(NativeTransport::new(std::time::Duration::from_secs(30)).unwrap()),
        Arc::new(FastClock(30 * 60 * 1000)),
        config.clone(),
    )
    .await
    .unwrap();
    let todo = fast.add_todo("shared").await.unwrap();
    fast.sync().await.unwrap();
    // A pulls it: its clock is now ahead of its wall clock. Then its file is copied.
    {
        let a = replica(dir.path(), "a", server.url(), server.token()).await;
        a.sync().await.unwrap();
        use erth_core::Clock;
        assert!(a.last_clock().await.physical_ms() > erth_core::SystemClock.now_ms() + 60_000);
    }
    std::fs::copy(dir.path().join("a.db"), dir.path().join("copy.db")).unwrap();
    let a = replica(dir.path(), "a", server.url(), server.token()).await;
    let copy = replica(dir.path(), "copy", server.url(), server.token()).await;
    // Both copies rename the same todo while their clocks stand still (wall < last).
    a.rename_todo(&todo.id, "renamed on a").await.unwrap();
    copy.rename_todo(&todo.id, "renamed on the copy")
        .await
        .unwrap();
    let clock_a = a.get_row("todos", &todo.id).await.unwrap().unwrap().clocks[0];
    let clock_copy = copy
        .get_row("todos", &todo.id)
        .await
        .unwrap()
        .unwrap()
        .clocks[0];
    assert_eq!(
        clock_a.hlc, clock_copy.hlc,
        "the copies carry on from one clock"
    );
    assert_ne!(clock_a, clock_copy, "but never issue the same clock");
    for db in [&a, &copy, &a, &fast] {
        db.sync().await.unwrap();
    }
    assert_converged(&[&a, &copy, &fast]).await;
    let winner = if clock_a > clock_copy {
        "renamed on a"
    } else {
        "renamed on the copy"
    };
    assert_eq!(fast.get_todo(&todo.id).await.unwrap().title, winner);
}
