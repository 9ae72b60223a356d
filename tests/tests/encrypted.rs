//! End-to-end encrypted columns against a real Hrana server
//! (`tursodb --sync-server` started by the harness, or
//! `ERTH_TEST_HRANA_URL`): replicas sharing a key converge while the
//! server's table holds no plaintext of any value written (checked value
//! by value); a replica without the key cannot open, one with a wrong key
//! gets a typed error and writes nothing, then works with the right key;
//! a server that swaps cells, replays an old value with a newer clock or
//! flips a byte gets those rows quarantined while the others sync; after
//! a key rotation a device with both keys reads everything.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use erth_core::encrypted::ColumnKeys;
use erth_core::{Config, Database, ErrorKind, SqlValue};
use erth_tests::hrana;
use erth_tests::server::TestServer;
use std::collections::BTreeMap;
use std::path::Path;

const SCHEMA: &str = r#"{"tables": {"notes": {"columns": {
    "secret": {"type": "text", "notNull": true, "default": "", "encrypted": true},
    "amount": {"type": "integer", "encrypted": true},
    "label": {"type": "text"}}}}}"#;

const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];

fn keys(list: &[[u8; 32]]) -> Option<ColumnKeys> {
    Some(ColumnKeys::new(&list.iter().map(|k| k.to_vec()).collect::<Vec<_>>()).unwrap())
}

async fn open(
    dir: &Path,
    name: &str,
    server: &TestServer,
    column_keys: Option<ColumnKeys>,
) -> erth_core::Result<Database> {
    let config = Config {
        url: Some(server.url().to_owned()),
        auth_token: server.token().map(str::to_owned),
        column_keys,
        ..Config::default()
    }
    .with_schema_json(SCHEMA)
    .unwrap();
    Database::open_native(dir.join(format!("{name}.db")), config).await
}

fn text(v: &str) -> SqlValue {
    SqlValue::Text(v.to_owned())
}

async fn add(db: &Database, secret: &str, amount: i64, label: &str) -> String {
    let id = db.query("SELECT uuid7()", &[]).await.unwrap().rows[0][0]
        .as_str()
        .unwrap()
        .to_owned();
    db.execute(
        "INSERT INTO notes (id, secret, amount, label) VALUES (?, ?, ?, ?)",
        &[
            text(&id),
            text(secret),
            SqlValue::Integer(amount),
            text(label),
        ],
    )
    .await
    .unwrap();
    id
}

