//! Suite `e2e`: the web demo end to end (`tests/e2e/web-demo.mjs`).
//!
//! Builds the npm package ([`crate::wasm::build_wasm_package`]) and the
//! `erth` CLI, then runs the Playwright story twice, once per sync order
//! (A syncs first after the offline edits, then B first). Each run gets a
//! fresh `tursodb --sync-server` and the demo's own static server
//! ([`crate::serve`]) on free 127.0.0.1 ports, and fresh browser profiles.
//! Screenshots land in `<target>/e2e-web-demo/<order>/`; after a passing
//! suite the side-by-side one (`both.png`) of the last run replaces
//! `web-demo/screenshot.png`, the README's image.
//!
//! Tools: Debian's `chromium` (installed with apt-get if missing; the run
//! fails if it cannot be), Node.js, and the pinned `playwright-core` in
//! `$CACHE/node-playwright-core-<version>` (npm; Playwright's own browser
//! download is never used).

use super::mobile::{apt_ensure, report, run_captured, Counts};
use super::Suite;
use crate::cargo::{self, cargo, repo_root, target_dir};
use crate::serve::{self, Site, StaticServer};
use crate::Result;
use erth_tests::cache;
use erth_tests::launch::LocalServer;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub const SUITE: Suite = Suite {
    name: "e2e",
    about: "web demo in Chromium (Playwright): two devices and a CLI replica converge",
    install,
    run: run_suite,
};

const PLAYWRIGHT_VERSION: &str = "1.65.1";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Who syncs first after the offline edits, one run each.
const ORDERS: [&str; 2] = ["a-first", "b-first"];
/// The README's screenshot, refreshed from the last run.
const README_SHOT: &str = "web-demo/screenshot.png";

fn install() -> Result<()> {
    apt_ensure(&[CHROMIUM], &["chromium"])?;
    apt_ensure(&["/usr/bin/node", "/usr/bin/npm"], &["nodejs", "npm"])?;
    let node_modules = playwright()?;
    let tursodb = erth_tests::tools::tursodb()?;
    println!(
        "chromium: {CHROMIUM}\nplaywright-core {PLAYWRIGHT_VERSION}: {}\ntursodb: {}",
        node_modules.display(),
        tursodb.display()
    );
    Ok(())
}

/// `node_modules` holding the pinned playwright-core, installed with npm
/// into the cache on first use.
fn playwright() -> Result<PathBuf> {
    let spec = format!("playwright-core@{PLAYWRIGHT_VERSION}");
    let dir = cache::install_dir(
        &format!("node-playwright-core-{PLAYWRIGHT_VERSION}"),
        |dir| {
            println!("installing {spec} into the cache (npm)");
            let ok = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(dir)
                .arg(&spec)
                .status()
                .is_ok_and(|s| s.success());
            if ok
                && installed_version(&dir.join("node_modules")).as_deref()
                    == Some(PLAYWRIGHT_VERSION)
            {
                Ok(())
            } else {
                Err(erth_tests::Error::Install(format!(
                    "`npm install {spec}` failed: needs Node.js/npm and the npm registry"
                )))
            }
        },
    )?;
    let node_modules = dir.join("node_modules");
    match installed_version(&node_modules) {
        Some(v) if v == PLAYWRIGHT_VERSION => Ok(node_modules),
        other => Err(format!(
            "{} holds playwright-core {other:?}, not {PLAYWRIGHT_VERSION}: delete {} and rerun",
            node_modules.display(),
            dir.display()
        )
        .into()),
    }
}

/// The `"version"` of `node_modules/playwright-core/package.json`.
fn installed_version(node_modules: &Path) -> Option<String> {
    let manifest =
        fs::read_to_string(node_modules.join("playwright-core").join("package.json")).ok()?;
    json_string_field(&manifest, "version")
}

/// The value of the first `"key": "value"` in a JSON text (enough for a
/// package.json's top-level `version`, which npm writes before any nested
/// object that could hold another one).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let after_key = &json[json.find(&format!("\"{key}\""))? + key.len() + 2..];
    let value = after_key
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(value[..value.find('"')?].to_string())
}

