//! The wasm build in a dedicated Worker (headless Chromium and Firefox, where
//! OPFS works, and WebKitGTK, where the persistent store is IndexedDB): the
//! store conformance suite on the persistent and the IndexedDB stores,
//! durability across close and reopen (also of a database left in the
//! rollback journal by an older version), one owner per database (Web Locks),
//! the API on the persistent store, and sync through `fetch` with a real
//! `tursodb --sync-server`.
//!
//! The server URL is compiled in from `ERTH_TEST_HRANA_URL` (set by
//! `cargo xtask test wasm`, which starts a fresh server); without it the sync
//! test fails and says so.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{api_round_trip, code, field, message, number, options, text, unique};
use erth_core::store::browser::{open_indexeddb, open_opfs, open_persistent, Storage};
use erth_core::store::{conformance, Store};
use erth_core::{SqlValue, Statement};
use erth_wasm::Replica;
use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

/// A replica on the browser's persistent storage (no `storage` option):
/// OPFS, or IndexedDB where the browser has no OPFS sync access handles.
async fn persistent(name: &str, extra: &[(&str, JsValue)]) -> Result<Replica, JsValue> {
    let options = options(name, "opfs", extra);
    js_sys::Reflect::delete_property(&options.clone().into(), &"storage".into()).unwrap();
    Replica::open(options).await
}

/// The storage this browser should give a persistent database: OPFS where a
/// sync access handle can be had (Chromium, Firefox), else IndexedDB
/// (WebKitGTK).
async fn expected_storage() -> Storage {
    match open_opfs(&unique("probe"), 0, None).await {
        Ok(_) => Storage::Opfs,
        Err(e)
            if e.to_string()
                .contains("OPFS sync access handles are not available") =>
        {
            Storage::IndexedDb
        }
        Err(e) => panic!("OPFS failed for another reason: {e}"),
    }
}

fn titles(list: &JsValue) -> Vec<String> {
    Array::from(list)
        .iter()
        .map(|t| text(&t, "title"))
        .collect()
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
}

async fn sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    wasm_bindgen_futures::JsFuture::from(p).await.unwrap();
}

#[wasm_bindgen_test]
async fn store_conformance_on_the_persistent_store() {
    let name = unique("conf");
    let expected = expected_storage().await;
    {
        let store = open_persistent(&name, 0, None)
            .await
            .expect("open the persistent store");
        assert_eq!(store.storage(), expected);
        conformance::run(&store).await;
        if expected != Storage::Opfs {
            return;
        }
        let mode = store
            .query(&Statement::plain("PRAGMA journal_mode"))
            .await
            .unwrap();
        // WAL under exclusive locking: the sahpool VFS accepts it.
        assert_eq!(mode.rows[0][0], SqlValue::from("wal"));
        let sync = store
            .query(&Statement::plain("PRAGMA synchronous"))
            .await
            .unwrap();
        assert_eq!(sync.rows[0][0], SqlValue::Integer(2), "FULL");
    }
    // Closed and reopened: every committed row is still there. (The Web Lock
    // is released asynchronously after a close, so the reopen may wait a bit.)
    let store = open_persistent(&name, 2000, None).await.expect("reopen");
    let rows = store
        .query(&Statement::plain("SELECT count(*) FROM conf_r"))
        .await
        .unwrap();
    assert_eq!(rows.rows[0][0], SqlValue::Integer(3));
}

