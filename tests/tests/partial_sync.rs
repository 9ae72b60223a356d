//! Partial sync against a real Hrana server (`tursodb --sync-server`
//! started by the harness, or `ERTH_TEST_HRANA_URL`): devices subscribe to
//! the rows of a table an SQL filter selects, over their own column or
//! through a parent table; rows that leave the filter are evicted (and
//! stay on the server), rows that come back return; local rows stay until
//! pushed; waiting for a subscription's first sync never hangs, offline or
//! with 50 subscriptions at once; bad filters get a typed error. The
//! oracle is the same filter run with plain SQL on the server's table.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use erth_core::hrana::RetryPolicy;
use erth_core::{Config, Database, ErrorKind, SqlValue};
use erth_tests::hrana;
use erth_tests::proxy::{FaultProxy, Faults};
use erth_tests::server::TestServer;
use rand::Rng;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = r#"{"tables": {
  "lists": {"columns": {"owner": {"type": "text", "notNull": true, "default": ""}}},
  "items": {"columns": {
    "list_id": {"type": "text"},
    "title": {"type": "text", "notNull": true, "default": ""},
    "n": {"type": "integer"}}}}}"#;

async fn device(
    dir: &Path,
    name: &str,
    url: &str,
    token: Option<&str>,
    config: Config,
) -> Database {
    let config = Config {
        url: Some(url.to_owned()),
        auth_token: token.map(str::to_owned),
        ..config
    }
    .with_schema_json(SCHEMA)
    .unwrap();
    Database::open_native(dir.join(format!("{name}.db")), config)
        .await
        .unwrap()
}

fn text(v: &str) -> SqlValue {
    SqlValue::Text(v.to_owned())
}

