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
    let package = Package::assemble(
        &root,
        &repo_root()
            .join("bindings-mobile")
            .join("tests")
            .join("swift"),
        &built.bindings,
        &built.lib_dir,
    )?;

    let mounts = Mounts::new(&root)?;
    let server = mobile::start_server(built.work.path())?;
    let swift = |args: &[&str]| {
        let mut cmd = package.command(&server.env(), "swift");
        cmd.args(args).arg("--package-path").arg(&package.inside);
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

/// A SwiftPM package assembled in the chroot's `/tmp` (removed on drop):
/// a template directory (its `Package.swift` and own sources) plus the
/// generated Swift sources (this crate's and the core's), the hand-written
/// `bindings-mobile/swift/` sources, the headers with one module map
/// (target `ErthSyncFFI`), and the library in `lib/`.
pub struct Package {
    /// The chroot's directory.
    pub root: PathBuf,
    /// The package, as seen from inside the chroot.
    pub inside: PathBuf,
    /// The TMPDIR of the commands run in it, as seen from inside.
    tmp_inside: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Package {
    /// Assembles `template` with the bindings generated into `generated` and
    /// the library in `lib_dir`. The caller holds the chroot's lock.
    pub fn assemble(
        root: &Path,
        template: &Path,
        generated: &Path,
        lib_dir: &Path,
    ) -> Result<Package> {
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
        copy_tree(template, pkg)?;
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
            &lib_dir.join(mobile::LIBRARY),
            &pkg.join("lib").join(mobile::LIBRARY),
        )?;
        Ok(Package {
            root: root.to_path_buf(),
            inside: inside(root, pkg)?,
            tmp_inside: inside(root, &tmpdir)?,
            _scratch: scratch,
        })
    }

    /// `program` run inside the chroot with a clean environment plus `env`.
    pub fn command(&self, env: &[(&str, String)], program: &str) -> Command {
        let argv = self.argv(env, program);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }

    /// [`Package::command`] as its arguments, `chroot` first.
    pub fn argv(&self, env: &[(&str, String)], program: &str) -> Vec<String> {
        let mut argv = vec!["chroot".to_owned(), self.root.display().to_string()];
        argv.extend(["/usr/bin/env", "-i", PATH_IN_CHROOT, "HOME=/root"].map(String::from));
        argv.push(format!("TMPDIR={}", self.tmp_inside.display()));
        argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        argv.push(program.to_owned());
        argv
    }

    /// A directory for the package's commands' files, outside and inside the chroot.
    pub fn tmp(&self) -> PathBuf {
        self.root.join(
            self.tmp_inside
                .strip_prefix("/")
                .unwrap_or(&self.tmp_inside),
        )
    }
}

/// `path` (under the chroot's directory `root`) as seen from inside the chroot.
pub fn inside(root: &Path, path: &Path) -> Result<PathBuf> {
    let rel = path
        .strip_prefix(root)
        .map_err(|e| format!("{} is not inside the chroot: {e}", path.display()))?;
    Ok(Path::new("/").join(rel))
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
