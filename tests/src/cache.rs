//! The on-disk cache shared by every test binary, xtask and the demo: where
//! it lives, a cross-process lock, and idempotent installs (staged in a
//! temporary directory inside the cache, then moved into place with one
//! atomic rename, so a half-finished install is never visible).

use crate::error::{io_err, Error, Result};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// The cache directory: `$ERTH_CACHE` if set, else `$HOME/.cache/erth`
/// (or `<tmp>/erth-cache` when `HOME` is unset). Not created here.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ERTH_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("erth"),
        None => std::env::temp_dir().join("erth-cache"),
    }
}

/// An exclusive lock on `$CACHE/locks/<name>.lock`, held until dropped.
///
/// It is an `flock`, so it excludes other processes and other threads of
/// this process alike (each [`lock`] opens the file anew), and the kernel
/// releases it if the holder dies.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

/// Takes the named cross-process lock, blocking until it is free.
///
/// `name` may contain only ASCII letters, digits, `.`, `_` and `-`.
/// Blocking: from async code call it through `spawn_blocking`.
pub fn lock(name: &str) -> Result<CacheLock> {
    lock_in(&cache_dir(), name)
}

fn lock_in(root: &Path, name: &str) -> Result<CacheLock> {
    check_name(name)?;
    let dir = root.join("locks");
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let path = dir.join(format!("{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(format!("opening lock file {}", path.display())))?;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(CacheLock { _file: file }),
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => {
                return Err(Error::Io {
                    what: format!("locking {}", path.display()),
                    source: errno.into(),
                })
            }
        }
    }
}

/// Returns `$CACHE/<name>`, creating it first if it does not exist.
///
/// To create it, `fill` is called with an empty staging directory inside the
/// cache; when it succeeds the staging directory is renamed to the final
/// name. A per-name [`lock`] makes concurrent callers (threads or processes)
/// wait for the first one instead of racing; they then see the finished
/// directory. If `fill` fails nothing is installed and its error is returned.
pub fn install_dir(name: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    install_dir_in(&cache_dir(), name, fill)
}

fn install_dir_in(
    root: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    check_name(name)?;
    let target = root.join(name);
    if target.is_dir() {
        return Ok(target);
    }
    let _lock = lock_in(root, &format!("install-{name}"))?;
    if target.is_dir() {
        return Ok(target);
    }
    let prefix = format!(".staging-{name}-");
    remove_stale_staging(root, &prefix);
    let staging = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(root)
        .map_err(io_err(format!(
            "creating a staging dir in {}",
            root.display()
        )))?;
    fill(staging.path())?;
    let staged = staging.keep();
    if let Err(source) = fs::rename(&staged, &target) {
        // Best effort: the error below is the one that matters.
        let _ = fs::remove_dir_all(&staged);
        return Err(Error::Io {
            what: format!("moving {} to {}", staged.display(), target.display()),
            source,
        });
    }
    Ok(target)
}

/// Removes staging dirs left behind by an installer that was killed. Only
/// called while holding the install lock for that name, so none is in use.
fn remove_stale_staging(root: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            // Best effort: a leftover only costs disk space.
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "invalid cache entry name {name:?}: use ASCII letters, digits, '.', '_' and '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn concurrent_installs_fill_once_and_all_see_the_result() {
        let root = tempfile::tempdir().expect("temp dir");
        let calls = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let root = root.path().to_path_buf();
                let calls = Arc::clone(&calls);
                std::thread::spawn(move || {
                    install_dir_in(&root, "thing-1.0", |dir| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                        fs::write(dir.join("payload"), b"ok").map_err(io_err("writing payload"))
                    })
                })
            })
            .collect();
        for handle in handles {
            let path = handle.join().expect("installer thread").expect("install");
            assert_eq!(path, root.path().join("thing-1.0"));
            assert_eq!(fs::read(path.join("payload")).expect("payload"), b"ok");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let leftovers: Vec<_> = fs::read_dir(root.path())
            .expect("read root")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".staging"))
            .collect();
        assert!(leftovers.is_empty(), "staging dirs left: {leftovers:?}");
    }

    #[test]
    fn failed_fill_installs_nothing_and_a_retry_succeeds() {
        let root = tempfile::tempdir().expect("temp dir");
        let err = install_dir_in(root.path(), "broken", |dir| {
            fs::write(dir.join("half"), b"x").map_err(io_err("writing"))?;
            Err(Error::Install("simulated failure".into()))
        })
        .expect_err("fill failed, so must the install");
        assert!(err.to_string().contains("simulated failure"));
        assert!(!root.path().join("broken").exists());

        let path = install_dir_in(root.path(), "broken", |dir| {
            fs::write(dir.join("whole"), b"y").map_err(io_err("writing"))
        })
        .expect("retry");
        assert!(path.join("whole").is_file());
        assert!(!path.join("half").exists());
    }

    #[test]
    fn lock_excludes_other_holders_until_dropped() {
        let root = tempfile::tempdir().expect("temp dir");
        let first = lock_in(root.path(), "shared").expect("first lock");
        let root2 = root.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let start = Instant::now();
            let _second = lock_in(&root2, "shared").expect("second lock");
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
        let waited = waiter.join().expect("waiter thread");
        assert!(waited >= Duration::from_millis(150), "waited {waited:?}");
    }

    #[test]
    fn names_that_could_escape_the_cache_are_rejected() {
        let root = tempfile::tempdir().expect("temp dir");
        for name in ["", "../x", "a/b", ".hidden"] {
            assert!(
                install_dir_in(root.path(), name, |_| Ok(())).is_err(),
                "{name:?}"
            );
        }
    }
}
