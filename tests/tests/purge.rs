//! Purged history against a real Hrana server (`tursodb --sync-server`
//! started by the harness, or `ERTH_TEST_HRANA_URL`): `Database::purge`
//! removes old tombstones from the server; a replica that was offline
//! meanwhile compares ids before it pushes, so an edit of a purged row is
//! dropped, never re-inserted; a purge that lands between a replica's check
//! and its push is caught by the push's guard; replicas drop their own
//! tombstones once purged; random writes, deletes, purges and syncs of four
//! replicas under network faults converge with no deleted id back and no
//! live row lost; a purge running while ten replicas sync fails none of
//! them. The oracle is the test's own ledger of creates and deletes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use erth_core::hrana::RetryPolicy;
use erth_core::store::sqlite::SqliteStore;
use erth_core::store::Store;
use erth_core::{Config, Database, ErrorKind, SqlValue, Statement};
use erth_tests::hrana;
use erth_tests::proxy::{FaultProxy, Faults};
use erth_tests::server::TestServer;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const SCHEMA: &str = r#"{"tables": {"items": {"columns": {
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

async fn add(db: &Database, title: &str) -> String {
    let id = db.query("SELECT uuid7()", &[]).await.unwrap().rows[0][0]
        .as_str()
        .unwrap()
        .to_owned();
    db.execute(
        "INSERT INTO items (id, title, n) VALUES (?, ?, 0)",
        &[text(&id), text(title)],
    )
    .await
    .unwrap();
    id
}

async fn edit(db: &Database, id: &str) {
    db.execute("UPDATE items SET n = n + 1 WHERE id = ?", &[text(id)])
        .await
        .unwrap();
}

async fn delete(db: &Database, id: &str) {
    db.execute("DELETE FROM items WHERE id = ?", &[text(id)])
        .await
        .unwrap();
}

/// `id -> (title, n)` of a device's live rows.
async fn on_device(db: &Database) -> BTreeMap<String, (String, i64)> {
    let rows = db
        .query(
            "SELECT id, title, coalesce(n, -1) FROM items ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    rows.rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                (r[1].as_str().unwrap().to_owned(), r[2].as_i64().unwrap()),
            )
        })
        .collect()
}

/// Runs `sql` on the server; the first statement's rows as text cells.
async fn server_rows(server: &TestServer, sql: &str) -> Vec<Vec<String>> {
    hrana::text_rows(server.url(), server.token(), sql)
        .await
        .unwrap()
}

/// `id -> (title, n)` of the server's live rows.
async fn on_server(server: &TestServer) -> BTreeMap<String, (String, i64)> {
    server_rows(
        server,
        "SELECT id, title, coalesce(n, -1) FROM items WHERE is_deleted = 0 ORDER BY id",
    )
    .await
    .into_iter()
    .map(|r| (r[0].clone(), (r[1].clone(), r[2].parse().unwrap())))
    .collect()
}

/// Rows the server's table holds physically (tombstones included).
async fn server_count(server: &TestServer, filter: &str) -> i64 {
    server_rows(
        server,
        &format!("SELECT count(*) FROM items WHERE {filter}"),
    )
    .await[0][0]
        .parse()
        .unwrap()
}

/// `(rows, tombstones)` a replica file's engine table holds, read with
/// another connection.
async fn engine_rows(path: &Path) -> (i64, i64) {
    let store = SqliteStore::open(path).unwrap();
    let rows = store
        .query(&Statement::plain(
            "SELECT count(*), coalesce(sum(is_deleted), 0) FROM _erth_rows_items",
        ))
        .await
        .unwrap();
    (
        rows.rows[0][0].as_i64().unwrap(),
        rows.rows[0][1].as_i64().unwrap(),
    )
}