fn run_suite() -> Result<()> {
    let node_modules = playwright()?;
    if !Path::new(CHROMIUM).is_file() {
        return Err(format!("{CHROMIUM} is missing: apt-get install -y chromium").into());
    }
    let package = crate::wasm::build_wasm_package()?;
    cargo::run(&mut cargo(&["build", "-p", "erth-cli"]))?;
    let cli = target_dir().join("debug").join("erth");
    let shots = target_dir().join("e2e-web-demo");

    let mut outcomes = Vec::new();
    for order in ORDERS {
        println!("\n---- web demo e2e, {order}");
        let started = Instant::now();
        let result = run_once(order, &package.dir, &cli, &node_modules, &shots.join(order));
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
    if !failures.is_empty() {
        return Err(failures.join("; ").into());
    }
    let last = ORDERS[ORDERS.len() - 1];
    let both = shots.join(last).join("both.png");
    let readme_shot = repo_root().join(README_SHOT);
    fs::copy(&both, &readme_shot).map_err(|e| {
        format!(
            "copying {} to {}: {e}",
            both.display(),
            readme_shot.display()
        )
    })?;
    println!(
        "screenshots: {}\nREADME image refreshed: {} (from {})",
        shots.display(),
        readme_shot.display(),
        both.display()
    );
    Ok(())
}

/// One run of the story with sync order `order`, on fresh servers.
fn run_once(
    order: &str,
    package_dir: &Path,
    cli: &Path,
    node_modules: &Path,
    shots: &Path,
) -> Result<Counts> {
    let work = tempfile::Builder::new()
        .prefix(&format!("erth-e2e-{order}-"))
        .tempdir()
        .map_err(|e| format!("creating a work directory: {e}"))?;
    if shots.exists() {
        fs::remove_dir_all(shots).map_err(|e| format!("clearing {}: {e}", shots.display()))?;
    }
    let server = LocalServer::start(
        &work.path().join("server.db"),
        &work.path().join("server.log"),
        None,
    )?;
    let site = Site {
        page_dir: repo_root().join("web-demo"),
        package_dir: package_dir.to_path_buf(),
        config_json: serve::config_json(Some(server.url()), None),
    };
    let page =
        StaticServer::start(site, 0).map_err(|e| format!("starting the page server: {e}"))?;
    println!("tursodb at {}, page at {}", server.url(), page.url());
    let script = repo_root().join("tests").join("e2e").join("web-demo.mjs");
    let (ok, output) = run_captured(
        Command::new("node")
            .arg(&script)
            .current_dir(repo_root())
            .env("ERTH_DEMO_URL", page.url())
            .env("ERTH_TEST_HRANA_URL", server.url())
            .env("ERTH_CLI", cli)
            .env("ERTH_NODE_MODULES", node_modules)
            .env("ERTH_CHROMIUM", CHROMIUM)
            .env("ERTH_E2E_WORK", work.path())
            .env("ERTH_E2E_SHOTS", shots)
            .env("ERTH_E2E_ORDER", order),
    )?;
    drop(page);
    drop(server);
    let counts = e2e_counts(&output);
    report(&format!("web demo e2e ({order})"), ok, counts)?;
    counts.ok_or_else(|| "no e2e counts".into())
}

/// Counts from the script's closing `e2e: N passed, M failed` line.
fn e2e_counts(output: &str) -> Option<Counts> {
    let line = output.lines().rev().find(|l| l.starts_with("e2e: "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["e2e:", passed, "passed,", failed, "failed"] => Some(Counts {
            passed: passed.parse().ok()?,
            failed: failed.parse().ok()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_closing_counts_line() {
        assert_eq!(
            e2e_counts("ok   a\nFAIL b\ne2e: 9 passed, 1 failed\n"),
            Some(Counts {
                passed: 9,
                failed: 1
            })
        );
        assert_eq!(e2e_counts("e2e: ERTH_CLI is not set"), None);
        assert_eq!(e2e_counts("node: not found"), None);
    }

    #[test]
    fn reads_a_package_json_version() {
        let manifest = r#"{
  "name": "playwright-core",
  "version": "1.65.1",
  "engines": { "node": ">=18" }
}"#;
        assert_eq!(
            json_string_field(manifest, "version").as_deref(),
            Some("1.65.1")
        );
        assert_eq!(json_string_field(manifest, "missing"), None);
        assert_eq!(json_string_field(r#"{"version": 3}"#, "version"), None);
    }
}
