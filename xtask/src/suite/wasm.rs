//! Suite `wasm`: the `erth-sync` npm package.
//!
//! Clippy `-D warnings` of `erth-core` and `erth-wasm` for wasm32 (and
//! `erth-wasm` natively); core's pure unit tests (ids, clocks, merge) on
//! wasm in Node; `erth-wasm`'s wasm-bindgen-test suites in Node, and in a
//! page and a dedicated worker (OPFS or IndexedDB, sync with a fresh
//! tursodb) of headless Chromium, Firefox and WebKitGTK; the package build
//! ([`crate::package`]); the Playwright tests of the built package
//! (`bindings-wasm/tests/e2e/run.mjs`) against another fresh tursodb, with
//! the `erth` CLI as a native replica; a lean subset of them through plain
//! WebDriver (`engines.mjs`: restart, two devices, shared tabs) in Firefox
//! ESR (geckodriver) and in WebKitGTK (WebKitWebDriver under Xvfb, with a
//! PyGObject browser that keeps its profile; there the package runs on its
//! IndexedDB fallback); then the package packed with `npm pack`, installed
//! into a fresh app, type-checked with tsc and built with Vite 8, Vite 5,
//! esbuild, Rollup and webpack, and served by `vite dev`, plus a Vite +
//! React and a Vite + Vue app on `erth-sync/react` and `erth-sync/vue`
//! (`bundlers.mjs`).
//!
//! Tools, from [`crate::tools`]: the package's build tools, Chromium and
//! chromedriver, Firefox ESR and geckodriver, WebKitGTK's driver with Xvfb,
//! wasm-bindgen-cli (its test runner), playwright-core, the bundlers, React
//! and Vue, tursodb. Scratch files go to a temporary directory.

use super::counts::{self, Counts};
use super::Suite;
use crate::cargo::{self, cargo, repo_root, target_dir};
use crate::package::{self, Package, PACKAGE_CRATE};
use crate::tools::apt::{self, CHROMEDRIVER_BIN, CHROMIUM_BIN, FIREFOX_BIN, WEBKITDRIVER_BIN};
use crate::tools::rust::{self, WASM_TARGET};
use crate::tools::{self, npm};
use crate::Result;
use erth_tests::launch::LocalServer;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub const SUITE: Suite = Suite {
    name: "wasm",
    about:
        "erth-sync npm package: wasm tests in Node and in Chromium, Firefox and WebKitGTK pages and workers; e2e of the package in all three",
    install,
    run: run_suite,
};

fn install() -> Result<()> {
    for set in [
        &apt::WASM_BUILD,
        &apt::CHROMIUM,
        &apt::FIREFOX,
        &apt::WEBKIT,
    ] {
        apt::ensure(set)?;
    }
    rust::wasm_target()?;
    println!(
        "wasm-bindgen: {}\nwasm-opt: {}\ngeckodriver: {}\nplaywright-core: {}\nbundlers: {}\nReact and Vue: {}\ntursodb: {}",
        rust::wasm_bindgen_cli()?.display(),
        npm::wasm_opt()?.display(),
        rust::geckodriver()?.display(),
        npm::playwright_core()?.display(),
        npm::bundlers()?.display(),
        npm::frameworks()?.display(),
        tools::tursodb()?.display()
    );
    Ok(())
}

/// One step of the suite, for the closing summary.
struct Step {
    what: &'static str,
    elapsed: Duration,
    counts: Option<Counts>,
}

