//! npm packages, each set installed once with `npm install --prefix` into
//! its own cache directory named after its pins, and checked: every package
//! must report its pinned version in its `package.json`.

use super::{
    BINARYEN, ESBUILD, KOTLIN, PLAYWRIGHT_CORE, REACT, ROLLUP, ROLLUP_NODE_RESOLVE, SQLITE_WASM,
    TURSO_SYNC, TYPESCRIPT, TYPES_REACT, TYPES_REACT_DOM, VITE, VITE_5, VUE, WEBPACK,
};
use crate::Result;
use erth_tests::cache;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One exact pin: `package@version`, installed as `node_modules/<dir>`
/// (`dir` differs from `package` for an alias such as `vite5`).
#[derive(Debug, Clone, Copy)]
struct Pin {
    dir: &'static str,
    package: &'static str,
    version: &'static str,
}

const fn pin(package: &'static str, version: &'static str) -> Pin {
    Pin {
        dir: package,
        package,
        version,
    }
}

impl Pin {
    fn spec(&self) -> String {
        if self.dir == self.package {
            format!("{}@{}", self.package, self.version)
        } else {
            format!("{}@npm:{}@{}", self.dir, self.package, self.version)
        }
    }
}

/// `node_modules/.bin/wasm-opt` of the pinned binaryen.
pub fn wasm_opt() -> Result<PathBuf> {
    let dir = install(
        &format!("npm-binaryen-{BINARYEN}"),
        &[pin("binaryen", BINARYEN)],
    )?;
    existing(dir.join("node_modules").join(".bin").join("wasm-opt"))
}

/// `node_modules` holding the pinned playwright-core (it drives Debian's
/// Chromium; Playwright's browser download is never used).
pub fn playwright_core() -> Result<PathBuf> {
    let dir = install(
        &format!("node-playwright-core-{PLAYWRIGHT_CORE}"),
        &[pin("playwright-core", PLAYWRIGHT_CORE)],
    )?;
    Ok(dir.join("node_modules"))
}

/// `node_modules` with the pinned bundlers (`vite`, `vite5`, `esbuild`,
/// `rollup` with its node-resolve plugin, `webpack`) and `typescript`.
pub fn bundlers() -> Result<PathBuf> {
    let dir = install(
        &format!(
            "npm-bundlers-vite-{VITE}-{VITE_5}-esbuild-{ESBUILD}-rollup-{ROLLUP}-webpack-{WEBPACK}-typescript-{TYPESCRIPT}"
        ),
        &[
            pin("vite", VITE),
            Pin {
                dir: "vite5",
                package: "vite",
                version: VITE_5,
            },
            pin("esbuild", ESBUILD),
            pin("rollup", ROLLUP),
            pin("@rollup/plugin-node-resolve", ROLLUP_NODE_RESOLVE),
            pin("webpack", WEBPACK),
            pin("typescript", TYPESCRIPT),
        ],
    )?;
    Ok(dir.join("node_modules"))
}

/// `node_modules` holding React, ReactDOM (with their types) and Vue: the
/// peer dependencies of `erth-sync/react` and `erth-sync/vue`, which the
/// bundler test links into its framework apps.
pub fn frameworks() -> Result<PathBuf> {
    let dir = install(
        &format!("npm-frameworks-react-{REACT}-types-{TYPES_REACT}-{TYPES_REACT_DOM}-vue-{VUE}"),
        &[
            pin("react", REACT),
            pin("react-dom", REACT),
            pin("@types/react", TYPES_REACT),
            pin("@types/react-dom", TYPES_REACT_DOM),
            pin("vue", VUE),
        ],
    )?;
    Ok(dir.join("node_modules"))
}

/// The Kotlin home (`bin/kotlinc`, `lib/*.jar`) of the npm package
/// `kotlin-compiler`.
pub fn kotlin_home() -> Result<PathBuf> {
    let dir = install(
        &format!("kotlin-compiler-{KOTLIN}"),
        &[pin("kotlin-compiler", KOTLIN)],
    )?;
    let home = dir.join("node_modules").join("kotlin-compiler");
    existing(home.join("bin").join("kotlinc"))?;
    Ok(home)
}

