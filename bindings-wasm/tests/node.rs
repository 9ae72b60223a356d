//! The wasm build in Node: the exported API on an in-memory store, option
//! checking, error codes, token hygiene, `fetch` failures, and the merge
//! laws with the generated SQL on the wasm SQLite against the pure-Rust
//! oracle (the native property test's cases, `core/tests/support/
//! merge_cases.rs`, drawn from fixed seeds).

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
#[path = "../../core/tests/support/merge_cases.rs"]
mod merge_cases;

use common::{api_round_trip, code, field, message, number, options, text, unique};
use erth_core::store::browser::open_memory;
use erth_core::store::Store;
use erth_wasm::Replica;
use merge_cases::{check_oracle_laws, check_sql, check_sql_exchange, Case};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;

async fn memory_db(extra: &[(&str, JsValue)]) -> Replica {
    Replica::open(options(&unique("node"), "memory", extra))
        .await
        .expect("open in memory")
}

#[wasm_bindgen_test]
async fn crud_tombstones_status_and_subscriptions() {
    api_round_trip(&memory_db(&[]).await).await;
}

#[wasm_bindgen_test]
async fn bad_options_are_invalid_input() {
    assert_eq!(
        code(Replica::open(JsValue::UNDEFINED).await),
        "InvalidInput"
    );
    assert_eq!(
        code(Replica::open(JsValue::from_str("x")).await),
        "InvalidInput"
    );
    for bad_name in ["", ".hidden", "a/b", "sp ace", &"x".repeat(65)] {
        assert_eq!(
            code(Replica::open(options(bad_name, "memory", &[])).await),
            "InvalidInput",
            "{bad_name:?}"
        );
    }
    assert_eq!(
        code(Replica::open(options("ok", "localStorage", &[])).await),
        "InvalidInput"
    );
    assert_eq!(
        code(Replica::open(options("ok", "memory", &[("lockTimeoutMs", (-1.0).into())])).await),
        "InvalidInput"
    );
    assert_eq!(
        code(Replica::open(options("ok", "memory", &[("url", "ftp://x".into())])).await),
        "InvalidInput"
    );
    // A wrongly typed token is refused without echoing it.
    let err =
        message(Replica::open(options("ok", "memory", &[("authToken", 424242.0.into())])).await);
    assert!(
        err.contains("authToken") && !err.contains("424242"),
        "{err}"
    );
}

#[wasm_bindgen_test]
async fn remote_urls_are_checked_and_credentials_never_shown() {
    let db = memory_db(&[]).await;
    // Plain http to a public host would send the token in clear text.
    assert_eq!(
        code(db.set_remote(Some("http://db.example.com".into()), None)),
        "InvalidInput"
    );
    db.set_remote(
        Some("libsql://db-org.turso.io?authToken=s3cret-in-url".into()),
        None,
    )
    .unwrap();
    let status = db.status().await.unwrap();
    assert_eq!(text(&status, "remoteUrl"), "https://db-org.turso.io");
    assert!(!format!("{status:?}").contains("s3cret"));
    db.set_remote(None, None).unwrap();
    assert_eq!(
        field(&db.status().await.unwrap(), "remoteUrl"),
        JsValue::NULL
    );
}

#[wasm_bindgen_test]
async fn unreachable_server_is_a_network_error_and_loses_nothing() {
    // Port 9 (discard) is closed on the test machine: the connection is refused.
    let db = memory_db(&[
        ("url", "http://127.0.0.1:9".into()),
        ("authToken", "s3cret-token".into()),
        ("requestTimeoutMs", 2000.0.into()),
    ])
    .await;
    db.add_todo("offline edit".into()).await.unwrap();
    let err = db.sync().await.expect_err("no server");
    assert_eq!(text(&err, "code"), "Network");
    let msg = text(&err, "message");
    assert!(!msg.contains("s3cret"), "token leaked: {msg}");
    let status = db.status().await.unwrap();
    assert_eq!(number(&status, "pendingChanges"), 1.0);
    assert_eq!(text(&status, "lastErrorCode"), "Network");
    assert!(!text(&status, "lastError").contains("s3cret"));
    assert_eq!(
        js_sys::Array::from(&db.list_active().await.unwrap()).length(),
        1
    );
}

fn memory() -> Box<dyn Store> {
    Box::new(open_memory().unwrap())
}

#[wasm_bindgen_test]
async fn merge_laws_hold_and_generated_sql_agrees_with_the_oracle_on_wasm_sqlite() {
    for seed in 0..150 {
        let case = Case::generate(seed);
        check_oracle_laws(&case).unwrap();
        check_sql(&case, &memory).await.unwrap();
        check_sql_exchange(&case, &memory).await.unwrap();
    }
}

/// `[a, b, ...]` as a JS array.
fn array(items: &[JsValue]) -> JsValue {
    items.iter().collect::<js_sys::Array>().into()
}

