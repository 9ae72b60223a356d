//! `cargo xtask demo [--port P] [--remote URL] [--cli]`.
//!
//! By default, the web demo: builds the `erth-sync` npm package
//! ([`crate::package`], installing its tools on first use),
//! starts `tursodb --sync-server` on a free 127.0.0.1 port (database
//! `$CACHE/demo/server.db`, kept between runs), serves `web-demo/` and the
//! package on `127.0.0.1:8780` (or `--port P`; a free port if 8780 is
//! taken) with [`crate::serve`], prints both URLs and how to open a second
//! device, and runs until Ctrl-C (SIGINT) or SIGTERM, then stops both
//! servers.
//!
//! `--remote URL` (or `ERTH_DATABASE_URL`) syncs with that server instead of
//! a local tursodb, with the token from `ERTH_AUTH_TOKEN`. The page gets
//! both from its config, served to loopback clients only and only under a
//! secret path made per run: the page's address printed on the console
//! carries its key in the fragment (`#config=KEY`, see [`crate::serve`]).
//! The config also carries the key of the page's end-to-end encrypted
//! notes, kept in `$CACHE/demo/column-key` so every device and run shares it.
//!
//! `--cli` runs the terminal story instead: two fresh `erth` CLI replicas,
//! A and B, edit offline, sync, and end byte-identical.

use crate::cargo::{self, cargo, repo_root, target_dir};
use crate::serve::{self, Site};
use crate::{package, tools, Result};
use erth_tests::launch::LocalServer;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable holding the token for a remote server.
const TOKEN_ENV: &str = "ERTH_AUTH_TOKEN";
/// Environment variable naming a remote server when `--remote` is absent.
const URL_ENV: &str = "ERTH_DATABASE_URL";
/// The page's port unless `--port` says otherwise: a stable origin keeps
/// the browser's databases between runs.
const DEFAULT_PAGE_PORT: u16 = 8780;
const USAGE: &str = "usage: cargo xtask demo [--port P] [--remote URL] [--cli]";

#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    port: Option<u16>,
    remote: Option<String>,
    cli: bool,
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
                            .ok()
                            .filter(|p| *p != 0)
                            .ok_or_else(|| format!("--port {port:?} is not a port number"))?,
                    );
                }
                "--remote" => options.remote = Some(value()?.clone()),
                "--cli" => options.cli = true,
                other => return Err(format!("demo: unknown argument {other:?} ({USAGE})").into()),
            }
        }
        if options.cli && options.port.is_some() {
            return Err("demo: --port is the web page's port; --cli serves no page".into());
        }
        Ok(options)
    }
}

/// The server the demo syncs with when it is not the local tursodb.
#[derive(Debug)]
struct Remote {
    url: String,
    /// Where the URL came from, for the printout.
    source: &'static str,
}

impl Remote {
    fn from(options: &Options) -> Option<Remote> {
        if let Some(url) = &options.remote {
            return Some(Remote {
                url: url.clone(),
                source: "--remote",
            });
        }
        std::env::var(URL_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty())
            .map(|url| Remote {
                url,
                source: URL_ENV,
            })
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let remote = Remote::from(&options);
    if options.cli {
        run_cli(remote.as_ref())
    } else {
        run_web(options.port, remote.as_ref())
    }
}

/// The URL without its query (which may carry an `authToken`).
fn shown_url(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

fn start_local_server() -> Result<LocalServer> {
    let bin = tools::tursodb()?;
    let dir = erth_tests::cache::cache_dir().join("demo");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let db = dir.join("server.db");
    let server = LocalServer::start(&db, &dir.join("server.log"), None)?;
    println!(
        "server: {} --sync-server at {} (database {}, log {})",
        bin.display(),
        server.url(),
        db.display(),
        server.log_path().display()
    );
    Ok(server)
}

/// The key of the page's encrypted notes, which every device of the demo
/// shares through the config: made on the first run and kept beside the
/// server's database (`$CACHE/demo/column-key`, mode 0600), since the notes
/// it sealed stay there between runs.
fn demo_column_key() -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = erth_tests::cache::cache_dir().join("demo");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let file = dir.join("column-key");
    if let Ok(key) = std::fs::read_to_string(&file) {
        let key = key.trim();
        if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(key.to_owned());
        }
    }
    let key = serve::column_key()?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, key.as_bytes()))
        .map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok(key)
}

fn stop_local_server(server: Option<LocalServer>) {
    if let Some(mut server) = server {
        match server.stop() {
            Ok(status) => println!("tursodb stopped ({status})"),
            Err(e) => eprintln!("stopping tursodb failed: {e}"),
        }
    }
}

// ---- the web demo ----