/// `id -> (secret, amount, label)` on a device.
async fn on_device(db: &Database) -> BTreeMap<String, (String, i64, String)> {
    let rows = db
        .query(
            "SELECT id, secret, amount, label FROM notes ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    rows.rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                (
                    r[1].as_str().unwrap().to_owned(),
                    r[2].as_i64().unwrap(),
                    r[3].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// Every cell of the server's table, as text.
async fn server_cells(server: &TestServer, sql: &str) -> Vec<Vec<String>> {
    hrana::text_rows(server.url(), server.token(), sql)
        .await
        .unwrap()
}

#[tokio::test]
async fn replicas_sharing_a_key_converge_and_the_server_holds_no_plaintext() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), "a", &server, keys(&[K1])).await.unwrap();
    let b = open(dir.path(), "b", &server, keys(&[K1])).await.unwrap();
    let mut written = Vec::new();
    for i in 0..20 {
        let secret = format!("secret number {i} of a");
        let amount = 1_000_000 + i;
        add(&a, &secret, amount, &format!("label {i}")).await;
        written.push((secret, amount));
    }
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    let mine = add(&b, "b's own secret", 424_242, "b").await;
    written.push(("b's own secret".into(), 424_242));
    b.execute(
        "UPDATE notes SET secret = 'edited secret', amount = 777777 WHERE label = 'label 3'",
        &[],
    )
    .await
    .unwrap();
    written.push(("edited secret".into(), 777_777));
    b.sync().await.unwrap();
    a.sync().await.unwrap();
    let want = on_device(&a).await;
    assert_eq!(want.len(), 21);
    assert_eq!(on_device(&b).await, want);
    assert_eq!(want[&mine], ("b's own secret".into(), 424_242, "b".into()));

    // The server's table: no written value appears in any cell; the labels
    // (not encrypted) do.
    let cells = server_cells(&server, "SELECT * FROM notes").await;
    let dump = cells
        .iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let mut checked = 0;
    for (secret, amount) in &written {
        assert!(!dump.contains(secret.as_str()), "{secret} is on the server");
        assert!(
            !dump.contains(&amount.to_string()),
            "{amount} is on the server"
        );
        checked += 2;
    }
    assert!(dump.contains("label 7"));
    let sealed = server_cells(
        &server,
        "SELECT secret, amount FROM notes WHERE is_deleted = 0",
    )
    .await;
    assert!(
        sealed.iter().flatten().all(|v| v.starts_with("e1.")),
        "{sealed:?}"
    );
    println!("encrypted: {checked} written values checked against every server cell, none found");

    // A fresh replica with the key reads everything.
    let fresh = open(dir.path(), "fresh", &server, keys(&[K1]))
        .await
        .unwrap();
    fresh.sync().await.unwrap();
    assert_eq!(on_device(&fresh).await, want);

    // Without a key it cannot open; with a wrong key the sync stops with a
    // typed error and writes nothing; with the right key the same file works.
    let none = open(dir.path(), "none", &server, None).await.err().unwrap();
    assert_eq!(none.kind(), ErrorKind::InvalidInput);
    assert!(none.to_string().contains("encrypted columns"), "{none}");
    let wrong = open(dir.path(), "wrong", &server, keys(&[K2]))
        .await
        .unwrap();
    let err = wrong.sync().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
    assert!(
        matches!(err, erth_core::Error::UnknownColumnKey { .. }),
        "{err}"
    );
    assert!(on_device(&wrong).await.is_empty());
    assert!(wrong.quarantined_rows().await.unwrap().is_empty());
    drop(wrong);
    let right = open(dir.path(), "wrong", &server, keys(&[K1]))
        .await
        .unwrap();
    right.sync().await.unwrap();
    assert_eq!(on_device(&right).await, want);
    // Deletes sync too (a tombstone holds no sealed value).
    a.execute("DELETE FROM notes WHERE id = ?", &[text(&mine)])
        .await
        .unwrap();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    assert!(!on_device(&b).await.contains_key(&mine));
}

#[tokio::test]
async fn a_server_that_swaps_replays_or_alters_sealed_values_gets_those_rows_quarantined() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), "a", &server, keys(&[K1])).await.unwrap();
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..6 {
            ids.push(add(&a, &format!("s{i}"), i, &format!("l{i}")).await);
        }
        ids
    };
    a.sync().await.unwrap();
    let b = open(dir.path(), "b", &server, keys(&[K1])).await.unwrap();
    b.sync().await.unwrap();
    // Keep row 2's first sealed secret, then edit it (a newer clock).
    let old = server_cells(
        &server,
        &format!("SELECT secret FROM notes WHERE id = '{}'", ids[2]),
    )
    .await[0][0]
        .clone();
    a.execute(
        "UPDATE notes SET secret = 'newer' WHERE id = ?",
        &[text(&ids[2])],
    )
    .await
    .unwrap();
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    // The server: swaps rows 0 and 1's secrets, puts row 2's old value
    // back under its newer clock, flips a character of row 3's amount;
    // each rewritten row takes a new `_seq`, so replicas pull it.
    let bump = |id: &str, set: String| {
        format!(
            "UPDATE notes SET {set}, _seq = (SELECT v FROM _erth_meta WHERE k = 'seq') + 1 WHERE id = '{id}'"
        )
    };
    let counter = "UPDATE _erth_meta SET v = v + 1 WHERE k = 'seq'";
    let secret = |i: usize| format!("(SELECT secret FROM notes WHERE id = '{}')", ids[i]);
    let swap0 = bump(&ids[0], format!("secret = {}", secret(1)));
    let replay = bump(&ids[2], format!("secret = '{old}'"));
    let flip = bump(
        &ids[3],
        "amount = substr(amount, 1, 10) || CASE substr(amount, 11, 1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(amount, 12)".into(),
    );
    for sql in [&swap0, counter, &replay, counter, &flip, counter] {
        hrana::execute(server.url(), server.token(), &[sql])
            .await
            .unwrap();
    }
    // One honest edit among them.
    a.execute(
        "UPDATE notes SET secret = 'honest' WHERE id = ?",
        &[text(&ids[5])],
    )
    .await
    .unwrap();
    a.sync().await.unwrap();
    let before = on_device(&b).await;
    b.sync().await.unwrap();
    let quarantined = b.quarantined_rows().await.unwrap();
    let mut bad: Vec<&str> = quarantined.iter().map(|q| q.id.as_str()).collect();
    bad.sort();
    let mut want_bad = vec![ids[0].as_str(), ids[2].as_str(), ids[3].as_str()];
    want_bad.sort();
    assert_eq!(bad, want_bad, "{quarantined:?}");
    assert!(
        quarantined
            .iter()
            .all(|q| q.reason.contains("authentication")),
        "{quarantined:?}"
    );
    let after = on_device(&b).await;
    for i in [0, 2, 3] {
        assert_eq!(after[&ids[i]], before[&ids[i]], "row {i} kept what it had");
    }
    assert_eq!(after[&ids[5]].0, "honest", "the other rows synced");
    let fresh = open(dir.path(), "fresh", &server, keys(&[K1]))
        .await
        .unwrap();
    fresh.sync().await.unwrap();
    assert_eq!(fresh.quarantined_rows().await.unwrap().len(), 3);
    assert_eq!(on_device(&fresh).await.len(), 3);
}

