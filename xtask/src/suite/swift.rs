//! Suite `swift`: the generated Swift bindings with a Linux Swift toolchain.
//! Builds the release `liberth_mobile.so`, generates the `ErthSync` module
//! from it, assembles the SwiftPM package in `bindings-mobile/tests/swift/`
//! with the generated sources (this crate's and the core's), the
//! hand-written `bindings-mobile/swift/` sources, the headers, one module
//! map and the library, and runs `swift build --build-tests` and `swift test`
//! (XCTest) against a local tursodb (or `ERTH_TEST_HRANA_URL`; see
//! [`mobile::start_server`]).
//!
//! The toolchain is Debian trixie's `swiftlang`, which cannot be installed
//! on this bookworm host, so it lives in a trixie chroot in the cache
//! (`$CACHE/swift-trixie`, ~3 GB, built once by `mmdebstrap` in 3-4 minutes).
//! `swiftc` needs `/proc` and `/dev`: they are mounted for the run by
//! [`Mounts`], which unmounts them on every exit path (a run killed by a
//! signal leaves them mounted; the next run removes such stale mounts first).
//! Nothing under the chroot is ever deleted while something is mounted in
//! it.

use super::mobile::{self, Counts};
use super::{install_tursodb, Suite};
use crate::cargo::{self, repo_root};
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

/// The chroot's directory name in the cache.
const CHROOT: &str = "swift-trixie";
/// What the chroot is made of (`mmdebstrap` arguments before the target).
const MMDEBSTRAP_ARGS: &[&str] = &[
    "--variant=apt",
    "--include=swiftlang,libc6-dev,libstdc++-14-dev",
    "trixie",
];
/// The Swift driver inside the chroot (what `swift` and `swiftc` link to).
const SWIFT_DRIVER: &str = "usr/libexec/swift/bin/swift-driver";
const PATH_IN_CHROOT: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn install() -> Result<()> {
    install_tursodb()?;
    let root = chroot()?;
    println!("swift toolchain: chroot {}", root.display());
    Ok(())
}

/// The trixie chroot with `swift`, built first if missing: into a
/// `.building-*` directory of the cache, then renamed into place.
fn chroot() -> Result<PathBuf> {
    let cache_dir = cache::cache_dir();
    let root = cache_dir.join(CHROOT);
    if is_ready(&root) {
        return Ok(root);
    }
    let _lock = cache::lock(&format!("install-{CHROOT}"))?;
    if is_ready(&root) {
        return Ok(root);
    }
    if root.exists() {
        return Err(format!(
            "{} exists but has no {SWIFT_DRIVER}: a broken chroot. Check that nothing is \
             mounted in it (findmnt -R {0}), delete it, and rerun",
            root.display()
        )
        .into());
    }
    mobile::apt_ensure(&["/usr/bin/mmdebstrap"], &["mmdebstrap"])?;
    remove_stale_builds(&cache_dir)?;
    let building = cache_dir.join(format!(".building-{CHROOT}-{}", std::process::id()));
    fs::create_dir_all(&building).map_err(|e| format!("creating {}: {e}", building.display()))?;
    println!(
        "building the Swift chroot (mmdebstrap {} {}): about 3 GB, 3-4 minutes, once",
        MMDEBSTRAP_ARGS.join(" "),
        building.display()
    );
    let built = cargo::run(
        Command::new("mmdebstrap")
            .args(MMDEBSTRAP_ARGS)
            .arg(&building),
    );
    // mmdebstrap mounts into the target while it works; never delete or
    // move the tree while anything is still mounted there.
    let left = unmount_all_under(&building)?;
    if !left.is_empty() {
        return Err(format!(
            "mmdebstrap left {} mounted; unmount by hand (umount -R {}) before deleting it",
            left.join(", "),
            building.display()
        )
        .into());
    }
    let outcome = built.map_err(|e| {
        format!(
            "{e}: could not build the Swift chroot (needs root, mmdebstrap and Debian's trixie \
             packages from the mirror)"
        )
    });
    if let Err(e) = outcome {
        // Best effort: the error above is what matters; nothing is mounted.
        let _ = fs::remove_dir_all(&building);
        return Err(e.into());
    }
    if !is_ready(&building) {
        let _ = fs::remove_dir_all(&building);
        return Err(format!("mmdebstrap finished but the chroot has no {SWIFT_DRIVER}").into());
    }
    fs::rename(&building, &root)
        .map_err(|e| format!("moving {} to {}: {e}", building.display(), root.display()))?;
    Ok(root)
}

