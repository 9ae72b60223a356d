//! Helpers shared by the wasm test suites (one per environment: Node, page,
//! dedicated worker): reading fields of the plain JS objects the API returns,
//! and the checks every environment runs on the in-memory API.

use erth_wasm::Replica;
use js_sys::{Function, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// `obj[key]`.
pub fn field(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).expect("object")
}

pub fn text(obj: &JsValue, key: &str) -> String {
    field(obj, key)
        .as_string()
        .unwrap_or_else(|| panic!("{key} is not a string: {obj:?}"))
}

pub fn number(obj: &JsValue, key: &str) -> f64 {
    field(obj, key)
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {obj:?}"))
}

/// The `code` of a rejected call, checking that it is a real `ErthError`.
pub fn code<T: std::fmt::Debug>(result: Result<T, JsValue>) -> String {
    let err = result.expect_err("the call should have failed");
    assert!(
        err.is_instance_of::<js_sys::Error>(),
        "not an Error: {err:?}"
    );
    assert_eq!(text(&err, "name"), "ErthError", "{err:?}");
    text(&err, "code")
}

/// The message of a rejected call.
pub fn message<T: std::fmt::Debug>(result: Result<T, JsValue>) -> String {
    text(&result.expect_err("the call should have failed"), "message")
}

/// `{ name, storage, ...extra }` as a JS options object.
pub fn options(name: &str, storage: &str, extra: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    let set = |k: &str, v: JsValue| {
        Reflect::set(&o, &JsValue::from_str(k), &v).expect("set");
    };
    set("name", name.into());
    set("storage", storage.into());
    for (k, v) in extra {
        set(k, v.clone());
    }
    o.into()
}

/// A unique database name for this run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// A JS function that records every event it is called with.
pub fn recorder() -> (Function, Rc<RefCell<Vec<JsValue>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let f = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| s.borrow_mut().push(e));
    (f.into_js_value().unchecked_into(), seen)
}

/// CRUD, tombstones, status and subscriptions through the exported API;
/// every environment runs this on its own kind of store.
pub async fn api_round_trip(db: &Replica) {
    let (listener, seen) = recorder();
    let sub = db.subscribe(listener).expect("subscribe");

    let a = db.add_todo("buy milk".into()).await.expect("add");
    let b = db.add_todo("walk the dog".into()).await.expect("add");
    let c = db.add_todo("write tests".into()).await.expect("add");
    let (ida, idb, idc) = (text(&a, "id"), text(&b, "id"), text(&c, "id"));
    assert!(ida < idb && idb < idc, "UUIDv7 ids increase");
    assert_eq!(field(&a, "completed"), JsValue::FALSE);
    assert!(number(&a, "createdAt") > 1.6e12, "ms since the epoch");

    let list = db.list_active().await.expect("list");
    let list = js_sys::Array::from(&list);
    let titles: Vec<String> = list.iter().map(|t| text(&t, "title")).collect();
    assert_eq!(
        titles,
        ["write tests", "walk the dog", "buy milk"],
        "newest first"
    );

    let renamed = db
        .rename_todo(ida.clone(), "buy oat milk".into())
        .await
        .expect("rename");
    assert_eq!(text(&renamed, "title"), "buy oat milk");
    let done = db.set_completed(idb.clone(), true).await.expect("complete");
    assert_eq!(field(&done, "completed"), JsValue::TRUE);
    assert!(number(&done, "updatedAt") >= number(&done, "createdAt"));
    let got = db.get_todo(idb.clone()).await.expect("get");
    assert_eq!(field(&got, "completed"), JsValue::TRUE);

    // Tombstones: a deleted todo is gone for every call, and deleting twice is a no-op.
    assert!(db.delete_todo(idc.clone()).await.expect("delete"));
    assert!(!db.delete_todo(idc.clone()).await.expect("delete again"));
    assert_eq!(code(db.get_todo(idc.clone()).await), "NotFound");
    assert_eq!(
        code(db.rename_todo(idc.clone(), "x".into()).await),
        "NotFound"
    );
    assert_eq!(code(db.set_completed(idc.clone(), true).await), "NotFound");
    assert_eq!(
        js_sys::Array::from(&db.list_active().await.expect("list")).length(),
        2
    );

    // Hostile and malformed input is a typed error, not a crash.
    assert_eq!(
        code(db.get_todo("'; DROP TABLE todos; --".into()).await),
        "InvalidInput"
    );
    assert_eq!(
        code(db.delete_todo("not-an-id".into()).await),
        "InvalidInput"
    );

    // Nothing was synced: every row with a change is pending, the tombstone too.
    let status = db.status().await.expect("status");
    assert_eq!(number(&status, "pendingChanges"), 3.0);
    assert_eq!(field(&status, "lastSyncAt"), JsValue::NULL);
    assert_eq!(field(&status, "remoteUrl"), JsValue::NULL);
    assert_eq!(field(&status, "syncing"), JsValue::FALSE);
    assert_eq!(code(db.sync().await), "NoRemote");

    // One event per committed write: 3 adds, rename, complete, delete.
    {
        let seen = seen.borrow();
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert_eq!(text(&seen[0], "table"), "todos");
        assert_eq!(text(&seen[0], "origin"), "local");
        let ids = js_sys::Array::from(&field(&seen[0], "ids"));
        assert_eq!(ids.get(0).as_string(), Some(ida.clone()));
        assert_eq!(
            js_sys::Array::from(&field(&seen[5], "ids"))
                .get(0)
                .as_string(),
            Some(idc)
        );
    }
    sub.unsubscribe().expect("unsubscribe");
    sub.unsubscribe().expect("unsubscribe twice");
    db.add_todo("after unsubscribe".into()).await.expect("add");
    assert_eq!(seen.borrow().len(), 6, "no events after unsubscribe");

    // A listener that throws does not break writes.
    let throwing = Function::new_no_args("throw new Error('listener bug')");
    let _sub = db.subscribe(throwing).expect("subscribe");
    db.rename_todo(ida, "still works".into())
        .await
        .expect("rename");
}