fn row(rows: &JsValue, i: u32) -> JsValue {
    js_sys::Array::from(rows).get(i)
}

#[wasm_bindgen_test]
async fn sql_values_cross_exactly_and_bad_parameters_name_their_index() {
    let schema = r#"{"tables":{"v":{"columns":{"i":{"type":"integer"},"r":{"type":"real"},"t":{"type":"text"},"b":{"type":"blob"}}}}}"#;
    let db = memory_db(&[("schema", schema.into()), ("url", "".into())]).await;
    let big = js_sys::BigInt::from(i64::MAX);
    let min = js_sys::BigInt::from(i64::MIN);
    let blob = js_sys::Uint8Array::from(&[0u8, 255, 7][..]);
    let insert = |values: &[JsValue]| {
        db.execute(
            "INSERT INTO v (i, r, t, b) VALUES (?, ?, ?, ?)".into(),
            array(values),
        )
    };
    let out = insert(&[big.clone().into(), 0.25.into(), "".into(), blob.into()])
        .await
        .unwrap();
    assert_eq!(number(&out, "rowsAffected"), 1.0);
    // 3.0 binds as INTEGER; the REAL column's affinity stores 3.0.
    insert(&[min.clone().into(), 3.0.into(), JsValue::NULL, JsValue::NULL])
        .await
        .unwrap();
    let safe = 2f64.powi(53) - 1.0;
    insert(&[
        safe.into(),
        JsValue::UNDEFINED,
        "é\0🦀".into(),
        JsValue::NULL,
    ])
    .await
    .unwrap();
    // Booleans are integers 1/0.
    insert(&[
        JsValue::TRUE,
        JsValue::FALSE,
        "t".into(),
        JsValue::UNDEFINED,
    ])
    .await
    .unwrap();
    let rows = db
        .query(
            "SELECT i, r, t, b FROM v ORDER BY created_at, id".into(),
            JsValue::UNDEFINED,
            None,
        )
        .await
        .unwrap();
    let [first, second, third, fourth] = [0, 1, 2, 3].map(|i| row(&rows, i));
    // Unsafe integers are bigints, exact; safe ones numbers.
    assert!(field(&first, "i").is_bigint());
    assert_eq!(field(&first, "i"), JsValue::from(big));
    assert_eq!(field(&second, "i"), JsValue::from(min));
    assert_eq!(number(&third, "i"), safe);
    assert_eq!(number(&fourth, "i"), 1.0);
    assert_eq!(number(&first, "r"), 0.25);
    assert_eq!(number(&second, "r"), 3.0);
    assert!(field(&third, "r").is_null());
    assert_eq!(number(&fourth, "r"), 0.0);
    assert_eq!(text(&first, "t"), "");
    assert!(field(&second, "t").is_null());
    assert_eq!(text(&third, "t"), "é\0🦀");
    let bytes = field(&first, "b");
    assert!(bytes.is_instance_of::<js_sys::Uint8Array>());
    assert_eq!(js_sys::Uint8Array::from(bytes).to_vec(), vec![0, 255, 7]);
    assert!(field(&second, "b").is_null());

    let over = js_sys::BigInt::new(&JsValue::from_str("9223372036854775808")).unwrap();
    let bad = db
        .execute("SELECT ?, ?".into(), array(&[1.into(), over.into()]))
        .await;
    assert!(message(bad).contains("parameter 2 is a bigint outside"));
    let bad = db
        .execute("SELECT ?".into(), array(&[js_sys::Object::new().into()]))
        .await;
    assert_eq!(code(bad), "InvalidInput");
    let bad = db
        .query("SELECT 1".into(), "not an array".into(), None)
        .await;
    assert_eq!(code(bad), "InvalidInput");
    assert_eq!(
        code(
            db.query("DELETE FROM v".into(), JsValue::UNDEFINED, None)
                .await
        ),
        "Sql"
    );
    // A write through a read-only call names the call the app made.
    assert_eq!(
        message(
            db.query("DELETE FROM v".into(), JsValue::UNDEFINED, None)
                .await
        ),
        "query() runs read-only statements; use execute() to write"
    );
    assert_eq!(
        message(
            db.query(
                "UPDATE v SET t = 'x'".into(),
                JsValue::UNDEFINED,
                Some("getAll".into())
            )
            .await
        ),
        "getAll() runs read-only statements; use execute() to write"
    );

    // A live query: first rows before `watch` returns, then on a change; none after stop.
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = seen.clone();
    let listener = Closure::<dyn Fn(JsValue)>::new(move |rows: JsValue| {
        sink.borrow_mut().push(js_sys::Array::from(&rows).length());
    });
    let live = db
        .watch(
            "SELECT i FROM v WHERE t IS NOT NULL".into(),
            JsValue::UNDEFINED,
            listener
                .as_ref()
                .unchecked_ref::<js_sys::Function>()
                .clone(),
        )
        .unwrap();
    assert_eq!(*seen.borrow(), vec![3]);
    db.execute(
        "UPDATE v SET t = 'x' WHERE t IS NULL".into(),
        JsValue::UNDEFINED,
    )
    .await
    .unwrap();
    assert_eq!(*seen.borrow(), vec![3, 4]);
    live.stop().unwrap();
    db.execute("DELETE FROM v".into(), JsValue::UNDEFINED)
        .await
        .unwrap();
    assert_eq!(*seen.borrow(), vec![3, 4]);
    let status = db.status().await.unwrap();
    assert!(js_sys::Array::is_array(&field(
        &status,
        "unknownServerColumns"
    )));
    assert!(field(&status, "remoteUrl").is_null());
}

