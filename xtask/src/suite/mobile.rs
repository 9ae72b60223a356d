//! What the `kotlin`, `swift` and `python` suites (and `cargo xtask dist`)
//! share: check the UniFFI crate, generate the bindings from the release
//! library (the x86-64 wheel's build, `crate::dist`), report the stripped
//! library's size, pick the test server (a local tursodb, or the one named
//! by `ERTH_TEST_HRANA_URL`), and list files.

use crate::cargo::{self, cargo, repo_root, target_dir};
use crate::Result;
use erth_tests::cache::{self, CacheLock};
use erth_tests::launch::LocalServer;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// The harness's variables naming an external test server (as in
/// `erth_tests::server`, which xtask does not build).
const URL_ENV: &str = "ERTH_TEST_HRANA_URL";
const TOKEN_ENV: &str = "ERTH_TEST_HRANA_TOKEN";

/// The crate with the UniFFI API and the pinned generator binary.
const MOBILE_PACKAGE: &str = "erth-mobile";
const BINDGEN_PACKAGE: &str = "uniffi-bindgen";
/// File name of the Linux build of the library.
pub const LIBRARY: &str = "liberth_mobile.so";

/// A fresh build: the stripped release library and the bindings generated
/// from it, in a temporary directory removed on drop.
#[derive(Debug)]
pub struct Built {
    /// Directory holding [`LIBRARY`] (release, stripped).
    pub lib_dir: PathBuf,
    /// `uniffi-bindgen generate --out-dir` of the chosen language.
    pub bindings: PathBuf,
    /// Scratch space for the suite (compiled tests, server database, logs).
    pub work: TempDir,
}

/// Clippy and the Rust tests of the mobile crates. (The pinned generator
/// is built by the wheel's build, see [`generate`].)
pub fn check() -> Result<()> {
    let checks: [&[&str]; 2] = [
        &[
            "clippy",
            "-p",
            MOBILE_PACKAGE,
            "-p",
            BINDGEN_PACKAGE,
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &["test", "-p", MOBILE_PACKAGE],
    ];
    for args in checks {
        cargo::run(&mut cargo(args))?;
    }
    Ok(())
}

/// Clippy and the Rust tests of the mobile crates, then, from `library`
/// (the release build `crate::dist::native_library` makes, unstripped),
/// a stripped copy with its size and the `language` bindings generated
/// from it.
pub fn build(language: &str, library: &Path) -> Result<Built> {
    check()?;
    let work = tempfile::Builder::new()
        .prefix(&format!("erth-{language}-"))
        .tempdir()
        .map_err(|e| format!("creating a work directory: {e}"))?;
    let lib_dir = work.path().join("lib");
    fs::create_dir_all(&lib_dir).map_err(|e| format!("creating {}: {e}", lib_dir.display()))?;
    let stripped = lib_dir.join(LIBRARY);
    cargo::run(
        Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(&stripped)
            .arg(library),
    )
    .map_err(|e| format!("{e} (strip comes with binutils: apt-get install -y binutils)"))?;
    let size = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("reading {}: {e}", p.display()))
    };
    let (full, small) = (size(library)?, size(&stripped)?);
    println!(
        "{LIBRARY} (release, x86_64 Linux, glibc 2.17): {:.2} MiB stripped ({small} bytes; {:.2} MiB unstripped)",
        mib(small),
        mib(full)
    );
    let bindings = work.path().join(format!("bindings-{language}"));
    generate(library, language, &bindings)?;
    Ok(Built {
        lib_dir,
        bindings,
        work,
    })
}

