//! `erth sql` and `erth dump` as scripts drive them: the exact output
//! shapes (JSON integers exact at 2^53+1 and i64::MIN, reals as numbers,
//! blobs as lowercase hex), the schema from `--schema` or `ERTH_SCHEMA`
//! (a file or the JSON itself), exit code 2 for bad SQL, bad parameters
//! and refused schema changes, 4 for a refused token and 5 for an
//! unreachable server (6, a file locked past the timeout, is in
//! `shared_file.rs`) — against a real tursodb for sync.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_tests::server::TestServer;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

const ERTH: &str = env!("CARGO_BIN_EXE_erth");

const SCHEMA: &str = r#"{"tables": {"notes": {"columns": {
    "title": {"type": "text", "notNull": true, "default": ""},
    "n": {"type": "integer"}, "score": {"type": "real"}, "data": {"type": "blob"}}}}}"#;

fn erth(db: &Path, args: &[&str], schema_env: Option<&str>) -> Output {
    let mut cmd = Command::new(ERTH);
    cmd.arg("--db").arg(db).args(args);
    cmd.env_remove("ERTH_DATABASE_URL")
        .env_remove("ERTH_AUTH_TOKEN")
        .env_remove("ERTH_SCHEMA");
    if let Some(s) = schema_env {
        cmd.env("ERTH_SCHEMA", s);
    }
    cmd.output().unwrap()
}

/// `erth --db DB --remote URL` with `schema` (or none) in `ERTH_SCHEMA` and
/// the token (or none) in `ERTH_AUTH_TOKEN`, nothing else from this
/// environment; the caller adds the arguments.
fn remote_command(db: &Path, url: &str, token: Option<&str>, schema: Option<&str>) -> Command {
    let mut cmd = Command::new(ERTH);
    cmd.arg("--db").arg(db).arg("--remote").arg(url);
    cmd.env_remove("ERTH_DATABASE_URL")
        .env_remove("ERTH_SCHEMA")
        .env_remove("ERTH_AUTH_TOKEN")
        .env_remove("ERTH_COLUMN_KEYS")
        .env_remove("ERTH_COLUMN_KEYS_FILE");
    if let Some(s) = schema {
        cmd.env("ERTH_SCHEMA", s);
    }
    if let Some(t) = token {
        cmd.env("ERTH_AUTH_TOKEN", t);
    }
    cmd
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "erth failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn sql_prints_exact_json_and_counts_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, SCHEMA).unwrap();
    let s = schema.to_str().unwrap();
    let insert = "INSERT INTO notes (title, n, score, data) VALUES (?, ?, ?, ?)";
    let params = r#"["it's \"x\"; DROP TABLE notes", 9007199254740993, 0.25, {"blob": "00ff10"}]"#;
    let out = ok(&erth(
        &db,
        &["--schema", s, "sql", insert, "--params", params],
        None,
    ));
    assert_eq!(out, "1 row changed\n");
    // The schema from ERTH_SCHEMA, as the JSON itself.
    let out = ok(&erth(
        &db,
        &[
            "--json",
            "sql",
            insert,
            "--params",
            r#"["", -9223372036854775808, null, null]"#,
        ],
        Some(SCHEMA),
    ));
    assert_eq!(out.trim(), r#"{"rows_affected":1}"#);
    let out = ok(&erth(
        &db,
        &[
            "--json",
            "--schema",
            s,
            "sql",
            "SELECT title, n, score, data FROM notes ORDER BY n",
        ],
        None,
    ));
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        rows,
        json!([
            {"title": "", "n": i64::MIN, "score": null, "data": null},
            {"title": "it's \"x\"; DROP TABLE notes", "n": 9007199254740993_i64, "score": 0.25, "data": "00ff10"},
        ])
    );
    // Exact digits in the text, not a rounded double.
    assert!(
        out.contains("9007199254740993") && out.contains("-9223372036854775808"),
        "{out}"
    );
    // A table for people.
    let table = ok(&erth(
        &db,
        &["--schema", s, "sql", "SELECT n, data FROM notes ORDER BY n"],
        None,
    ));
    assert!(
        table.contains("x'00ff10'") && table.ends_with("(2 rows)\n"),
        "{table}"
    );
    let out = ok(&erth(
        &db,
        &["--schema", s, "sql", "UPDATE notes SET score = 1.5"],
        None,
    ));
    assert_eq!(out, "2 rows changed\n");
    // dump covers every table (an object keyed by table), or one.
    let all: Value =
        serde_json::from_str(&ok(&erth(&db, &["--schema", s, "--json", "dump"], None))).unwrap();
    assert_eq!(all["notes"].as_array().unwrap().len(), 2);
    let one: Value = serde_json::from_str(&ok(&erth(
        &db,
        &["--schema", s, "--json", "dump", "notes"],
        None,
    )))
    .unwrap();
    assert_eq!(one, all["notes"]);
}

