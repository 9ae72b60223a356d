//! The `erth-sync` npm package and the `wasm` test suite.
//!
//! [`build_wasm_package`] builds `bindings-wasm/pkg/` (the demo and e2e
//! suites reuse it): the `erth-wasm` crate with the size profile
//! (`release-wasm`), `wasm-bindgen --target web`, `wasm-opt -Oz` (npm
//! `binaryen`, not Debian's), the hand-written `js/` modules and types, a
//! generated `package.json` and the README. It prints the `.wasm`'s raw and
//! gzip sizes, and fails if the `.wasm` imports anything from module `"env"`
//! (an unresolved C symbol) or if it exceeds 1 MB gzipped.
//!
//! The suite ([`SUITE`]): clippy `-D warnings` of `erth-core` and
//! `erth-wasm` for wasm32 (and `erth-wasm` natively); core's pure unit
//! tests (ids, clocks, merge) on wasm in Node; `erth-wasm`'s
//! wasm-bindgen-test suites in Node, and in a page and a dedicated worker
//! (OPFS or IndexedDB, sync with a fresh tursodb) of headless Chromium,
//! Firefox and WebKitGTK; the package build;
//! and the Playwright tests of the built package (`tests/e2e/run.mjs`)
//! against another fresh tursodb, with the `erth` CLI as a native replica;
//! a lean subset of them through plain WebDriver (`tests/e2e/engines.mjs`:
//! restart, two devices, shared tabs) in Firefox ESR (geckodriver) and in
//! WebKitGTK (WebKitWebDriver under Xvfb, with a PyGObject browser that
//! keeps its profile; there the package runs on its IndexedDB fallback);
//! then the package packed with `npm pack`, installed into a fresh app,
//! type-checked with tsc and built with Vite 8, Vite 5, esbuild, Rollup and
//! webpack, and served by `vite dev` (`tests/e2e/bundlers.mjs`).
//!
//! Tools, installed into the cache when missing (idempotent): the rustup
//! target, Debian's clang (SQLite's C), chromium, chromium-driver,
//! firefox-esr, webkit2gtk-driver, xvfb, xauth, gir1.2-webkit2-4.1,
//! python3-gi, node/npm and gzip, wasm-bindgen-cli
//! (`$CACHE/tools/wasm-bindgen-<v>`, built once, about 10 minutes),
//! geckodriver (`$CACHE/tools/geckodriver-<v>`, built once, about 4
//! minutes), the npm packages binaryen and playwright-core, and the
//! bundlers vite, vite 5 (as `vite5`), esbuild, rollup (with
//! @rollup/plugin-node-resolve) and webpack, plus typescript.

use crate::cargo::{self, cargo, repo_root, target_dir};
use crate::suite::mobile::{apt_ensure, report, run_captured, Counts};
use crate::suite::Suite;
use crate::Result;
use erth_tests::cache;
use erth_tests::launch::LocalServer;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const SUITE: Suite = Suite {
    name: "wasm",
    about:
        "erth-sync npm package: wasm tests in Node and in Chromium, Firefox and WebKitGTK pages and workers; e2e of the package in all three",
    install,
    run: run_suite,
};

