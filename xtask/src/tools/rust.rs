//! Rust-side tools: rustup targets (wasm32, and the wheels' aarch64 and
//! musl), and CLIs compiled once from
//! crates.io with `cargo install` into `$CACHE/tools/<name>-<version>`:
//! `wasm-bindgen-cli` at the version the root `Cargo.toml` pins the
//! `wasm-bindgen` crate to (it must match exactly), and `geckodriver`.

use super::GECKODRIVER;
use crate::cargo::{self, cargo, repo_root};
use crate::Result;
use erth_tests::cache;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// `rustup target add wasm32-unknown-unknown` unless it is installed.
pub fn wasm_target() -> Result<()> {
    target(WASM_TARGET)
}

/// `rustup target add <triple>` unless it is installed (the standard
/// library for that target, from rustup: about 10 s each).
pub fn target(triple: &str) -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("could not run rustup ({e}): the {triple} build needs rustup"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == triple)
    {
        return Ok(());
    }
    cargo::run(Command::new("rustup").args(["target", "add", triple]))
}

/// The version `[workspace.dependencies]` of the root `Cargo.toml` pins
/// `krate` to, which must be exact (`"=X.Y.Z"`).
pub fn workspace_pin(krate: &str) -> Result<String> {
    let manifest = repo_root().join("Cargo.toml");
    let text = fs::read_to_string(&manifest)
        .map_err(|e| format!("reading {}: {e}", manifest.display()))?;
    pin_in(&text, krate).map_err(|e| format!("{}: {e}", manifest.display()).into())
}

fn pin_in(manifest: &str, krate: &str) -> std::result::Result<String, String> {
    let table: toml::Table = manifest.parse().map_err(|e| format!("not TOML: {e}"))?;
    let entry = table
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.get(krate))
        .ok_or_else(|| format!("no {krate} in [workspace.dependencies]"))?;
    let requirement = match entry {
        toml::Value::String(v) => Some(v.as_str()),
        toml::Value::Table(t) => t.get("version").and_then(toml::Value::as_str),
        _ => None,
    };
    requirement
        .and_then(|r| r.strip_prefix('='))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| {
            format!(
                "[workspace.dependencies] {krate} must be pinned exactly (\"=X.Y.Z\"): its CLI \
                 is installed at that version"
            )
        })
}

/// `$CACHE/tools/wasm-bindgen-<v>/bin`, holding `wasm-bindgen` and
/// `wasm-bindgen-test-runner` (not `--locked`: its lock file pins a crate
/// the registry lacks). About 10 minutes, once.
pub fn wasm_bindgen_cli() -> Result<PathBuf> {
    let version = workspace_pin("wasm-bindgen")?;
    let root = cargo_install(
        "wasm-bindgen-cli",
        &version,
        &format!("wasm-bindgen-{version}"),
        "about 10 minutes",
        |root| {
            let bin = root.join("bin");
            bin.join("wasm-bindgen-test-runner").is_file()
                && reports_version(&bin.join("wasm-bindgen"), &version)
        },
    )?;
    Ok(root.join("bin"))
}

/// `$CACHE/tools/geckodriver-<v>/bin/geckodriver`. About 5 minutes on 2
/// cores, once.
pub fn geckodriver() -> Result<PathBuf> {
    let root = cargo_install(
        "geckodriver",
        GECKODRIVER,
        &format!("geckodriver-{GECKODRIVER}"),
        "about 5 minutes on 2 cores",
        |root| reports_version(&root.join("bin").join("geckodriver"), GECKODRIVER),
    )?;
    Ok(root.join("bin").join("geckodriver"))
}

/// Whether `bin --version` runs and prints `version`.
fn reports_version(bin: &Path, version: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(version))
}

/// `$CACHE/tools/<dir>`, where `cargo install <krate> --version =<version>`
/// puts its binaries, built once (under a cache lock) unless `ok(root)`
/// already holds; `about` says how long the build takes.
fn cargo_install(
    krate: &str,
    version: &str,
    dir: &str,
    about: &str,
    ok: impl Fn(&Path) -> bool,
) -> Result<PathBuf> {
    let root = cache::cache_dir().join("tools").join(dir);
    if ok(&root) {
        return Ok(root);
    }
    let _lock = cache::lock(&format!("install-{dir}"))?;
    if ok(&root) {
        return Ok(root);
    }
    println!("installing {krate} {version} into the cache ({about}, once)");
    cargo::run(
        cargo(&[
            "install",
            krate,
            "--version",
            &format!("={version}"),
            "--root",
        ])
        .arg(&root),
    )?;
    if ok(&root) {
        Ok(root)
    } else {
        Err(format!(
            "cargo install {krate} finished but {} has no working {krate} {version}",
            root.display()
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exact_workspace_pins() {
        let manifest = r#"
[workspace.dependencies]
wasm-bindgen = "=0.2.130"
uniffi = { version = "=0.32.2", features = ["cli"] }
serde = "1"
"#;
        assert_eq!(pin_in(manifest, "wasm-bindgen").as_deref(), Ok("0.2.130"));
        assert_eq!(pin_in(manifest, "uniffi").as_deref(), Ok("0.32.2"));
        assert!(pin_in(manifest, "serde").is_err_and(|e| e.contains("pinned exactly")));
        assert!(pin_in(manifest, "missing").is_err());
    }

    #[test]
    fn the_workspace_pins_the_cli_crates() {
        for krate in ["wasm-bindgen", "uniffi"] {
            let pin = workspace_pin(krate).unwrap_or_else(|e| panic!("{e}"));
            assert!(pin.split('.').count() == 3, "{krate} = {pin}");
        }
    }
}
