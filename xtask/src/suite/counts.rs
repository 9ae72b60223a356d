//! Test counts read from the runners' output (libtest, the browser scripts'
//! `e2e: N passed, M failed` line, JUnit, XCTest, pytest helpers), and the
//! verdict a suite step gives from them.

use crate::Result;

/// Test counts read from a runner's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
}

/// Prints `<runner>: N passed, N failed` and turns a failed run, a run
/// without tests or unreadable counts into an error.
pub fn report(runner: &str, ok: bool, counts: Option<Counts>) -> Result<()> {
    if let Some(c) = counts {
        println!("{runner}: {} passed, {} failed", c.passed, c.failed);
    }
    match counts {
        Some(c) if c.failed > 0 => Err(format!("{runner}: {} test(s) failed", c.failed).into()),
        _ if !ok => Err(format!("{runner} failed (see its output above)").into()),
        None => Err(format!("{runner}: could not read the test counts from its output").into()),
        Some(c) if c.passed == 0 => Err(format!("{runner}: ran no test").into()),
        Some(_) => Ok(()),
    }
}

/// The number right after `prefix` in `text` (first occurrence).
pub fn number_after(text: &str, prefix: &str) -> Option<u64> {
    let start = text.find(prefix)? + prefix.len();
    let digits: String = text[start..]
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Counts summed over every `test result:` line of a libtest-style runner
/// (cargo test, wasm-bindgen-test-runner).
pub fn libtest(output: &str) -> Option<Counts> {
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

/// Counts from a browser script's closing `e2e: N passed, M failed` line.
pub fn e2e(output: &str) -> Option<Counts> {
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
    fn reads_runner_counts() {
        let junit_ok = "JUnit version 4.13.2\n.......\nTime: 8.4\n\nOK (7 tests)\n";
        assert_eq!(number_after(junit_ok, "OK ("), Some(7));
        let junit_bad = "FAILURES!!!\nTests run: 7,  Failures: 2\n";
        assert_eq!(number_after(junit_bad, "Tests run:"), Some(7));
        assert_eq!(number_after(junit_bad, "Failures:"), Some(2));
        let xctest = "\t Executed 7 tests, with 1 failure (0 unexpected) in 8.55 (8.55) seconds";
        assert_eq!(number_after(xctest, "Executed"), Some(7));
        assert_eq!(number_after(xctest, "with"), Some(1));
        assert_eq!(number_after("nothing here", "Executed"), None);
    }

    #[test]
    fn a_run_without_tests_or_with_failures_is_an_error() {
        let counts = |passed, failed| Some(Counts { passed, failed });
        assert!(report("t", true, counts(3, 0)).is_ok());
        assert!(report("t", true, counts(0, 0)).is_err());
        assert!(report("t", false, counts(2, 1)).is_err());
        assert!(report("t", false, counts(3, 0)).is_err());
        assert!(report("t", true, None).is_err());
    }

    #[test]
    fn sums_libtest_result_lines() {
        let out = "test result: ok. 17 passed; 0 failed; 0 ignored\n\
                   running 3 tests\n\
                   test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 filtered out\n";
        assert_eq!(
            libtest(out),
            Some(Counts {
                passed: 21,
                failed: 1
            })
        );
        assert_eq!(libtest("error: could not compile"), None);
    }

    #[test]
    fn reads_the_e2e_closing_line() {
        assert_eq!(
            e2e("ok   a\nFAIL b\ne2e: 9 passed, 1 failed\n"),
            Some(Counts {
                passed: 9,
                failed: 1
            })
        );
        assert_eq!(e2e("e2e: ERTH_CLI is not set"), None);
        assert_eq!(e2e("node: not found"), None);
    }
}