/// A database an older erth-sync left in a rollback journal (`TRUNCATE`, the
/// OPFS mode before WAL) opens in WAL with every committed row.
#[wasm_bindgen_test]
async fn an_opfs_database_in_a_rollback_journal_reopens_in_wal_with_its_rows() {
    if expected_storage().await != Storage::Opfs {
        // Not applicable, and said so: this browser's databases live in
        // IndexedDB, which never had a rollback journal on OPFS.
        wasm_bindgen_test::console_log!(
            "not applicable here: no OPFS sync access handles (IndexedDB storage)"
        );
        return;
    }
    let name = unique("upgrade");
    {
        let store = open_opfs(&name, 0, None).await.expect("open");
        store
            .write(&[
                Statement::plain("CREATE TABLE kept (v INTEGER)"),
                Statement::plain("INSERT INTO kept VALUES (1), (2)"),
            ])
            .await
            .unwrap();
        let mode = store
            .query(&Statement::plain("PRAGMA journal_mode = TRUNCATE"))
            .await
            .unwrap();
        assert_eq!(mode.rows[0][0], SqlValue::from("truncate"));
        store
            .write(&[Statement::plain("INSERT INTO kept VALUES (3)")])
            .await
            .unwrap();
    }
    let store = open_opfs(&name, 2000, None).await.expect("reopen");
    let mode = store
        .query(&Statement::plain("PRAGMA journal_mode"))
        .await
        .unwrap();
    assert_eq!(mode.rows[0][0], SqlValue::from("wal"));
    let rows = store
        .query(&Statement::plain("SELECT count(*) FROM kept"))
        .await
        .unwrap();
    assert_eq!(rows.rows[0][0], SqlValue::Integer(3));
}

#[wasm_bindgen_test]
async fn store_conformance_on_indexeddb_and_its_bytes_survive_a_reopen() {
    let name = unique("idbconf");
    {
        let store = open_indexeddb(&name, 0)
            .await
            .expect("open IndexedDB store");
        assert_eq!(store.storage(), Storage::IndexedDb);
        conformance::run(&store).await;
    }
    let store = open_indexeddb(&name, 2000).await.expect("reopen");
    let rows = store
        .query(&Statement::plain("SELECT count(*) FROM conf_r"))
        .await
        .unwrap();
    assert_eq!(rows.rows[0][0], SqlValue::Integer(3));
}

#[wasm_bindgen_test]
async fn api_on_the_persistent_store() {
    api_round_trip(&persistent(&unique("api"), &[]).await.unwrap()).await;
}

#[wasm_bindgen_test]
async fn data_and_pending_changes_survive_close_and_reopen() {
    let name = unique("persist");
    let db = persistent(&name, &[]).await.unwrap();
    let keep = db.add_todo("keep me".into()).await.unwrap();
    let gone = db.add_todo("delete me".into()).await.unwrap();
    db.set_completed(text(&keep, "id"), true).await.unwrap();
    assert!(db.delete_todo(text(&gone, "id")).await.unwrap());
    drop(db);

    let db = persistent(&name, &[]).await.unwrap();
    let list = db.list_active().await.unwrap();
    assert_eq!(titles(&list), ["keep me"]);
    assert_eq!(
        field(&Array::from(&list).get(0), "completed"),
        JsValue::TRUE
    );
    assert_eq!(code(db.get_todo(text(&gone, "id")).await), "NotFound");
    let status = db.status().await.unwrap();
    assert_eq!(
        number(&status, "pendingChanges"),
        2.0,
        "the tombstone is pending too"
    );
}

#[wasm_bindgen_test]
async fn a_second_owner_waits_then_gets_database_locked() {
    let name = unique("lock");
    let first = persistent(&name, &[]).await.unwrap();
    first.add_todo("owned".into()).await.unwrap();

    // Fail at once, or after the timeout; the owner is untouched.
    let impatient = [("lockTimeoutMs", 0.0.into())];
    assert_eq!(code(persistent(&name, &impatient).await), "DatabaseLocked");
    // The holder is this worker (this tab): the message says so.
    let msg = message(persistent(&name, &impatient).await);
    assert!(msg.contains("already open in this tab"), "{msg}");
    assert!(msg.contains("share that handle"), "{msg}");
    assert!(!msg.contains("another tab"), "{msg}");
    let started = js_sys::Date::now();
    let later = persistent(&name, &[("lockTimeoutMs", 300.0.into())]).await;
    assert_eq!(code(later), "DatabaseLocked");
    assert!(
        js_sys::Date::now() - started >= 250.0,
        "waited for the lock"
    );
    assert_eq!(titles(&first.list_active().await.unwrap()), ["owned"]);

    // A waiting opener gets the database as soon as the owner closes it.
    let patient = [("lockTimeoutMs", 5000.0.into())];
    let waiting = persistent(&name, &patient);
    let close_soon = async move {
        sleep(100).await;
        drop(first);
    };
    let (second, ()) = futures::join!(waiting, close_soon);
    let second = second.expect("opened after the first owner closed");
    assert_eq!(titles(&second.list_active().await.unwrap()), ["owned"]);
}

