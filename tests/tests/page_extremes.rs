//! The JSON page path (`erth_core::page`: a table whose user columns are
//! all TEXT or INTEGER is pulled as one JSON cell the server builds with
//! `json_group_array(json_array(...))`) with extreme values against a real
//! server (`tursodb --sync-server` started by the harness, or
//! `ERTH_TEST_HRANA_URL`): i64 bounds, 2^53 + 1, NUL inside text, emoji,
//! every control character, JSON-looking text, a 1 MB text. Each value
//! goes through a push and the server's JSON and arrives byte for byte on
//! a fresh replica.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::{Config, Database, SqlValue};
use erth_tests::hrana;
use erth_tests::server::TestServer;
use std::path::Path;

const SCHEMA: &str = r#"{"tables": {"docs": {"columns": {
    "t": {"type": "text"},
    "n": {"type": "integer"},
    "tt": {"type": "text", "notNull": true, "default": ""},
    "nn": {"type": "integer", "notNull": true, "default": 0}}}}}"#;

async fn replica(dir: &Path, name: &str, server: &TestServer) -> Database {
    let config = Config {
        url: Some(server.url().to_owned()),
        auth_token: server.token().map(str::to_owned),
        ..Config::default()
    }
    .with_schema_json(SCHEMA)
    .unwrap();
    Database::open_native(dir.join(format!("{name}.db")), config)
        .await
        .unwrap()
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

/// The rows of the test: `(t, n, tt, nn)`.
fn cases() -> Vec<[SqlValue; 4]> {
    let controls: String = (1u8..0x20).map(char::from).chain(['\u{7f}']).collect();
    // 1 MB of 11-byte pieces: 2-, 4- and 1-byte characters, NUL, a quote,
    // a backslash and a newline.
    let megabyte: String = "é🦀x\u{0}\"\\\n".repeat(1_000_000 / 11 + 1);
    assert!(megabyte.len() > 1_000_000, "{}", megabyte.len());
    let kilobyte: String = megabyte.chars().take(500).collect();
    let int = SqlValue::Integer;
    vec![
        [text("bounds"), int(i64::MIN), text(""), int(i64::MAX)],
        [
            text("near bounds"),
            int(i64::MIN + 1),
            text("x"),
            int(i64::MAX - 1),
        ],
        [
            text("2^53 + 1"),
            int((1 << 53) + 1),
            text("-(2^53 + 1)"),
            int(-(1 << 53) - 1),
        ],
        [text("a\u{0}b"), int(0), text("\u{0}"), int(-1)],
        [
            text("\u{0}\u{0}\u{0}"),
            SqlValue::Null,
            text("trailing NUL\u{0}"),
            int(1),
        ],
        [
            text("🦀 👩\u{200d}👩\u{200d}👧\u{200d}👦 🇺🇳 \u{1F600}"),
            int(1 << 62),
            text("\u{10FFFF}\u{FFFD}\u{FEFF}"),
            int(-(1 << 62)),
        ],
        [
            text(&controls),
            int(31),
            text("\u{2028}\u{2029}\u{85}\u{a0}"),
            int(127),
        ],
        [
            text(r#"["not", "a", "row"]"#),
            int(2),
            text(r#"\u0000 \" \\ \/ {"a": null}"#),
            int(3),
        ],
        [text("123"), int(123), text("1e308"), int(7)],
        [SqlValue::Null, SqlValue::Null, text(" "), int(4)],
        [text(&megabyte), int(5), text(&kilobyte), int(6)],
    ]
}

/// Hex of a text's UTF-8 bytes, uppercase as SQLite's `hex()` prints them.
fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test]
async fn extreme_values_round_trip_through_json_pages_byte_for_byte() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", &server).await;
    assert!(
        erth_core::page::json_pages(a.table("docs").unwrap()),
        "docs must be pulled as JSON pages for this test to mean anything"
    );
    let cases = cases();
    for c in &cases {
        a.execute("INSERT INTO docs (t, n, tt, nn) VALUES (?, ?, ?, ?)", c)
            .await
            .unwrap();
    }
    assert_eq!(a.sync().await.unwrap().pushed, cases.len() as u64);

    // The server holds the exact bytes and integers (not via JSON).
    let res = hrana::execute(
        server.url(),
        server.token(),
        &[
            "SELECT hex(CAST(t AS BLOB)), typeof(t), CAST(n AS TEXT), hex(CAST(tt AS BLOB)), \
           CAST(nn AS TEXT) FROM docs ORDER BY created_at, id",
        ],
    )
    .await
    .unwrap();
    let on_server: Vec<Vec<String>> = res[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (0..5)
                .map(|i| r[i]["value"].as_str().unwrap_or("NULL").to_owned())
                .collect()
        })
        .collect();
    let want: Vec<Vec<String>> = cases
        .iter()
        .map(|c| {
            let t = |v: &SqlValue| v.as_str().map_or(String::new(), hex);
            let n = |v: &SqlValue| v.as_i64().map_or("NULL".into(), |i| i.to_string());
            let kind = if c[0] == SqlValue::Null {
                "null"
            } else {
                "text"
            };
            vec![t(&c[0]), kind.into(), n(&c[1]), t(&c[2]), n(&c[3])]
        })
        .collect();
    assert_eq!(on_server.len(), want.len());
    for (i, (got, want)) in on_server.iter().zip(&want).enumerate() {
        assert!(got == want, "case {i} differs on the server");
    }

    // A fresh replica pulls them through the server's JSON.
    let b = replica(dir.path(), "b", &server).await;
    assert_eq!(b.sync().await.unwrap().pulled, cases.len() as u64);
    let got = b
        .query("SELECT t, n, tt, nn FROM docs ORDER BY created_at, id", &[])
        .await
        .unwrap()
        .rows;
    assert_eq!(got.len(), cases.len());
    for (i, (got, want)) in got.iter().zip(&cases).enumerate() {
        assert!(got == want, "case {i} arrived changed: {:.200?}", got);
    }
    assert!(
        a.dump("docs").await.unwrap() == b.dump("docs").await.unwrap(),
        "the replicas differ (clocks or timestamps)"
    );
}