async fn sync_through(db: &Database) {
    let mut last = None;
    for _ in 0..50 {
        match db.sync().await {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
    }
    panic!("no sync succeeded in 50 tries: {last:?}");
}

#[tokio::test]
async fn an_offline_replicas_edit_of_a_purged_row_is_dropped_and_the_row_never_returns() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, token) = (server.url(), server.token());
    let a = device(dir.path(), "a", url, token, Config::default()).await;
    let b = device(dir.path(), "b", url, token, Config::default()).await;
    let c = device(dir.path(), "c", url, token, Config::default()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(add(&a, &format!("row {i}")).await);
    }
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    c.sync().await.unwrap();
    // C goes offline: it edits a row, and writes a new one.
    let (x, w) = (ids[1].clone(), ids[3].clone());
    edit(&c, &x).await;
    let y = add(&c, "written offline").await;
    // Meanwhile A deletes two rows, B pulls the deletes, and the server is
    // purged of every tombstone.
    delete(&a, &x).await;
    delete(&a, &w).await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    assert_eq!(engine_rows(&dir.path().join("b.db")).await, (5, 2));
    assert_eq!(server_count(&server, "is_deleted = 1").await, 2);
    let report = a.purge(0).await.unwrap();
    assert_eq!(report.tables.len(), 1);
    assert_eq!(report.tables[0].table, "items");
    assert_eq!(report.tables[0].rows, 2, "{report:?}");
    assert!(report.tables[0].mark > 0);
    assert_eq!(
        server_count(&server, "1").await,
        3,
        "the tombstones are gone"
    );
    let mark = server_rows(&server, "SELECT v FROM _erth_meta WHERE k = 'purged:items'").await;
    assert_eq!(mark[0][0], report.tables[0].mark.to_string());
    // Purging again removes nothing and keeps the mark.
    let again = a.purge(0).await.unwrap();
    assert_eq!(
        (again.tables[0].rows, again.tables[0].mark),
        (0, report.tables[0].mark)
    );

    // C comes back: its edit of the purged row is dropped, its new row lands.
    assert_eq!(c.pending_changes().await.unwrap(), 2);
    let mut heard = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let _sub = c.subscribe(std::sync::Arc::new(move |e: &erth_core::ChangeEvent| {
        let _ = tx.send(e.ids.clone());
    }));
    c.sync().await.unwrap();
    while let Ok(ids) = rx.try_recv() {
        heard.extend(ids);
    }
    assert!(
        heard.contains(&x),
        "C's live queries hear of the dropped row"
    );
    let want: BTreeMap<_, _> = on_server(&server).await;
    assert!(!want.contains_key(&x) && !want.contains_key(&w));
    assert!(want.contains_key(&y), "C's offline row reached the server");
    assert_eq!(want.len(), 4);
    assert_eq!(on_device(&c).await, want);
    assert_eq!(c.pending_changes().await.unwrap(), 0);
    assert_eq!(server_count(&server, &format!("id = '{x}'")).await, 0);
    // Every replica, and a fresh one, ends with the server's rows; the
    // tombstones are gone from the files too.
    for d in [&a, &b, &c] {
        d.sync().await.unwrap();
        assert_eq!(on_device(d).await, want);
    }
    let fresh = device(dir.path(), "fresh", url, token, Config::default()).await;
    fresh.sync().await.unwrap();
    assert_eq!(on_device(&fresh).await, want);
    for name in ["a", "b", "c", "fresh"] {
        assert_eq!(
            engine_rows(&dir.path().join(format!("{name}.db"))).await,
            (4, 0),
            "replica {name} keeps no purged tombstone"
        );
    }
    assert_eq!(server_count(&server, "1").await, 4);
}

