//! External tools the tests run, installed on first use into the cache (see
//! [`crate::cache`]): the pinned `tursodb` binary, the Hrana server, from its
//! npm package. Here rather than in xtask because the integration tests and
//! the benchmarks install it without xtask too; xtask's `tools` module, which
//! installs every other tool, calls this one.

use crate::cache;
use crate::error::{io_err, Error, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The pinned `tursodb` version (npm package `@tursodatabase/cli-linux-x64-gnu`).
pub const TURSODB_VERSION: &str = "0.7.0";
const TURSODB_PACKAGE: &str = "@tursodatabase/cli-linux-x64-gnu";

/// Path of the pinned `tursodb` binary, `$CACHE/tursodb-<version>/tursodb`,
/// installing it first if needed (`npm pack` of the npm package, about
/// 25 MB download, 100 MB unpacked).
///
/// Blocking, and slow the first time: from async code call it through
/// `spawn_blocking`. Needs `npm` and `tar` on `PATH` and Linux x86-64.
pub fn tursodb() -> Result<PathBuf> {
    if (std::env::consts::OS, std::env::consts::ARCH) != ("linux", "x86_64") {
        return Err(Error::Install(format!(
            "tursodb: only the linux x86-64 build ({TURSODB_PACKAGE}) is wired up, \
             this is {}-{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        )));
    }
    let dir = cache::install_dir(&format!("tursodb-{TURSODB_VERSION}"), install_tursodb)?;
    let bin = dir.join("tursodb");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(Error::Install(format!(
            "{} is missing although {} exists: delete that directory and retry",
            bin.display(),
            dir.display()
        )))
    }
}

fn install_tursodb(dir: &Path) -> Result<()> {
    let spec = format!("{TURSODB_PACKAGE}@{TURSODB_VERSION}");
    eprintln!("erth-tests: installing tursodb {TURSODB_VERSION} (npm pack {spec}) ...");
    run(
        Command::new("npm")
            .args(["pack", "--silent", &spec])
            .current_dir(dir),
        "npm",
        "install Node.js and npm (Debian: apt-get install -y npm); npm fetches tursodb",
    )?;
    let tarball = find_tarball(dir)?;
    run(
        Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(dir),
        "tar",
        "install tar and gzip (Debian: apt-get install -y tar gzip)",
    )?;
    let unpacked = dir.join("package").join("tursodb");
    let bin = dir.join("tursodb");
    fs::rename(&unpacked, &bin).map_err(io_err(format!(
        "{spec}: expected {} in the tarball",
        unpacked.display()
    )))?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))
        .map_err(io_err(format!("chmod +x {}", bin.display())))?;
    fs::remove_dir_all(dir.join("package")).map_err(io_err("removing the unpacked package"))?;
    fs::remove_file(&tarball).map_err(io_err(format!("removing {}", tarball.display())))?;

    let out = run(
        Command::new(&bin).arg("--version"),
        "tursodb",
        "the downloaded binary does not run on this machine",
    )?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !version.contains(TURSODB_VERSION) {
        return Err(Error::Install(format!(
            "{spec}: `tursodb --version` printed {:?}, expected {TURSODB_VERSION}",
            version.trim()
        )));
    }
    Ok(())
}

fn find_tarball(dir: &Path) -> Result<PathBuf> {
    let entries = fs::read_dir(dir).map_err(io_err(format!("listing {}", dir.display())))?;
    entries
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|ext| ext == "tgz"))
        .ok_or_else(|| Error::Install(format!("npm pack left no .tgz in {}", dir.display())))
}

/// Runs a command to completion; a missing program or a failure becomes an
/// [`Error::Install`] that includes `hint` and the command's stderr.
fn run(cmd: &mut Command, program: &str, hint: &str) -> Result<Output> {
    let out = cmd.output().map_err(|e| {
        Error::Install(format!(
            "could not run `{program}` ({e}): {hint}; then rerun the tests"
        ))
    })?;
    if out.status.success() {
        return Ok(out);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(Error::Install(format!(
        "`{cmd:?}` failed ({}): {}\nhint: {hint}",
        out.status,
        stderr.trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tursodb_is_installed_and_runs() {
        let bin = tursodb().expect("tursodb install");
        assert!(bin.ends_with(format!("tursodb-{TURSODB_VERSION}/tursodb")));
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .expect("run tursodb");
        assert!(String::from_utf8_lossy(&out.stdout).contains(TURSODB_VERSION));
    }
}