#[test]
fn mistakes_exit_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let cases: &[(&[&str], &str)] = &[
        (&["sql", "SELEC 1"], "syntax error"),
        (&["sql", "DROP VIEW notes"], "synced by Erth Sync"),
        (
            &[
                "sql",
                "INSERT INTO notes (n) VALUES (?)",
                "--params",
                "[1, 2]",
            ],
            "parameter",
        ),
        (
            &[
                "sql",
                "INSERT INTO notes (n) VALUES (?)",
                "--params",
                "[18446744073709551615]",
            ],
            "64 bits",
        ),
        (
            &[
                "sql",
                "INSERT INTO notes (n) VALUES (?)",
                "--params",
                "[{\"blob\": \"XY\"}]",
            ],
            "hex",
        ),
        (
            &["sql", "INSERT INTO notes (n) VALUES (?)", "--params", "{}"],
            "JSON array",
        ),
        (
            &["sql", "INSERT INTO notes (n) VALUES ('text')"],
            "takes integer values",
        ),
    ];
    for (args, says) in cases {
        let out = erth(&db, args, Some(SCHEMA));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A non-additive schema change: exit 2, the column named.
    ok(&erth(&db, &["sql", "SELECT 1"], Some(SCHEMA)));
    let narrower = r#"{"tables": {"notes": {"columns": {"title": {"type": "text", "notNull": true, "default": ""}}}}}"#;
    let out = erth(&db, &["sql", "SELECT 1"], Some(narrower));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("schema change refused") && err.contains("column n"),
        "{err}"
    );
    let bad = erth(
        &db,
        &["sql", "SELECT 1"],
        Some(r#"{"tables": {"a b": {"columns": {}}}}"#),
    );
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn two_cli_replicas_sync_a_custom_table() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url().to_owned();
    let token = server.token().map(str::to_owned);
    let run = move |name: &str, args: &[&str]| {
        let db = dir.path().join(name);
        ok(&remote_command(&db, &url, token.as_deref(), Some(SCHEMA))
            .args(args)
            .output()
            .unwrap())
    };
    let run = std::sync::Arc::new(run);
    let r = run.clone();
    tokio::task::spawn_blocking(move || {
        r(
            "a.db",
            &["sql", "INSERT INTO notes (title, n) VALUES ('from a', 1)"],
        );
        r("a.db", &["sync"]);
        r("b.db", &["sync"]);
        r("b.db", &["sql", "UPDATE notes SET n = 2"]);
        r("b.db", &["sync"]);
        r("a.db", &["sync"]);
        let a = r("a.db", &["--json", "dump"]);
        let b = r("b.db", &["--json", "dump"]);
        assert_eq!(a, b, "the replicas differ");
        let rows: Value =
            serde_json::from_str(&r("a.db", &["--json", "sql", "SELECT title, n FROM notes"]))
                .unwrap();
        assert_eq!(rows, json!([{"title": "from a", "n": 2}]));
        let synced: Value = serde_json::from_str(&r("a.db", &["--json", "sync"])).unwrap();
        assert_eq!(synced["unknown_server_columns"], json!([]));
        assert_eq!(synced["pushed"], json!(0));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn refused_rows_are_listed_retried_and_discarded() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url().to_owned();
    let token = server.token().map(str::to_owned);
    let run = move |args: &[&str]| {
        remote_command(
            &dir.path().join("a.db"),
            &url,
            token.as_deref(),
            Some(SCHEMA),
        )
        .args(args)
        .output()
        .unwrap()
    };
    let run = std::sync::Arc::new(run);
    let r = run.clone();
    tokio::task::spawn_blocking(move || ok(&r(&["sync"])))
        .await
        .unwrap();
    // The server's rule: a note with a negative n is refused.
    erth_tests::hrana::execute(
        server.url(),
        server.token(),
        &[
            "CREATE TRIGGER test_refuse BEFORE INSERT ON notes WHEN new.n < 0 \
           BEGIN SELECT RAISE(ABORT, 'n must not be negative'); END",
        ],
    )
    .await
    .unwrap();
    let r = run.clone();
    tokio::task::spawn_blocking(move || {
        let json = |args: &[&str]| -> Value { serde_json::from_str(&ok(&r(args))).unwrap() };
        ok(&r(&[
            "sql",
            "INSERT INTO notes (title, n) VALUES ('ok', 1), ('refused', -1)",
        ]));
        let synced = json(&["--json", "sync"]);
        assert_eq!(synced["pushed"], json!(1), "{synced}");
        assert_eq!(synced["rejected"], json!(1), "{synced}");
        let listed = json(&["--json", "rejected"]);
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed[0]["table"], json!("notes"));
        assert!(listed[0]["message"]
            .as_str()
            .unwrap()
            .contains("n must not be negative"));
        let id = listed[0]["id"].as_str().unwrap().to_owned();
        let status = json(&["--json", "status"]);
        assert_eq!(
            (
                status["rejected"].clone(),
                status["pending_changes"].clone()
            ),
            (json!(1), json!(1))
        );
        // Not pushed again unasked; pushed again (and refused again) when asked.
        assert_eq!(json(&["--json", "sync"])["pushed"], json!(0));
        assert_eq!(json(&["--json", "retry-rejected"])["retried"], json!(1));
        let again = json(&["--json", "sync"]);
        assert_eq!(
            (again["pushed"].clone(), again["rejected"].clone()),
            (json!(0), json!(1))
        );
        // Discarded: a row the server never had is gone.
        ok(&r(&["discard-rejected", "notes", &id]));
        let rows = json(&["--json", "sql", "SELECT title FROM notes"]);
        assert_eq!(rows, json!([{"title": "ok"}]));
        let status = json(&["--json", "status"]);
        assert_eq!(
            (
                status["rejected"].clone(),
                status["pending_changes"].clone()
            ),
            (json!(0), json!(0))
        );
        // A row that is not refused: NotFound, exit code 3.
        assert_eq!(
            r(&["discard-rejected", "notes", &id]).status.code(),
            Some(3)
        );
    })
    .await
    .unwrap();
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `erth dump | head -1`: the reader goes away while erth still writes
    // (20,000 rows, far more than a pipe holds). erth must end with exit 0
    // and nothing on stderr, not a panic about a broken pipe.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pipe.db");
    ok(&erth(
        &db,
        &[
            "sql",
            "INSERT INTO todos (title) WITH RECURSIVE c(i) AS \
             (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) SELECT 'row ' || i FROM c",
        ],
        None,
    ));
    for command in [&["dump"][..], &["list"][..]] {
        let mut child = Command::new(ERTH)
            .arg("--db")
            .arg(&db)
            .args(command)
            .env_remove("ERTH_DATABASE_URL")
            .env_remove("ERTH_AUTH_TOKEN")
            .env_remove("ERTH_SCHEMA")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 64];
        std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "erth {command:?} into a closed pipe: {}, stderr: {stderr}",
            out.status
        );
    }
}