#[tokio::test]
async fn a_purge_between_a_replicas_check_and_its_push_cannot_bring_a_row_back() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = server.token();
    let a = device(dir.path(), "a", server.url(), token, Config::default()).await;
    let c = device(dir.path(), "c", proxy.url(), token, Config::default()).await;
    let x = add(&a, "doomed").await;
    let keep = add(&a, "kept").await;
    a.sync().await.unwrap();
    c.sync().await.unwrap();
    edit(&c, &x).await;
    edit(&c, &keep).await;
    delete(&a, &x).await;
    a.sync().await.unwrap();
    // Another device's purge lands after C's check (start of its sync) and
    // before its first push, which the guard then rolls back.
    proxy.run_before(
        "purge_guard",
        token,
        vec![
            "INSERT INTO _erth_meta (k, v) VALUES ('purged:items', 0) ON CONFLICT (k) DO NOTHING".into(),
            "UPDATE _erth_meta SET v = (SELECT max(_seq) FROM items WHERE is_deleted = 1) WHERE k = 'purged:items'".into(),
            "DELETE FROM items WHERE is_deleted = 1".into(),
        ],
    );
    let report = c.sync().await.unwrap();
    assert!(!proxy.run_before_pending(), "the purge ran during the sync");
    assert_eq!(report.pushed, 1, "only the edit of the kept row landed");
    assert_eq!(server_count(&server, &format!("id = '{x}'")).await, 0);
    let want = on_server(&server).await;
    assert_eq!(want.len(), 1);
    assert_eq!(want[&keep], ("kept".to_owned(), 1));
    assert_eq!(on_device(&c).await, want);
    a.sync().await.unwrap();
    assert_eq!(on_device(&a).await, want);
}

#[tokio::test]
async fn a_replica_behind_a_purge_and_a_restored_server_are_told_apart() {
    // The anchor of the restore check (the last row a replica pulled) is
    // purged: that is not a restore, and nothing is pushed again.
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, token) = (server.url(), server.token());
    let a = device(dir.path(), "a", url, token, Config::default()).await;
    let b = device(dir.path(), "b", url, token, Config::default()).await;
    let kept = add(&a, "kept").await;
    let last = add(&a, "last").await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    delete(&a, &last).await;
    a.sync().await.unwrap();
    b.sync().await.unwrap(); // B's anchor: the tombstone of `last`.
    a.purge(0).await.unwrap();
    let report = b.sync().await.unwrap();
    assert_eq!(
        report.pushed, 0,
        "a purged anchor is no restore: nothing pushed again"
    );
    assert_eq!(b.pending_changes().await.unwrap(), 0);
    assert_eq!(
        on_device(&b).await.into_keys().collect::<Vec<_>>(),
        vec![kept]
    );
}