/// The `language` bindings of `library` (unstripped: its symbol table
/// carries the UniFFI metadata) into `out`, by the workspace's pinned
/// `uniffi-bindgen`, run from the repository root so that `uniffi.toml` is
/// found. The generator is the one the wheel's build made (maturin runs it
/// to generate the Python modules; every caller builds the wheel first):
/// building it again with `cargo build -p uniffi-bindgen` would compile it
/// anew, its dependencies' features being unified differently.
pub fn generate(library: &Path, language: &str, out: &Path) -> Result<()> {
    let generator = target_dir().join("debug").join(BINDGEN_PACKAGE);
    if !generator.is_file() {
        return Err(format!(
            "{} was not built (the wheel's build makes it: cargo xtask dist)",
            generator.display()
        )
        .into());
    }
    cargo::run(
        Command::new(generator)
            .args(["generate", "--no-format", "--library"])
            .arg(library)
            .args(["--language", language, "--out-dir"])
            .arg(out)
            .current_dir(repo_root()),
    )
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The Hrana server a suite's tests talk to, passed to them as
/// `ERTH_TEST_HRANA_URL` / `ERTH_TEST_HRANA_TOKEN` ([`TestServer::env`]).
#[derive(Debug)]
pub struct TestServer {
    url: String,
    token: Option<String>,
    _local: Option<LocalServer>,
    _lock: Option<CacheLock>,
}

impl TestServer {
    /// The variables the tests read.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![(URL_ENV, self.url.clone())];
        env.extend(self.token.clone().map(|t| (TOKEN_ENV, t)));
        env
    }
}

/// A local `tursodb --sync-server` on a fresh database inside `work`, or,
/// when `ERTH_TEST_HRANA_URL` is set, that server (its token from
/// `ERTH_TEST_HRANA_TOKEN`), held under the harness's cross-process lock for
/// external servers. The database is not wiped: the tests tag their rows and
/// check only those.
pub fn start_server(work: &Path) -> Result<TestServer> {
    if let Some(url) = std::env::var(URL_ENV).ok().filter(|u| !u.is_empty()) {
        let lock = cache::lock("external-hrana-server")?;
        println!("external Hrana server from {URL_ENV}: {url}");
        return Ok(TestServer {
            url,
            token: std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()),
            _local: None,
            _lock: Some(lock),
        });
    }
    let server = LocalServer::start(&work.join("server.db"), &work.join("server.log"), None)?;
    println!("tursodb --sync-server at {}", server.url());
    Ok(TestServer {
        url: server.url().to_string(),
        token: None,
        _local: Some(server),
        _lock: None,
    })
}

/// The files directly in `dir` whose name ends with `suffix`, sorted.
pub fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("listing {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    Ok(found)
}

/// The module map of the C module `ErthSyncFFI`: every generated header
/// (this crate's and the core's; see the two `uniffi.toml`). The phone
/// script `build-apple.sh` writes the same one.
pub fn swift_module_map(headers: &[String]) -> String {
    let lines: String = headers
        .iter()
        .map(|h| format!("    header \"{h}\"\n"))
        .collect();
    format!("module ErthSyncFFI {{\n{lines}    export *\n}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_module_map_lists_every_header() {
        assert_eq!(
            swift_module_map(&["ErthSyncFFI.h".into(), "erth_coreFFI.h".into()]),
            "module ErthSyncFFI {\n    header \"ErthSyncFFI.h\"\n    header \"erth_coreFFI.h\"\n    export *\n}\n"
        );
    }

    /// The phone build scripts cannot run here (no NDK, no Xcode), so
    /// `bindings-mobile/README.md` promises only that they parse: check it.
    #[test]
    fn phone_build_scripts_parse_with_bash_n() {
        let dir = repo_root().join("bindings-mobile").join("scripts");
        let scripts: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sh"))
            .collect();
        assert!(
            scripts.len() >= 2,
            "expected build-android.sh and build-apple.sh in {}",
            dir.display()
        );
        for script in scripts {
            let out = Command::new("bash")
                .arg("-n")
                .arg(&script)
                .output()
                .unwrap_or_else(|e| panic!("running bash -n: {e}"));
            assert!(
                out.status.success(),
                "bash -n {}: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