fn run_web(port: Option<u16>, remote: Option<&Remote>) -> Result<()> {
    let package = package::build()?;
    // Registered before any server starts, so a signal always stops both.
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("installing the Ctrl-C handler: {e}"))?;
    let local = match remote {
        Some(_) => None,
        None => Some(start_local_server()?),
    };
    let (url, token) = match (remote, &local) {
        (Some(remote), _) => (remote.url.clone(), std::env::var(TOKEN_ENV).ok()),
        (None, Some(server)) => (server.url().to_string(), None),
        (None, None) => return Err("demo: no server to sync with".into()),
    };
    let site = Site {
        page_dir: repo_root().join("web-demo"),
        package_dir: package.dir.clone(),
        config_json: serve::config_json(
            Some(&url),
            token.as_deref().filter(|t| !t.is_empty()),
            Some(&demo_column_key()?),
        ),
        config_key: serve::config_key()?,
    };
    let (mut page, moved) = match serve::start_preferring(site, port, DEFAULT_PAGE_PORT) {
        Ok(started) => started,
        Err(e) => {
            stop_local_server(local);
            return Err(e);
        }
    };
    let page_url = page.page_url();
    let second_device = page_url.replacen("/#", "/?device=2#", 1);

    println!("\n==== Erth Sync web demo ====\n");
    println!("  page:    {page_url}");
    println!("           (the part after # is this run's key to the page's config, which holds the server URL and token: keep it to yourself)");
    match remote {
        Some(remote) => {
            let token = match token.as_deref() {
                Some(t) if !t.is_empty() => format!("token from {TOKEN_ENV}"),
                _ => format!("no token: {TOKEN_ENV} is not set"),
            };
            println!(
                "  server:  {} (from {}; {token})",
                shown_url(&remote.url),
                remote.source
            );
        }
        None => {
            println!("  server:  {url}  (tursodb --sync-server; its database is kept between runs)")
        }
    }
    if let Some(moved) = moved {
        println!("  note:    {moved}");
    }
    println!(
        "\nOpen the page on two \"devices\"; each browser profile keeps its own database:\n\
         \x20 device 1: {page_url} in your browser\n\
         \x20 device 2: the same address in a private window or another browser profile,\n\
         \x20           e.g. chromium --user-data-dir=$(mktemp -d) '{page_url}'\n\
         \x20           or, in the same browser, {second_device} (a second database)\n\
         Switch one device's Online switch off, edit on both, switch it back on:\n\
         both lists converge. A page address with ?url=SERVER syncs a database of\n\
         its own with SERVER; ?url= alone keeps the device's database local-only.\n\
         \nCtrl-C stops the demo."
    );

    let signal = signals.forever().next();
    println!(
        "\nstopping ({})",
        match signal {
            Some(SIGTERM) => "SIGTERM",
            _ => "Ctrl-C",
        }
    );
    page.stop();
    println!("page server stopped");
    stop_local_server(local);
    Ok(())
}

// ---- the CLI story ----

fn run_cli(remote: Option<&Remote>) -> Result<()> {
    let server = match remote {
        Some(_) => None,
        None => Some(start_local_server()?),
    };
    let result = build_cli().and_then(|erth| {
        let (url, token_env) = match (remote, &server) {
            (Some(remote), _) => (remote.url.clone(), Some(TOKEN_ENV)),
            (None, Some(server)) => (server.url().to_string(), None),
            (None, None) => return Err("demo: no server to sync with".into()),
        };
        let dir = tempfile::Builder::new()
            .prefix("erth-demo-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir for the replicas: {e}"))?;
        Story {
            erth,
            remote: url,
            token_env,
            a: dir.path().join("a.db"),
            b: dir.path().join("b.db"),
        }
        .run()
    });
    stop_local_server(server);
    result
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
        assert_eq!((o.port, o.remote, o.cli), (Some(8080), None, false));
        let o = Options::parse(&args(&["--remote", "libsql://x", "--port", "9"])).expect("both");
        assert_eq!((o.port, o.remote.as_deref()), (Some(9), Some("libsql://x")));
        let o = Options::parse(&args(&["--cli", "--remote", "http://127.0.0.1:1"])).expect("cli");
        assert!(o.cli);
        assert_eq!(Options::parse(&[]).expect("none"), Options::default());
        for bad in [
            &["--port"][..],
            &["--port", "http"],
            &["--port", "0"],
            &["--port", "70000"],
            &["--bogus"],
            &["--remote"],
            &["--cli", "--port", "1"],
        ] {
            assert!(Options::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn remote_urls_are_shown_without_their_query() {
        assert_eq!(
            shown_url("libsql://db.turso.io?authToken=secret"),
            "libsql://db.turso.io"
        );
        assert_eq!(shown_url("https://h/x#t"), "https://h/x");
        assert_eq!(shown_url("http://127.0.0.1:1"), "http://127.0.0.1:1");
    }
}