fn run_suite() -> Result<()> {
    let wasm_bindgen_bin = rust::wasm_bindgen_cli()?;
    let node_modules = npm::playwright_core()?;
    let work = tempfile::Builder::new()
        .prefix("erth-wasm-")
        .tempdir()
        .map_err(|e| format!("creating a work directory: {e}"))?;
    let mut steps = Vec::new();
    let mut failures = Vec::new();
    let mut timed = |what: &'static str, f: &mut dyn FnMut() -> Result<Option<Counts>>| {
        let started = Instant::now();
        let result = f();
        let elapsed = started.elapsed();
        match result {
            Ok(counts) => steps.push(Step {
                what,
                elapsed,
                counts,
            }),
            Err(e) => {
                failures.push(format!("{what}: {e}"));
                steps.push(Step {
                    what,
                    elapsed,
                    counts: None,
                });
            }
        }
    };

    timed("clippy (wasm32 and native)", &mut || {
        let wasm_lints: [&[&str]; 4] = [
            &[
                "clippy",
                "-p",
                "erth-core",
                "--lib",
                "--target",
                WASM_TARGET,
            ],
            &[
                "clippy",
                "-p",
                "erth-core",
                "--lib",
                "--profile",
                "test",
                "--target",
                WASM_TARGET,
            ],
            &[
                "clippy",
                "-p",
                PACKAGE_CRATE,
                "--all-targets",
                "--target",
                WASM_TARGET,
            ],
            &["clippy", "-p", PACKAGE_CRATE, "--all-targets"],
        ];
        for args in wasm_lints {
            cargo::run(&mut cargo(&[args, &["--", "-D", "warnings"]].concat()))?;
        }
        Ok(None)
    });

    let server = LocalServer::start(
        &work.path().join("wasm-tests.db"),
        &work.path().join("wasm-tests.log"),
        None,
    )?;
    println!(
        "tursodb --sync-server for the worker tests at {}",
        server.url()
    );
    let wasm_test = |args: &[&str]| {
        // The cargo runner for wasm32 is `wasm-bindgen-test-runner` (see
        // `.cargo/config.toml`): the pinned one comes first on PATH.
        let path = std::env::var("PATH").unwrap_or_default();
        let mut cmd = cargo(args);
        cmd.env("PATH", format!("{}:{path}", wasm_bindgen_bin.display()))
            .env("CHROMEDRIVER", CHROMEDRIVER_BIN)
            .env("ERTH_TEST_HRANA_URL", server.url());
        cmd
    };
    timed("core unit tests on wasm (Node)", &mut || {
        let (ok, out) = cargo::run_captured(&mut wasm_test(&[
            "test",
            "-p",
            "erth-core",
            "--lib",
            "--target",
            WASM_TARGET,
        ]))?;
        let counts = counts::libtest(&out);
        counts::report("core on wasm", ok, counts)?;
        Ok(counts)
    });
    timed("erth-wasm tests (Node, page, worker)", &mut || {
        let (ok, out) = cargo::run_captured(&mut wasm_test(&[
            "test",
            "-p",
            PACKAGE_CRATE,
            "--target",
            WASM_TARGET,
            "--tests",
            "--no-fail-fast",
        ]))?;
        let counts = counts::libtest(&out);
        counts::report("erth-wasm wasm-bindgen-test", ok, counts)?;
        Ok(counts)
    });
    timed("erth-wasm tests in Firefox (page, worker)", &mut || {
        // The same tests through geckodriver (it finds Debian's `firefox`
        // wrapper on PATH; the runner adds -headless).
        let mut cmd = wasm_test(&[
            "test",
            "-p",
            PACKAGE_CRATE,
            "--target",
            WASM_TARGET,
            "--test",
            "page",
            "--test",
            "worker",
            "--no-fail-fast",
        ]);
        cmd.env_remove("CHROMEDRIVER")
            .env("GECKODRIVER", rust::geckodriver()?);
        let (ok, out) = cargo::run_captured(&mut cmd)?;
        let counts = counts::libtest(&out);
        counts::report("erth-wasm wasm-bindgen-test in Firefox", ok, counts)?;
        Ok(counts)
    });
    timed("erth-wasm tests in WebKitGTK (page, worker)", &mut || {
        // The same tests in WebKitGTK's MiniBrowser through WebKitWebDriver
        // (the runner's Safari driver), under Xvfb. It has no OPFS sync
        // access handles: the worker's persistent store is IndexedDB there.
        let tests = wasm_test(&[
            "test",
            "-p",
            PACKAGE_CRATE,
            "--target",
            WASM_TARGET,
            "--test",
            "page",
            "--test",
            "worker",
            "--no-fail-fast",
        ]);
        let mut cmd = Command::new("xvfb-run");
        cmd.arg("-a")
            .arg(tests.get_program())
            .args(tests.get_args());
        for (key, value) in tests.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        if let Some(dir) = tests.get_current_dir() {
            cmd.current_dir(dir);
        }
        cmd.env_remove("CHROMEDRIVER")
            .env("SAFARIDRIVER", WEBKITDRIVER_BIN);
        let (ok, out) = cargo::run_captured(&mut cmd)?;
        let counts = counts::libtest(&out);
        counts::report("erth-wasm wasm-bindgen-test in WebKitGTK", ok, counts)?;
        Ok(counts)
    });
    drop(server);

    let mut package = None;
    timed("package build", &mut || {
        package = Some(package::build()?);
        Ok(None)
    });

    if let Some(package) = &package {
        timed("Playwright e2e of the built package", &mut || {
            browser_script("run", "run", &node_modules, package, work.path(), &[])
        });
        timed("Firefox e2e (WebDriver)", &mut || {
            let geckodriver = rust::geckodriver()?;
            browser_script(
                "engines",
                "firefox",
                &node_modules,
                package,
                work.path(),
                &[
                    ("ERTH_ENGINE", Path::new("firefox")),
                    ("ERTH_GECKODRIVER", &geckodriver),
                    ("ERTH_FIREFOX", Path::new(FIREFOX_BIN)),
                ],
            )
        });
        timed("WebKitGTK e2e (WebDriver, IndexedDB)", &mut || {
            browser_script(
                "engines",
                "webkit",
                &node_modules,
                package,
                work.path(),
                &[
                    ("ERTH_ENGINE", Path::new("webkit")),
                    ("ERTH_WEBKITDRIVER", Path::new(WEBKITDRIVER_BIN)),
                ],
            )
        });
        let mut bundlers = None;
        timed("bundler tools (npm, cached)", &mut || {
            bundlers = Some((npm::bundlers()?, npm::frameworks()?));
            Ok(None)
        });
        if let Some((bundlers, frameworks)) = &bundlers {
            // The packed package in apps built by every bundler of the README.
            timed("npm pack -> tsc, 5 bundlers, React and Vue", &mut || {
                browser_script(
                    "bundlers",
                    "bundlers",
                    &node_modules,
                    package,
                    work.path(),
                    &[("ERTH_BUNDLERS", bundlers), ("ERTH_FRAMEWORKS", frameworks)],
                )
            });
        }
    }

    println!("\n---- wasm suite summary");
    for step in &steps {
        let counts = step.counts.map_or(String::new(), |c| {
            format!("  {} passed, {} failed", c.passed, c.failed)
        });
        println!(
            "{:<44} {:>7.1} s{counts}",
            step.what,
            step.elapsed.as_secs_f64()
        );
    }
    if let Some(p) = &package {
        println!(
            ".wasm: {} raw, {} gzip",
            package::kb(p.wasm_bytes),
            package::kb(p.wasm_gzip_bytes)
        );
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}