const TARGET: &str = "wasm32-unknown-unknown";
/// Must equal the `wasm-bindgen` crate pin in bindings-wasm/Cargo.toml.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
const BINARYEN_VERSION: &str = "132.0.0";
const PLAYWRIGHT_VERSION: &str = "1.65.1";
/// The bundlers the packed package is built with (the README's recipes):
/// Vite 8 (Rolldown), Vite 5 (Rollup; installed as the alias `vite5`), esbuild.
const VITE_VERSION: &str = "8.4.0";
const VITE_OLD_VERSION: &str = "5.4.21";
const ESBUILD_VERSION: &str = "0.28.2";
const ROLLUP_VERSION: &str = "4.68.8";
const ROLLUP_RESOLVE_VERSION: &str = "16.0.3";
const WEBPACK_VERSION: &str = "5.113.0";
/// Type-checks an app against the package's `index.d.ts`.
const TYPESCRIPT_VERSION: &str = "7.0.2";
const PACKAGE_CRATE: &str = "erth-wasm";
/// File stem wasm-bindgen writes (`erth_wasm.js`, `erth_wasm_bg.wasm`).
const OUT_NAME: &str = "erth_wasm";
/// Hand-written files of the package, from `bindings-wasm/js/`.
const JS_FILES: &[&str] = &[
    "index.js",
    "index.d.ts",
    "worker.js",
    "errors.js",
    "README.md",
];
/// The acceptance bound on the gzipped `.wasm`.
const MAX_GZIP_BYTES: u64 = 1_000_000;
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Firefox ESR, driven through geckodriver by `tests/e2e/engines.mjs`.
const FIREFOX: &str = "/usr/bin/firefox-esr";
const GECKODRIVER_VERSION: &str = "0.37.1";
/// WebKitGTK's WebDriver server, run under `xvfb-run` by `tests/e2e/engines.mjs`
/// with `tests/e2e/webkit-browser.py` (PyGObject) as the browser.
const WEBKITDRIVER: &str = "/usr/bin/WebKitWebDriver";
/// Files of the Debian packages the WebKit run needs, and the packages.
const WEBKIT_FILES: &[&str] = &[
    WEBKITDRIVER,
    "/usr/bin/xvfb-run",
    "/usr/bin/xauth",
    "/usr/lib/x86_64-linux-gnu/girepository-1.0/WebKit2-4.1.typelib",
    "/usr/lib/python3/dist-packages/gi/__init__.py",
];
const WEBKIT_PACKAGES: &[&str] = &[
    "webkit2gtk-driver",
    "xvfb",
    "xauth",
    "gir1.2-webkit2-4.1",
    "python3-gi",
];

/// Where the package's build tools are.
#[derive(Debug)]
struct Tools {
    /// Holds `wasm-bindgen` and `wasm-bindgen-test-runner`.
    wasm_bindgen_bin: PathBuf,
    /// `node_modules` with `binaryen` and `playwright-core`.
    node_modules: PathBuf,
}

impl Tools {
    /// `PATH` with the wasm-bindgen tools first (the cargo runner for
    /// wasm32 is `wasm-bindgen-test-runner`, see `.cargo/config.toml`).
    fn path_env(&self) -> String {
        let rest = std::env::var("PATH").unwrap_or_default();
        format!("{}:{rest}", self.wasm_bindgen_bin.display())
    }
}

/// The built package.
#[derive(Debug)]
pub struct Package {
    /// `bindings-wasm/pkg`.
    pub dir: PathBuf,
    pub wasm_bytes: u64,
    pub wasm_gzip_bytes: u64,
}

fn install() -> Result<()> {
    let tools = tools()?;
    apt_ensure(&[CHROMIUM, CHROMEDRIVER], &["chromium", "chromium-driver"])?;
    apt_ensure(&[FIREFOX], &["firefox-esr"])?;
    apt_ensure(WEBKIT_FILES, WEBKIT_PACKAGES)?;
    let geckodriver = geckodriver()?;
    let tursodb = erth_tests::tools::tursodb()?;
    let bundlers = bundler_tools()?;
    println!(
        "wasm-bindgen: {}\ngeckodriver: {}\nnode_modules: {}\nbundlers: {}\ntursodb: {}",
        tools.wasm_bindgen_bin.display(),
        geckodriver.display(),
        tools.node_modules.display(),
        bundlers.display(),
        tursodb.display()
    );
    Ok(())
}

/// Everything [`build_wasm_package`] needs, installed if missing.
fn tools() -> Result<Tools> {
    apt_ensure(&["/usr/bin/clang"], &["clang"])?;
    apt_ensure(&["/usr/bin/node", "/usr/bin/npm"], &["nodejs", "npm"])?;
    apt_ensure(&["/usr/bin/gzip"], &["gzip"])?;
    ensure_rust_target()?;
    Ok(Tools {
        wasm_bindgen_bin: wasm_bindgen_cli()?,
        node_modules: node_tools()?,
    })
}

fn ensure_rust_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("could not run rustup ({e}): the wasm build needs rustup"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    cargo::run(Command::new("rustup").args(["target", "add", TARGET]))
}

