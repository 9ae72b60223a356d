//! The `erth` CLI and what it must not leak or obey: values that would
//! drive the terminal are escaped in human output (JSON stays exact), a
//! `--db` name starting with `file:` is a file, secrets come from files
//! (`--auth-token-file`, `--encryption-key-file`) and secrets on the
//! command line are warned about and never printed.

#![allow(clippy::unwrap_used)] // test code

use erth_tests::{Answer, Recorder};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const ERTH: &str = env!("CARGO_BIN_EXE_erth");

/// `erth <args>` in `dir`, with no configuration from the environment but `env`.
fn erth(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(ERTH);
    cmd.current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "ERTH_DB",
        "ERTH_DATABASE_URL",
        "ERTH_SCHEMA",
        "ERTH_AUTH_TOKEN",
        "ERTH_AUTH_TOKEN_FILE",
        "ERTH_ENCRYPTION_KEY",
        "ERTH_ENCRYPTION_KEY_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Characters that must not reach a terminal from data (the output's own
/// line breaks and the dump's tab separators aside).
fn drives_a_terminal(output: &str) -> bool {
    output.chars().any(|c| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

#[test]
fn escape_sequences_in_data_reach_the_terminal_escaped_and_json_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Set the window title, clear the screen, ring the bell, reverse the
    // text's direction, and an 8-bit CSI.
    let title = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}txt.exe\u{9b}31mred\ttab\r";
    let out = erth(dir.path(), &["--db", "r.db", "add", title], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = erth(dir.path(), &["--db", "r.db", "list"], &[]);
    let shown = text(&list.stdout);
    assert!(!drives_a_terminal(&shown), "{shown:?}");
    assert!(
        shown.contains("\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\u{202e}txt.exe\\u{9b}31mred\\ttab\\r"),
        "{shown:?}"
    );
    let json = erth(dir.path(), &["--db", "r.db", "--json", "list"], &[]);
    let todos: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(todos[0]["title"], title, "JSON is exact");
    // SQL results, column names included, and the dump.
    for args in [
        &[
            "--db",
            "r.db",
            "sql",
            "SELECT title AS \"\u{1b}[31m\" FROM todos",
        ][..],
        &["--db", "r.db", "dump"][..],
    ] {
        let out = erth(dir.path(), args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(!drives_a_terminal(&text(&out.stdout)), "{args:?}");
    }
    // An error quoting the app's text.
    let out = erth(
        dir.path(),
        &["--db", "r.db", "sql", "SELECT \u{1b}[2J"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(!drives_a_terminal(&err), "{err:?}");
}

#[test]
fn a_db_name_starting_with_file_is_a_file_not_an_sqlite_uri() {
    let dir = tempfile::tempdir().unwrap();
    // As a URI this would be a database in memory, gone when erth exits.
    let name = "file:r.db?mode=memory";
    let out = erth(dir.path(), &["--db", name, "add", "kept"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join(name).is_file(), "no file named {name}");
    assert!(!dir.path().join("r.db").exists());
    let list = erth(dir.path(), &["--db", name, "list"], &[]);
    assert!(
        text(&list.stdout).contains("kept"),
        "{}",
        text(&list.stdout)
    );
}

#[tokio::test]
async fn secrets_come_from_files_and_on_the_command_line_they_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let server = Recorder::start(Answer::Status {
        status: 400,
        body: "not a Hrana server".into(),
    })
    .await
    .unwrap();
    let (token, key) = ("t0ken-from-a-file", "k3y-from-a-file-0123456789");
    std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
    std::fs::write(dir.path().join("key"), format!("  {key}\n")).unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let dir = dir.path().to_owned();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let env: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                erth(&dir, &args, &env)
            })
            .await
            .unwrap()
        }
    };
    let remote = server.url();

    // From files: both reach the server, no warning.
    let out = run(
        &[
            "--db",
            "r.db",
            "--remote",
            remote,
            "--auth-token-file",
            "token",
            "--encryption-key-file",
            "key",
            "sync",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    let seen = server.requests();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|r| {
        r.header("authorization") == Some(&format!("Bearer {token}"))
            && r.header("x-turso-encryption-key") == Some(key)
    }));

    // The key on the command line: used, warned about, never printed.
    let out = run(
        &[
            "--db",
            "r.db",
            "--remote",
            remote,
            "--encryption-key",
            key,
            "status",
        ],
        &[],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("--encryption-key-file"),
        "{stderr}"
    );
    assert!(!stdout.contains(key) && !stderr.contains(key));
    // ... and from the variable, no warning.
    let out = run(
        &["--db", "r.db", "--remote", remote, "status"],
        &[("ERTH_ENCRYPTION_KEY", key)],
    )
    .await;
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );

    // A token inside the --remote URL: warned about, shown nowhere.
    for param in ["authToken", "AUTH_TOKEN", "jwt"] {
        let url = format!("{remote}/?{param}={token}&x=1");
        let out = run(&["--db", "r.db", "--remote", &url, "status"], &[]).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{param}: {stderr}");
        assert!(
            stderr.contains("warning") && stderr.contains("--auth-token-file"),
            "{param}: {stderr}"
        );
        assert!(
            !stdout.contains(token) && !stderr.contains(token),
            "{param}: {stdout} {stderr}"
        );
        assert!(stdout.contains("x=1"), "{param}: {stdout}");
    }
}