/// Whether the chroot has the Swift driver. (`usr/bin/swift` is an absolute
/// symlink, meaningful only inside the chroot.)
fn is_ready(root: &Path) -> bool {
    root.join(SWIFT_DRIVER).is_file()
}

/// Removes `.building-swift-trixie-*` left by a killed build, unless
/// something is still mounted in it.
fn remove_stale_builds(cache_dir: &Path) -> Result<()> {
    let prefix = format!(".building-{CHROOT}-");
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let path = entry.path();
        let left = unmount_all_under(&path)?;
        if left.is_empty() {
            fs::remove_dir_all(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        } else {
            return Err(format!(
                "a stale chroot build {} still has {} mounted; unmount by hand",
                path.display(),
                left.join(", ")
            )
            .into());
        }
    }
    Ok(())
}

/// Mount points at or under `dir`, deepest first, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    Ok(points)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.clone().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&code, 8) {
                out.push(char::from(byte));
                for _ in 0..3 {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Unmounts everything at or under `dir`; returns what is still mounted.
fn unmount_all_under(dir: &Path) -> Result<Vec<String>> {
    for point in mounts_under(dir)? {
        unmount(&point);
    }
    Ok(mounts_under(dir)?
        .iter()
        .map(|p| p.display().to_string())
        .collect())
}

/// `umount`, falling back to a lazy unmount (detached now, freed when the
/// last user goes). Reports instead of failing: it runs from `Drop`.
fn unmount(point: &Path) {
    let plain = Command::new("umount").arg(point).status();
    if plain.is_ok_and(|s| s.success()) {
        return;
    }
    let lazy = Command::new("umount").arg("-l").arg(point).status();
    if !lazy.is_ok_and(|s| s.success()) {
        eprintln!(
            "xtask: WARNING: could not unmount {}; unmount it by hand and do not delete the \
             chroot before",
            point.display()
        );
    }
}

/// `/proc` and `/dev` mounted into the chroot for one run; unmounted on drop
/// (so also on every error path and on panic).
struct Mounts {
    points: Vec<PathBuf>,
}

impl Mounts {
    fn new(root: &Path) -> Result<Mounts> {
        let proc_dir = root.join("proc");
        let dev_dir = root.join("dev");
        // Stale mounts of a killed run (we hold the chroot lock, so no other
        // run uses them).
        for point in [&dev_dir, &proc_dir] {
            for stale in mounts_under(point)? {
                unmount(&stale);
            }
        }
        let mut mounts = Mounts { points: Vec::new() };
        mounts.mount(
            Command::new("mount").args(["-t", "proc", "proc"]),
            &proc_dir,
        )?;
        mounts.mount(Command::new("mount").args(["--bind", "/dev"]), &dev_dir)?;
        Ok(mounts)
    }

    fn mount(&mut self, cmd: &mut Command, point: &Path) -> Result<()> {
        cargo::run(cmd.arg(point))
            .map_err(|e| format!("{e}: mounting into the Swift chroot needs root"))?;
        self.points.push(point.to_path_buf());
        Ok(())
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for point in self.points.iter().rev() {
            unmount(point);
        }
    }
}

fn run_suite() -> Result<()> {
    let root = chroot()?;
    let built = mobile::build("swift")?;
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
    let (ok, output) = mobile::run_captured(&mut swift(&[
        "test",
        "--skip-build",
        "--disable-swift-testing",
    ]))?;
    drop(server);
    drop(mounts);
    mobile::report("xctest", ok, xctest_counts(&output))
}

/// Counts from XCTest's last `Executed N tests, with M failures` line (the
/// one for all tests).
fn xctest_counts(output: &str) -> Option<Counts> {
    let last = &output[output.rfind("Executed ")?..];
    let run = mobile::number_after(last, "Executed ")?;
    let failed = mobile::number_after(last, "with ")?;
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

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape_mount_path(r"/plain"), "/plain");
        assert_eq!(unescape_mount_path(r"/x\\y"), r"/x\\y");
    }

    #[test]
    fn nothing_is_mounted_under_a_fresh_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(mounts_under(dir.path()).expect("mountinfo").is_empty());
        assert!(!mounts_under(Path::new("/")).expect("mountinfo").is_empty());
    }
}
