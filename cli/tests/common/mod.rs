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
