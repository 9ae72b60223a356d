//! Suite `swift`: the generated Swift bindings with a Linux Swift toolchain.
//! Builds the release `liberth_mobile.so`, generates the `ErthSync` module
//! from it, assembles the SwiftPM package in `bindings-mobile/tests/swift/`
//! with the generated sources (this crate's and the core's), the
//! hand-written `bindings-mobile/swift/` sources, the headers, one module
//! map and the library, and runs `swift build --build-tests` and `swift test`
//! (XCTest) against a local tursodb (or `ERTH_TEST_HRANA_URL`; see
//! [`mobile::start_server`]), inside the Debian trixie chroot of
//! [`crate::tools::swift`].

use super::counts::{self, Counts};
use super::{install_tursodb, mobile, Suite};
use crate::cargo::{self, repo_root};
use crate::tools::swift::{chroot, Mounts, CHROOT, PATH_IN_CHROOT};
use crate::Result;
use erth_tests::cache;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SUITE: Suite = Suite {
    name: "swift",
    about: "UniFFI Swift bindings: XCTest with a Linux Swift toolchain against a local tursodb",
    install,
    run: run_suite,
};

fn install() -> Result<()> {
    install_tursodb()?;
    // The library is the x86-64 wheel's build (maturin with zig).
    crate::tools::python::tools()?;
    let root = chroot()?;
    println!("swift toolchain: chroot {}", root.display());
    Ok(())
}

fn run_suite() -> Result<()> {
    let root = chroot()?;
    let built = {
        let wheels = tempfile::Builder::new()
            .prefix("erth-wheel-")
            .tempdir()
            .map_err(|e| format!("creating a work directory: {e}"))?;
        let (_wheel, library) = crate::dist::native_library(wheels.path())?;
        mobile::build("swift", &library)?
    };
    let _chroot_lock = cache::lock(&format!("use-{CHROOT}"))?;

    // Scratch space inside the chroot's /tmp, removed on drop: the package,
    // and the TMPDIR of the swift tools and tests (they leave files there).
    let tmp = root.join("tmp");
    let scratch = tempfile::Builder::new()
        .prefix("erth-swift-")
        .tempdir_in(&tmp)
        .map_err(|e| format!("creating a scratch dir in {}: {e}", tmp.display()))?;
    let pkg = &scratch.path().join("package");
    let tmpdir = scratch.path().join("tmp");
    fs::create_dir_all(&tmpdir).map_err(|e| format!("creating {}: {e}", tmpdir.display()))?;
    copy_tree(
        &repo_root()
            .join("bindings-mobile")
            .join("tests")
            .join("swift"),
        pkg,
    )?;
    let generated = &built.bindings;
    let ffi = pkg.join("Sources").join("ErthSyncFFI");
    let sources = pkg.join("Sources").join("ErthSync");
    let hand_written = repo_root().join("bindings-mobile").join("swift");
    let swift_files = [
        mobile::files_ending(generated, ".swift")?,
        mobile::files_ending(&hand_written, ".swift")?,
    ]
    .concat();
    let headers = mobile::files_ending(generated, ".h")?;
    if swift_files.len() < 3 || headers.len() < 2 {
        return Err(format!(
            "expected the generated Swift and headers of erth-mobile and erth-core in {}",
            generated.display()
        )
        .into());
    }
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    for file in &swift_files {
        copy_file(file, &sources.join(name(file).unwrap_or_default()))?;
    }
    let mut header_names = Vec::new();
    for header in &headers {
        let header_name = name(header).unwrap_or_default();
        copy_file(header, &ffi.join(&header_name))?;
        header_names.push(header_name);
    }
    let map = ffi.join("module.modulemap");
    fs::write(&map, mobile::swift_module_map(&header_names))
        .map_err(|e| format!("writing {}: {e}", map.display()))?;
    copy_file(
        &built.lib_dir.join(mobile::LIBRARY),
        &pkg.join("lib").join(mobile::LIBRARY),
    )?;
    let inside = |path: &Path| -> Result<PathBuf> {
        let rel = path
            .strip_prefix(&root)
            .map_err(|e| format!("{} is not inside the chroot: {e}", path.display()))?;
        Ok(Path::new("/").join(rel))
    };
    let (pkg_inside, tmp_inside) = (inside(pkg)?, inside(&tmpdir)?);

    let mounts = Mounts::new(&root)?;
    let server = mobile::start_server(built.work.path())?;
    let swift = |args: &[&str]| {
        let mut cmd = Command::new("chroot");
        cmd.arg(&root)
            .args(["/usr/bin/env", "-i", PATH_IN_CHROOT, "HOME=/root"])
            .arg(format!("TMPDIR={}", tmp_inside.display()))
            .args(server.env().iter().map(|(k, v)| format!("{k}={v}")))
            .arg("swift")
            .args(args)
            .arg("--package-path")
            .arg(&pkg_inside);
        cmd
    };
    cargo::run(&mut swift(&["build", "--build-tests"]))?;
    let (ok, output) = cargo::run_captured(&mut swift(&[
        "test",
        "--skip-build",
        "--disable-swift-testing",
    ]))?;
    drop(server);
    drop(mounts);
    counts::report("xctest", ok, xctest_counts(&output))
}

/// Counts from XCTest's last `Executed N tests, with M failures` line (the
/// one for all tests).
fn xctest_counts(output: &str) -> Option<Counts> {
    let last = &output[output.rfind("Executed ")?..];
    let run = counts::number_after(last, "Executed ")?;
    let failed = counts::number_after(last, "with ")?;
    Some(Counts {
        passed: run.saturating_sub(failed),
        failed,
    })
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()).into())
}

/// Copies the files under `from` into `to` (skipping SwiftPM's `.build`).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let entries = fs::read_dir(from).map_err(|e| format!("listing {}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == ".build" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name))?;
        } else {
            copy_file(&path, &to.join(&name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_xctest_summary() {
        let out = "\t Executed 2 tests, with 0 failures (0 unexpected) in 1.0 (1.0) seconds\n\
                   Test Suite 'All tests' failed\n\
                   \t Executed 9 tests, with 3 failures (0 unexpected) in 8.5 (8.5) seconds\n";
        assert_eq!(
            xctest_counts(out),
            Some(Counts {
                passed: 6,
                failed: 3
            })
        );
        assert_eq!(xctest_counts("error: build failed"), None);
    }
}