#[wasm_bindgen(module = "/js/errors.js")]
extern "C" {
    #[wasm_bindgen(thread_local_v2, js_name = ErrorCode)]
    static ERROR_CODE: JsValue;
}

#[wasm_bindgen_test]
fn the_packages_error_codes_are_the_core_kinds_and_its_own_three() {
    let codes: Vec<String> = ERROR_CODE.with(|codes| {
        js_sys::Object::keys(codes.unchecked_ref::<js_sys::Object>())
            .iter()
            .map(|k| k.as_string().unwrap())
            .collect()
    });
    let mut expected: Vec<String> = erth_core::ErrorKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .chain(["Interrupted", "LoadFailed", "Internal"].map(String::from))
        .collect();
    let mut codes_sorted = codes.clone();
    codes_sorted.sort();
    expected.sort();
    assert_eq!(codes_sorted, expected);
}

#[wasm_bindgen_test]
fn tabs_compare_the_cores_canonical_form_of_a_schema() {
    let spaced = r#"{ "tables": { "notes": { "columns": { "body": { "type": "text", "notNull": false } }, "indexes": [] } } }"#;
    let tight = r#"{"tables":{"notes":{"columns":{"body":{"type":"text"}}}}}"#;
    let other = r#"{"tables":{"notes":{"columns":{"body":{"type":"integer"}}}}}"#;
    let canonical = |s: &str| erth_wasm::canonical_schema(Some(s.into())).unwrap();
    assert_eq!(canonical(spaced), canonical(tight));
    assert_ne!(canonical(tight), canonical(other));
    let todos = erth_core::Schema::default().to_json();
    assert_eq!(erth_wasm::canonical_schema(None).unwrap(), todos);
    assert_eq!(canonical(&todos), todos);
    assert_eq!(
        code(erth_wasm::canonical_schema(Some("{".into()))),
        "InvalidInput"
    );
}

#[wasm_bindgen_test]
async fn bad_auto_sync_and_storage_options_name_the_option() {
    let auto = |v: JsValue| Replica::open(options(&unique("auto"), "memory", &[("autoSync", v)]));
    let negative = js_sys::JSON::parse(r#"{"intervalMs": -5}"#).unwrap();
    let typo = js_sys::JSON::parse(r#"{"interval": 5}"#).unwrap();
    for bad in [negative, typo, "yes".into()] {
        let err = message(auto(bad).await);
        assert!(err.contains("option autoSync"), "{err}");
    }
    let err = message(Replica::open(options("ok", "localStorage", &[])).await);
    assert!(
        err.contains("option storage") && err.contains("indexeddb"),
        "{err}"
    );
    // On, with the defaults or some of them; off.
    for good in [
        JsValue::TRUE,
        JsValue::FALSE,
        js_sys::JSON::parse(r#"{"debounceMs": 5}"#).unwrap(),
    ] {
        let on = good != JsValue::FALSE;
        let status = auto(good).await.unwrap().status().await.unwrap();
        assert_eq!(field(&status, "autoSync"), JsValue::from_bool(on));
    }
}

#[wasm_bindgen_test]
async fn offline_a_sync_fails_with_network_and_the_status_says_why() {
    let db = memory_db(&[("url", "http://127.0.0.1:9".into())]).await;
    assert_eq!(field(&db.status().await.unwrap(), "online"), JsValue::TRUE);
    db.set_online(false);
    let err = db.sync().await.expect_err("offline");
    assert_eq!(text(&err, "code"), "Network");
    assert!(text(&err, "message").contains("offline"));
    assert_eq!(field(&db.status().await.unwrap(), "online"), JsValue::FALSE);
    db.set_online(true);
    let err = db.sync().await.expect_err("nothing listens there");
    assert_eq!(text(&err, "code"), "Network");
    let status = db.status().await.unwrap();
    assert_eq!(text(&status, "lastErrorCode"), "Network");
    assert_eq!(field(&status, "lastErrorServerCode"), JsValue::NULL);
}