/// Runs the browser script `bindings-wasm/tests/e2e/<name>.mjs` with the
/// built package, a fresh tursodb, the `erth` CLI, playwright-core, Chromium
/// and a scratch directory (plus `extra` variables); its counts. `run` names
/// the scratch directory, server database and log (a script may run twice).
fn browser_script(
    name: &str,
    run: &str,
    node_modules: &Path,
    package: &Package,
    work: &Path,
    extra: &[(&str, &Path)],
) -> Result<Option<Counts>> {
    cargo::run(&mut cargo(&["build", "-p", "erth-cli"]))?;
    let cli = target_dir().join("debug").join("erth");
    let scratch = work.join(run);
    fs::create_dir_all(&scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;
    let server = LocalServer::start(
        &work.join(format!("{run}.db")),
        &work.join(format!("{run}.log")),
        None,
    )?;
    println!(
        "tursodb --sync-server for {name}.mjs ({run}) at {}",
        server.url()
    );
    let script = repo_root()
        .join("bindings-wasm")
        .join("tests")
        .join("e2e")
        .join(format!("{name}.mjs"));
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .current_dir(repo_root())
        .env("ERTH_PKG_DIR", &package.dir)
        .env("ERTH_TEST_HRANA_URL", server.url())
        .env("ERTH_CLI", &cli)
        .env("ERTH_NODE_MODULES", node_modules)
        .env("ERTH_CHROMIUM", CHROMIUM_BIN)
        .env("ERTH_E2E_WORK", &scratch);
    for (key, value) in extra {
        cmd.env(key, value);
    }
    let (ok, out) = cargo::run_captured(&mut cmd)?;
    drop(server);
    let counts = counts::e2e(&out);
    counts::report(run, ok, counts)?;
    Ok(counts)
}