/// `(id, title, n)` of the live rows the server's `items` holds where
/// `filter` (plain SQL, literals inline) is true.
async fn on_server(server: &TestServer, filter: &str) -> BTreeMap<String, (String, String)> {
    let sql = format!(
        "SELECT id, title, coalesce(n, 'null') FROM items WHERE is_deleted = 0 AND ({filter}) ORDER BY id"
    );
    let res = hrana::execute(server.url(), server.token(), &[sql.as_str()])
        .await
        .unwrap();
    let cell = |v: &serde_json::Value| {
        let v = &v["value"];
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    res[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (cell(&r[0]), (cell(&r[1]), cell(&r[2]))))
        .collect()
}

/// The same shape from a device's `items` view.
async fn on_device(db: &Database) -> BTreeMap<String, (String, String)> {
    let rows = db
        .query(
            "SELECT id, title, coalesce(n, 'null') FROM items ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let cell = |v: &SqlValue| match v {
        SqlValue::Text(t) => t.clone(),
        SqlValue::Integer(i) => i.to_string(),
        other => format!("{other:?}"),
    };
    rows.rows
        .iter()
        .map(|r| (cell(&r[0]), (cell(&r[1]), cell(&r[2]))))
        .collect()
}

async fn new_id(db: &Database) -> String {
    let rows = db.query("SELECT uuid7()", &[]).await.unwrap();
    rows.rows[0][0].as_str().unwrap().to_owned()
}

async fn add_list(db: &Database, owner: &str) -> String {
    let id = new_id(db).await;
    db.execute(
        "INSERT INTO lists (id, owner) VALUES (?, ?)",
        &[text(&id), text(owner)],
    )
    .await
    .unwrap();
    id
}

async fn add_item(db: &Database, list: &str, title: &str, n: i64) -> String {
    let id = new_id(db).await;
    db.execute(
        "INSERT INTO items (id, list_id, title, n) VALUES (?, ?, ?, ?)",
        &[text(&id), text(list), text(title), SqlValue::Integer(n)],
    )
    .await
    .unwrap();
    id
}

/// Syncs until a sync succeeds (the proxy may fail some).
async fn sync_through(db: &Database) {
    for _ in 0..50 {
        if db.sync().await.is_ok() {
            return;
        }
    }
    panic!("no sync succeeded in 50 tries");
}

#[tokio::test]
async fn two_devices_hold_exactly_their_filters_rows_through_random_changes_and_faults() {
    let seed = common::seed();
    println!("partial_sync: seed {seed} (replay with ERTH_FAULTS_SEED={seed})");
    let mut rng = common::rng(seed);
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), seed).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Few retries, short backoff: the faults reach the syncs, which stop
    // halfway (the next one resumes).
    let small = Config {
        pull_page_rows: 7,
        push_batch_rows: 5,
        retry: RetryPolicy {
            attempts: 2,
            base_delay_ms: 5,
            max_delay_ms: 20,
        },
        ..Config::default()
    };
    let writer = device(dir.path(), "w", server.url(), server.token(), small.clone()).await;
    let a = device(dir.path(), "a", proxy.url(), server.token(), small.clone()).await;
    let b = device(dir.path(), "b", proxy.url(), server.token(), small.clone()).await;
    let owners = ["ann", "bob", "cy"];
    let mut lists = Vec::new();
    for o in owners {
        lists.push(add_list(&writer, o).await);
    }
    let mut items: Vec<String> = Vec::new();
    for i in 0..40 {
        let list = &lists[rng.random_range(0..lists.len())];
        items.push(add_item(&writer, list, &format!("seed {i}"), rng.random_range(0..10)).await);
    }
    writer.sync().await.unwrap();
    // A: items by their own column, with a bound that changes. B: items of
    // bob's lists (through the parent), and bob's lists.
    let mut bound = 4i64;
    a.add_subscription("low", "items", "n < ?", &[SqlValue::Integer(bound)], None)
        .await
        .unwrap();
    b.add_subscription(
        "mine",
        "items",
        "list_id IN (SELECT id FROM lists WHERE owner = ?)",
        &[text("bob")],
        None,
    )
    .await
    .unwrap();
    b.add_subscription("my lists", "lists", "owner = ?", &[text("bob")], None)
        .await
        .unwrap();
    proxy.set_faults(Faults {
        drop_request: 0.05,
        drop_response: 0.05,
        reset: 0.03,
        status_5xx: 0.05,
        ..Faults::none()
    });
    let (mut checks, mut moved, mut failed_syncs) = (0, 0, 0);
    let rounds = 100 * common::scale();
    for round in 0..rounds {
        for _ in 0..rng.random_range(1..4) {
            match rng.random_range(0..10) {
                0..=2 => {
                    let list = &lists[rng.random_range(0..lists.len())];
                    let title = format!("r{round} {}", rng.random::<u32>());
                    items.push(add_item(&writer, list, &title, rng.random_range(0..10)).await);
                }
                3..=5 => {
                    let id = &items[rng.random_range(0..items.len())];
                    writer
                        .execute(
                            "UPDATE items SET n = ?, title = title || '.' WHERE id = ?",
                            &[SqlValue::Integer(rng.random_range(0..10)), text(id)],
                        )
                        .await
                        .unwrap();
                    moved += 1;
                }
                6 => {
                    let id = &items[rng.random_range(0..items.len())];
                    writer
                        .execute("DELETE FROM items WHERE id = ?", &[text(id)])
                        .await
                        .unwrap();
                }
                7 => {
                    let list = &lists[rng.random_range(0..lists.len())];
                    let owner = owners[rng.random_range(0..owners.len())];
                    writer
                        .execute(
                            "UPDATE lists SET owner = ? WHERE id = ?",
                            &[text(owner), text(list)],
                        )
                        .await
                        .unwrap();
                }
                8 => {
                    // A device edits a row it holds: it may leave its filter.
                    let held: Vec<String> = on_device(&a).await.into_keys().collect();
                    if let Some(id) = held.first() {
                        a.execute(
                            "UPDATE items SET n = ? WHERE id = ?",
                            &[SqlValue::Integer(rng.random_range(0..10)), text(id)],
                        )
                        .await
                        .unwrap();
                    }
                }
                _ => {
                    bound = rng.random_range(1..10);
                    a.add_subscription("low", "items", "n < ?", &[SqlValue::Integer(bound)], None)
                        .await
                        .unwrap();
                }
            }
        }
        writer.sync().await.unwrap();
        for d in [&a, &b] {
            if rng.random_bool(0.7) && d.sync().await.is_err() {
                failed_syncs += 1;
            }
        }
        if round % 10 == 9 || round + 1 == rounds {
            proxy.set_faults(Faults::none());
            sync_through(&a).await;
            writer.sync().await.unwrap();
            sync_through(&a).await;
            sync_through(&b).await;
            let want_a = on_server(&server, &format!("n < {bound}")).await;
            let want_b = on_server(
                &server,
                "list_id IN (SELECT id FROM lists WHERE owner = 'bob')",
            )
            .await;
            assert_eq!(
                on_device(&a).await,
                want_a,
                "device A, round {round}, seed {seed}"
            );
            assert_eq!(
                on_device(&b).await,
                want_b,
                "device B, round {round}, seed {seed}"
            );
            let b_lists = b
                .query("SELECT count(*) FROM lists WHERE owner <> 'bob'", &[])
                .await
                .unwrap();
            assert_eq!(
                b_lists.rows[0][0],
                SqlValue::Integer(0),
                "B holds others' lists"
            );
            checks += 1;
            proxy.set_faults(Faults {
                drop_request: 0.05,
                drop_response: 0.05,
                reset: 0.03,
                status_5xx: 0.05,
                ..Faults::none()
            });
        }
    }
    let total = on_server(&server, "1").await.len();
    let (held_a, held_b) = (on_device(&a).await.len(), on_device(&b).await.len());
    println!(
        "partial_sync: rounds {rounds}, checks {checks}, moves {moved}, failed syncs {failed_syncs}, faults {:?}, server rows {total}, A holds {held_a}, B holds {held_b}",
        proxy.stats()
    );
    assert!(failed_syncs > 0, "the faults never stopped a sync");
    assert!(
        held_a < total && held_b < total,
        "a device holds everything"
    );
    // The writer, which never subscribed, holds every row.
    assert_eq!(on_device(&writer).await, on_server(&server, "1").await);
}