/// Whether `bin --version` runs and prints `version`.
fn reports_version(bin: &Path, version: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(version))
}

/// `$CACHE/tools/<dir>`, where `cargo install <krate> --version =<version>`
/// puts its binaries, built once (under a cache lock) unless `ok(root)`
/// already holds; `about` says how long the build takes. Errors if the
/// build fails or `ok` still does not hold after it.
fn cargo_install_tool(
    krate: &str,
    version: &str,
    dir: &str,
    about: &str,
    ok: impl Fn(&Path) -> bool,
) -> Result<PathBuf> {
    let root = cache::cache_dir().join("tools").join(dir);
    if ok(&root) {
        return Ok(root);
    }
    let _lock = cache::lock(&format!("install-{dir}"))?;
    if ok(&root) {
        return Ok(root);
    }
    println!("installing {krate} {version} into the cache ({about}, once)");
    cargo::run(
        cargo(&[
            "install",
            krate,
            "--version",
            &format!("={version}"),
            "--root",
        ])
        .arg(&root),
    )?;
    if ok(&root) {
        Ok(root)
    } else {
        Err(format!(
            "cargo install {krate} finished but {} has no working {krate} {version}",
            root.display()
        )
        .into())
    }
}

/// `$CACHE/tools/wasm-bindgen-<v>/bin` (not `--locked`: its lock file pins
/// a crate the registry lacks).
fn wasm_bindgen_cli() -> Result<PathBuf> {
    let root = cargo_install_tool(
        "wasm-bindgen-cli",
        WASM_BINDGEN_VERSION,
        &format!("wasm-bindgen-{WASM_BINDGEN_VERSION}"),
        "about 10 minutes",
        |root| {
            let bin = root.join("bin");
            bin.join("wasm-bindgen-test-runner").is_file()
                && reports_version(&bin.join("wasm-bindgen"), WASM_BINDGEN_VERSION)
        },
    )?;
    Ok(root.join("bin"))
}

/// `$CACHE/tools/geckodriver-<v>/bin/geckodriver` (Firefox's WebDriver
/// server), built from crates.io (no driver is ever downloaded).
fn geckodriver() -> Result<PathBuf> {
    let root = cargo_install_tool(
        "geckodriver",
        GECKODRIVER_VERSION,
        &format!("geckodriver-{GECKODRIVER_VERSION}"),
        "about 5 minutes on 2 cores",
        |root| reports_version(&root.join("bin").join("geckodriver"), GECKODRIVER_VERSION),
    )?;
    Ok(root.join("bin").join("geckodriver"))
}

/// `$CACHE/<name>/node_modules` holding `specs`, installed with npm on first
/// use; `expect` are files (relative to `node_modules`) a good install has.
fn npm_tools(name: &str, specs: &[String], expect: &[&str]) -> Result<PathBuf> {
    let dir = cache::install_dir(name, |dir| {
        println!("installing {} into the cache (npm)", specs.join(" "));
        let started = Instant::now();
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)
            .args(specs)
            .status()
            .is_ok_and(|s| s.success());
        let modules = dir.join("node_modules");
        if ok && expect.iter().all(|f| modules.join(f).is_file()) {
            println!(
                "installed {} in {:.1} s",
                specs.join(" "),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        } else {
            Err(erth_tests::Error::Install(format!(
                "`npm install {}` failed: needs Node.js/npm and the npm registry",
                specs.join(" ")
            )))
        }
    })?;
    Ok(dir.join("node_modules"))
}

/// `node_modules` with the pinned binaryen (wasm-opt) and playwright-core.
fn node_tools() -> Result<PathBuf> {
    npm_tools(
        &format!("npm-binaryen-{BINARYEN_VERSION}-playwright-core-{PLAYWRIGHT_VERSION}"),
        &[
            format!("binaryen@{BINARYEN_VERSION}"),
            format!("playwright-core@{PLAYWRIGHT_VERSION}"),
        ],
        &[".bin/wasm-opt"],
    )
}

