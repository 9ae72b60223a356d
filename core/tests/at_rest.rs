//! Encryption at rest of a native replica's file (`erth_core::file_key`):
//! no plaintext of any inserted value in the file or its `-wal`, a wrong or
//! missing key is a typed error that leaves the bytes as they were, and a
//! file converts from plain to encrypted, between keys and back, keeping
//! every row. Real SQLCipher files on disk; no server.

#![allow(clippy::unwrap_used)]

use erth_core::file_key::{change_file_key, FileKey};
use erth_core::{Config, Database, Error, ErrorKind, SqlValue};
use std::path::{Path, PathBuf};

fn wal(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// Whether `needle` occurs in the file, its `-wal` or its `-shm` (missing
/// files hold nothing).
fn on_disk(path: &Path, needle: &str) -> bool {
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    [path.to_path_buf(), wal(path), shm.into()].iter().any(|p| {
        std::fs::read(p)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
    })
}

/// The bytes of the file and of its `-wal` (`None` when absent).
fn snapshot(path: &Path) -> [Option<Vec<u8>>; 2] {
    [std::fs::read(path).ok(), std::fs::read(wal(path)).ok()]
}

async fn open(path: &Path, key: Option<&FileKey>) -> erth_core::Result<Database> {
    let config = Config {
        file_key: key.cloned(),
        ..Config::default()
    };
    Database::open_native(path, config).await
}

/// Every table of the file, engine tables included (rows, clocks, sync
/// state), and its `user_version`, read with plain rusqlite under `key`.
fn dump(path: &Path, key: Option<&FileKey>) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    if let Some(key) = key {
        let hex = erth_core::value::to_hex(key.as_bytes());
        conn.execute_batch(&format!("PRAGMA key = \"x'{hex}'\""))
            .unwrap();
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let mut out = vec![format!("user_version {version}")];
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for table in tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1"))
            .unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap();
        for row in rows {
            out.push(format!("{table}: {}", row.unwrap().join(", ")));
        }
    }
    out
}

fn marker(i: usize) -> String {
    format!("plaintext-marker-{i:03}-qzx")
}

/// Writes `n` todos whose titles are markers, and one large row (a title of
/// 20,000 characters, on overflow pages), returning every title.
async fn write_markers(db: &Database, n: usize) -> Vec<String> {
    let mut titles = Vec::new();
    for i in 0..n {
        db.add_todo(&marker(i)).await.unwrap();
        titles.push(marker(i));
    }
    let large = format!("large-row-{}", "overflow-".repeat(2_000));
    db.execute(
        "INSERT INTO todos (title) VALUES (?)",
        &[SqlValue::Text(large.clone())],
    )
    .await
    .unwrap();
    titles.push(large);
    titles.sort();
    titles
}

async fn titles(db: &Database) -> Vec<String> {
    let rows = db
        .query("SELECT title FROM todos ORDER BY title", &[])
        .await
        .unwrap();
    rows.rows
        .into_iter()
        .map(|r| match &r[0] {
            SqlValue::Text(t) => t.clone(),
            other => panic!("title {other:?}"),
        })
        .collect()
}

