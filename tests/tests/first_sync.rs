//! Waiting for a fresh device's first complete sync: the wait resolves once
//! a sync has pulled everything (called before, during or after it), never
//! on its own while the server is out of reach (the app's own timeout ends
//! it), and at once on a replica that synced before, in this process or
//! another.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::Config;
use erth_tests::{FaultProxy, Faults, TestServer};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_first_sync_never_hangs_and_never_ends_early() {
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), common::seed())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = common::open(
        dir.path(),
        "w",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    for i in 0..500 {
        writer.add_todo(&format!("todo {i}")).await.unwrap();
    }
    writer.sync().await.unwrap();
    let config = Config {
        request_timeout_ms: 500,
        pull_page_rows: 20,
        ..Config::default()
    };
    let fresh = std::sync::Arc::new(
        common::open(
            dir.path(),
            "fresh",
            proxy.url(),
            server.token(),
            config.clone(),
        )
        .await,
    );
    // Offline: the wait does not end on its own, and a failed sync does not end it.
    proxy.set_faults(Faults {
        status_5xx: 1.0,
        ..Faults::none()
    });
    let waiter = {
        let fresh = fresh.clone();
        tokio::spawn(async move { fresh.wait_for_first_sync().await })
    };
    assert!(fresh.sync().await.is_err());
    let early = tokio::time::timeout(Duration::from_millis(300), fresh.wait_for_first_sync()).await;
    assert!(early.is_err(), "the wait ended while offline");
    assert!(!waiter.is_finished(), "the wait ended after a failed sync");
    // Online: a wait started during the sync ends with it, with every row there.
    proxy.set_faults(Faults::none());
    let during = {
        let fresh = fresh.clone();
        tokio::spawn(async move {
            fresh.wait_for_first_sync().await.unwrap();
            fresh.list_active_todos().await.unwrap().len()
        })
    };
    fresh.sync().await.unwrap();
    waiter.await.unwrap().unwrap();
    assert_eq!(
        during.await.unwrap(),
        500,
        "the wait ended before the rows were there"
    );
    // After it: at once, also on another handle of the same file later.
    tokio::time::timeout(Duration::from_secs(5), fresh.wait_for_first_sync())
        .await
        .expect("the wait after the first sync did not end")
        .unwrap();
    drop(fresh);
    let reopened = common::open(dir.path(), "fresh", proxy.url(), server.token(), config).await;
    tokio::time::timeout(Duration::from_secs(5), reopened.wait_for_first_sync())
        .await
        .expect("a replica that synced before waits again")
        .unwrap();
}