#[tokio::test]
async fn four_replicas_with_purges_and_faults_converge_and_no_deleted_row_returns() {
    let seed = common::seed();
    println!("purge: seed {seed} (replay with ERTH_FAULTS_SEED={seed})");
    let mut rng = common::rng(seed);
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), seed).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let small = Config {
        pull_page_rows: 6,
        push_batch_rows: 4,
        retry: RetryPolicy {
            attempts: 2,
            base_delay_ms: 5,
            max_delay_ms: 20,
        },
        ..Config::default()
    };
    let mut fleet = Vec::new();
    for i in 0..4 {
        fleet.push(
            device(
                dir.path(),
                &format!("r{i}"),
                proxy.url(),
                server.token(),
                small.clone(),
            )
            .await,
        );
    }
    let faults = Faults {
        drop_request: 0.04,
        drop_response: 0.04,
        reset: 0.03,
        status_5xx: 0.04,
        ..Faults::none()
    };
    proxy.set_faults(faults.clone());
    let (mut created, mut deleted) = (BTreeSet::new(), BTreeSet::new());
    let (mut seen, mut dead) = (BTreeSet::new(), BTreeSet::new());
    let mut created_offline = BTreeSet::new();
    let mut offline_held: Vec<String> = Vec::new();
    // The documented limit (README, "Purging history"): a push that
    // committed but whose answer was lost leaves its new rows unacknowledged;
    // if another replica deletes one and it is purged before the creator
    // syncs again, the creator pushes it again as a new row. `unconfirmed`:
    // rows each replica created since its last successful sync;
    // `maybe_committed`: those a failed sync may have pushed. Only these may
    // come back, and each that does is counted and leaves the ledger's
    // deletes (it is live again everywhere).
    let mut unconfirmed: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 4];
    let mut maybe_committed: BTreeSet<String> = BTreeSet::new();
    let mut back_as_new = 0usize;
    let (mut purged_rows, mut purges, mut failed, mut offline_edits) = (0u64, 0, 0, 0);
    let rounds = 100 * common::scale();
    // Replica 3 is offline from round 10 to round 70; right after it
    // leaves, rows it holds are deleted and purged (and more at random).
    let offline = |round: usize, r: usize| r == 3 && (10..70).contains(&round);
    let mut purged_while_offline = 0;
    for round in 0..rounds {
        if round == 70 {
            // Replica 3 comes back: the rows it holds that the server no
            // longer has were deleted elsewhere and purged meanwhile.
            let on_server: BTreeSet<String> = server_rows(&server, "SELECT id FROM items")
                .await
                .into_iter()
                .map(|r| r[0].clone())
                .collect();
            purged_while_offline = on_device(&fleet[3])
                .await
                .into_keys()
                .filter(|id| !on_server.contains(id))
                .filter(|id| !created_offline.contains(id))
                .count();
        }
        if round == 10 {
            // Replica 3 leaves holding every row there is (three of its
            // own among them).
            for k in 0..3 {
                created.insert(add(&fleet[3], &format!("r3 leaves with {k}")).await);
            }
            sync_through(&fleet[3]).await;
            unconfirmed[3].clear();
            offline_held = on_device(&fleet[3]).await.into_keys().collect();
        }
        if round == 11 {
            // At least one purge removes rows it holds: replica 0 deletes
            // three of them, and replica 1 purges.
            sync_through(&fleet[0]).await;
            unconfirmed[0].clear();
            let held = on_device(&fleet[0]).await;
            for id in offline_held
                .iter()
                .filter(|id| held.contains_key(*id))
                .take(3)
            {
                delete(&fleet[0], id).await;
                deleted.insert(id.clone());
            }
            sync_through(&fleet[0]).await;
            let mut tries = 0;
            loop {
                tries += 1;
                match fleet[1].purge(0).await {
                    Ok(report) => {
                        purges += 1;
                        purged_rows += report.tables[0].rows;
                        break;
                    }
                    Err(e) if tries < 50 => failed += usize::from(e.kind() == ErrorKind::Network),
                    Err(e) => panic!("no purge in 50 tries: {e}"),
                }
            }
        }
        if offline(round, 3) && rng.random_bool(0.3) {
            // Another replica deletes a row the offline one holds.
            let held = on_device(&fleet[0]).await;
            let mine: Vec<&String> = offline_held
                .iter()
                .filter(|id| held.contains_key(*id))
                .collect();
            if !mine.is_empty() {
                let id = mine[rng.random_range(0..mine.len())].clone();
                delete(&fleet[0], &id).await;
                deleted.insert(id);
            }
        }
        for _ in 0..rng.random_range(1..5) {
            let r = rng.random_range(0..fleet.len());
            let db = &fleet[r];
            let held: Vec<String> = on_device(db).await.into_keys().collect();
            match rng.random_range(0..10) {
                0..=3 => {
                    let id = add(db, &format!("r{r} round {round}")).await;
                    unconfirmed[r].insert(id.clone());
                    if offline(round, r) {
                        created_offline.insert(id.clone());
                    }
                    created.insert(id);
                }
                4..=6 if !held.is_empty() => {
                    edit(db, &held[rng.random_range(0..held.len())]).await;
                    if offline(round, r) {
                        offline_edits += 1;
                    }
                }
                7..=8 if !held.is_empty() => {
                    let id = &held[rng.random_range(0..held.len())];
                    // The offline replica keeps (and may edit) the rows it
                    // left with: those are the ones deleted elsewhere.
                    if !(offline(round, r) && offline_held.contains(id)) {
                        delete(db, id).await;
                        deleted.insert(id.clone());
                    }
                }
                _ => {}
            }
        }
        for (r, db) in fleet.iter().enumerate() {
            if !offline(round, r) && rng.random_bool(0.7) {
                if db.sync().await.is_err() {
                    failed += 1;
                    maybe_committed.extend(unconfirmed[r].iter().cloned());
                } else {
                    unconfirmed[r].clear();
                }
            }
        }
        if rng.random_bool(0.15) {
            let r = rng.random_range(0..3);
            match fleet[r].purge(0).await {
                Ok(report) => {
                    purges += 1;
                    purged_rows += report.tables[0].rows;
                }
                Err(_) => failed += 1,
            }
        }
        // Once a delete reached the server (a tombstone there, or the row
        // gone after it was there), the row is never live there again.
        let rows: BTreeMap<String, bool> = server_rows(&server, "SELECT id, is_deleted FROM items")
            .await
            .into_iter()
            .map(|r| (r[0].clone(), r[1] == "1"))
            .collect();
        for id in &deleted {
            match rows.get(id) {
                Some(true) => {
                    dead.insert(id.clone());
                }
                None if seen.contains(id) => {
                    dead.insert(id.clone());
                }
                _ => {}
            }
        }
        let mut again = Vec::new();
        for id in &dead {
            if rows.get(id) == Some(&false) {
                assert!(
                    maybe_committed.contains(id),
                    "round {round}: deleted {id} is live on the server again (seed {seed})"
                );
                again.push(id.clone());
            }
        }
        for id in again {
            back_as_new += 1;
            dead.remove(&id);
            deleted.remove(&id);
        }
        seen.extend(rows.into_keys());
    }
    proxy.set_faults(Faults::none());
    for _ in 0..2 {
        for db in &fleet {
            sync_through(db).await;
        }
    }
    let want = on_server(&server).await;
    assert!(
        dead.len() > 10,
        "deletes reached the server: {}",
        dead.len()
    );
    let expect: BTreeSet<String> = created.difference(&deleted).cloned().collect();
    assert_eq!(
        want.keys().cloned().collect::<BTreeSet<_>>(),
        expect,
        "the server's live rows are the ledger's (seed {seed})"
    );
    for (r, db) in fleet.iter().enumerate() {
        assert_eq!(on_device(db).await, want, "replica {r} (seed {seed})");
    }
    let fresh = device(
        dir.path(),
        "fresh",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    fresh.sync().await.unwrap();
    assert_eq!(on_device(&fresh).await, want);
    println!(
        "purge: rounds {rounds}, created {}, deleted {}, purges {purges} ({purged_rows} tombstones), offline edits {offline_edits}, rows the offline replica held that were purged meanwhile {purged_while_offline}, failed syncs/purges {failed}, rows pushed again as new after a lost answer (the documented limit) {back_as_new}, faults {:?}",
        created.len(),
        deleted.len(),
        proxy.stats()
    );
    assert!(purges > 3 && purged_rows > 0, "purges ran");
    assert!(failed > 0, "the faults never stopped a sync");
    assert!(offline_edits > 0, "the offline replica edited rows");
    assert!(
        purged_while_offline > 0,
        "no row the offline replica held was purged"
    );
}

