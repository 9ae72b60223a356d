//! The `erth-sync` npm package, built into `bindings-wasm/pkg/`
//! (gitignored) for the `wasm` and `e2e` suites, the demo and the browser
//! benchmark: the `erth-wasm` crate with the size profile (`release-wasm`),
//! `wasm-bindgen --target web`, `wasm-opt -Oz`, the hand-written `js/`
//! modules and types, a generated `package.json` and the README. It prints
//! the `.wasm`'s raw and gzip sizes, and fails if the `.wasm` imports
//! anything from module `"env"` (an unresolved C symbol) or if it exceeds
//! 1 MB gzipped. Its tools come from [`crate::tools`].

use crate::cargo::{self, cargo, repo_root, target_dir};
use crate::tools::rust::{self, WASM_TARGET};
use crate::tools::{apt, npm};
use crate::Result;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crate the package is built from.
pub const PACKAGE_CRATE: &str = "erth-wasm";
/// File stem wasm-bindgen writes (`erth_wasm.js`, `erth_wasm_bg.wasm`).
const OUT_NAME: &str = "erth_wasm";
/// Hand-written files of the package, from `bindings-wasm/js/`.
const JS_FILES: &[&str] = &[
    "index.js",
    "index.d.ts",
    "worker.js",
    "errors.js",
    "live.js",
    "react.js",
    "react.d.ts",
    "vue.js",
    "vue.d.ts",
    "README.md",
];
/// The acceptance bound on the gzipped `.wasm`.
const MAX_GZIP_BYTES: u64 = 1_000_000;

/// The built package.
#[derive(Debug)]
pub struct Package {
    /// `bindings-wasm/pkg`.
    pub dir: PathBuf,
    pub wasm_bytes: u64,
    pub wasm_gzip_bytes: u64,
}

/// Builds `bindings-wasm/pkg/` (see the module docs) and returns it with the
/// `.wasm`'s sizes.
pub fn build() -> Result<Package> {
    apt::ensure(&apt::WASM_BUILD)?;
    rust::wasm_target()?;
    let wasm_bindgen = rust::wasm_bindgen_cli()?.join("wasm-bindgen");
    let wasm_opt = npm::wasm_opt()?;
    cargo::run(&mut cargo(&[
        "build",
        "-p",
        PACKAGE_CRATE,
        "--target",
        WASM_TARGET,
        "--profile",
        "release-wasm",
    ]))?;
    let built = target_dir()
        .join(WASM_TARGET)
        .join("release-wasm")
        .join(format!("{OUT_NAME}.wasm"));
    let crate_dir = repo_root().join("bindings-wasm");
    let pkg = crate_dir.join("pkg");
    if pkg.exists() {
        fs::remove_dir_all(&pkg).map_err(|e| format!("removing {}: {e}", pkg.display()))?;
    }
    fs::create_dir_all(&pkg).map_err(|e| format!("creating {}: {e}", pkg.display()))?;

    cargo::run(
        Command::new(&wasm_bindgen)
            .args(["--target", "web", "--out-name", OUT_NAME, "--out-dir"])
            .arg(&pkg)
            .arg(&built),
    )?;
    let wasm = pkg.join(format!("{OUT_NAME}_bg.wasm"));
    let unoptimized = fs::metadata(&wasm)
        .map_err(|e| format!("reading {}: {e}", wasm.display()))?
        .len();
    cargo::run(
        Command::new(&wasm_opt)
            .arg("-Oz")
            .args([
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
                "--enable-sign-ext",
                "--enable-mutable-globals",
                "--enable-reference-types",
                "--enable-multivalue",
            ])
            .arg(&wasm)
            .arg("-o")
            .arg(&wasm),
    )?;

    for file in JS_FILES {
        let from = crate_dir.join("js").join(file);
        fs::copy(&from, pkg.join(file)).map_err(|e| format!("copying {}: {e}", from.display()))?;
    }
    let manifest = pkg.join("package.json");
    fs::write(&manifest, package_json(env!("CARGO_PKG_VERSION")))
        .map_err(|e| format!("writing {}: {e}", manifest.display()))?;

    let bytes = fs::read(&wasm).map_err(|e| format!("reading {}: {e}", wasm.display()))?;
    let env_imports: Vec<String> = wasm_imports(&bytes)
        .map_err(|e| format!("{}: {e}", wasm.display()))?
        .into_iter()
        .filter(|(module, _)| module == "env")
        .map(|(_, name)| name)
        .collect();
    if !env_imports.is_empty() {
        return Err(format!(
            "{} imports from module \"env\" (unresolved C symbols; browsers cannot provide them): {}",
            wasm.display(),
            env_imports.join(", ")
        )
        .into());
    }
    let gzip = gzip_size(&wasm)?;
    let package = Package {
        dir: pkg,
        wasm_bytes: bytes.len() as u64,
        wasm_gzip_bytes: gzip,
    };
    println!(
        "erth-sync package: {}\n  {OUT_NAME}_bg.wasm: {} raw ({} before wasm-opt), {} gzip; no imports from \"env\"",
        package.dir.display(),
        kb(package.wasm_bytes),
        kb(unoptimized),
        kb(package.wasm_gzip_bytes)
    );
    if gzip > MAX_GZIP_BYTES {
        return Err(format!(
            "the .wasm is {} gzipped, over the {} budget",
            kb(gzip),
            kb(MAX_GZIP_BYTES)
        )
        .into());
    }
    Ok(package)
}

