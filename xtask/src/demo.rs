//! `cargo xtask demo [--port P] [--remote URL]`: starts a local tursodb
//! (database kept in `$CACHE/demo/server.db` between runs), builds the `erth`
//! CLI and runs a scripted story with two fresh replicas, A and B, that edit
//! offline, sync, and end byte-identical.
//!
//! Ctrl-C: tursodb runs in xtask's process group, so the terminal's SIGINT
//! reaches it directly, and tursodb exits cleanly on SIGINT.

use crate::cargo::{self, cargo, target_dir};
use crate::Result;
use erth_tests::launch::LocalServer;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable holding the token for `--remote`.
const TOKEN_ENV: &str = "ERTH_AUTH_TOKEN";

#[derive(Debug, Default)]
struct Options {
    port: Option<u16>,
    remote: Option<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--port" => {
                    let port = value()?;
                    options.port = Some(
                        port.parse()
                            .map_err(|_| format!("--port {port:?} is not a port number"))?,
                    );
                }
                "--remote" => options.remote = Some(value()?.clone()),
                other => {
                    return Err(format!(
                        "demo: unknown argument {other:?} (usage: cargo xtask demo \
                         [--port P] [--remote URL])"
                    )
                    .into())
                }
            }
        }
        if options.port.is_some() && options.remote.is_some() {
            return Err("demo: --port starts a local server, --remote skips it: pick one".into());
        }
        Ok(options)
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let mut server = match &options.remote {
        Some(_) => None,
        None => Some(start_server(options.port)?),
    };
    let result = build_cli().and_then(|erth| {
        let (remote, token_env) = match (&options.remote, &server) {
            (Some(url), _) => (url.clone(), Some(TOKEN_ENV)),
            (None, Some(server)) => (server.url().to_string(), None),
            (None, None) => return Err("demo: no server to sync with".into()),
        };
        let dir = tempfile::Builder::new()
            .prefix("erth-demo-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir for the replicas: {e}"))?;
        Story {
            erth,
            remote,
            token_env,
            a: dir.path().join("a.db"),
            b: dir.path().join("b.db"),
        }
        .run()
    });
    if let Some(server) = &mut server {
        match server.stop() {
            Ok(status) => println!("\nserver stopped ({status})"),
            Err(e) => eprintln!("\nstopping the server failed: {e}"),
        }
    }
    result
}

fn start_server(port: Option<u16>) -> Result<LocalServer> {
    let bin = erth_tests::tools::tursodb()?;
    let dir = erth_tests::cache::cache_dir().join("demo");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let db = dir.join("server.db");
    let server = LocalServer::start(&db, &dir.join("server.log"), port)?;
    println!(
        "server: {} --sync-server at {} (database {}, log {})",
        bin.display(),
        server.url(),
        db.display(),
        server.log_path().display()
    );
    Ok(server)
}

fn build_cli() -> Result<PathBuf> {
    cargo::run(&mut cargo(&["build", "-p", "erth-cli"]))?;
    let bin = target_dir().join("debug").join("erth");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("built erth-cli but {} is missing", bin.display()).into())
    }
}

/// The scripted two-replica session.
struct Story {
    erth: PathBuf,
    remote: String,
    token_env: Option<&'static str>,
    a: PathBuf,
    b: PathBuf,
}

impl Story {
    fn run(&self) -> Result<()> {
        for (name, db) in [("A", &self.a), ("B", &self.b)] {
            println!("{name} = {}", cargo::display(&self.command(db, &[])));
        }

        section("A adds three todos and syncs");
        let milk = self.erth("A", &["add", "Buy milk"])?;
        self.erth("A", &["add", "Write the report"])?;
        let call = self.erth("A", &["add", "Call the plumber"])?;
        self.erth("A", &["sync"])?;

        section("B syncs and lists");
        self.erth("B", &["sync"])?;
        self.erth("B", &["list"])?;

        section("Both edit offline: A renames #1 and deletes #3, B completes #1");
        self.erth("A", &["rename", &milk, "Buy oat milk"])?;
        self.erth("A", &["delete", &call])?;
        self.erth("B", &["done", &milk])?;

        section("Both sync (A, B, A)");
        self.erth("A", &["sync"])?;
        self.erth("B", &["sync"])?;
        self.erth("A", &["sync"])?;

        section("Both list");
        self.erth("A", &["list"])?;
        self.erth("B", &["list"])?;

        section("Both dump every row, tombstones included");
        let dump_a = self.erth("A", &["dump", "--json"])?;
        let dump_b = self.erth("B", &["dump", "--json"])?;
        if dump_a == dump_b {
            println!("\nconverged: yes (the dumps are byte-identical)");
            Ok(())
        } else {
            println!("\nconverged: NO");
            Err("the replicas' dumps differ".into())
        }
    }

    /// `erth --db <replica> --remote <url> [--token-env VAR]` plus `args`.
    fn command(&self, db: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.erth);
        cmd.arg("--db").arg(db).arg("--remote").arg(&self.remote);
        if let Some(var) = self.token_env {
            cmd.args(["--token-env", var]);
        }
        cmd.args(args);
        cmd
    }

    /// Runs `erth` on replica `name`, prints the command and its output, and
    /// returns its stdout, trimmed.
    fn erth(&self, name: &str, args: &[&str]) -> Result<String> {
        let db = if name == "A" { &self.a } else { &self.b };
        let shown = cargo::display(Command::new("erth").args(args));
        println!("{name}$ {shown}");
        let out = self
            .command(db, args)
            .output()
            .map_err(|e| format!("could not run {}: {e}", self.erth.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stdout.lines().chain(stderr.lines()) {
            println!("    {line}");
        }
        if out.status.success() {
            Ok(stdout.trim().to_string())
        } else {
            Err(format!("`{shown}` on replica {name} failed ({})", out.status).into())
        }
    }
}

fn section(title: &str) {
    println!("\n-- {title}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_and_reject_nonsense() {
        let o = Options::parse(&args(&["--port", "8080"])).expect("port");
        assert_eq!((o.port, o.remote), (Some(8080), None));
        let o = Options::parse(&args(&["--remote", "libsql://x"])).expect("remote");
        assert_eq!(o.remote.as_deref(), Some("libsql://x"));
        for bad in [
            &["--port"][..],
            &["--port", "http"],
            &["--bogus"],
            &["--port", "1", "--remote", "http://x"],
        ] {
            assert!(Options::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