#[tokio::test]
async fn a_purge_while_ten_replicas_sync_loses_nothing_and_fails_no_sync() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, token) = (server.url(), server.token());
    let config = Config {
        push_batch_rows: 20,
        pull_page_rows: 50,
        ..Config::default()
    };
    let seeder = device(dir.path(), "seeder", url, token, config.clone()).await;
    let mut ids = Vec::new();
    for i in 0..2_500 {
        ids.push(add(&seeder, &format!("seed {i}")).await);
    }
    seeder.sync().await.unwrap();
    for id in &ids[..2_200] {
        delete(&seeder, id).await;
    }
    seeder.sync().await.unwrap();
    let mut fleet = Vec::new();
    for i in 0..10 {
        let db = device(dir.path(), &format!("r{i}"), url, token, config.clone()).await;
        if i % 2 == 0 {
            db.sync().await.unwrap(); // half of them hold the rows
        }
        fleet.push(db);
    }
    let mut created: BTreeSet<String> = ids[2_200..].iter().cloned().collect();
    let deleted: BTreeSet<String> = ids[..2_200].iter().cloned().collect();
    // Each replica writes, deletes its own new rows and syncs, five
    // times, while the seeder purges every tombstone.
    let work = fleet.iter().enumerate().map(|(r, db)| async move {
        let mut mine = Vec::new();
        let mut gone = Vec::new();
        for step in 0..5 {
            for k in 0..4 {
                mine.push(add(db, &format!("r{r} step {step} {k}")).await);
            }
            let id = mine.remove(0);
            delete(db, &id).await;
            gone.push(id);
            db.sync()
                .await
                .map_err(|e| format!("replica {r} step {step}: {e}"))?;
        }
        Ok::<_, String>((mine, gone))
    });
    let purge = seeder.purge(0);
    let (results, purged) = futures::future::join(futures::future::join_all(work), purge).await;
    let purged = purged.unwrap();
    assert!(purged.tables[0].rows >= 2_200, "{purged:?}");
    let mut deleted = deleted;
    for result in results {
        let (mine, gone) = result.unwrap();
        created.extend(mine);
        deleted.extend(gone);
    }
    for db in fleet.iter().chain([&seeder]) {
        db.sync().await.unwrap();
    }
    let want = on_server(&server).await;
    assert_eq!(want.keys().cloned().collect::<BTreeSet<_>>(), created);
    for id in &deleted {
        assert!(!want.contains_key(id));
    }
    for db in fleet.iter().chain([&seeder]) {
        db.sync().await.unwrap();
        assert_eq!(on_device(db).await, want);
    }
    println!(
        "purge: {} tombstones purged while 10 replicas synced; server live rows {}",
        purged.tables[0].rows,
        want.len()
    );
}