/// `node_modules` with the pinned bundlers (`vite`, `vite5`, `esbuild`,
/// `rollup` with its node-resolve plugin, `webpack`) and `typescript`.
fn bundler_tools() -> Result<PathBuf> {
    npm_tools(
        &format!(
            "npm-bundlers-vite-{VITE_VERSION}-{VITE_OLD_VERSION}-esbuild-{ESBUILD_VERSION}-rollup-{ROLLUP_VERSION}-webpack-{WEBPACK_VERSION}-typescript-{TYPESCRIPT_VERSION}"
        ),
        &[
            format!("vite@{VITE_VERSION}"),
            format!("vite5@npm:vite@{VITE_OLD_VERSION}"),
            format!("esbuild@{ESBUILD_VERSION}"),
            format!("rollup@{ROLLUP_VERSION}"),
            format!("@rollup/plugin-node-resolve@{ROLLUP_RESOLVE_VERSION}"),
            format!("webpack@{WEBPACK_VERSION}"),
            format!("typescript@{TYPESCRIPT_VERSION}"),
        ],
        &[
            "vite/bin/vite.js",
            "vite5/bin/vite.js",
            ".bin/esbuild",
            "rollup/package.json",
            "@rollup/plugin-node-resolve/package.json",
            "webpack/package.json",
            ".bin/tsc",
        ],
    )
}

fn wasm_opt_in(node_modules: &Path) -> PathBuf {
    node_modules.join(".bin").join("wasm-opt")
}

/// Builds `bindings-wasm/pkg/` (see the module docs) and returns it with the
/// `.wasm`'s sizes.
pub fn build_wasm_package() -> Result<Package> {
    build_package(&tools()?)
}

fn build_package(tools: &Tools) -> Result<Package> {
    cargo::run(&mut cargo(&[
        "build",
        "-p",
        PACKAGE_CRATE,
        "--target",
        TARGET,
        "--profile",
        "release-wasm",
    ]))?;
    let built = target_dir()
        .join(TARGET)
        .join("release-wasm")
        .join(format!("{OUT_NAME}.wasm"));
    let crate_dir = repo_root().join("bindings-wasm");
    let pkg = crate_dir.join("pkg");
    if pkg.exists() {
        fs::remove_dir_all(&pkg).map_err(|e| format!("removing {}: {e}", pkg.display()))?;
    }
    fs::create_dir_all(&pkg).map_err(|e| format!("creating {}: {e}", pkg.display()))?;

    cargo::run(
        Command::new(tools.wasm_bindgen_bin.join("wasm-bindgen"))
            .args(["--target", "web", "--out-name", OUT_NAME, "--out-dir"])
            .arg(&pkg)
            .arg(&built),
    )?;
    let wasm = pkg.join(format!("{OUT_NAME}_bg.wasm"));
    let unoptimized = fs::metadata(&wasm)
        .map_err(|e| format!("reading {}: {e}", wasm.display()))?
        .len();
    cargo::run(
        Command::new(wasm_opt_in(&tools.node_modules))
            .arg("-Oz")
            .args([
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
                "--enable-sign-ext",
                "--enable-mutable-globals",
                "--enable-reference-types",
                "--enable-multivalue",
            ])
            .arg(&wasm)
            .arg("-o")
            .arg(&wasm),
    )?;

    for file in JS_FILES {
        let from = crate_dir.join("js").join(file);
        fs::copy(&from, pkg.join(file)).map_err(|e| format!("copying {}: {e}", from.display()))?;
    }
    let manifest = pkg.join("package.json");
    fs::write(&manifest, package_json(env!("CARGO_PKG_VERSION")))
        .map_err(|e| format!("writing {}: {e}", manifest.display()))?;

    let bytes = fs::read(&wasm).map_err(|e| format!("reading {}: {e}", wasm.display()))?;
    let env_imports: Vec<String> = wasm_imports(&bytes)
        .map_err(|e| format!("{}: {e}", wasm.display()))?
        .into_iter()
        .filter(|(module, _)| module == "env")
        .map(|(_, name)| name)
        .collect();
    if !env_imports.is_empty() {
        return Err(format!(
            "{} imports from module \"env\" (unresolved C symbols; browsers cannot provide them): {}",
            wasm.display(),
            env_imports.join(", ")
        )
        .into());
    }
    let gzip = gzip_size(&wasm)?;
    let package = Package {
        dir: pkg,
        wasm_bytes: bytes.len() as u64,
        wasm_gzip_bytes: gzip,
    };
    println!(
        "erth-sync package: {}\n  {OUT_NAME}_bg.wasm: {} raw ({} before wasm-opt), {} gzip; no imports from \"env\"",
        package.dir.display(),
        kb(package.wasm_bytes),
        kb(unoptimized),
        kb(package.wasm_gzip_bytes)
    );
    if gzip > MAX_GZIP_BYTES {
        return Err(format!(
            "the .wasm is {} gzipped, over the {} budget",
            kb(gzip),
            kb(MAX_GZIP_BYTES)
        )
        .into());
    }
    Ok(package)
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1000.0)
}

