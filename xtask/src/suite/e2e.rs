//! Suite `e2e`: the web demo end to end (`tests/e2e/web-demo.mjs`), and
//! `cargo xtask screenshot`, which refreshes the README's picture from it.
//!
//! Builds the npm package ([`crate::package`]) and the `erth` CLI, then runs
//! the Playwright story twice, once per sync order (A syncs first after the
//! offline edits, then B first). Each run gets a fresh `tursodb
//! --sync-server` and the demo's own static server ([`crate::serve`]) on
//! free 127.0.0.1 ports, and fresh browser profiles. Screenshots land in
//! `<target>/e2e-web-demo/<order>/` only: the suite writes nothing into the
//! repository. [`screenshot`] runs the story once more and copies its
//! side-by-side picture (`both.png`) to `web-demo/screenshot.png`.
//!
//! Tools, from [`crate::tools`]: Debian's Chromium, Node.js, playwright-core
//! (Playwright's own browser download is never used), tursodb.

use super::counts::{self, Counts};
use super::Suite;
use crate::cargo::{self, cargo, repo_root, target_dir};
use crate::serve::{self, Site, StaticServer};
use crate::tools::apt::{self, CHROMIUM_BIN};
use crate::tools::{self, npm};
use crate::{package, Result};
use erth_tests::launch::LocalServer;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

pub const SUITE: Suite = Suite {
    name: "e2e",
    about: "web demo in Chromium (Playwright): two devices and a CLI replica converge",
    install,
    run: run_suite,
};

/// Who syncs first after the offline edits, one run each.
const ORDERS: [&str; 2] = ["a-first", "b-first"];
/// The README's picture, written only by [`screenshot`].
const README_SHOT: &str = "web-demo/screenshot.png";

fn install() -> Result<()> {
    apt::ensure(&apt::CHROMIUM)?;
    apt::ensure(&apt::NODE)?;
    println!(
        "chromium: {CHROMIUM_BIN}\nplaywright-core: {}\ntursodb: {}",
        npm::playwright_core()?.display(),
        tools::tursodb()?.display()
    );
    Ok(())
}

/// What every run of the story needs: the package, the CLI, playwright-core.
struct Setup {
    package_dir: PathBuf,
    cli: PathBuf,
    node_modules: PathBuf,
    /// `<target>/e2e-web-demo`.
    shots: PathBuf,
}

fn setup() -> Result<Setup> {
    let node_modules = npm::playwright_core()?;
    let package = package::build()?;
    cargo::run(&mut cargo(&["build", "-p", "erth-cli"]))?;
    Ok(Setup {
        package_dir: package.dir,
        cli: target_dir().join("debug").join("erth"),
        node_modules,
        shots: target_dir().join("e2e-web-demo"),
    })
}

fn run_suite() -> Result<()> {
    let setup = setup()?;
    let mut outcomes = Vec::new();
    for order in ORDERS {
        println!("\n---- web demo e2e, {order}");
        let started = Instant::now();
        let result = run_once(&setup, order);
        outcomes.push((order, started.elapsed(), result));
    }

    println!("\n---- e2e suite summary");
    let mut failures = Vec::new();
    for (order, elapsed, result) in &outcomes {
        let verdict = match result {
            Ok(c) => format!("{} passed, {} failed", c.passed, c.failed),
            Err(e) => {
                failures.push(format!("{order}: {e}"));
                "FAILED".to_string()
            }
        };
        println!("{order:<10} {:>7.1} s  {verdict}", elapsed.as_secs_f64());
    }
    println!("screenshots: {}", setup.shots.display());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}

/// `cargo xtask screenshot`: installs the suite's tools, runs the story
/// (B syncs first) and, if it passes, copies its side-by-side picture to
/// `web-demo/screenshot.png`, the README's image.
pub fn screenshot() -> Result<()> {
    install()?;
    let setup = setup()?;
    let order = ORDERS[ORDERS.len() - 1];
    run_once(&setup, order)?;
    let both = setup.shots.join(order).join("both.png");
    let readme_shot = repo_root().join(README_SHOT);
    fs::copy(&both, &readme_shot).map_err(|e| {
        format!(
            "copying {} to {}: {e}",
            both.display(),
            readme_shot.display()
        )
    })?;
    println!(
        "README picture refreshed: {} (from {})",
        readme_shot.display(),
        both.display()
    );
    Ok(())
}

/// One run of the story with sync order `order`, on fresh servers; its
/// screenshots go to `<shots>/<order>/`.
fn run_once(setup: &Setup, order: &str) -> Result<Counts> {
    let shots = setup.shots.join(order);
    let work = tempfile::Builder::new()
        .prefix(&format!("erth-e2e-{order}-"))
        .tempdir()
        .map_err(|e| format!("creating a work directory: {e}"))?;
    if shots.exists() {
        fs::remove_dir_all(&shots).map_err(|e| format!("clearing {}: {e}", shots.display()))?;
    }
    let server = LocalServer::start(
        &work.path().join("server.db"),
        &work.path().join("server.log"),
        None,
    )?;
    let site = Site {
        page_dir: repo_root().join("web-demo"),
        package_dir: setup.package_dir.clone(),
        config_json: serve::config_json(Some(server.url()), None, Some(&serve::column_key()?)),
        config_key: serve::config_key()?,
    };
    let page =
        StaticServer::start(site, 0).map_err(|e| format!("starting the page server: {e}"))?;
    println!("tursodb at {}, page at {}", server.url(), page.url());
    let script = repo_root().join("tests").join("e2e").join("web-demo.mjs");
    let (ok, output) = cargo::run_captured(
        Command::new("node")
            .arg(&script)
            .current_dir(repo_root())
            .env("ERTH_DEMO_URL", page.page_url())
            .env("ERTH_TEST_HRANA_URL", server.url())
            .env("ERTH_CLI", &setup.cli)
            .env("ERTH_NODE_MODULES", &setup.node_modules)
            .env("ERTH_CHROMIUM", CHROMIUM_BIN)
            .env("ERTH_E2E_WORK", work.path())
            .env("ERTH_E2E_SHOTS", &shots)
            .env("ERTH_E2E_ORDER", order),
    )?;
    drop(page);
    drop(server);
    let found = counts::e2e(&output);
    counts::report(&format!("web demo e2e ({order})"), ok, found)?;
    found.ok_or_else(|| "no e2e counts".into())
}