#[tokio::test]
async fn purging_a_table_of_90_percent_tombstones_shrinks_the_server_and_a_fresh_pull_and_a_device_behind_catches_up(
) {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, token) = (server.url(), server.token());
    let writer = device(dir.path(), "w", url, token, Config::default()).await;
    let n = 12_000;
    let stmts: Vec<Statement> = (0..n)
        .map(|i| {
            Statement::new(
                "INSERT INTO items (id, title, n) VALUES (uuid7(), ?, ?)",
                vec![
                    text(&format!("a todo with a title of some length {i}")),
                    SqlValue::Integer(i as i64),
                ],
            )
        })
        .collect();
    writer.transaction(&stmts).await.unwrap();
    writer.sync().await.unwrap();
    // A device that pulls every row, then stays away until after the purge.
    let behind = device(dir.path(), "behind", proxy.url(), token, Config::default()).await;
    behind.sync().await.unwrap();
    writer
        .execute("DELETE FROM items WHERE n % 10 <> 0", &[])
        .await
        .unwrap();
    writer.sync().await.unwrap();
    assert_eq!(server_count(&server, "is_deleted = 1").await, 10_800);
    let used = |s: &TestServer| {
        let s = s.url().to_owned();
        async move {
            let page = server_rows_at(&s, token, "PRAGMA page_size").await;
            let count = server_rows_at(&s, token, "PRAGMA page_count").await;
            let free = server_rows_at(&s, token, "PRAGMA freelist_count").await;
            (count - free) * page
        }
    };
    let fresh_pull = |name: &'static str| {
        let dir = dir.path().to_owned();
        let proxy = &proxy;
        async move {
            let before = proxy.stats().bytes_forwarded;
            let db = device(&dir, name, proxy.url(), token, Config::default()).await;
            let started = std::time::Instant::now();
            let report = db.sync().await.unwrap();
            let ms = started.elapsed().as_millis();
            assert_eq!(on_device(&db).await.len(), 1_200);
            (report.pulled, proxy.stats().bytes_forwarded - before, ms)
        }
    };
    let size_before = used(&server).await;
    let (rows_before, bytes_before, ms_before) = fresh_pull("fresh-before").await;
    let report = writer.purge(0).await.unwrap();
    assert_eq!(report.tables[0].rows, 10_800);
    let size_after = used(&server).await;
    let (rows_after, bytes_after, ms_after) = fresh_pull("fresh-after").await;
    println!(
        "purge figures: 12,000 rows, 10,800 of them tombstones: server pages in use {size_before} -> {size_after} bytes ({:.2}x); a fresh device's first pull {rows_before} -> {rows_after} rows, {bytes_before} -> {bytes_after} response bytes ({:.2}x), {ms_before} -> {ms_after} ms",
        size_before as f64 / size_after as f64,
        bytes_before as f64 / bytes_after as f64
    );
    assert_eq!(rows_before, 12_000);
    assert_eq!(rows_after, 1_200);
    // The device behind the purge compares the 12,000 ids it holds (two
    // pages of the comparison: 10,000 and 2,000) and drops 10,800.
    let (requests, bytes) = (proxy.stats().requests, proxy.stats().bytes_forwarded);
    let started = std::time::Instant::now();
    behind.sync().await.unwrap();
    let ms = started.elapsed().as_millis();
    let (requests, bytes) = (
        proxy.stats().requests - requests,
        proxy.stats().bytes_forwarded - bytes,
    );
    assert_eq!(on_device(&behind).await, on_server(&server).await);
    assert_eq!(
        engine_rows(&dir.path().join("behind.db")).await,
        (1_200, 0),
        "the purged rows are gone from the file"
    );
    assert_eq!(behind.pending_changes().await.unwrap(), 0);
    println!(
        "purge figures: a device holding 12,000 rows behind the purge caught up in {requests} requests, {bytes} response bytes, {ms} ms (10,800 rows dropped)"
    );
    assert!(
        bytes_after < bytes_before / 3,
        "{bytes_before} -> {bytes_after}"
    );
    assert!(size_after < size_before, "{size_before} -> {size_after}");
}

