//! The wasm build on a page's main thread (headless Chromium): the API on an
//! in-memory store, the typed refusal of OPFS outside a Worker, and `fetch`
//! failures as typed errors.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{api_round_trip, code, message, number, options, text, unique};
use erth_wasm::Replica;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn crud_tombstones_status_and_subscriptions_on_the_main_thread() {
    let db = Replica::open(options(&unique("page"), "memory", &[]))
        .await
        .unwrap();
    api_round_trip(&db).await;
}

#[wasm_bindgen_test]
async fn opfs_on_the_main_thread_is_a_typed_storage_error() {
    let result = Replica::open(options(&unique("page-opfs"), "opfs", &[])).await;
    let msg = message(Replica::open(options(&unique("page-opfs"), "opfs", &[])).await);
    assert_eq!(code(result), "Storage");
    assert!(msg.contains("dedicated Worker"), "{msg}");
}

#[wasm_bindgen_test]
async fn fetch_failure_is_a_network_error_and_loses_nothing() {
    let db = Replica::open(options(
        &unique("page-net"),
        "memory",
        &[
            ("url", "http://127.0.0.1:9".into()),
            ("authToken", JsValue::from_str("s3cret-token")),
        ],
    ))
    .await
    .unwrap();
    db.add_todo("kept".into()).await.unwrap();
    let err = db.sync().await.expect_err("nothing listens there");
    assert_eq!(text(&err, "code"), "Network");
    assert!(!text(&err, "message").contains("s3cret"));
    let status = db.status().await.unwrap();
    assert_eq!(number(&status, "pendingChanges"), 1.0);
    assert_eq!(text(&status, "lastErrorCode"), "Network");
}