pub fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1000.0)
}

fn package_json(version: &str) -> String {
    format!(
        r#"{{
  "name": "erth-sync",
  "version": "{version}",
  "description": "Local-first SQLite in the browser (OPFS, in a Worker) that syncs with libSQL / Turso over Hrana",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "./index.js",
  "types": "./index.d.ts",
  "exports": {{
    ".": {{
      "types": "./index.d.ts",
      "default": "./index.js"
    }},
    "./react": {{
      "types": "./react.d.ts",
      "default": "./react.js"
    }},
    "./vue": {{
      "types": "./vue.d.ts",
      "default": "./vue.js"
    }},
    "./worker.js": "./worker.js",
    "./package.json": "./package.json"
  }},
  "peerDependencies": {{
    "react": ">=18",
    "vue": ">=3.3"
  }},
  "peerDependenciesMeta": {{
    "react": {{ "optional": true }},
    "vue": {{ "optional": true }}
  }},
  "files": [
    "index.js",
    "index.d.ts",
    "worker.js",
    "errors.js",
    "live.js",
    "react.js",
    "react.d.ts",
    "vue.js",
    "vue.d.ts",
    "{OUT_NAME}.js",
    "{OUT_NAME}.d.ts",
    "{OUT_NAME}_bg.wasm",
    "{OUT_NAME}_bg.wasm.d.ts",
    "snippets/",
    "README.md"
  ],
  "keywords": ["sqlite", "opfs", "local-first", "sync", "libsql", "turso", "wasm", "offline"]
}}
"#
    )
}

/// Size of `file` compressed with `gzip -9`.
fn gzip_size(file: &Path) -> Result<u64> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(file)
        .output()
        .map_err(|e| format!("could not run gzip ({e})"))?;
    if !out.status.success() {
        return Err(format!("gzip {} failed", file.display()).into());
    }
    Ok(out.stdout.len() as u64)
}

/// `(module, name)` of every import of a WebAssembly binary.
fn wasm_imports(bytes: &[u8]) -> std::result::Result<Vec<(String, String)>, String> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(8)? != b"\0asm\x01\0\0\0" {
        return Err("not a WebAssembly 1.0 binary".into());
    }
    let mut imports = Vec::new();
    while r.pos < bytes.len() {
        let id = r.byte()?;
        let size = r.leb()? as usize;
        let end = r.pos.checked_add(size).ok_or("section size overflows")?;
        if id == 2 {
            for _ in 0..r.leb()? {
                let module = r.name()?;
                let name = r.name()?;
                match r.byte()? {
                    0 => {
                        r.leb()?;
                    }
                    1 => {
                        r.byte()?;
                        r.limits()?;
                    }
                    2 => r.limits()?,
                    3 => {
                        r.byte()?;
                        r.byte()?;
                    }
                    4 => {
                        r.byte()?;
                        r.leb()?;
                    }
                    kind => return Err(format!("unknown import kind {kind}")),
                }
                imports.push((module, name));
            }
        }
        r.pos = end;
    }
    Ok(imports)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn leb(&mut self) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("LEB128 number too long".into())
    }

    fn name(&mut self) -> std::result::Result<String, String> {
        let len = self.leb()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "import name is not UTF-8".into())
    }

    fn limits(&mut self) -> std::result::Result<(), String> {
        let flags = self.byte()?;
        self.leb()?;
        if flags & 1 == 1 {
            self.leb()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_env_imports_in_a_wasm_binary() {
        // (module (import "env" "f" (func)) (import "wbg" "g" (memory 1)))
        let wasm = [
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
            0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
            0x02, 0x10, 0x02, // import section, 2 entries
            0x03, b'e', b'n', b'v', 0x01, b'f', 0x00, 0x00, // env.f: func 0
            0x03, b'w', b'b', b'g', 0x01, b'g', 0x02, 0x00, 0x01, // wbg.g: memory min 1
        ];
        assert_eq!(
            wasm_imports(&wasm).expect("parses"),
            vec![("env".into(), "f".into()), ("wbg".into(), "g".into())]
        );
        assert!(wasm_imports(b"not wasm").is_err());
        assert!(wasm_imports(&wasm[..20]).is_err());
    }

    #[test]
    fn package_json_is_an_es_module_package_named_erth_sync() {
        let json = package_json("1.2.3");
        assert!(json.contains(r#""name": "erth-sync""#));
        assert!(json.contains(r#""version": "1.2.3""#));
        assert!(json.contains(r#""type": "module""#));
        assert!(json.contains(r#""types": "./index.d.ts""#));
        for file in JS_FILES {
            assert!(
                json.contains(&format!("\"{file}\"")),
                "{file} not published"
            );
        }
    }
}