#[test]
fn a_server_that_never_answers_ends_a_sync_at_the_request_timeout_with_exit_code_5() {
    // Accepts connections and reads, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(8) {
            open.push(stream);
        }
        open
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    ok(&erth(&db, &["add", "pending"], None));
    let remote = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let out = erth(
        &db,
        &["--remote", &remote, "--request-timeout-ms", "300", "sync"],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timed out"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The liveness bound: far above the 300 ms timeout, far below the
    // 30 s default it replaced.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let status = ok(&erth(&db, &["--json", "status"], None));
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["pending_changes"], 1);
    assert_eq!(status["quarantined"], 0);
    assert_eq!(
        ok(&erth(&db, &["quarantined"], None)),
        "no quarantined rows\n"
    );
    drop(held);
}

/// `erth --db <db> --remote <url> --json <args>` with `token` (or none)
/// and no other configuration from the environment; runs off the async
/// runtime (a proxy on it answers).
async fn erth_remote(db: &Path, url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = remote_command(db, url, token, None);
    cmd.arg("--json").args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// `erth subscribe --wait`, `subscriptions` and `unsubscribe`: a replica
/// subscribed to part of a custom table holds exactly those rows, a bad
/// filter exits 2 with the kind `InvalidInput`, an unknown name 3.
#[tokio::test]
async fn a_cli_replica_subscribed_to_part_of_a_table_holds_only_those_rows() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, token) = (server.url().to_owned(), server.token().map(str::to_owned));
    let run = move |name: &str, args: &[&str]| {
        remote_command(&dir.path().join(name), &url, token.as_deref(), Some(SCHEMA))
            .args(args)
            .output()
            .unwrap()
    };
    tokio::task::spawn_blocking(move || {
        for n in 1..=6 {
            ok(&run(
                "w.db",
                &[
                    "sql",
                    "INSERT INTO notes (title, n) VALUES ('t', ?)",
                    "--params",
                    &format!("[{n}]"),
                ],
            ));
        }
        ok(&run("w.db", &["sync"]));
        let said = ok(&run(
            "p.db",
            &[
                "subscribe",
                "big",
                "notes",
                "n > ?",
                "--params",
                "[4]",
                "--wait",
            ],
        ));
        assert!(
            said.contains("subscribed big to notes (its rows are here)"),
            "{said}"
        );
        let held: Value = serde_json::from_str(&ok(&run(
            "p.db",
            &["--json", "sql", "SELECT n FROM notes ORDER BY n"],
        )))
        .unwrap();
        assert_eq!(held, json!([{"n": 5}, {"n": 6}]));
        let subs: Value =
            serde_json::from_str(&ok(&run("p.db", &["--json", "subscriptions"]))).unwrap();
        assert_eq!(subs[0]["name"], json!("big"));
        assert_eq!(subs[0]["ready"], json!(true));
        assert_eq!(subs[0]["filter"], json!("n > ?"));

        let bad = run(
            "p.db",
            &[
                "--json",
                "subscribe",
                "x",
                "notes",
                "n > 1; DROP TABLE notes",
            ],
        );
        assert_eq!(
            bad.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
        assert_eq!(error_kind(&bad), "InvalidInput");
        ok(&run("p.db", &["unsubscribe", "big"]));
        let gone = run("p.db", &["--json", "unsubscribe", "big"]);
        assert_eq!(error_kind(&gone), "NotFound");
        ok(&run("p.db", &["sync"]));
        let held: Value =
            serde_json::from_str(&ok(&run("p.db", &["--json", "sql", "SELECT n FROM notes"])))
                .unwrap();
        assert_eq!(
            held,
            json!([]),
            "the last subscription ended: nothing is held"
        );
    })
    .await
    .unwrap();
}

