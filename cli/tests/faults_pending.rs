//! A long-offline replica: 100,000 rows pending (months of edits made
//! offline) sync in one `erth sync` against a real server (`tursodb` from
//! the harness, or `ERTH_TEST_HRANA_URL`), within the memory bound of a
//! normal pull: the push reads and sends its pending rows batch by batch,
//! so the syncing process's peak RSS stays near that of a fresh replica
//! pulling the same 100,000 rows. Peak RSS is the child's own `ru_maxrss`
//! (`wait4`), not a timing; the figures are printed.

#![allow(clippy::unwrap_used)]
// test code: a failed unwrap is a failed test
// `wait4` (the only way to a child's own peak RSS) is a libc call; the two
// unsafe blocks below say why they are sound.
#![allow(unsafe_code)]

mod common;

use common::command;
use erth_tests::server::TestServer;
use std::process::Command;

const ROWS: u64 = 100_000;

/// Runs `cmd` to its end and reaps it with `wait4`, for its own resource
/// usage (std's `wait` does not report it): (stdout, peak RSS in KiB).
/// Fails on a non-zero exit.
fn run_measured(mut cmd: Command, what: &str) -> (String, u64) {
    use std::io::Read;
    // Reaped by `wait4` below, not by std's `wait` (which would hide the rusage).
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.spawn().unwrap();
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        err_pipe.read_to_string(&mut s).unwrap();
        s
    });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let stderr = stderr.join().unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not reaped yet (std never waited for it).
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{what} failed (wait status {status}): {stderr}"
    );
    (stdout, u64::try_from(usage.ru_maxrss).unwrap())
}

#[tokio::test]
async fn a_replica_with_100000_pending_rows_syncs_within_the_memory_of_a_normal_pull() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let offline = dir.path().join("offline.db");
    let tag = format!("pending-{}", std::process::id());
    // 100,000 todos written while offline (through the view, as an app does).
    let insert = format!(
        "INSERT INTO todos (title) WITH RECURSIVE n(i) AS \
         (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) \
         SELECT '{tag} ' || i FROM n"
    );
    run_measured(command(&offline, &server, &["sql", &insert]), "insert");
    let (status, _) = run_measured(command(&offline, &server, &["--json", "status"]), "status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["pending_changes"], ROWS, "{status}");

    let (pushed, push_rss) = run_measured(
        command(&offline, &server, &["--json", "sync"]),
        "sync of the offline replica",
    );
    let pushed: serde_json::Value = serde_json::from_str(&pushed).unwrap();
    assert_eq!(pushed["pushed"], ROWS, "{pushed}");
    let (status, _) = run_measured(command(&offline, &server, &["--json", "status"]), "status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["pending_changes"], 0, "{status}");

    // A normal pull of the same rows: a fresh replica.
    let fresh = dir.path().join("fresh.db");
    let (pulled, pull_rss) = run_measured(
        command(&fresh, &server, &["--json", "sync"]),
        "sync of a fresh replica",
    );
    let pulled: serde_json::Value = serde_json::from_str(&pulled).unwrap();
    assert!(pulled["pulled"].as_u64().unwrap() >= ROWS, "{pulled}");
    let count = format!("SELECT count(*) AS n FROM todos WHERE title GLOB '{tag} *'");
    let (rows, _) = run_measured(
        command(&fresh, &server, &["--json", "sql", &count]),
        "count",
    );
    let rows: serde_json::Value = serde_json::from_str(&rows).unwrap();
    assert_eq!(
        rows[0]["n"], ROWS,
        "every pending row reached the server once"
    );

    println!(
        "faults_pending: pending rows {ROWS}, peak RSS of the pushing sync {:.1} MiB, \
         of a fresh replica pulling them {:.1} MiB",
        push_rss as f64 / 1024.0,
        pull_rss as f64 / 1024.0
    );
    // The bound: a normal pull's peak, with a quarter (or 16 MiB) of slack.
    let bound = (pull_rss + pull_rss / 4).max(pull_rss + 16 * 1024);
    assert!(
        push_rss <= bound,
        "pushing {ROWS} pending rows peaked at {push_rss} KiB, over a normal pull's {pull_rss} KiB"
    );
}
