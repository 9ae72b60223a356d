//! Swift's toolchain: Debian trixie's `swiftlang`, which cannot be installed
//! on this bookworm host, lives in a trixie chroot in the cache
//! (`$CACHE/swift-trixie`, about 3 GB, built once by `mmdebstrap` in 3-4
//! minutes). `swiftc` needs `/proc` and `/dev`: [`Mounts`] mounts them for a
//! run and unmounts them on every exit path (a run killed by a signal leaves
//! them mounted; the next run removes such stale mounts first). Nothing
//! under the chroot is ever deleted while something is mounted in it.

use super::apt;
use crate::cargo;
use crate::Result;
use erth_tests::cache;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The chroot's directory name in the cache.
pub const CHROOT: &str = "swift-trixie";
/// What the chroot is made of (`mmdebstrap` arguments before the target).
const MMDEBSTRAP_ARGS: &[&str] = &[
    "--variant=apt",
    "--include=swiftlang,libc6-dev,libstdc++-14-dev",
    "trixie",
];
/// The Swift driver inside the chroot (what `swift` and `swiftc` link to).
const SWIFT_DRIVER: &str = "usr/libexec/swift/bin/swift-driver";
pub const PATH_IN_CHROOT: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The trixie chroot with `swift`, built first if missing: into a
/// `.building-*` directory of the cache, then renamed into place.
pub fn chroot() -> Result<PathBuf> {
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
    apt::ensure(&apt::MMDEBSTRAP)?;
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
pub struct Mounts {
    points: Vec<PathBuf>,
}

impl Mounts {
    /// Mounts `/proc` and `/dev` into the chroot at `root`.
    pub fn new(root: &Path) -> Result<Mounts> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