/// The `kind` of the JSON error `erth --json` printed on stderr.
fn error_kind(out: &Output) -> String {
    let err: Value = serde_json::from_slice(&out.stderr).unwrap_or_else(|e| {
        panic!(
            "stderr is not one JSON error ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    err["kind"].as_str().unwrap().to_owned()
}

/// Exit code 4: the server refused the token (HTTP 401 from a
/// token-checking proxy in front of the real server). The sync stops at
/// the first 401 and the local change stays pending.
#[tokio::test]
async fn a_refused_token_exits_4() {
    let server = TestServer::start().await.unwrap();
    let proxy = erth_tests::AuthProxy::start(server.url(), "eyJ.good-token.sig")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let wrong = Some("eyJ.wrong-token.sig");
    ok(&erth_remote(&db, proxy.url(), wrong, &["add", "kept"]).await);
    let out = erth_remote(&db, proxy.url(), wrong, &["sync"]).await;
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(error_kind(&out), "Auth");
    assert_eq!(proxy.rejected(), 1, "one request, no retry after a 401");
    let status: Value =
        serde_json::from_str(&ok(&erth_remote(&db, proxy.url(), wrong, &["status"]).await))
            .unwrap();
    assert_eq!(status["pending_changes"], 1);
}

/// Exit code 5: nothing listens at the server's address (connection
/// refused on every attempt); the local change stays pending.
#[tokio::test]
async fn an_unreachable_server_exits_5() {
    // A port that was free a moment ago and is closed now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    ok(&erth_remote(&db, &url, None, &["add", "kept"]).await);
    let out = erth_remote(&db, &url, None, &["sync"]).await;
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(error_kind(&out), "Network");
    let status: Value =
        serde_json::from_str(&ok(&erth_remote(&db, &url, None, &["status"]).await)).unwrap();
    assert_eq!(status["pending_changes"], 1);
}

/// `erth purge --older-than`: tombstones older than the age leave the
/// server (a younger one stays), a replica that edited a purged row offline
/// drops the edit at its next sync, and a bad age exits 2 before anything.
#[tokio::test]
async fn a_cli_purge_removes_old_tombstones_and_an_offline_edit_of_them_is_dropped() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, token) = (server.url().to_owned(), server.token().map(str::to_owned));
    let path = dir.path().to_owned();
    let run = move |name: &str, args: &[&str]| {
        remote_command(&path.join(name), &url, token.as_deref(), Some(SCHEMA))
            .args(args)
            .output()
            .unwrap()
    };
    let (surl, stoken) = (server.url().to_owned(), server.token().map(str::to_owned));
    let tombstones = || async {
        let res = erth_tests::hrana::execute(
            &surl,
            stoken.as_deref(),
            &["SELECT count(*) FROM notes WHERE is_deleted = 1"],
        )
        .await
        .unwrap();
        res[0]["rows"][0][0]["value"].as_str().unwrap().to_owned()
    };
    let run2 = run.clone();
    tokio::task::spawn_blocking(move || {
        for n in 1..=3 {
            ok(&run(
                "w.db",
                &[
                    "sql",
                    "INSERT INTO notes (title, n) VALUES ('t', ?)",
                    "--params",
                    &format!("[{n}]"),
                ],
            ));
        }
        ok(&run("w.db", &["sync"]));
        ok(&run("p.db", &["sync"]));
        ok(&run(
            "p.db",
            &["sql", "UPDATE notes SET title = 'offline edit' WHERE n = 1"],
        ));
        ok(&run("w.db", &["sql", "DELETE FROM notes WHERE n <= 2"]));
        ok(&run("w.db", &["sync"]));
    })
    .await
    .unwrap();
    assert_eq!(tombstones().await, "2");
    let purged = tokio::task::spawn_blocking(move || {
        // A day's age keeps today's tombstones.
        let kept: Value = serde_json::from_str(&ok(&run2(
            "w.db",
            &["--json", "purge", "--older-than", "1d"],
        )))
        .unwrap();
        assert_eq!(kept["tables"][0]["rows"], json!(0), "{kept}");
        let bad = run2("w.db", &["purge", "--older-than", "30"]);
        assert_eq!(
            bad.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
        let said = ok(&run2("w.db", &["purge", "--older-than", "0"]));
        assert!(said.contains("notes: purged 2 tombstones"), "{said}");
        ok(&run2("p.db", &["sync"]));
        let held: Value = serde_json::from_str(&ok(&run2(
            "p.db",
            &["--json", "sql", "SELECT n, title FROM notes ORDER BY n"],
        )))
        .unwrap();
        assert_eq!(held, json!([{"n": 3, "title": "t"}]));
        let status: Value =
            serde_json::from_str(&ok(&run2("p.db", &["--json", "status"]))).unwrap();
        assert_eq!(status["pending_changes"], json!(0), "{status}");
    })
    .await;
    purged.unwrap();
    assert_eq!(tombstones().await, "0");
}

/// End-to-end encrypted columns from the CLI: keys from `ERTH_COLUMN_KEYS`
/// or `--column-keys-file` (never argv); two replicas read each other's
/// values, the server holds none of them, a wrong key exits 7
/// (`UnknownColumnKey`, kind `WrongKey`) and pushes nothing.
#[tokio::test]
async fn cli_replicas_with_column_keys_share_encrypted_values_the_server_cannot_read() {
    const SEALED: &str = r#"{"tables": {"notes": {"columns": {
        "title": {"type": "text", "notNull": true, "default": "", "encrypted": true},
        "n": {"type": "integer"}}}}}"#;
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let path2 = path.clone();
    let key = "ab".repeat(32);
    let key_file = path.join("keys.txt");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let (url, token) = (server.url().to_owned(), server.token().map(str::to_owned));
    let run = move |name: &str, keys: Option<&str>, args: &[&str]| {
        let mut cmd = remote_command(&path.join(name), &url, token.as_deref(), Some(SEALED));
        if let Some(k) = keys {
            cmd.env("ERTH_COLUMN_KEYS", k);
        }
        cmd.args(args).output().unwrap()
    };
    let file_arg = key_file.to_str().unwrap().to_owned();
    let wrong = "cd".repeat(32);
    let dump = tokio::task::spawn_blocking(move || {
        ok(&run(
            "a.db",
            Some(&key),
            &[
                "sql",
                "INSERT INTO notes (title, n) VALUES ('the launch code', 1)",
            ],
        ));
        ok(&run("a.db", Some(&key), &["sync"]));
        ok(&run(
            "b.db",
            None,
            &["--column-keys-file", &file_arg, "sync"],
        ));
        let held: Value = serde_json::from_str(&ok(&run(
            "b.db",
            None,
            &[
                "--column-keys-file",
                &file_arg,
                "--json",
                "sql",
                "SELECT title, n FROM notes",
            ],
        )))
        .unwrap();
        assert_eq!(held, json!([{"title": "the launch code", "n": 1}]));
        let missing = run("c.db", None, &["--json", "sync"]);
        assert_eq!(missing.status.code(), Some(2));
        assert_eq!(error_kind(&missing), "InvalidInput");
        ok(&run(
            "d.db",
            Some(&wrong),
            &[
                "sql",
                "INSERT INTO notes (title, n) VALUES ('pushed with a wrong key', 2)",
            ],
        ));
        let refused = run("d.db", Some(&wrong), &["--json", "sync"]);
        assert_eq!(error_kind(&refused), "WrongKey");
        assert_eq!(
            refused.status.code(),
            Some(7),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
        let said = String::from_utf8_lossy(&refused.stderr).into_owned();
        assert!(
            said.contains("column key") && !said.contains(&wrong),
            "{said}"
        );
        // A recovery phrase (no --db needed to make one) in the keys file
        // seals on one replica and opens on another.
        let made = Command::new(ERTH)
            .env_remove("ERTH_DB")
            .arg("recovery-phrase")
            .output()
            .unwrap();
        let phrase = ok(&made).trim().to_owned();
        assert_eq!(phrase.split(' ').count(), 24, "{phrase}");
        let phrase_file = path2.join("phrase-keys.txt");
        std::fs::write(&phrase_file, format!("{phrase}\n{key}\n")).unwrap();
        let phrase_arg = phrase_file.to_str().unwrap().to_owned();
        ok(&run(
            "p.db",
            None,
            &[
                "--column-keys-file",
                &phrase_arg,
                "sql",
                "INSERT INTO notes (title, n) VALUES ('sealed from a phrase', 3)",
            ],
        ));
        ok(&run(
            "p.db",
            None,
            &["--column-keys-file", &phrase_arg, "sync"],
        ));
        ok(&run(
            "q.db",
            None,
            &["--column-keys-file", &phrase_arg, "sync"],
        ));
        let read: Value = serde_json::from_str(&ok(&run(
            "q.db",
            None,
            &[
                "--column-keys-file",
                &phrase_arg,
                "--json",
                "sql",
                "SELECT title FROM notes ORDER BY n",
            ],
        )))
        .unwrap();
        assert_eq!(
            read,
            json!([{"title": "the launch code"}, {"title": "sealed from a phrase"}])
        );
        // The key file's phrase opens nothing but its own values: b.db, with
        // the hex key only, meets a key id it lacks, typed.
        let lacking = run(
            "b.db",
            None,
            &["--column-keys-file", &file_arg, "--json", "sync"],
        );
        assert_eq!(lacking.status.code(), Some(7));
        assert_eq!(error_kind(&lacking), "WrongKey");
        let said = String::from_utf8_lossy(&lacking.stderr).into_owned();
        assert!(
            said.contains("column key") && !said.contains(&phrase[..20]),
            "{said}"
        );
        let no_db = Command::new(ERTH)
            .env_remove("ERTH_DB")
            .arg("list")
            .output()
            .unwrap();
        assert_eq!(no_db.status.code(), Some(2));
    })
    .await;
    dump.unwrap();
    let res = erth_tests::hrana::execute(
        server.url(),
        server.token(),
        &["SELECT title, n FROM notes"],
    )
    .await
    .unwrap();
    let cells = res[0]["rows"].to_string();
    assert!(
        !cells.contains("launch code")
            && !cells.contains("wrong key")
            && !cells.contains("from a phrase"),
        "{cells}"
    );
    assert_eq!(
        res[0]["rows"].as_array().unwrap().len(),
        2,
        "nothing pushed with the wrong key"
    );
}