/// One integer a statement answers on the server at `url`.
async fn server_rows_at(url: &str, token: Option<&str>, sql: &str) -> i64 {
    let res = hrana::execute(url, token, &[sql]).await.unwrap();
    let v = &res[0]["rows"][0][0]["value"];
    v.as_str()
        .map(|s| s.parse().unwrap())
        .or_else(|| v.as_i64())
        .unwrap()
}

#[tokio::test]
async fn a_replica_of_the_release_before_purging_brings_back_a_purged_row_it_edits() {
    // The previous release has neither the id comparison nor the push
    // guard: its push of an edit is the plain merge upsert. This test sends
    // exactly that (the engine row of a replica that edited the row while
    // offline, as the previous release's push writes it) after a purge,
    // and pins down what README says: the row is live again, and every
    // replica of this release pulls it. Upgrade devices before purging.
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, token) = (server.url(), server.token());
    let a = device(dir.path(), "a", url, token, Config::default()).await;
    let old = device(dir.path(), "old", url, token, Config::default()).await;
    let x = add(&a, "doomed").await;
    a.sync().await.unwrap();
    old.sync().await.unwrap();
    edit(&old, &x).await;
    delete(&a, &x).await;
    a.sync().await.unwrap();
    a.purge(0).await.unwrap();
    assert_eq!(server_count(&server, "1").await, 0);
    drop(old);
    let store = SqliteStore::open(dir.path().join("old.db")).unwrap();
    let row = store
        .query(&Statement::new(
            "SELECT id, title, n, is_deleted, created_at, updated_at, _clk_title, _clk_n, _clk_is_deleted FROM _erth_rows_items WHERE id = ?",
            vec![x.as_str().into()],
        ))
        .await
        .unwrap();
    let lit = |v: &SqlValue| match v {
        SqlValue::Text(t) => format!("'{}'", t.replace('\'', "''")),
        SqlValue::Integer(i) => i.to_string(),
        other => panic!("unexpected {other:?}"),
    };
    let values: Vec<String> = row.rows[0].iter().map(lit).collect();
    let push = [
        "BEGIN IMMEDIATE".to_owned(),
        format!(
            "INSERT INTO items (id, title, n, is_deleted, created_at, updated_at, _clk_title, _clk_n, _clk_is_deleted, _seq) VALUES ({}, (SELECT v FROM _erth_meta WHERE k = 'seq') + 1) ON CONFLICT (id) DO NOTHING",
            values.join(", ")
        ),
        "UPDATE _erth_meta SET v = v + 1 WHERE k = 'seq'".to_owned(),
        "COMMIT".to_owned(),
    ];
    let push: Vec<&str> = push.iter().map(String::as_str).collect();
    hrana::execute(url, token, &push).await.unwrap();
    assert_eq!(
        on_server(&server).await.len(),
        1,
        "the purged row is live again"
    );
    a.sync().await.unwrap();
    assert!(
        on_device(&a).await.contains_key(&x),
        "and pulled by this release"
    );
}