fn package_json(version: &str) -> String {
    format!(
        r#"{{
  "name": "erth-sync",
  "version": "{version}",
  "description": "Local-first SQLite in the browser (OPFS, in a Worker) that syncs with libSQL / Turso over Hrana",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "./index.js",
  "types": "./index.d.ts",
  "exports": {{
    ".": {{
      "types": "./index.d.ts",
      "default": "./index.js"
    }},
    "./worker.js": "./worker.js",
    "./package.json": "./package.json"
  }},
  "files": [
    "index.js",
    "index.d.ts",
    "worker.js",
    "errors.js",
    "{OUT_NAME}.js",
    "{OUT_NAME}.d.ts",
    "{OUT_NAME}_bg.wasm",
    "{OUT_NAME}_bg.wasm.d.ts",
    "snippets/",
    "README.md"
  ],
  "keywords": ["sqlite", "opfs", "local-first", "sync", "libsql", "turso", "wasm", "offline"]
}}
"#
    )
}

/// Size of `file` compressed with `gzip -9`.
fn gzip_size(file: &Path) -> Result<u64> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(file)
        .output()
        .map_err(|e| format!("could not run gzip ({e})"))?;
    if !out.status.success() {
        return Err(format!("gzip {} failed", file.display()).into());
    }
    Ok(out.stdout.len() as u64)
}

/// `(module, name)` of every import of a WebAssembly binary.
fn wasm_imports(bytes: &[u8]) -> std::result::Result<Vec<(String, String)>, String> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(8)? != b"\0asm\x01\0\0\0" {
        return Err("not a WebAssembly 1.0 binary".into());
    }
    let mut imports = Vec::new();
    while r.pos < bytes.len() {
        let id = r.byte()?;
        let size = r.leb()? as usize;
        let end = r.pos.checked_add(size).ok_or("section size overflows")?;
        if id == 2 {
            for _ in 0..r.leb()? {
                let module = r.name()?;
                let name = r.name()?;
                match r.byte()? {
                    0 => {
                        r.leb()?;
                    }
                    1 => {
                        r.byte()?;
                        r.limits()?;
                    }
                    2 => r.limits()?,
                    3 => {
                        r.byte()?;
                        r.byte()?;
                    }
                    4 => {
                        r.byte()?;
                        r.leb()?;
                    }
                    kind => return Err(format!("unknown import kind {kind}")),
                }
                imports.push((module, name));
            }
        }
        r.pos = end;
    }
    Ok(imports)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn leb(&mut self) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("LEB128 number too long".into())
    }

    fn name(&mut self) -> std::result::Result<String, String> {
        let len = self.leb()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "import name is not UTF-8".into())
    }

    fn limits(&mut self) -> std::result::Result<(), String> {
        let flags = self.byte()?;
        self.leb()?;
        if flags & 1 == 1 {
            self.leb()?;
        }
        Ok(())
    }
}

/// Test counts summed over every `test result:` line of a libtest-style
/// runner (cargo test, wasm-bindgen-test-runner).
fn libtest_counts(output: &str) -> Option<Counts> {
    let mut total: Option<Counts> = None;
    for line in output.lines().filter(|l| l.contains("test result:")) {
        let number_before = |word: &str| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| w.trim_end_matches(';') == word)?;
            words.get(at.checked_sub(1)?)?.parse::<u64>().ok()
        };
        let (passed, failed) = (number_before("passed")?, number_before("failed")?);
        let t = total.get_or_insert(Counts {
            passed: 0,
            failed: 0,
        });
        t.passed += passed;
        t.failed += failed;
    }
    total
}