fn server_url() -> &'static str {
    match option_env!("ERTH_TEST_HRANA_URL") {
        Some(url) => url,
        None => panic!(
            "ERTH_TEST_HRANA_URL was not set at compile time: run `cargo xtask test wasm`, \
             which starts tursodb --sync-server and passes its URL"
        ),
    }
}

#[wasm_bindgen_test]
async fn two_replicas_converge_through_a_real_server() {
    let url = server_url();
    let a = persistent(&unique("sync-a"), &[("url", url.into())])
        .await
        .unwrap();
    let b = Replica::open(options(&unique("sync-b"), "memory", &[("url", url.into())]))
        .await
        .unwrap();

    let t1 = a.add_todo("from worker a".into()).await.unwrap();
    let t2 = a.add_todo("also from a".into()).await.unwrap();
    let report = a.sync().await.expect("a pushes");
    assert_eq!(number(&report, "pushed"), 2.0);
    assert!(number(&report, "durationMs") >= 0.0);
    b.sync().await.expect("b pulls");
    let seen = titles(&b.list_active().await.unwrap());
    assert!(seen.contains(&"from worker a".to_owned()), "{seen:?}");
    assert!(seen.contains(&"also from a".to_owned()), "{seen:?}");

    // Concurrent edits of different columns and a delete, then converge.
    a.rename_todo(text(&t1, "id"), "renamed by a".into())
        .await
        .unwrap();
    b.set_completed(text(&t1, "id"), true).await.unwrap();
    b.delete_todo(text(&t2, "id")).await.unwrap();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    let on_a = a.get_todo(text(&t1, "id")).await.unwrap();
    let on_b = b.get_todo(text(&t1, "id")).await.unwrap();
    for t in [&on_a, &on_b] {
        assert_eq!(text(t, "title"), "renamed by a");
        assert_eq!(field(t, "completed"), JsValue::TRUE);
    }
    assert_eq!(code(a.get_todo(text(&t2, "id")).await), "NotFound");
    assert_eq!(
        titles(&a.list_active().await.unwrap()),
        titles(&b.list_active().await.unwrap())
    );
    for db in [&a, &b] {
        let status = db.status().await.unwrap();
        assert_eq!(number(&status, "pendingChanges"), 0.0);
        assert!(number(&status, "lastSyncAt") > 1.6e12);
        assert_eq!(field(&status, "lastError"), JsValue::NULL);
        assert_eq!(text(&status, "remoteUrl"), url.trim_end_matches('/'));
        assert_eq!(number(&status, "quarantined"), 0.0);
    }
}

#[wasm_bindgen_test]
async fn waiting_for_the_first_sync_ends_with_it() {
    use std::cell::Cell;
    use std::rc::Rc;
    let url = server_url();
    let db = Rc::new(
        Replica::open(options(&unique("first"), "memory", &[("url", url.into())]))
            .await
            .unwrap(),
    );
    // Before any sync it waits; the sync ends it.
    let ended = Rc::new(Cell::new(None));
    let (waiter, seen) = (db.clone(), ended.clone());
    wasm_bindgen_futures::spawn_local(async move {
        seen.set(Some(waiter.wait_for_first_sync().await.is_ok()));
    });
    sleep(50).await;
    assert_eq!(ended.get(), None, "the wait ended before any sync");
    db.sync().await.expect("sync");
    sleep(10).await;
    assert_eq!(
        ended.get(),
        Some(true),
        "the wait did not end with the sync"
    );
    // After it: at once; and nothing is quarantined.
    db.wait_for_first_sync().await.unwrap();
    assert_eq!(
        Array::from(&db.quarantined_rows().await.unwrap()).length(),
        0
    );
    assert_eq!(db.forget_quarantined().await.unwrap(), 0.0);
}

