//! `cargo xtask dist`: every distributable of one version, built into
//! `<target>/dist/` (emptied first), with `SHA256SUMS`:
//!
//! - `erth-sync-<v>.tgz`: the npm package ([`crate::package`], packed by
//!   `npm pack`; the `.wasm` is prebuilt, an app needs no Rust);
//! - `erth_sync-<v>-py3-none-<platform>.whl` for manylinux2014 (glibc 2.17)
//!   x86-64 and aarch64 and musllinux_1_2 x86-64 ([`WHEELS`]), cross-built
//!   by maturin with zig as C compiler and linker, and
//!   `erth_sync-<v>.tar.gz`, the sdist (it carries the pinned
//!   `uniffi-bindgen` its build runs);
//! - `erth-<v>-x86_64-linux.tar.gz`: the `erth` CLI, linked by zig against
//!   glibc 2.17 (it runs on any x86-64 Linux from 2014 on);
//! - `erth-sync-kotlin-<v>-linux-x86_64.tar.gz` and
//!   `erth-sync-swift-<v>-linux-x86_64.tar.gz`: the generated bindings, the
//!   hand-written sources and `liberth_mobile.so` for this platform (phones
//!   need the scripts in `bindings-mobile/scripts/`).
//!
//! Every version is the workspace's (`[workspace.package]` in the root
//! `Cargo.toml`): the crates inherit it, `package.json` is written from it
//! and the Python package's version is read from its crate by maturin.
//! The wheels' library is linked unstripped (`uniffi-bindgen` reads the
//! UniFFI metadata from its symbol table; zig cannot strip only the debug
//! info) and stripped afterwards, the wheel repacked with `wheel pack`. The
//! x86-64 build is also the library the `kotlin`, `swift` and `python`
//! suites test ([`native_library`]).

use crate::cargo::{self, repo_root, target_dir};
use crate::package;
use crate::suite::mobile;
use crate::tools::python::Tools;
use crate::tools::{apt, python, rust};
use crate::Result;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace version, which every package carries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One wheel platform.
#[derive(Debug)]
pub struct WheelTarget {
    /// The Rust target.
    pub triple: &'static str,
    /// maturin's `--compatibility` (the platform tag's policy).
    pub compatibility: &'static str,
    /// The tag pip matches (`pip install --platform`).
    pub platform: &'static str,
    /// A `strip` that reads this architecture's ELF files.
    pub strip: &'static str,
    /// ELF `e_machine` of its library (62 x86-64, 183 aarch64).
    pub machine: u16,
    /// Whether it runs here (x86-64 glibc).
    pub runs_here: bool,
}

pub const X86_64: WheelTarget = WheelTarget {
    triple: "x86_64-unknown-linux-gnu",
    compatibility: "manylinux2014",
    platform: "manylinux2014_x86_64",
    strip: "/usr/bin/strip",
    machine: 62,
    runs_here: true,
};
pub const AARCH64: WheelTarget = WheelTarget {
    triple: "aarch64-unknown-linux-gnu",
    compatibility: "manylinux2014",
    platform: "manylinux2014_aarch64",
    strip: apt::AARCH64_STRIP,
    machine: 183,
    runs_here: false,
};
pub const MUSL: WheelTarget = WheelTarget {
    triple: "x86_64-unknown-linux-musl",
    compatibility: "musllinux_1_2",
    platform: "musllinux_1_2_x86_64",
    strip: "/usr/bin/strip",
    machine: 62,
    runs_here: false,
};
/// Every wheel `cargo xtask dist` builds.
pub const WHEELS: [&WheelTarget; 3] = [&X86_64, &AARCH64, &MUSL];

/// What [`build`] made.
#[derive(Debug)]
pub struct Dist {
    /// `<target>/dist`.
    pub dir: PathBuf,
    pub npm: PathBuf,
    /// In [`WHEELS`] order.
    pub wheels: Vec<PathBuf>,
    pub sdist: PathBuf,
    pub cli: PathBuf,
    pub kotlin: PathBuf,
    pub swift: PathBuf,
}

/// `cargo xtask dist`: builds everything and lists it.
pub fn run(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        return Err(format!("cargo xtask dist takes no arguments (got {args:?})").into());
    }
    let dist = build()?;
    print_listing(&dist.dir)
}

/// The dist directory, `<target>/dist`.
pub fn dir() -> PathBuf {
    target_dir().join("dist")
}