/// Encryption at rest from the CLI: the key from `ERTH_FILE_KEY` or
/// `--file-key-file` (never argv); the file holds no value in clear, a
/// missing or wrong key exits 7 (kind `WrongKey`) leaving the file as it
/// was, and `change-file-key` changes the key and decrypts.
#[test]
fn an_encrypted_replica_file_needs_its_key_and_change_file_key_converts_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("at-rest.db");
    let (k1, k2) = ("a1".repeat(32), "b2".repeat(32));
    let key_file = dir.path().join("new-key.txt");
    std::fs::write(&key_file, format!("{k2}\n")).unwrap();
    let run = |key: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new(ERTH);
        cmd.arg("--db").arg(&db).args(args);
        cmd.env_remove("ERTH_DATABASE_URL")
            .env_remove("ERTH_SCHEMA")
            .env_remove("ERTH_FILE_KEY_FILE")
            .env_remove("ERTH_NEW_FILE_KEY_FILE")
            .env_remove("ERTH_NEW_FILE_KEY");
        match key {
            Some(k) => cmd.env("ERTH_FILE_KEY", k),
            None => cmd.env_remove("ERTH_FILE_KEY"),
        };
        cmd.output().unwrap()
    };
    let on_disk = |needle: &str| {
        [db.clone(), dir.path().join("at-rest.db-wal")]
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .any(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
    };
    ok(&run(Some(&k1), &["add", "cli-at-rest-marker"]));
    assert!(!on_disk("cli-at-rest-marker"), "the file is encrypted");
    let before = std::fs::read(&db).unwrap();
    for key in [None, Some(k2.as_str())] {
        let refused = run(key, &["--json", "list"]);
        assert_eq!(refused.status.code(), Some(7), "{refused:?}");
        assert_eq!(error_kind(&refused), "WrongKey");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!said.contains(&k2[..16]), "{said}");
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "a wrong key changed the file"
    );
    let no_new = run(Some(&k1), &["change-file-key"]);
    assert_eq!(no_new.status.code(), Some(2), "{no_new:?}");
    let changed = ok(&run(
        Some(&k1),
        &[
            "change-file-key",
            "--new-key-file",
            key_file.to_str().unwrap(),
        ],
    ));
    assert!(changed.contains("encrypted with the new key"), "{changed}");
    assert_eq!(run(Some(&k1), &["list"]).status.code(), Some(7));
    assert!(ok(&run(Some(&k2), &["list"])).contains("cli-at-rest-marker"));
    // `--plain` decrypts even when the environment names a new key.
    let mut plain = Command::new(ERTH);
    plain
        .arg("--db")
        .arg(&db)
        .args(["change-file-key", "--plain"])
        .env("ERTH_FILE_KEY", &k2)
        .env("ERTH_NEW_FILE_KEY", &k1)
        .env("ERTH_NEW_FILE_KEY_FILE", &key_file);
    assert!(ok(&plain.output().unwrap()).contains("now a plain file"));
    // A key given where its file's path belongs is not echoed back.
    let pasted = run(None, &["--file-key-file", &k1, "list"]);
    assert_eq!(pasted.status.code(), Some(2), "{pasted:?}");
    let said = String::from_utf8_lossy(&pasted.stderr);
    assert!(
        !said.contains(&k1[..16]) && said.contains("looks like a key"),
        "{said}"
    );
    assert!(
        on_disk("cli-at-rest-marker"),
        "decrypted: the grep finds the value"
    );
    assert!(ok(&run(None, &["list"])).contains("cli-at-rest-marker"));
}