/// Every byte the database `name` keeps in OPFS (sahpool's files, each
/// with its header), read through the OPFS API once the replica is closed.
async fn opfs_bytes(name: &str) -> Vec<u8> {
    let read = js_sys::Function::new_with_args(
        "name",
        "return (async () => {
            const root = await navigator.storage.getDirectory();
            const top = await (await root.getDirectoryHandle('.erth-sync')).getDirectoryHandle(name);
            const parts = [];
            const walk = async (dir) => {
                for await (const [, h] of dir.entries()) {
                    if (h.kind === 'directory') await walk(h);
                    else parts.push(new Uint8Array(await (await h.getFile()).arrayBuffer()));
                }
            };
            await walk(top);
            const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
            let at = 0;
            for (const p of parts) { all.set(p, at); at += p.length; }
            return all;
        })()",
    );
    let promise: js_sys::Promise = read.call1(&JsValue::NULL, &name.into()).unwrap().into();
    let bytes = wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
    js_sys::Uint8Array::new(&bytes).to_vec()
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[wasm_bindgen_test]
async fn an_opfs_file_encrypted_at_rest_holds_no_plaintext_and_refuses_a_wrong_key() {
    let key = JsValue::from_str(&"5a".repeat(32));
    if expected_storage().await != Storage::Opfs {
        // No OPFS here (WebKitGTK): the persistent store would be
        // IndexedDB, which keeps a plain copy, so a file key is refused
        // rather than ignored.
        let refused = persistent(&unique("atrest"), &[("fileKey", key.clone())]).await;
        assert_eq!(code(refused), "InvalidInput");
        return;
    }
    let name = unique("atrest");
    let marker = "browser-at-rest-marker";
    let db = Replica::open(options(&name, "opfs", &[("fileKey", key.clone())]))
        .await
        .unwrap();
    db.add_todo(marker.into()).await.unwrap();
    drop(db);
    let stored = opfs_bytes(&name).await;
    assert!(
        stored.len() > 8192,
        "the file is there ({} bytes)",
        stored.len()
    );
    assert!(!holds(&stored, marker), "a value is readable in OPFS");
    assert!(
        !holds(&stored, "SQLite format 3"),
        "a plain SQLite header in OPFS"
    );
    assert!(!holds(&stored, "CREATE TABLE"), "schema text in OPFS");

    for wrong in [None, Some(JsValue::from_str(&"a5".repeat(32)))] {
        let extra: Vec<(&str, JsValue)> = wrong.into_iter().map(|k| ("fileKey", k)).collect();
        let refused = Replica::open(options(&name, "opfs", &extra)).await;
        assert_eq!(code(refused), "WrongKey");
        assert_eq!(
            opfs_bytes(&name).await,
            stored,
            "a wrong key changed the file"
        );
    }
    let db = Replica::open(options(&name, "opfs", &[("fileKey", key.clone())]))
        .await
        .unwrap();
    assert_eq!(titles(&db.list_active().await.unwrap()), [marker]);
    drop(db);

    // A plain database grepped the same way shows its values: the check
    // above can fail.
    let plain = unique("plain");
    let db = Replica::open(options(&plain, "opfs", &[])).await.unwrap();
    db.add_todo(marker.into()).await.unwrap();
    drop(db);
    assert!(holds(&opfs_bytes(&plain).await, marker));
}

#[wasm_bindgen_test]
async fn a_file_key_without_opfs_storage_is_refused_not_ignored() {
    for storage in ["indexeddb", "memory"] {
        let refused = Replica::open(options(
            &unique("nokey"),
            storage,
            &[("fileKey", JsValue::from_str(&"5a".repeat(32)))],
        ))
        .await;
        assert_eq!(code(refused), "InvalidInput", "{storage}");
    }
}