/// Builds every distributable into [`dir`] (see the module docs).
pub fn build() -> Result<Dist> {
    let tools = python::tools()?;
    let dir = dir();
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("emptying {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;

    let npm = npm_tarball(&dir)?;
    let mut wheels = Vec::new();
    for target in WHEELS {
        wheels.push(wheel(&tools, target, &dir)?);
    }
    let sdist = sdist(&tools, &dir)?;
    let cli = cli(&tools, &dir)?;
    let (kotlin, swift) = mobile_archives(&dir)?;
    checksums(&dir)?;
    Ok(Dist {
        dir,
        npm,
        wheels,
        sdist,
        cli,
        kotlin,
        swift,
    })
}

/// Prints every file of `dir` with its size.
pub fn print_listing(dir: &Path) -> Result<()> {
    println!("\n{}:", dir.display());
    for file in mobile::files_ending(dir, "")? {
        let size = fs::metadata(&file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?
            .len();
        println!(
            "  {:>10}  {}",
            human(size),
            file.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// The npm package, built, then packed into `out`.
fn npm_tarball(out: &Path) -> Result<PathBuf> {
    let pkg = package::build()?;
    cargo::run(
        Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(out)
            .arg(&pkg.dir),
    )?;
    existing(&out.join(format!("erth-sync-{VERSION}.tgz")))
}

/// `maturin build --release --zig` of the Python package for `target`, the
/// library stripped, the wheel repacked into `out`; its path.
pub fn wheel(tools: &Tools, target: &WheelTarget, out: &Path) -> Result<PathBuf> {
    rust::target(target.triple)?;
    if target.strip == apt::AARCH64_STRIP {
        apt::ensure(&apt::BINUTILS_AARCH64)?;
    }
    let staging = tempfile::Builder::new()
        .prefix("erth-wheel-")
        .tempdir()
        .map_err(|e| format!("creating a staging directory: {e}"))?;
    let built = staging.path().join("built");
    cargo::run(
        tools
            .module("maturin")
            .args(["build", "--release", "--zig", "--target", target.triple])
            .args(["--compatibility", target.compatibility])
            // Linked with its symbol table, which uniffi-bindgen reads
            // (zig's linker turns Rust's default `strip = "debuginfo"`
            // into a full strip); stripped below instead.
            .args([
                "--config",
                "profile.release.package.erth-mobile.strip=false",
            ])
            .arg("--out")
            .arg(&built)
            .current_dir(repo_root().join("bindings-mobile").join("python"))
            .env("CARGO_TARGET_DIR", target_dir()),
    )?;
    let wheel = only_file(&built, ".whl")?;
    let unpacked = staging.path().join("unpacked");
    cargo::run(
        tools
            .module("wheel")
            .arg("unpack")
            .arg(&wheel)
            .arg("--dest")
            .arg(&unpacked),
    )?;
    let root = unpacked.join(format!("erth_sync-{VERSION}"));
    let library = root.join("erth_sync").join("_native").join(mobile::LIBRARY);
    cargo::run(Command::new(target.strip).arg("--strip-all").arg(&library))?;
    let packed = staging.path().join("packed");
    fs::create_dir_all(&packed).map_err(|e| format!("creating {}: {e}", packed.display()))?;
    cargo::run(
        tools
            .module("wheel")
            .arg("pack")
            .arg(&root)
            .arg("--dest-dir")
            .arg(&packed),
    )?;
    let packed = only_file(&packed, ".whl")?;
    let name = packed
        .file_name()
        .ok_or("wheel pack wrote no file name")?
        .to_owned();
    if name != wheel.file_name().unwrap_or_default() {
        return Err(format!(
            "wheel pack renamed {} to {}",
            wheel.display(),
            name.to_string_lossy()
        )
        .into());
    }
    let dest = out.join(&name);
    fs::copy(&packed, &dest).map_err(|e| format!("copying {}: {e}", packed.display()))?;
    Ok(dest)
}

/// The library of `target`'s last wheel build, unstripped (its symbol
/// table holds the UniFFI metadata the bindings are generated from).
pub fn built_library(target: &WheelTarget) -> PathBuf {
    target_dir()
        .join(target.triple)
        .join("release")
        .join(mobile::LIBRARY)
}

/// The x86-64 manylinux2014 build of `liberth_mobile.so` (the wheel's), for
/// the `kotlin`, `swift` and `python` suites: built by [`wheel`] (a no-op
/// for cargo when it is current), the wheel left in `out`. Returns the
/// wheel and the unstripped library.
pub fn native_library(out: &Path) -> Result<(PathBuf, PathBuf)> {
    let tools = python::tools()?;
    let wheel = wheel(&tools, &X86_64, out)?;
    Ok((wheel, existing(&built_library(&X86_64))?))
}

/// `maturin sdist` into `out`.
fn sdist(tools: &Tools, out: &Path) -> Result<PathBuf> {
    cargo::run(
        tools
            .module("maturin")
            .arg("sdist")
            .arg("--out")
            .arg(out)
            .current_dir(repo_root().join("bindings-mobile").join("python")),
    )?;
    existing(&out.join(format!("erth_sync-{VERSION}.tar.gz")))
}

/// The `erth` CLI in `erth-<v>-x86_64-linux.tar.gz`: built by maturin as a
/// binary (`-b bin`) with zig against glibc 2.17, next to the x86-64 wheel's
/// build (the dependencies are shared); the wheel maturin makes of it is
/// thrown away.
fn cli(tools: &Tools, out: &Path) -> Result<PathBuf> {
    let staging = tempfile::Builder::new()
        .prefix("erth-cli-")
        .tempdir()
        .map_err(|e| format!("creating a staging directory: {e}"))?;
    cargo::run(
        tools
            .module("maturin")
            .args(["build", "--release", "--zig", "--bindings", "bin"])
            .args([
                "--target",
                X86_64.triple,
                "--compatibility",
                "manylinux2014",
            ])
            .arg("--manifest-path")
            .arg(repo_root().join("cli").join("Cargo.toml"))
            .arg("--out")
            .arg(staging.path().join("wheel"))
            .env("CARGO_TARGET_DIR", target_dir()),
    )?;
    let built = existing(
        &target_dir()
            .join(X86_64.triple)
            .join("release")
            .join("erth"),
    )?;
    let name = format!("erth-{VERSION}-x86_64-linux");
    let stage = staging.path().join(&name);
    fs::create_dir_all(&stage).map_err(|e| format!("creating {}: {e}", stage.display()))?;
    cargo::run(
        Command::new(X86_64.strip)
            .arg("--strip-all")
            .arg("-o")
            .arg(stage.join("erth"))
            .arg(&built),
    )?;
    tar(staging.path(), &name, &out.join(format!("{name}.tar.gz")))
}

/// The Kotlin and Swift archives: the bindings generated from the x86-64
/// library, the hand-written sources, the stripped library.
fn mobile_archives(out: &Path) -> Result<(PathBuf, PathBuf)> {
    let library = existing(&built_library(&X86_64))?;
    let staging = tempfile::Builder::new()
        .prefix("erth-mobile-dist-")
        .tempdir()
        .map_err(|e| format!("creating a staging directory: {e}"))?;
    let mobile_dir = repo_root().join("bindings-mobile");

    let kotlin_name = format!("erth-sync-kotlin-{VERSION}-linux-x86_64");
    let kotlin = staging.path().join(&kotlin_name);
    let sources = kotlin.join("src").join("main").join("kotlin");
    mobile::generate(&library, "kotlin", &sources)?;
    copy_tree(&mobile_dir.join("kotlin"), &sources)?;
    strip_to(
        &library,
        &kotlin
            .join("src")
            .join("main")
            .join("resources")
            .join("linux-x86-64")
            .join(mobile::LIBRARY),
    )?;
    write(&kotlin.join("README.md"), &kotlin_readme())?;
    let kotlin = tar(
        staging.path(),
        &kotlin_name,
        &out.join(format!("{kotlin_name}.tar.gz")),
    )?;

    let swift_name = format!("erth-sync-swift-{VERSION}-linux-x86_64");
    let swift = staging.path().join(&swift_name);
    let generated = staging.path().join("swift-generated");
    mobile::generate(&library, "swift", &generated)?;
    let sources = swift.join("Sources").join("ErthSync");
    let ffi = swift.join("Sources").join("ErthSyncFFI");
    for file in [
        mobile::files_ending(&generated, ".swift")?,
        mobile::files_ending(&mobile_dir.join("swift"), ".swift")?,
    ]
    .concat()
    {
        copy(&file, &sources)?;
    }
    let mut headers = Vec::new();
    for header in mobile::files_ending(&generated, ".h")? {
        copy(&header, &ffi)?;
        headers.push(
            header
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
    }
    write(
        &ffi.join("module.modulemap"),
        &mobile::swift_module_map(&headers),
    )?;
    strip_to(&library, &swift.join("lib").join(mobile::LIBRARY))?;
    write(&swift.join("Package.swift"), SWIFT_PACKAGE)?;
    let swift = tar(
        staging.path(),
        &swift_name,
        &out.join(format!("{swift_name}.tar.gz")),
    )?;
    Ok((kotlin, swift))
}

/// The Swift archive's package: the bindings as the library `ErthSync`,
/// linked against `lib/liberth_mobile.so` (as the `swift` suite's test
/// package is).
const SWIFT_PACKAGE: &str = r#"// swift-tools-version:5.9
// Erth Sync for Swift on Linux x86-64: the generated bindings (module
// ErthSync) over lib/liberth_mobile.so. Add it as a local package.
import PackageDescription

let libDir = "\(Context.packageDirectory)/lib"

let package = Package(
    name: "ErthSync",
    products: [.library(name: "ErthSync", targets: ["ErthSync"])],
    targets: [
        .systemLibrary(name: "ErthSyncFFI", path: "Sources/ErthSyncFFI"),
        .target(
            name: "ErthSync",
            dependencies: ["ErthSyncFFI"],
            path: "Sources/ErthSync",
            linkerSettings: [
                .linkedLibrary("erth_mobile"),
                .unsafeFlags(["-L\(libDir)", "-Xlinker", "-rpath", "-Xlinker", libDir]),
            ]
        ),
    ]
)
"#;

fn kotlin_readme() -> String {
    format!(
        "# Erth Sync {VERSION} for Kotlin (JVM, Linux x86-64)\n\n\
         `src/main/kotlin/`: the bindings (packages `dev.erth.sync` and `dev.erth.sync.core`)\n\
         and `WatchFlow.kt`; `src/main/resources/linux-x86-64/liberth_mobile.so`: the library,\n\
         where JNA finds it on the class path. Copy both into a module that depends on\n\
         `net.java.dev.jna:jna` (5.x) and `org.jetbrains.kotlinx:kotlinx-coroutines-core`.\n\
         For Android use `bindings-mobile/scripts/build-android.sh` from the repository.\n"
    )
}

/// `SHA256SUMS` of every file in `dir`.
fn checksums(dir: &Path) -> Result<()> {
    let names: Vec<String> = mobile::files_ending(dir, "")?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n != "SHA256SUMS")
        .collect();
    let out = Command::new("sha256sum")
        .args(&names)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("could not run sha256sum: {e}"))?;
    if !out.status.success() {
        return Err(format!("sha256sum failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    fs::write(dir.join("SHA256SUMS"), &out.stdout)
        .map_err(|e| format!("writing SHA256SUMS: {e}").into())
}

/// `tar czf out -C parent name`, with files owned by root and no
/// timestamps from the build.
fn tar(parent: &Path, name: &str, out: &Path) -> Result<PathBuf> {
    cargo::run(
        Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "-czf"])
            .arg(out)
            .arg("-C")
            .arg(parent)
            .arg(name),
    )?;
    existing(out)
}

fn strip_to(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    cargo::run(
        Command::new(X86_64.strip)
            .arg("--strip-all")
            .arg("-o")
            .arg(to)
            .arg(from),
    )
}

/// Copies `file` into directory `dir`.
fn copy(file: &Path, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let to = dir.join(file.file_name().unwrap_or_default());
    fs::copy(file, &to)
        .map(|_| ())
        .map_err(|e| format!("copying {}: {e}", file.display()).into())
}

/// Copies the files under `from` into `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let entries = fs::read_dir(from).map_err(|e| format!("listing {}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()))?;
        } else {
            copy(&path, to)?;
        }
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()).into())
}

/// The one file in `dir` ending with `suffix`.
fn only_file(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let mut found = mobile::files_ending(dir, suffix)?;
    match (found.pop(), found.is_empty()) {
        (Some(file), true) => Ok(file),
        _ => Err(format!("expected one {suffix} file in {}", dir.display()).into()),
    }
}

fn existing(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(format!("{} was not built", path.display()).into())
    }
}