fn assert_wrong_key(result: erth_core::Result<Database>) {
    let e = result.expect_err("the open must fail");
    assert!(matches!(e, Error::WrongFileKey { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");
}

fn assert_no_plaintext(path: &Path, titles: &[String]) {
    for t in titles {
        let needle = &t[..t.len().min(30)];
        assert!(!on_disk(path, needle), "{needle:?} is readable on disk");
    }
    assert!(!on_disk(path, "SQLite format 3"), "a plain SQLite header");
    assert!(!on_disk(path, "CREATE TABLE"), "schema text on disk");
}

#[tokio::test]
async fn an_encrypted_file_and_its_wal_hold_no_plaintext_and_a_wrong_key_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.db");
    let key = FileKey::from_bytes([7; 32]);
    let db = open(&path, Some(&key)).await.unwrap();
    let written = write_markers(&db, 60).await;
    // While open, the latest pages are in the WAL: it is encrypted too.
    assert!(
        std::fs::metadata(wal(&path)).unwrap().len() > 0,
        "the writes are in the WAL"
    );
    assert_no_plaintext(&path, &written);
    drop(db);
    assert_no_plaintext(&path, &written);

    let before = snapshot(&path);
    assert_wrong_key(open(&path, Some(&FileKey::from_bytes([8; 32]))).await);
    assert_eq!(snapshot(&path), before, "a wrong key changed the file");
    assert_wrong_key(open(&path, None).await);
    assert_eq!(snapshot(&path), before, "a missing key changed the file");

    let db = open(&path, Some(&key)).await.unwrap();
    assert_eq!(titles(&db).await, written);
    // The right key also writes (a new WAL) after the failed opens.
    db.add_todo("after the wrong keys").await.unwrap();
    assert_eq!(titles(&db).await.len(), written.len() + 1);
}

#[tokio::test]
async fn a_plain_file_is_encrypted_rekeyed_and_decrypted_keeping_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("convert.db");
    let (k1, k2) = (FileKey::from_bytes([1; 32]), FileKey::from_bytes([2; 32]));

    let db = open(&path, None).await.unwrap();
    let written = write_markers(&db, 20).await;
    drop(db);
    let plain = dump(&path, None);
    assert!(
        plain
            .iter()
            .any(|l| l.starts_with("_erth_state: Text(\"hlc\")")),
        "the clock state is among the tables ({} lines)",
        plain.len()
    );
    // The grep finds plaintext where there is some.
    assert!(on_disk(&path, &marker(0)), "a plain file shows its values");

    let before = snapshot(&path);
    assert_wrong_key(open(&path, Some(&k1)).await);
    assert_eq!(snapshot(&path), before, "a key for a plain file changed it");

    // A copy left by a rewrite that crashed before its rename: the old file
    // was whole, and the next rewrite starts over.
    let leftover = dir.path().join("convert.db.erth-rekey");
    std::fs::write(&leftover, b"half a copy").unwrap();
    #[cfg(unix)]
    let set_mode = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    #[cfg(unix)]
    let mode = || {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
    };
    #[cfg(unix)]
    set_mode(0o640);
    change_file_key(&path, None, Some(&k1)).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(), 0o640, "the file keeps its permissions");
    assert!(!leftover.exists(), "the rename consumed the new copy");
    assert_no_plaintext(&path, &written);
    assert!(!wal(&path).exists(), "no WAL is left beside the new file");
    assert_wrong_key(open(&path, None).await);
    assert_eq!(dump(&path, Some(&k1)), plain, "every table moved over");
    let db = open(&path, Some(&k1)).await.unwrap();
    assert_eq!(titles(&db).await, written);
    // Open here: the file cannot be replaced under it.
    let e = change_file_key(&path, Some(&k1), Some(&k2)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DatabaseLocked, "{e}");
    drop(db);

    // Another connection (another process's) holds it: refused too.
    let other = erth_core::store::sqlite::SqliteStore::open_keyed(
        &path,
        std::time::Duration::from_millis(10),
        Some(k1.as_bytes()),
    )
    .unwrap();
    let e = change_file_key(&path, Some(&k1), Some(&k2)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DatabaseLocked, "{e}");
    drop(other);

    let before = snapshot(&path);
    let e = change_file_key(&path, Some(&k2), Some(&k1)).unwrap_err();
    assert!(matches!(e, Error::WrongFileKey { .. }), "{e:?}");
    assert_eq!(snapshot(&path), before, "a wrong old key changed the file");

    let under_k1 = dump(&path, Some(&k1));
    change_file_key(&path, Some(&k1), Some(&k2)).unwrap();
    assert_eq!(dump(&path, Some(&k2)), under_k1, "every table moved over");
    assert_wrong_key(open(&path, Some(&k1)).await);
    let db = open(&path, Some(&k2)).await.unwrap();
    assert_eq!(titles(&db).await, written);
    db.add_todo("written under k2").await.unwrap();
    drop(db);
    assert_no_plaintext(&path, &["written under k2".to_owned()]);

    let under_k2 = dump(&path, Some(&k2));
    #[cfg(unix)]
    set_mode(0o600);
    change_file_key(&path, Some(&k2), None).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(), 0o600, "a decrypted file stays owner-only");
    assert_eq!(dump(&path, None), under_k2, "every table moved over");
    assert!(on_disk(&path, &marker(0)), "decrypted: plain again");
    let db = open(&path, None).await.unwrap();
    assert_eq!(titles(&db).await.len(), written.len() + 1);
}

#[tokio::test]
async fn a_file_key_given_to_a_store_opened_by_hand_is_refused_not_ignored() {
    let config = Config {
        file_key: Some(FileKey::from_bytes([3; 32])),
        ..Config::default()
    };
    let e = Database::open(
        std::sync::Arc::new(erth_core::store::sqlite::SqliteStore::memory().unwrap()),
        std::sync::Arc::new(
            erth_core::transport::native::NativeTransport::new(std::time::Duration::from_secs(1))
                .unwrap(),
        ),
        std::sync::Arc::new(erth_core::SystemClock),
        config,
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}
