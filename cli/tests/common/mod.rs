//! What the CLI's integration tests that run the built `erth` against a
//! real server share.

use erth_tests::server::TestServer;
use std::path::Path;
use std::process::{Command, Stdio};

/// The `erth` binary cargo built for these tests.
pub const ERTH: &str = env!("CARGO_BIN_EXE_erth");

/// `erth --db <db> --remote <server> <args>`, with stdout and stderr piped,
/// the server's token (if any) and no other configuration from the
/// environment.
pub fn command(db: &Path, server: &TestServer, args: &[&str]) -> Command {
    let mut cmd = Command::new(ERTH);
    cmd.arg("--db")
        .arg(db)
        .arg("--remote")
        .arg(server.url())
        .args(args)
        .env_remove("ERTH_DATABASE_URL")
        .env_remove("ERTH_SCHEMA")
        .env_remove("ERTH_AUTH_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = server.token() {
        cmd.env("ERTH_AUTH_TOKEN", token);
    }
    cmd
}

/// Another process's write transaction on the replica file `db`, as a plain
/// SQLite connection holds it (`BEGIN IMMEDIATE`: the file's write lock)
/// until [`WriteLock::release`] or drop. `db` must exist.
#[allow(dead_code)] // not every test file that shares this module uses it
pub struct WriteLock(Option<rusqlite::Connection>);

#[allow(dead_code)]
impl WriteLock {
    pub fn hold(db: &Path) -> WriteLock {
        assert!(db.exists(), "{} does not exist", db.display());
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        WriteLock(Some(conn))
    }

    /// Ends the transaction (nothing was written) and closes the connection.
    pub fn release(mut self) {
        if let Some(conn) = self.0.take() {
            conn.execute_batch("ROLLBACK").unwrap();
        }
    }
}