/// The benchmarks' Node directory: its `node_modules` holds Turso Sync for
/// Node (`@tursodatabase/sync` with its linux-x64 binary, every package of it
/// pinned, since its own dependencies are caret ranges), playwright-core and
/// `@sqlite.org/sqlite-wasm`.
pub fn bench_baselines() -> Result<PathBuf> {
    install(
        &format!(
            "bench-node-turso-sync-{TURSO_SYNC}-playwright-core-{PLAYWRIGHT_CORE}-sqlite-wasm-{SQLITE_WASM}"
        ),
        &[
            pin("@tursodatabase/sync", TURSO_SYNC),
            pin("@tursodatabase/sync-linux-x64-gnu", TURSO_SYNC),
            pin("@tursodatabase/sync-common", TURSO_SYNC),
            pin("@tursodatabase/database-common", TURSO_SYNC),
            pin("playwright-core", PLAYWRIGHT_CORE),
            pin("@sqlite.org/sqlite-wasm", SQLITE_WASM),
        ],
    )
}

fn existing(file: PathBuf) -> Result<PathBuf> {
    if file.is_file() {
        Ok(file)
    } else {
        Err(format!(
            "{} is missing from its npm install: delete its cache directory and rerun",
            file.display()
        )
        .into())
    }
}

/// `$CACHE/<name>`, with `pins` installed by npm on first use; fails if a
/// package there is not at its pinned version.
fn install(name: &str, pins: &[Pin]) -> Result<PathBuf> {
    let specs: Vec<String> = pins.iter().map(Pin::spec).collect();
    let dir = cache::install_dir(name, |dir| {
        println!("installing {} into the cache (npm)", specs.join(" "));
        let started = Instant::now();
        let ran = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                "--prefix",
            ])
            .arg(dir)
            .args(&specs)
            .status()
            .is_ok_and(|s| s.success());
        if !ran {
            return Err(erth_tests::Error::Install(format!(
                "`npm install {}` failed: needs Node.js and npm (apt-get install -y nodejs npm) \
                 and the npm registry",
                specs.join(" ")
            )));
        }
        check(&dir.join("node_modules"), pins).map_err(erth_tests::Error::Install)?;
        println!("installed in {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    })?;
    check(&dir.join("node_modules"), pins)
        .map_err(|e| format!("{e}: delete {} and rerun", dir.display()))?;
    Ok(dir)
}

/// Every pin installed at its version under `node_modules`.
fn check(node_modules: &Path, pins: &[Pin]) -> std::result::Result<(), String> {
    for pin in pins {
        let manifest = node_modules.join(pin.dir).join("package.json");
        let found = fs::read_to_string(&manifest)
            .ok()
            .and_then(|m| json_string_field(&m, "version"));
        if found.as_deref() != Some(pin.version) {
            return Err(format!(
                "{} has {} {}, not {}",
                node_modules.display(),
                pin.package,
                found.as_deref().unwrap_or("missing"),
                pin.version
            ));
        }
    }
    Ok(())
}

/// The value of the first `"key": "value"` in a JSON text (enough for a
/// package.json's top-level `version`, which npm writes before any nested
/// object that could hold another one).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let after_key = &json[json.find(&format!("\"{key}\""))? + key.len() + 2..];
    let value = after_key
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(value[..value.find('"')?].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_package_json_version() {
        let manifest = r#"{
  "name": "playwright-core",
  "version": "1.65.1",
  "engines": { "node": ">=18" }
}"#;
        assert_eq!(
            json_string_field(manifest, "version").as_deref(),
            Some("1.65.1")
        );
        assert_eq!(json_string_field(manifest, "missing"), None);
        assert_eq!(json_string_field(r#"{"version": 3}"#, "version"), None);
    }

    #[test]
    fn checks_installed_versions_and_aliases() {
        let dir = tempfile::tempdir().expect("temp dir");
        let modules = dir.path();
        for (sub, version) in [("vite", "8.4.0"), ("vite5", "5.4.21")] {
            fs::create_dir_all(modules.join(sub)).expect("mkdir");
            fs::write(
                modules.join(sub).join("package.json"),
                format!("{{\"name\": \"vite\", \"version\": \"{version}\"}}"),
            )
            .expect("write");
        }
        let alias = Pin {
            dir: "vite5",
            package: "vite",
            version: "5.4.21",
        };
        assert_eq!(alias.spec(), "vite5@npm:vite@5.4.21");
        assert_eq!(pin("vite", "8.4.0").spec(), "vite@8.4.0");
        assert!(check(modules, &[pin("vite", "8.4.0"), alias]).is_ok());
        let stale = check(modules, &[pin("vite", "8.5.0")]).expect_err("wrong version");
        assert!(stale.contains("vite 8.4.0, not 8.5.0"), "{stale}");
        assert!(check(modules, &[pin("esbuild", "1.0.0")]).is_err());
    }
}