#[tokio::test]
async fn a_row_that_leaves_the_filter_leaves_the_device_and_its_live_queries_and_comes_back() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = device(
        dir.path(),
        "w",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    let phone = device(
        dir.path(),
        "p",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    let list = add_list(&writer, "ann").await;
    let kept = add_item(&writer, &list, "kept", 1).await;
    let moving = add_item(&writer, &list, "moving", 2).await;
    add_item(&writer, &list, "never", 9).await;
    writer.sync().await.unwrap();
    phone
        .add_subscription("small", "items", "n < ?", &[SqlValue::Integer(5)], None)
        .await
        .unwrap();
    phone.wait_for_subscription("small").await.unwrap();
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let s = seen.clone();
    let _live = phone
        .watch(
            "SELECT id FROM items ORDER BY id",
            &[],
            Arc::new(move |rows: &erth_core::Rows| s.lock().unwrap().push(rows.rows.len())),
        )
        .unwrap();
    assert_eq!(on_device(&phone).await.len(), 2);
    assert_eq!(*seen.lock().unwrap().last().unwrap(), 2);

    writer
        .execute("UPDATE items SET n = 7 WHERE id = ?", &[text(&moving)])
        .await
        .unwrap();
    writer.sync().await.unwrap();
    phone.sync().await.unwrap();
    let held = on_device(&phone).await;
    assert_eq!(
        held.keys().collect::<Vec<_>>(),
        vec![&kept],
        "the row that left is still held"
    );
    assert_eq!(
        *seen.lock().unwrap().last().unwrap(),
        1,
        "the live query still shows it"
    );
    assert_eq!(
        on_server(&server, &format!("id = '{moving}'")).await.len(),
        1,
        "gone from the server"
    );
    // Evicted, not deleted: nothing to push, and the server row is intact.
    assert_eq!(phone.pending_changes().await.unwrap(), 0);

    writer
        .execute("UPDATE items SET n = 3 WHERE id = ?", &[text(&moving)])
        .await
        .unwrap();
    writer.sync().await.unwrap();
    phone.sync().await.unwrap();
    assert_eq!(on_device(&phone).await, on_server(&server, "n < 5").await);
    assert_eq!(
        *seen.lock().unwrap().last().unwrap(),
        2,
        "the live query missed its return"
    );

    // A local row that matches nothing stays until pushed, then leaves.
    phone.set_online(false);
    phone
        .execute("INSERT INTO items (title, n) VALUES ('mine', 8)", &[])
        .await
        .unwrap();
    assert!(phone.sync().await.is_err());
    assert_eq!(
        on_device(&phone).await.len(),
        3,
        "an unpushed local row was evicted"
    );
    phone.set_online(true);
    phone.sync().await.unwrap();
    assert_eq!(on_device(&phone).await.len(), 2);
    assert_eq!(
        on_server(&server, "title = 'mine'").await.len(),
        1,
        "the local row never landed"
    );

    // Removing the last subscription leaves nothing; a new one brings rows.
    assert!(phone.remove_subscription("small").await.unwrap());
    phone.sync().await.unwrap();
    assert!(on_device(&phone).await.is_empty());
    assert_eq!(*seen.lock().unwrap().last().unwrap(), 0);
    phone
        .add_subscription("big", "items", "n >= ?", &[SqlValue::Integer(5)], None)
        .await
        .unwrap();
    phone.wait_for_subscription("big").await.unwrap();
    assert_eq!(on_device(&phone).await, on_server(&server, "n >= 5").await);
    let subs = phone.subscriptions().await.unwrap();
    assert_eq!(subs.len(), 1);
    assert!(subs[0].ready && subs[0].name == "big" && subs[0].filter == "n >= ?");
}

#[tokio::test]
async fn waiting_for_subscriptions_added_offline_returns_once_their_rows_are_there() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = device(
        dir.path(),
        "w",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    let list = add_list(&writer, "ann").await;
    for i in 0..120 {
        add_item(&writer, &list, &format!("item {i}"), i % 60).await;
    }
    writer.sync().await.unwrap();
    let config = Config {
        pull_page_rows: 10,
        ..Config::default()
    };
    let phone = device(dir.path(), "p", server.url(), server.token(), config).await;
    // Synced once (so the table has a cursor), with one small subscription.
    phone
        .add_subscription("one", "items", "n = ?", &[SqlValue::Integer(0)], None)
        .await
        .unwrap();
    phone.wait_for_subscription("one").await.unwrap();
    assert_eq!(on_device(&phone).await.len(), 2);

    phone.set_online(false);
    phone
        .add_subscription("offline", "items", "n = ?", &[SqlValue::Integer(1)], None)
        .await
        .unwrap();
    for i in 10..60 {
        phone
            .add_subscription(
                &format!("n{i}"),
                "items",
                "n = ?",
                &[SqlValue::Integer(i)],
                None,
            )
            .await
            .unwrap();
    }
    let online_later = async {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(
            on_device(&phone).await.len() == 2,
            "rows came while offline"
        );
        phone.set_online(true);
    };
    let waits = futures::future::join_all(
        std::iter::once("offline".to_owned())
            .chain((10..60).map(|i| format!("n{i}")))
            .map(|name| {
                let phone = &phone;
                async move { phone.wait_for_subscription(&name).await }
            }),
    );
    let (results, ()) = tokio::join!(waits, online_later);
    assert_eq!(results.len(), 51);
    for r in results {
        r.unwrap();
    }
    assert_eq!(
        on_device(&phone).await,
        on_server(&server, "n IN (0, 1) OR n >= 10").await
    );
    assert_eq!(on_device(&phone).await.len(), 2 + 2 + 100);
    let err = phone.wait_for_subscription("nope").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_bad_filter_is_refused_with_a_typed_error_and_changes_nothing() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = device(
        dir.path(),
        "d",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    db.execute("CREATE TABLE local_only (x)", &[])
        .await
        .unwrap();
    let two = [SqlValue::Integer(1), SqlValue::Integer(2)];
    for (filter, params) in [
        ("n = 1) UNION SELECT id FROM lists WHERE (1", &[][..]),
        ("n = 1; DELETE FROM items", &[]),
        ("n = ?", &[]),
        ("n = ?", &two[..]),
        ("id IN (SELECT id FROM _erth_rows_lists)", &[]),
        ("id IN (SELECT k FROM \"_erth_state\")", &[]),
        ("id IN (SELECT x FROM local_only)", &[]),
        ("no_such_column = 1", &[]),
        ("_seq > 0", &[]),
        ("n = :n", &[]),
    ] {
        let err = db
            .add_subscription("bad", "items", filter, params, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{filter}: {err}");
        assert!(
            err.to_string().contains("subscription \"bad\" refused"),
            "{err}"
        );
    }
    let err = db
        .add_subscription("x", "nowhere", "1", &[], None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = db
        .add_subscription("", "items", "1", &[], None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = db
        .add_subscription("nan", "items", "n = ?", &[SqlValue::Real(f64::NAN)], None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(db.subscriptions().await.unwrap().is_empty());
    assert!(!db.remove_subscription("bad").await.unwrap());
}

#[tokio::test]
async fn a_subscription_past_its_time_to_live_ends_and_its_rows_leave() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = device(
        dir.path(),
        "w",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    let list = add_list(&writer, "ann").await;
    add_item(&writer, &list, "a", 1).await;
    add_item(&writer, &list, "b", 2).await;
    writer.sync().await.unwrap();
    let phone = device(
        dir.path(),
        "p",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    phone
        .add_subscription(
            "short",
            "items",
            "n = ?",
            &[SqlValue::Integer(1)],
            Some(300),
        )
        .await
        .unwrap();
    phone
        .add_subscription("long", "items", "n = ?", &[SqlValue::Integer(2)], None)
        .await
        .unwrap();
    phone.wait_for_subscription("short").await.unwrap();
    assert_eq!(on_device(&phone).await.len(), 2);
    let expires = phone.subscriptions().await.unwrap()[1].expires_at_ms;
    assert!(
        expires.is_some(),
        "{:?}",
        phone.subscriptions().await.unwrap()
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    phone.sync().await.unwrap();
    assert_eq!(on_device(&phone).await, on_server(&server, "n = 2").await);
    let names: Vec<String> = phone
        .subscriptions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["long"]);
}

#[tokio::test]
async fn a_device_that_held_everything_keeps_only_its_subscriptions_rows() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = device(
        dir.path(),
        "w",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    let list = add_list(&writer, "ann").await;
    for i in 0..30 {
        add_item(&writer, &list, &format!("item {i}"), i % 3).await;
    }
    writer.sync().await.unwrap();
    let laptop = device(
        dir.path(),
        "l",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    laptop.sync().await.unwrap();
    assert_eq!(on_device(&laptop).await.len(), 30);
    laptop
        .add_subscription("twos", "items", "n = ?", &[SqlValue::Integer(2)], None)
        .await
        .unwrap();
    // Its rows were already there: ready at once, before any sync.
    assert!(laptop.subscriptions().await.unwrap()[0].ready);
    laptop.wait_for_subscription("twos").await.unwrap();
    laptop.sync().await.unwrap();
    assert_eq!(on_device(&laptop).await, on_server(&server, "n = 2").await);
    assert_eq!(on_device(&laptop).await.len(), 10);
    // The lists table never had a subscription: it still pulls everything.
    let lists = laptop
        .query("SELECT count(*) FROM lists", &[])
        .await
        .unwrap();
    assert_eq!(lists.rows[0][0], SqlValue::Integer(1));
    assert_eq!(
        on_server(&server, "1").await.len(),
        30,
        "eviction reached the server"
    );
    // Subscribed to nothing, it holds nothing, and pulls no new list.
    laptop
        .add_subscription("no lists", "lists", "0", &[], None)
        .await
        .unwrap();
    laptop.sync().await.unwrap();
    add_list(&writer, "bob").await;
    writer.sync().await.unwrap();
    laptop.sync().await.unwrap();
    let lists = laptop
        .query("SELECT count(*) FROM lists", &[])
        .await
        .unwrap();
    assert_eq!(lists.rows[0][0], SqlValue::Integer(0));
}
