//! `cargo xtask`: the project's task runner.
//!
//! - `cargo xtask test [SUITE...]` installs what each suite needs into the
//!   cache and runs the suites (all of them, in order, by default).
//! - `cargo xtask demo [--port P] [--remote URL] [--cli]` builds the npm
//!   package, starts a local tursodb and serves the web demo (`--cli`: a
//!   scripted two-replica story with the `erth` CLI instead).
//! - `cargo xtask screenshot` runs the web demo's e2e story and refreshes
//!   the README's picture, `web-demo/screenshot.png` (no suite writes it).
//! - `cargo xtask bench [--quick] [--only SECTIONS]` installs the baselines,
//!   runs the benchmarks in release and rewrites `BENCHMARKS.md`.
//! - `cargo xtask dist` builds every distributable into `<target>/dist/`
//!   ([`dist`]): the npm tarball, the Python wheels and sdist, the `erth`
//!   binary, the Kotlin and Swift archives, `SHA256SUMS`.
//!
//! Every tool is installed by [`tools`]; [`package`] builds the npm package
//! the wasm and e2e suites, the demo and the browser benchmark use;
//! [`serve`] is the demo's static server.
//! - `cargo xtask circles [CRATE_DIR...]` prints the import circles among the
//!   files of each crate (default: `core` and `xtask`), found by
//!   [`circles`]; its tests run the same check in the `core` suite.

mod bench;
mod cargo;
mod circles;
mod demo;
mod dist;
mod package;
mod serve;
mod suite;
mod test;
mod tools;

use std::process::ExitCode;

/// xtask's result type: errors are only ever printed.
type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const USAGE: &str = "usage:
  cargo xtask test [SUITE...]                  run test suites (default: all)
  cargo xtask demo [--port P] [--remote URL] [--cli]
                                               web demo: two devices syncing (--cli: the CLI story)
  cargo xtask dist                             every package (npm, wheels, sdist, CLI, Kotlin, Swift) into <target>/dist
  cargo xtask screenshot                       refresh web-demo/screenshot.png from the e2e story
  cargo xtask circles [CRATE_DIR...]           import circles among a crate's files (default: core xtask)
  cargo xtask bench [--quick] [--only SECTIONS]  benchmarks vs baselines, rewrites BENCHMARKS.md";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "test" => test::run(rest),
        "demo" => demo::run(rest).map(|()| ExitCode::SUCCESS),
        "dist" => dist::run(rest).map(|()| ExitCode::SUCCESS),
        "bench" => bench::run(rest).map(|()| ExitCode::SUCCESS),
        "circles" => circles::run(rest),
        "screenshot" if rest.is_empty() => suite::e2e::screenshot().map(|()| ExitCode::SUCCESS),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}").into()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
