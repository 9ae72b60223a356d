//! Hostile input: the Hrana response parser is fuzzed (arbitrary bytes and
//! arbitrary JSON shaped like responses) for a fixed budget with zero
//! panics; rows on the real server with wrong types, invalid ids, broken or
//! far-future clocks and oversized values give typed errors (or, for
//! far-future clocks, the documented accept-and-clamp) and leave the local
//! database unchanged; sync resumes once the server is repaired. Counters,
//! sizes and lengths at the ends of i64 (the real server's, or rewritten by
//! the proxy) give typed errors, never a panic or a sync without end.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::hlc::{Clock, SystemClock};
use erth_core::hrana::parse_batch_response;
use erth_core::{Config, ErrorKind};
use erth_tests::{hrana, FaultProxy, PageFault, TestServer};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z_]{0,8}".prop_map(Value::String),
        prop_oneof![
            Just("integer"),
            Just("text"),
            Just("blob"),
            Just("float"),
            Just("null"),
            Just("ok"),
            Just("error"),
            Just("batch")
        ]
        .prop_map(|s| Value::String(s.into())),
        "-?[0-9]{0,21}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type"),
                    Just("value"),
                    Just("base64"),
                    Just("results"),
                    Just("response"),
                    Just("result"),
                    Just("step_results"),
                    Just("step_errors"),
                    Just("cols"),
                    Just("rows"),
                    Just("name"),
                    Just("affected_row_count"),
                    Just("last_insert_rowid"),
                    Just("error"),
                    Just("code"),
                    Just("message")
                ]
                .prop_map(String::from),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Feeds `cases` values of `strategy` to the parser (each through `bodies`)