#[tokio::test]
async fn after_a_key_rotation_a_device_with_both_keys_reads_old_and_new_values() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let old = open(dir.path(), "old", &server, keys(&[K1])).await.unwrap();
    let first = add(&old, "sealed with the first key", 1, "old").await;
    old.sync().await.unwrap();
    // The app rotates: new writes use K2, K1 still opens old values.
    let rotated = open(dir.path(), "rotated", &server, keys(&[K2, K1]))
        .await
        .unwrap();
    let second = add(&rotated, "sealed with the second key", 2, "new").await;
    rotated.sync().await.unwrap();
    let both = open(dir.path(), "both", &server, keys(&[K2, K1]))
        .await
        .unwrap();
    both.sync().await.unwrap();
    let seen = on_device(&both).await;
    assert_eq!(seen[&first].0, "sealed with the first key");
    assert_eq!(seen[&second].0, "sealed with the second key");
    assert_eq!(on_device(&rotated).await, seen);
    // A device with only the old key stops at the new value, typed.
    let err = old.sync().await.unwrap_err();
    assert!(
        matches!(err, erth_core::Error::UnknownColumnKey { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_subscription_filter_on_an_encrypted_column_is_refused_and_one_on_a_plain_column_works() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = open(dir.path(), "writer", &server, keys(&[K1]))
        .await
        .unwrap();
    let mine = add(&writer, "mine", 1, "home").await;
    add(&writer, "theirs", 2, "work").await;
    writer.sync().await.unwrap();
    let partial = open(dir.path(), "partial", &server, keys(&[K1]))
        .await
        .unwrap();
    // The server compares ciphertext: a filter on `secret` or `amount`
    // would select nothing (or the wrong rows), so it is refused, typed.
    for filter in [
        "secret = ?",
        "amount > 0 AND label = ?",
        "label = ? OR \"secret\" LIKE '%'",
    ] {
        let err = partial
            .add_subscription("s", "notes", filter, &[text("home")], None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{filter}: {err}");
        assert!(
            err.to_string().contains("encrypted column"),
            "{filter}: {err}"
        );
    }
    assert!(partial.subscriptions().await.unwrap().is_empty());
    partial
        .add_subscription("home", "notes", "label = ?", &[text("home")], None)
        .await
        .unwrap();
    partial.sync().await.unwrap();
    let seen = on_device(&partial).await;
    assert_eq!(seen.keys().collect::<Vec<_>>(), vec![&mine]);
    assert_eq!(seen[&mine].0, "mine");
}