/// `ErthDb.changeFileKey` (the binding's `changeFileKey`), waiting up to
/// 5 s for a replica just dropped to let go.
async fn change_key(name: &str, old: Option<&str>, new: Option<&str>) -> Result<(), JsValue> {
    erth_wasm::change_file_key(
        name.into(),
        old.map(Into::into),
        new.map(Into::into),
        Some(5_000),
    )
    .await
}

/// Waits until no one holds database `name`'s Web Lock (a dropped replica
/// lets go of it once its last task ends).
async fn settled(name: &str) {
    let wait = js_sys::Function::new_with_args(
        "name",
        "return navigator.locks.request('erth-sync:' + name, () => {})",
    );
    let promise: js_sys::Promise = wait.call1(&JsValue::NULL, &name.into()).unwrap().into();
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

/// The bytes of database `name`'s own file (not the pool's other slots).
async fn file_bytes(name: &str) -> Vec<u8> {
    use sqlite_wasm_rs::vfs::transfer::DbTransfer;
    settled(name).await;
    let pool = pool_of(name).await;
    let bytes = pool.export_db(&format!("/{name}.sqlite3")).unwrap();
    pool.pause().unwrap();
    bytes
}

/// Opens `name` in OPFS with `key` (`None`: plain).
async fn open_keyed(name: &str, key: Option<&str>) -> Result<Replica, JsValue> {
    let extra: Vec<(&str, JsValue)> = key.into_iter().map(|k| ("fileKey", k.into())).collect();
    Replica::open(options(name, "opfs", &extra)).await
}

/// The titles of `name` opened with `key`, and its pending changes.
async fn contents(name: &str, key: Option<&str>) -> (Vec<String>, f64) {
    let db = open_keyed(name, key).await.unwrap();
    let list = titles(&db.list_active().await.unwrap());
    let pending = number(&db.status().await.unwrap(), "pendingChanges");
    (list, pending)
}

#[wasm_bindgen_test]
async fn a_browser_database_is_encrypted_rekeyed_and_decrypted_in_place() {
    let (k1, k2) = ("11".repeat(32), "22".repeat(32));
    let name = unique("rekey");
    if expected_storage().await != Storage::Opfs {
        // No OPFS (WebKitGTK): nothing to encrypt, and it says why.
        assert_eq!(
            code(change_key(&name, None, Some(&k1)).await),
            "InvalidInput"
        );
        return;
    }
    let db = open_keyed(&name, None).await.unwrap();
    db.add_todo("written-plain".into()).await.unwrap();
    drop(db);
    let (before, pending) = contents(&name, None).await;
    assert_eq!(pending, 1.0);

    // Refusals change nothing: a malformed key (not shown), an open
    // database, an unknown name, a wrong old key.
    let bad = message(change_key(&name, None, Some("not-a-key-5a5a")).await);
    assert!(bad.contains("newKey") && !bad.contains("5a5a"), "{bad}");
    let open = open_keyed(&name, None).await.unwrap();
    let busy = erth_wasm::change_file_key(name.clone(), None, Some(k1.clone()), Some(0)).await;
    assert_eq!(code(busy), "DatabaseLocked");
    drop(open);
    assert_eq!(
        code(change_key(&unique("absent"), None, Some(&k1)).await),
        "Storage"
    );
    let stored = file_bytes(&name).await;
    assert_eq!(
        code(change_key(&name, Some(&k2), Some(&k1)).await),
        "WrongKey"
    );
    assert!(file_bytes(&name).await == stored, "a refused change wrote");

    // Plain -> k1: no plaintext left, the old way of opening refused.
    change_key(&name, None, Some(&k1)).await.unwrap();
    let stored = opfs_bytes(&name).await;
    assert!(
        !holds(&stored, "written-plain"),
        "a value is readable in OPFS"
    );
    assert!(!holds(&stored, "SQLite format 3"), "a plain header in OPFS");
    assert_eq!(code(open_keyed(&name, None).await), "WrongKey");
    assert_eq!(contents(&name, Some(&k1)).await, (before.clone(), pending));
    let db = open_keyed(&name, Some(&k1)).await.unwrap();
    db.add_todo("written-under-k1".into()).await.unwrap();
    drop(db);
    let (after_k1, pending) = contents(&name, Some(&k1)).await;
    assert_eq!(after_k1.len(), 2);

    // k1 -> k2 (a phrase would do as well: `fileKey`'s parsing).
    change_key(&name, Some(&k1), Some(&k2)).await.unwrap();
    assert_eq!(code(open_keyed(&name, Some(&k1)).await), "WrongKey");
    assert_eq!(
        contents(&name, Some(&k2)).await,
        (after_k1.clone(), pending)
    );

    // k2 -> plain: the values are readable bytes again (the greps above can fail).
    change_key(&name, Some(&k2), None).await.unwrap();
    let stored = opfs_bytes(&name).await;
    assert!(holds(&stored, "written-under-k1") && holds(&stored, "written-plain"));
    assert_eq!(code(open_keyed(&name, Some(&k2)).await), "WrongKey");
    assert_eq!(contents(&name, None).await, (after_k1, pending));
}

/// The pool `store::browser` keeps database `name` in (same VFS name and
/// directory, so this worker's registered pool), active.
async fn pool_of(name: &str) -> sqlite_wasm_vfs::sahpool::OpfsSAHPoolUtil {
    let cfg = sqlite_wasm_vfs::sahpool::OpfsSAHPoolCfgBuilder::new()
        .vfs_name(&format!("erth-opfs-{name}"))
        .directory(&format!(".erth-sync/{name}"))
        .build();
    let pool = sqlite_wasm_vfs::sahpool::install::<sqlite_wasm_rs::WasmOsCallback>(&cfg, false)
        .await
        .unwrap();
    if pool.is_paused() {
        pool.resume().await.unwrap();
    }
    pool
}

#[wasm_bindgen_test]
async fn an_interrupted_key_change_is_finished_or_undone_by_the_next_open() {
    use sqlite_wasm_rs::vfs::transfer::DbTransfer;
    use sqlite_wasm_rs::vfs::VfsFilesManager;
    if expected_storage().await != Storage::Opfs {
        return; // No OPFS here: the test above checks the refusal.
    }
    let key = "33".repeat(32);
    let name = unique("crash");
    let db = open_keyed(&name, None).await.unwrap();
    db.add_todo("kept".into()).await.unwrap();
    drop(db);
    change_key(&name, None, Some(&key)).await.unwrap();
    // The pool files a change uses (`store::browser`'s names).
    let (file, partial, copy) = (
        format!("/{name}.sqlite3"),
        format!("/{name}.erth-rekey-partial.sqlite3"),
        format!("/{name}.erth-rekey.sqlite3"),
    );

    // Interrupted past its commit point: the database file removed, the
    // complete copy (under the new key) published. The open finishes it.
    settled(&name).await;
    let pool = pool_of(&name).await;
    let bytes = pool.export_db(&file).unwrap();
    pool.import_db_unchecked(&copy, &bytes).unwrap();
    pool.remove(&file).unwrap();
    pool.pause().unwrap();
    assert_eq!(contents(&name, Some(&key)).await.0, ["kept"]);
    settled(&name).await;
    let pool = pool_of(&name).await;
    assert!(!pool.contains(&copy).unwrap(), "the copy stayed");

    // Interrupted before it: a partial export and a published copy beside
    // the database (here junk under no key). The open removes both and
    // keeps the database.
    pool.import_db_unchecked(&partial, &[7; 4096]).unwrap();
    pool.import_db_unchecked(&copy, &[9; 4096]).unwrap();
    pool.pause().unwrap();
    assert_eq!(contents(&name, Some(&key)).await.0, ["kept"]);
    settled(&name).await;
    let pool = pool_of(&name).await;
    assert!(!pool.contains(&copy).unwrap() && !pool.contains(&partial).unwrap());

    // The same leftover before a change: it cleans it up and goes on.
    pool.import_db_unchecked(&copy, &[9; 4096]).unwrap();
    pool.pause().unwrap();
    change_key(&name, Some(&key), None).await.unwrap();
    assert_eq!(contents(&name, None).await.0, ["kept"]);
}
