//! `cargo xtask test [SUITE...]`: runs the chosen suites (all by default) in
//! order, each after its install step, times them, keeps going after a
//! failure, checks that they left the clone as they found it (`git status
//! --porcelain` unchanged: suites write only to the cache, the target
//! directory, temporary directories and gitignored build output), and ends
//! with a summary and `xtask: N passed, N failed`.

use crate::cargo::repo_root;
use crate::suite::{Suite, SUITES};
use crate::Result;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

struct Outcome {
    name: &'static str,
    elapsed: Duration,
    error: Option<String>,
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    // `--long`: the fault suites run 100x more rounds (read by the tests).
    let (long, args): (Vec<String>, Vec<String>) =
        args.iter().cloned().partition(|a| a == "--long");
    if !long.is_empty() {
        std::env::set_var("ERTH_FAULTS_LONG", "1");
    }
    let suites = select(&args)?;
    let tree_before = git_status();
    let mut outcomes = Vec::new();
    for suite in suites {
        println!("\n==== suite {}: {} ====", suite.name, suite.about);
        let start = Instant::now();
        let result = (suite.install)()
            .map_err(|e| format!("installing its tools failed: {e}"))
            .and_then(|()| (suite.run)().map_err(|e| e.to_string()));
        let outcome = Outcome {
            name: suite.name,
            elapsed: start.elapsed(),
            error: result.err(),
        };
        match &outcome.error {
            None => println!(
                "==== suite {} passed ({})",
                suite.name,
                secs(outcome.elapsed)
            ),
            Some(e) => println!(
                "==== suite {} FAILED ({}): {e}",
                suite.name,
                secs(outcome.elapsed)
            ),
        }
        outcomes.push(outcome);
    }

    if let (Some(before), Some(after)) = (tree_before, git_status()) {
        let changed = changed_lines(&before, &after);
        if !changed.is_empty() {
            println!(
                "\n==== the suites changed the clone (git status --porcelain):\n{}",
                changed.join("\n")
            );
        }
        outcomes.push(Outcome {
            name: "clean tree",
            elapsed: Duration::ZERO,
            error: (!changed.is_empty())
                .then(|| format!("the suites changed {} path(s) in the clone", changed.len())),
        });
    }

    println!("\n==== summary");
    for outcome in &outcomes {
        let verdict = if outcome.error.is_none() {
            "passed"
        } else {
            "FAILED"
        };
        println!(
            "{:<10} {verdict}  {:>8}",
            outcome.name,
            secs(outcome.elapsed)
        );
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    println!("xtask: {} passed, {failed} failed", outcomes.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The suites named in `args` (deduplicated, in suite order), or all.
fn select(args: &[String]) -> Result<Vec<&'static Suite>> {
    let valid = || SUITES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ");
    if let Some(unknown) = args
        .iter()
        .find(|a| !SUITES.iter().any(|s| s.name == a.as_str()))
    {
        return Err(format!("unknown suite {unknown:?}; valid suites: {}", valid()).into());
    }
    Ok(SUITES
        .iter()
        .filter(|s| args.is_empty() || args.iter().any(|a| a == s.name))
        .collect())
}

/// `git status --porcelain` of the clone, or `None` where git cannot tell
/// (no git, not a clone): then the clean-tree check is skipped.
fn git_status() -> Option<String> {
    let out = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(repo_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Status lines that appeared (`+`) or went away (`-`) between two runs of
/// `git status --porcelain`.
fn changed_lines(before: &str, after: &str) -> Vec<String> {
    let gone = before
        .lines()
        .filter(|l| !after.lines().any(|a| a == *l))
        .map(|l| format!("- {l}"));
    let new = after
        .lines()
        .filter(|l| !before.lines().any(|b| b == *l))
        .map(|l| format!("+ {l}"));
    gone.chain(new).collect()
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_status_lines_that_came_and_went() {
        let before = " M README.md\n?? notes.txt\n";
        let after = " M README.md\n M web-demo/screenshot.png\n";
        assert_eq!(
            changed_lines(before, after),
            ["- ?? notes.txt", "+  M web-demo/screenshot.png"]
        );
        assert!(changed_lines(before, before).is_empty());
    }
}