/// Counts from the e2e script's closing `e2e: N passed, M failed` line.
fn e2e_counts(output: &str) -> Option<Counts> {
    let line = output.lines().rev().find(|l| l.starts_with("e2e: "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    Some(Counts {
        passed: words.get(1)?.parse().ok()?,
        failed: words.get(3)?.parse().ok()?,
    })
}

/// One step of the suite, for the closing summary.
struct Step {
    what: &'static str,
    elapsed: Duration,
    counts: Option<Counts>,
}

fn run_suite() -> Result<()> {
    let tools = tools()?;
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
            &["clippy", "-p", "erth-core", "--lib", "--target", TARGET],
            &[
                "clippy",
                "-p",
                "erth-core",
                "--lib",
                "--profile",
                "test",
                "--target",
                TARGET,
            ],
            &[
                "clippy",
                "-p",
                PACKAGE_CRATE,
                "--all-targets",
                "--target",
                TARGET,
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
        let mut cmd = cargo(args);
        cmd.env("PATH", tools.path_env())
            .env("CHROMEDRIVER", CHROMEDRIVER)
            .env("ERTH_TEST_HRANA_URL", server.url());
        cmd
    };
    timed("core unit tests on wasm (Node)", &mut || {
        let (ok, out) = run_captured(&mut wasm_test(&[
            "test",
            "-p",
            "erth-core",
            "--lib",
            "--target",
            TARGET,
        ]))?;
        let counts = libtest_counts(&out);
        report("core on wasm", ok, counts)?;
        Ok(counts)
    });
    timed("erth-wasm tests (Node, page, worker)", &mut || {
        let (ok, out) = run_captured(&mut wasm_test(&[
            "test",
            "-p",
            PACKAGE_CRATE,
            "--target",
            TARGET,
            "--tests",
            "--no-fail-fast",
        ]))?;
        let counts = libtest_counts(&out);
        report("erth-wasm wasm-bindgen-test", ok, counts)?;
        Ok(counts)
    });
    timed("erth-wasm tests in Firefox (page, worker)", &mut || {
        // The same tests through geckodriver (it finds Debian's `firefox`
        // wrapper on PATH; the runner adds -headless).
        apt_ensure(&[FIREFOX], &["firefox-esr"])?;
        let mut cmd = wasm_test(&[
            "test",
            "-p",
            PACKAGE_CRATE,
            "--target",
            TARGET,
            "--test",
            "page",
            "--test",
            "worker",
            "--no-fail-fast",
        ]);
        cmd.env_remove("CHROMEDRIVER")
            .env("GECKODRIVER", geckodriver()?);
        let (ok, out) = run_captured(&mut cmd)?;
        let counts = libtest_counts(&out);
        report("erth-wasm wasm-bindgen-test in Firefox", ok, counts)?;
        Ok(counts)
    });
    timed("erth-wasm tests in WebKitGTK (page, worker)", &mut || {
        // The same tests in WebKitGTK's MiniBrowser through WebKitWebDriver
        // (the runner's Safari driver), under Xvfb. It has no OPFS sync
        // access handles: the worker's persistent store is IndexedDB there.
        apt_ensure(WEBKIT_FILES, WEBKIT_PACKAGES)?;
        let tests = wasm_test(&[
            "test",
            "-p",
            PACKAGE_CRATE,
            "--target",
            TARGET,
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
            .env("SAFARIDRIVER", WEBKITDRIVER);
        let (ok, out) = run_captured(&mut cmd)?;
        let counts = libtest_counts(&out);
        report("erth-wasm wasm-bindgen-test in WebKitGTK", ok, counts)?;
        Ok(counts)
    });
    drop(server);

    let mut package = None;
    timed("package build", &mut || {
        package = Some(build_wasm_package()?);
        Ok(None)
    });

    if let Some(package) = &package {
        timed("Playwright e2e of the built package", &mut || {
            browser_script("run", "run", &tools, package, work.path(), &[])
        });
        timed("Firefox e2e (WebDriver)", &mut || {
            apt_ensure(&[FIREFOX], &["firefox-esr"])?;
            let geckodriver = geckodriver()?;
            browser_script(
                "engines",
                "firefox",
                &tools,
                package,
                work.path(),
                &[
                    ("ERTH_ENGINE", Path::new("firefox")),
                    ("ERTH_GECKODRIVER", &geckodriver),
                    ("ERTH_FIREFOX", Path::new(FIREFOX)),
                ],
            )
        });
        timed("WebKitGTK e2e (WebDriver, IndexedDB)", &mut || {
            apt_ensure(WEBKIT_FILES, WEBKIT_PACKAGES)?;
            browser_script(
                "engines",
                "webkit",
                &tools,
                package,
                work.path(),
                &[
                    ("ERTH_ENGINE", Path::new("webkit")),
                    ("ERTH_WEBKITDRIVER", Path::new(WEBKITDRIVER)),
                ],
            )
        });
        let mut bundlers = None;
        timed("bundler tools (npm, cached)", &mut || {
            bundlers = Some(bundler_tools()?);
            Ok(None)
        });
        if let Some(bundlers) = &bundlers {
            // The packed package in apps built by every bundler of the README.
            timed("npm pack -> tsc and 5 bundlers' apps", &mut || {
                browser_script(
                    "bundlers",
                    "bundlers",
                    &tools,
                    package,
                    work.path(),
                    &[("ERTH_BUNDLERS", bundlers)],
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
            kb(p.wasm_bytes),
            kb(p.wasm_gzip_bytes)
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
    tools: &Tools,
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
        .env("ERTH_NODE_MODULES", &tools.node_modules)
        .env("ERTH_CHROMIUM", CHROMIUM)
        .env("ERTH_E2E_WORK", &scratch);
    for (key, value) in extra {
        cmd.env(key, value);
    }
    let (ok, out) = run_captured(&mut cmd)?;
    drop(server);
    let counts = e2e_counts(&out);
    report(run, ok, counts)?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_env_imports_in_a_wasm_binary() {
        // (module (import "env" "f" (func)) (import "wbg" "g" (memory 1)))
        let wasm = [
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
            0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
            0x02, 0x10, 0x02, // import section, 2 entries
            0x03, b'e', b'n', b'v', 0x01, b'f', 0x00, 0x00, // env.f: func 0
            0x03, b'w', b'b', b'g', 0x01, b'g', 0x02, 0x00, 0x01, // wbg.g: memory min 1
        ];
        assert_eq!(
            wasm_imports(&wasm).expect("parses"),
            vec![("env".into(), "f".into()), ("wbg".into(), "g".into())]
        );
        assert!(wasm_imports(b"not wasm").is_err());
        assert!(wasm_imports(&wasm[..20]).is_err());
    }

    #[test]
    fn sums_libtest_result_lines() {
        let out = "test result: ok. 17 passed; 0 failed; 0 ignored\n\
                   running 3 tests\n\
                   test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 filtered out\n";
        assert_eq!(
            libtest_counts(out),
            Some(Counts {
                passed: 21,
                failed: 1
            })
        );
        assert_eq!(libtest_counts("error: could not compile"), None);
    }

    #[test]
    fn reads_the_e2e_summary() {
        assert_eq!(
            e2e_counts("ok   a\nFAIL b\ne2e: 6 passed, 1 failed\n"),
            Some(Counts {
                passed: 6,
                failed: 1
            })
        );
        assert_eq!(e2e_counts("node: not found"), None);
    }

    #[test]
    fn package_json_is_an_es_module_package_named_erth_sync() {
        let json = package_json("1.2.3");
        assert!(json.contains(r#""name": "erth-sync""#));
        assert!(json.contains(r#""version": "1.2.3""#));
        assert!(json.contains(r#""type": "module""#));
        assert!(json.contains(r#""types": "./index.d.ts""#));
        for file in JS_FILES {
            assert!(
                json.contains(&format!("\"{file}\"")),
                "{file} not published"
            );
        }
    }
}
