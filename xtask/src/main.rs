//! `cargo xtask`: the project's task runner.
//!
//! - `cargo xtask test [SUITE...]` installs what each suite needs into the
//!   cache and runs the suites (all of them, in order, by default).
//! - `cargo xtask demo [--port P] [--remote URL] [--cli]` builds the npm
//!   package, starts a local tursodb and serves the web demo (`--cli`: a
//!   scripted two-replica story with the `erth` CLI instead).
//! - `cargo xtask bench [--quick] [--only SECTIONS]` installs the baselines,
//!   runs the benchmarks in release and rewrites `BENCHMARKS.md`.

mod bench;
mod cargo;
mod demo;
mod serve;
mod suite;
mod test;
mod wasm;

use std::process::ExitCode;

/// xtask's result type: errors are only ever printed.
type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const USAGE: &str = "usage:
  cargo xtask test [SUITE...]                  run test suites (default: all)
  cargo xtask demo [--port P] [--remote URL] [--cli]
                                               web demo: two devices syncing (--cli: the CLI story)
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
        "bench" => bench::run(rest).map(|()| ExitCode::SUCCESS),
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