/// and counts the parses and the panics.
fn fuzz<S: Strategy>(
    cases: u32,
    strategy: S,
    bodies: impl Fn(S::Value) -> Vec<(Vec<u8>, usize)>,
) -> (u64, u64) {
    let (parses, panics) = (Cell::new(0u64), Cell::new(0u64));
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let outcome = runner.run(&strategy, |value| {
        for (body, steps) in bodies(value) {
            parses.set(parses.get() + 1);
            let parsed = std::panic::catch_unwind(|| parse_batch_response(&body, steps));
            match parsed {
                Err(_) => {
                    panics.set(panics.get() + 1);
                    return Err(TestCaseError::fail("the parser panicked"));
                }
                Ok(Ok((out, _))) if out.results.len() != steps => {
                    return Err(TestCaseError::fail(format!(
                        "{} results for {steps} steps",
                        out.results.len()
                    )));
                }
                Ok(_) => {}
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("parser fuzzing failed: {e}");
    }
    (parses.get(), panics.get())
}

#[test]
fn the_response_parser_never_panics() {
    let bytes = fuzz(
        3_000,
        (prop::collection::vec(any::<u8>(), 0..512), 0usize..4),
        |(body, steps)| vec![(body, steps)],
    );
    let json = fuzz(3_000, (json_value(), 0usize..4), |(v, steps)| {
        let wrapped = json!({"results": [{"type": "ok", "response": {"type": "batch", "result": v.clone()}}]});
        [v, wrapped]
            .iter()
            .map(|body| (serde_json::to_vec(body).unwrap(), steps))
            .collect()
    });
    println!(
        "faults_hostile: parser inputs {} ({} arbitrary byte strings, {} response-shaped JSON bodies), panics {}",
        bytes.0 + json.0,
        bytes.0,
        json.0,
        bytes.1 + json.1
    );
    assert_eq!(bytes.1 + json.1, 0);
    assert_eq!((bytes.0, json.0), (3_000, 6_000), "every case ran");
}

#[tokio::test]
async fn hostile_server_rows_are_quarantined_and_the_rest_syncs() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = common::open(
        dir.path(),
        "a",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    let b = common::open(
        dir.path(),
        "b",
        server.url(),
        server.token(),
        Config::default(),
    )
    .await;
    let good = a.add_todo("good").await.unwrap();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    b.add_todo("pending on b").await.unwrap();
    let run = |sql: String| {
        let url = server.url().to_owned();
        let token = server.token().map(str::to_owned);
        async move {
            hrana::execute(&url, token.as_deref(), &[sql.as_str()])
                .await
                .unwrap()
        }
    };
    let clk = "0000000000010000-0000000000000001";
    let bad_id = "not-a-uuid'); DROP TABLE todos; --";
    let cases: Vec<(&str, String)> = vec![
        ("wrong type", format!("UPDATE todos SET is_completed = 'yes', _seq = SEQ WHERE id = '{}'", good.id)),
        // A value JSON cannot hold, in a table whose pages travel as JSON.
        ("a blob in a text column", format!("UPDATE todos SET title = X'00ff', _seq = SEQ WHERE id = '{}'", good.id)),
        ("broken clock", format!("UPDATE todos SET _clk_title = 'zzzz', _seq = SEQ WHERE id = '{}'", good.id)),
        ("invalid id", format!("INSERT INTO todos VALUES ('{}', 't', 0, 0, 1, 1, '{clk}', '{clk}', '{clk}', SEQ, 0)", bad_id.replace('\'', "''"))),
        ("oversized value", format!("UPDATE todos SET title = hex(zeroblob(2500001)), _seq = SEQ WHERE id = '{}'", good.id)),
        ("negative timestamp", format!("UPDATE todos SET created_at = -5, _seq = SEQ WHERE id = '{}'", good.id)),
    ];
    let (mut refused, mut resumed, mut refused_by_server) = (0, 0, 0);
    for (k, (what, sql)) in cases.iter().enumerate() {
        // Every change gets a higher _seq than anything before, as the real server would.
        let seq = 10_000 * (k as i64 + 1);
        let sql = sql.replace("SEQ", &seq.to_string());
        let before = b.dump("todos").await.unwrap();
        let server_before = run(format!(
            "SELECT title, is_completed, _clk_title, created_at FROM todos WHERE id = '{}'",
            good.id
        ))
        .await;
        // A server with a lower length limit than the engine's (sqld answers
        // SQLITE_TOOBIG to a 5,000,002-byte value) cannot hold the oversized
        // row at all, so no replica can ever receive it: counted apart.
        match hrana::execute(server.url(), server.token(), &[sql.as_str()]).await {
            Ok(_) => {}
            Err(e) if *what == "oversized value" && e.to_string().contains("TOOBIG") => {
                refused_by_server += 1;
                continue;
            }
            Err(e) => panic!("{what}: planting failed: {e}"),
        }
        // The sync succeeds: the hostile row is quarantined with its reason,
        // nothing of it is applied, and B's own pending row goes up.
        b.sync()
            .await
            .unwrap_or_else(|e| panic!("{what}: one hostile row failed the sync: {e}"));
        let quarantined = b.quarantined_rows().await.unwrap();
        assert!(
            quarantined
                .iter()
                .any(|q| q.seq == seq && !q.reason.is_empty()),
            "{what}: not quarantined: {quarantined:?}"
        );
        let after = b.dump("todos").await.unwrap();
        assert_eq!(
            after.iter().find(|r| r.id == good.id),
            before.iter().find(|r| r.id == good.id),
            "{what}: the hostile version was applied"
        );
        assert!(
            after.iter().all(|r| r.id != bad_id),
            "{what}: the intruder was applied"
        );
        let status = b.status().await.unwrap();
        assert_eq!(status.last_error, None, "{what}");
        assert_eq!(
            status.pending_changes, 0,
            "{what}: b's own row is on the server"
        );
        refused += 1;
        // Repair the server (restore the row, drop the intruder); sync resumes.
        run(format!(
            "DELETE FROM todos WHERE id = '{}'",
            bad_id.replace('\'', "''")
        ))
        .await;
        let row = &server_before[0]["rows"][0];
        let lit = |v: &Value| match v["type"].as_str() {
            Some("text") => format!("'{}'", v["value"].as_str().unwrap()),
            _ => v["value"].as_str().unwrap().to_owned(),
        };
        run(format!(
            "UPDATE todos SET title = {}, is_completed = {}, _clk_title = {}, created_at = {}, _seq = {} WHERE id = '{}'",
            lit(&row[0]), lit(&row[1]), lit(&row[2]), lit(&row[3]), seq + 5_000, good.id
        ))
        .await;
        b.sync()
            .await
            .unwrap_or_else(|e| panic!("{what}: sync after repair: {e}"));
        // A quarantined row that arrives valid leaves the quarantine; the
        // intruder, dropped from the server, is forgotten by hand.
        assert!(
            b.quarantined_rows()
                .await
                .unwrap()
                .iter()
                .all(|q| q.id != good.id),
            "{what}: the repaired row is still quarantined"
        );
        b.forget_quarantined().await.unwrap();
        assert_eq!(
            b.get_todo(&good.id).await.unwrap().title,
            "good",
            "{what}: the repaired row"
        );
        resumed += 1;
    }

    // A clock from the far future is accepted (see hlc: accept and clamp).
    let future = format!("{:016x}-0000000000000001", (4_000_000_000_000u64) << 16);
    run(format!("UPDATE todos SET title = 'from 2096', _clk_title = '{future}', _seq = 900000 WHERE id = '{}'", good.id)).await;
    b.sync().await.unwrap();
    let now = SystemClock.now_ms();
    assert_eq!(b.get_todo(&good.id).await.unwrap().title, "from 2096");
    let ahead = b.status().await.unwrap().clock_ahead_ms;
    let clamped = u32::from(ahead.is_some_and(|ms| ms > 1_000_000_000));
    let bound = now + Config::default().max_clock_drift_ms;
    let local = b.last_clock().await.physical_ms();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    let divergences = u32::from(a.dump("todos").await.unwrap() != b.dump("todos").await.unwrap());
    println!(
        "faults_hostile: hostile server rows quarantined while the rest synced {refused}/{}, repaired rows applied {resumed}/{}, \
         refused by the server itself (SQLITE_TOOBIG) {refused_by_server}, far-future clock accepted and clamped {clamped}, divergences {divergences}",
        cases.len() - refused_by_server,
        cases.len() - refused_by_server,
    );
    assert_eq!(refused + refused_by_server, cases.len());
    assert_eq!(resumed, refused);
    assert_eq!(clamped, 1, "clamp reported: {ahead:?}");
    assert!(
        local <= bound,
        "the local clock ({local}) went past now + max drift ({bound})"
    );
    assert_eq!(divergences, 0);
}

/// `body` (a pipeline answer) with `change` applied to the first row of the
/// step results of the statements `pick` chooses; `None` when none was.
fn rewrite_rows(
    statements: &[String],
    body: &str,
    pick: impl Fn(&str) -> bool,
    change: impl Fn(&mut Vec<Value>),
) -> Option<String> {
    let mut answer: Value = serde_json::from_str(body).ok()?;
    let mut changed = false;
    for (i, sql) in statements.iter().enumerate() {
        if !pick(sql) {
            continue;
        }
        let row = &mut answer["results"][0]["response"]["result"]["step_results"][i]["rows"][0];
        if let Some(cells) = row.as_array_mut() {
            change(cells);
            changed = true;
        }
    }
    changed.then(|| answer.to_string())
}

#[tokio::test]
async fn hostile_counters_sizes_and_lengths_never_panic_nor_hang_a_sync() {
    let seed = common::seed();
    println!("faults_hostile counters: seed {seed} (replay with ERTH_FAULTS_SEED={seed})");
    let server = TestServer::start().await.unwrap();
    let proxy = FaultProxy::start(server.url(), seed).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A bound on every sync: a hostile length must not turn into requests
    // without end (the old code asked for pieces until this deadline).
    let config = Config {
        sync_timeout_ms: 60_000,
        ..Config::default()
    };
    let a = common::open(
        dir.path(),
        "a",
        server.url(),
        server.token(),
        config.clone(),
    )
    .await;
    let b = common::open(dir.path(), "b", proxy.url(), server.token(), config).await;
    // Past the opening page's 256 KiB: b pulls it through planned pages,
    // which the proxy fails, so it comes in pieces (see large_row).
    a.add_todo(&"a long title ".repeat(25_000)).await.unwrap();
    a.sync().await.unwrap();
    let run = |sql: String| {
        let url = server.url().to_owned();
        let token = server.token().map(str::to_owned);
        async move { hrana::execute(&url, token.as_deref(), &[sql.as_str()]).await }
    };
    let within = |started: Instant, what: &str| {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: the sync took {:?}",
            started.elapsed()
        );
    };

    // 1. A value too large for any page, whose length the server gives as
    // no honest server does: a typed error at once, never a panic or
    // pieces asked without end.
    proxy.fault_pages(Some(PageFault::TooLarge));
    let mut typed = 0;
    for len in [i64::MAX, i64::MIN, -1, 5_000_001] {
        proxy.rewrite_answers(Some(Arc::new(move |statements: &[String], body: &str| {
            rewrite_rows(
                statements,
                body,
                |sql| sql.contains("typeof(") && sql.contains("length("),
                |cells| {
                    for i in 1..cells.len() {
                        let kind = cells[i - 1]["value"].as_str();
                        if matches!(kind, Some("text" | "blob")) && cells[i]["type"] == "integer" {
                            cells[i]["value"] = len.to_string().into();
                        }
                    }
                },
            )
        })));
        let started = Instant::now();
        let e = b.sync().await.expect_err("a hostile length was accepted");
        within(started, &format!("length {len}"));
        assert_eq!(e.kind(), ErrorKind::Protocol, "length {len}: {e}");
        assert!(e.to_string().contains("length"), "length {len}: {e}");
        typed += 1;
    }
    proxy.rewrite_answers(None);
    proxy.fault_pages(None);
    b.sync().await.unwrap();

    // 2. Size probes that count and measure past any server: the pull
    // plans with them without overflowing, and ends.
    let mut probes = 0;
    for (count, bytes) in [(i64::MAX, i64::MAX), (i64::MAX, -1), (1, i64::MIN)] {
        a.add_todo("probed").await.unwrap();
        a.sync().await.unwrap();
        proxy.rewrite_answers(Some(Arc::new(move |statements: &[String], body: &str| {
            rewrite_rows(
                statements,
                body,
                |sql| sql.starts_with("SELECT count(*), coalesce(sum("),
                |cells| {
                    if cells.len() == 3 {
                        cells[0]["value"] = count.to_string().into();
                        cells[1]["value"] = bytes.to_string().into();
                    }
                },
            )
        })));
        let started = Instant::now();
        let outcome = b.sync().await;
        within(started, &format!("probe ({count}, {bytes})"));
        if let Err(e) = &outcome {
            assert!(
                matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Server),
                "probe ({count}, {bytes}): {e}"
            );
        }
        probes += 1;
    }
    proxy.rewrite_answers(None);
    b.sync().await.unwrap();

    // 3. The server's counter and a row's `_seq` at the ends of i64: pushes
    // past them fail typed (the server's `+` leaves the integers), pulls
    // take the row at `i64::MAX`, and once the server is repaired the
    // replicas start over and converge.
    let (mut counters, mut refused_pushes) = (0, 0);
    for (counter, row_seq) in [(i64::MAX - 1, i64::MAX), (i64::MIN, i64::MIN)] {
        run(format!(
            "UPDATE _erth_meta SET v = {counter} WHERE k = 'seq'"
        ))
        .await
        .unwrap();
        run(format!(
            "UPDATE todos SET _seq = {row_seq} WHERE _seq = (SELECT max(_seq) FROM todos)"
        ))
        .await
        .unwrap();
        for db in [&a, &b] {
            db.add_todo("near the end").await.unwrap();
            let started = Instant::now();
            if let Err(e) = db.sync().await {
                assert!(
                    matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Server),
                    "counter {counter}: {e}"
                );
                refused_pushes += 1;
            }
            within(started, &format!("counter {counter}"));
        }
        counters += 1;
    }
    // Repaired: integer `_seq`s in a fresh order and a counter past them.
    run("UPDATE todos SET _seq = rowid".into()).await.unwrap();
    run("UPDATE _erth_meta SET v = (SELECT max(_seq) FROM todos) WHERE k = 'seq'".into())
        .await
        .unwrap();
    for _ in 0..2 {
        a.sync().await.unwrap();
        b.sync().await.unwrap();
    }
    let converged = a.dump("todos").await.unwrap() == b.dump("todos").await.unwrap();
    println!(
        "faults_hostile counters: hostile lengths refused typed {typed}/4, hostile size probes ended {probes}/3, \
         counters at the ends of i64 survived {counters}/2 ({refused_pushes} syncs failed typed), converged after repair {converged}"
    );
    assert!(converged);
}