#[tokio::test]
async fn a_server_with_the_write_guard_is_purged_and_keeps_its_guard() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, token) = (server.url(), server.token());
    let guarded = Config {
        server_guard: true,
        ..Config::default()
    };
    let a = device(dir.path(), "a", url, token, guarded).await;
    let b = device(dir.path(), "b", url, token, Config::default()).await;
    let x = add(&a, "doomed").await;
    let kept = add(&a, "kept").await;
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    edit(&b, &x).await;
    delete(&a, &x).await;
    a.sync().await.unwrap();
    let triggers = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE '_erth_guard_v1_%'";
    let before = server_rows(&server, triggers).await;
    assert_eq!(before[0][0], "6", "the guard is installed");
    // The guard refuses a plain physical delete.
    let refused = hrana::execute(url, token, &["DELETE FROM items"]).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("rows are never deleted")),
        "{refused:?}"
    );
    assert_eq!(server_count(&server, "1").await, 2);
    let report = a.purge(0).await.unwrap();
    assert_eq!(report.tables[0].rows, 1);
    assert_eq!(
        server_rows(&server, triggers).await,
        before,
        "the guard is back"
    );
    let refused = hrana::execute(url, token, &["DELETE FROM items"]).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("rows are never deleted")),
        "{refused:?}"
    );
    assert_eq!(server_count(&server, "1").await, 1);
    b.sync().await.unwrap();
    assert_eq!(
        on_device(&b).await.into_keys().collect::<Vec<_>>(),
        vec![kept]
    );
    assert_eq!(server_count(&server, &format!("id = '{x}'")).await, 0);
}

#[tokio::test]
async fn a_row_acknowledged_under_the_previous_release_is_still_known_as_the_servers_after_an_upgrade(
) {
    // The previous release kept no mark on rows the server acknowledged
    // (`_seq` stayed NULL); opening the file with this release marks the
    // clean ones, so a purge of such a row is not taken for a row the
    // server never had (which would push it back).
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, token) = (server.url(), server.token());
    let a = device(dir.path(), "a", url, token, Config::default()).await;
    let up = device(dir.path(), "up", url, token, Config::default()).await;
    let x = add(&up, "pushed by the previous release").await;
    up.sync().await.unwrap();
    drop(up);
    let store = SqliteStore::open(dir.path().join("up.db")).unwrap();
    store
        .write(&[Statement::plain("UPDATE _erth_rows_items SET _seq = NULL")])
        .await
        .unwrap();
    drop(store);
    a.sync().await.unwrap();
    delete(&a, &x).await;
    a.sync().await.unwrap();
    a.purge(0).await.unwrap();
    let up = device(dir.path(), "up", url, token, Config::default()).await;
    up.sync().await.unwrap();
    assert!(on_device(&up).await.is_empty(), "the purged row is dropped");
    assert_eq!(server_count(&server, "1").await, 0, "and not pushed back");
}
