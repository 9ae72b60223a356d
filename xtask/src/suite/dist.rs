//! Suite `dist`: `cargo xtask dist` ([`crate::dist`]), then every step of a
//! release short of the upload, on what it built:
//!
//! - one version everywhere (file names, `package.json`, the wheels'
//!   `METADATA`, the sdist's `PKG-INFO`, `erth --version` of the binary);
//! - `npm publish --dry-run` of the tarball, `twine check --strict` of the
//!   wheels and the sdist;
//! - the x86-64 wheel in a fresh venv of the oldest Python the package
//!   supports (3.9, when this machine has it; else `python3`, said so),
//!   running the package's pytest tests against a local tursodb (the
//!   `python` suite runs them on `python3` with the same wheel);
//! - the wheels that cannot run here (aarch64, musl) installed with `pip
//!   install --platform ... --target`: their tags, metadata and library
//!   architecture checked, their version read by `importlib.metadata`;
//! - the sdist's contents, the Kotlin and Swift archives' contents;
//! - `bindings-wasm/tests/e2e/dist.mjs`: the npm tarball installed into a
//!   fresh Vite app with no Rust on `PATH`, served by `vite dev`, syncing in
//!   Chromium (two profiles) through the local server that README.md's
//!   "Develop against a local server" command starts, run as written.
//!
//! The builds are the ones the other suites made where they can be (the
//! x86-64 wheel's library, the npm package's wasm); new here are the
//! aarch64 and musl wheels and the `erth` binary.

use super::counts::{self, Counts};
use super::{install_tursodb, mobile, python as python_suite, Suite};
use crate::cargo::{self, repo_root};
use crate::dist::{self, Dist, WheelTarget, VERSION};
use crate::tools::apt::{self, CHROMIUM_BIN};
use crate::tools::python::{self, OLDEST_PYTHON};
use crate::tools::{npm, rust, PYTEST, PYTEST_OLDEST};
use crate::Result;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub const SUITE: Suite = Suite {
    name: "dist",
    about: "cargo xtask dist: every package built, checked as a release would (npm publish --dry-run, twine check), installed and used",
    install,
    run: run_suite,
};

fn install() -> Result<()> {
    install_tursodb()?;
    for set in [&apt::WASM_BUILD, &apt::CHROMIUM, &apt::BINUTILS_AARCH64] {
        apt::ensure(set)?;
    }
    for target in dist::WHEELS {
        rust::target(target.triple)?;
    }
    rust::wasm_target()?;
    let tools = python::tools()?;
    println!(
        "python tools: {}\noldest Python ({OLDEST_PYTHON}): {}\nwasm-bindgen: {}\nwasm-opt: {}\nplaywright-core: {}\nvite: {}",
        tools.venv().display(),
        python::oldest_python().map_or("none on this machine".into(), |p| p.display().to_string()),
        rust::wasm_bindgen_cli()?.display(),
        npm::wasm_opt()?.display(),
        npm::playwright_core()?.display(),
        npm::bundlers()?.display(),
    );
    Ok(())
}

fn run_suite() -> Result<()> {
    let started = Instant::now();
    let dist = dist::build()?;
    dist::print_listing(&dist.dir)?;
    println!("built in {:.1} s", started.elapsed().as_secs_f64());
    let work = tempfile::Builder::new()
        .prefix("erth-dist-")
        .tempdir()
        .map_err(|e| format!("creating a work directory: {e}"))?;
    let work = work.path();

    let checks: [(&str, &dyn Fn() -> Result<()>); 8] = [
        ("one version everywhere", &|| versions(&dist, work)),
        ("npm publish --dry-run", &|| npm_publish_dry_run(&dist)),
        ("twine check --strict", &|| twine_check(&dist)),
        ("x86-64 wheel: pytest on the oldest Python", &|| {
            oldest_python_tests(&dist, &work.join("oldest"))
        }),
        (
            "aarch64 and musllinux wheels: pip install --platform",
            &|| foreign_wheels(&dist, &work.join("foreign")),
        ),
        ("sdist contents", &|| sdist_contents(&dist)),
        ("Kotlin and Swift archives", &|| mobile_archives(&dist)),
        ("npm tarball in a fresh Vite app, README's server", &|| {
            vite_app(&dist, &work.join("vite"))
        }),
    ];
    let mut failures = Vec::new();
    let mut passed = 0;
    for (name, check) in checks {
        let started = Instant::now();
        match check() {
            Ok(()) => {
                passed += 1;
                println!("ok   {name} ({:.1} s)", started.elapsed().as_secs_f64());
            }
            Err(e) => {
                println!(
                    "FAIL {name} ({:.1} s): {e}",
                    started.elapsed().as_secs_f64()
                );
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    counts::report(
        "dist",
        failures.is_empty(),
        Some(Counts {
            passed,
            failed: failures.len() as u64,
        }),
    )
    .map_err(|e| format!("{e}: {}", failures.join("; ")).into())
}

/// Output of `cmd`, failing unless it exits 0.
fn output(cmd: &mut Command) -> Result<String> {
    let shown = cargo::display(cmd);
    let out = cmd
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(what().into())
    }
}

/// One file of a `.tgz` / `.tar.gz`, as text.
fn tar_file(archive: &Path, member: &str) -> Result<String> {
    output(Command::new("tar").arg("-xzOf").arg(archive).arg(member))
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn versions(dist: &Dist, work: &Path) -> Result<()> {
    let manifest = tar_file(&dist.npm, "package/package.json")?;
    check(
        manifest.contains(&format!("\"version\": \"{VERSION}\"")),
        || format!("package.json has another version: {manifest}"),
    )?;
    for wheel in &dist.wheels {
        let name = name_of(wheel);
        check(
            name.starts_with(&format!("erth_sync-{VERSION}-py3-none-")),
            || format!("{name}: not version {VERSION}"),
        )?;
        let metadata = output(
            Command::new("unzip")
                .args(["-p"])
                .arg(wheel)
                .arg(format!("erth_sync-{VERSION}.dist-info/METADATA")),
        )?;
        check(
            metadata.contains(&format!("\nVersion: {VERSION}\n")),
            || format!("{name}: METADATA {metadata}"),
        )?;
    }
    let pkg_info = tar_file(&dist.sdist, &format!("erth_sync-{VERSION}/PKG-INFO"))?;
    check(
        pkg_info.contains(&format!("\nVersion: {VERSION}\n")),
        || format!("sdist PKG-INFO: {pkg_info}"),
    )?;
    // The binary, as a user unpacks and runs it.
    fs::create_dir_all(work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    cargo::run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&dist.cli)
            .arg("-C")
            .arg(work),
    )?;
    let erth = work
        .join(format!("erth-{VERSION}-x86_64-linux"))
        .join("erth");
    let said = output(Command::new(&erth).arg("--version"))?;
    println!("$ erth --version\n{said}");
    check(said.trim() == format!("erth {VERSION}"), || {
        format!("erth --version printed {said:?}")
    })?;
    let needs = output(Command::new("objdump").arg("-T").arg(&erth))?;
    let newest = glibc_versions(&needs).into_iter().max();
    check(newest <= Some((2, 17)), || {
        format!("erth needs glibc {newest:?}, newer than 2.17")
    })
}

/// The `GLIBC_x.y` versions an `objdump -T` listing needs.
fn glibc_versions(listing: &str) -> Vec<(u32, u32)> {
    listing
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let version: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .collect()
}

fn npm_publish_dry_run(dist: &Dist) -> Result<()> {
    let out = output(
        Command::new("npm")
            .args(["publish", "--dry-run", "--access", "public"])
            .arg(&dist.npm)
            .current_dir(&dist.dir),
    )?;
    println!("{out}");
    Ok(())
}

fn twine_check(dist: &Dist) -> Result<()> {
    let tools = python::tools()?;
    let mut cmd = tools.module("twine");
    cmd.args(["check", "--strict"])
        .args(&dist.wheels)
        .arg(&dist.sdist);
    let out = output(&mut cmd)?;
    print!("{out}");
    check(
        out.matches("PASSED").count() == dist.wheels.len() + 1,
        || format!("twine check: {out}"),
    )
}

fn oldest_python_tests(dist: &Dist, work: &Path) -> Result<()> {
    let tools = python::tools()?;
    fs::create_dir_all(work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let wheel = &dist.wheels[0];
    match python::oldest_python() {
        Some(interpreter) => {
            println!(
                "the x86-64 wheel on Python {OLDEST_PYTHON}: {}",
                interpreter.display()
            );
            python_suite::run_pytest(
                &interpreter,
                wheel,
                &[tools.oldest_test_wheels()?],
                &[format!("pytest=={PYTEST_OLDEST}")],
                &oldest_leave_out(),
                work,
            )
        }
        None => {
            println!(
                "no Python {OLDEST_PYTHON} on this machine (no registry here serves CPython \
                 itself): the x86-64 wheel on python3 instead"
            );
            python_suite::run_pytest(
                Path::new("python3"),
                wheel,
                &[tools.test_wheels()],
                &[format!("pytest=={PYTEST}")],
                &oldest_leave_out(),
                work,
            )
        }
    }
}

/// What the oldest-Python run leaves to the `python` suite, which runs
/// them on this machine's `python3`: the SQLAlchemy dialects' tests
/// (SQLAlchemy, SQLModel and greenlet, optional extras, are pinned at
/// releases for newer Pythons) and the mypy check (mypy is installed there
/// only).
fn oldest_leave_out() -> Vec<String> {
    let tests = crate::cargo::repo_root().join("bindings-mobile/python/tests");
    vec![
        format!("--ignore={}", tests.join("test_sqlalchemy.py").display()),
        format!(
            "--ignore={}",
            tests.join("test_sqlalchemy_async.py").display()
        ),
        "-k".into(),
        "not test_an_app_type_checks_against_the_package_and_a_wrong_call_does_not".into(),
    ]
}

/// The wheels that cannot run here, installed as pip installs them for
/// their platform: tags, metadata, the library's architecture and C
/// library, and the version `importlib.metadata` reads.
fn foreign_wheels(dist: &Dist, work: &Path) -> Result<()> {
    let tools = python::tools()?;
    for (target, wheel) in dist::WHEELS.iter().zip(&dist.wheels) {
        if target.runs_here {
            continue;
        }
        let into = work.join(target.platform);
        cargo::run(
            Command::new(tools.python())
                .args(python::PIP)
                .args(["install", "--no-deps", "--no-index", "--only-binary=:all:"])
                .args([
                    "--platform",
                    target.platform,
                    "--python-version",
                    OLDEST_PYTHON,
                ])
                .args(["--implementation", "cp", "--find-links"])
                .arg(&dist.dir)
                .arg("--target")
                .arg(&into)
                .arg(format!("erth_sync=={VERSION}")),
        )?;
        let info = into.join(format!("erth_sync-{VERSION}.dist-info"));
        let tags = fs::read_to_string(info.join("WHEEL"))
            .map_err(|e| format!("{}: {e}", info.display()))?;
        check(
            tags.contains(&format!("Tag: py3-none-{}", target.platform)),
            || format!("{}: WHEEL tags {tags}", name_of(wheel)),
        )?;
        let library = into.join("erth_sync").join("_native").join(mobile::LIBRARY);
        foreign_library(target, &library)?;
        for file in ["__init__.py", "py.typed"] {
            check(into.join("erth_sync").join(file).is_file(), || {
                format!("{}: no erth_sync/{file}", name_of(wheel))
            })?;
        }
        let version = output(
            Command::new("python3")
                .args([
                    "-c",
                    "import importlib.metadata as m; print(m.version('erth_sync'))",
                ])
                .env("PYTHONPATH", &into),
        )?;
        check(version.trim() == VERSION, || {
            format!("{}: importlib.metadata says {version:?}", name_of(wheel))
        })?;
        println!(
            "{}: installs for {}, version {VERSION}, library {} ({} bytes)",
            name_of(wheel),
            target.platform,
            target.triple,
            fs::metadata(&library).map(|m| m.len()).unwrap_or(0)
        );
    }
    Ok(())
}

/// The wheel's library is for `target`: its ELF machine, its C library, a
/// stripped symbol table and the exported UniFFI functions.
fn foreign_library(target: &WheelTarget, library: &Path) -> Result<()> {
    let header = output(Command::new("readelf").arg("-h").arg(library))?;
    let machine = match target.machine {
        183 => "AArch64",
        _ => "X86-64",
    };
    check(header.contains(machine), || {
        format!("{}: not {machine}: {header}", library.display())
    })?;
    // The C library it loads: glibc's soname, or for musl `libc.so`, a
    // name musl's loader reserves for itself (as zig links it), and no
    // glibc symbol versions.
    let dynamic = output(Command::new("readelf").arg("-d").arg(library))?;
    let needs = |name: &str| dynamic.contains(&format!("Shared library: [{name}]"));
    let libc = if target.triple.ends_with("musl") {
        needs("libc.so") || needs("libc.musl-x86_64.so.1")
    } else {
        needs("libc.so.6")
    };
    check(libc, || {
        format!(
            "{}: does not load the C library of {}: {dynamic}",
            library.display(),
            target.triple
        )
    })?;
    let symbols = output(
        Command::new("readelf")
            .args(["--dyn-syms", "-W"])
            .arg(library),
    )?;
    if target.triple.ends_with("musl") {
        check(!symbols.contains("GLIBC_"), || {
            format!("{}: needs glibc symbols", library.display())
        })?;
    }
    check(symbols.contains("uniffi_erth_mobile_fn_"), || {
        format!("{}: no UniFFI functions exported", library.display())
    })?;
    let sections = output(Command::new("readelf").args(["-S", "-W"]).arg(library))?;
    check(!sections.contains(".debug_info"), || {
        format!("{}: not stripped", library.display())
    })
}

fn sdist_contents(dist: &Dist) -> Result<()> {
    let listing = output(Command::new("tar").arg("-tzf").arg(&dist.sdist))?;
    let root = format!("erth_sync-{VERSION}/");
    for member in [
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "erth_sync/__init__.py",
        "erth_sync/py.typed",
        "core/Cargo.toml",
        "bindings-mobile/src/lib.rs",
        // The generator its build runs (`cargo run --bin uniffi-bindgen`).
        "bindings-mobile/uniffi-bindgen/src/main.rs",
    ] {
        check(
            listing.lines().any(|l| l == format!("{root}{member}")),
            || format!("the sdist lacks {member}"),
        )?;
    }
    let manifest = tar_file(&dist.sdist, &format!("{root}Cargo.toml"))?;
    check(manifest.contains("bindings-mobile/uniffi-bindgen"), || {
        format!("the sdist's workspace lacks uniffi-bindgen: {manifest}")
    })
}

fn mobile_archives(dist: &Dist) -> Result<()> {
    let expect = |archive: &PathBuf, members: &[&str]| -> Result<()> {
        let listing = output(Command::new("tar").arg("-tzf").arg(archive))?;
        for member in members {
            check(listing.lines().any(|l| l.ends_with(member)), || {
                format!("{} lacks {member}: {listing}", name_of(archive))
            })?;
        }
        Ok(())
    };
    expect(
        &dist.kotlin,
        &[
            "src/main/kotlin/dev/erth/sync/erth_mobile.kt",
            "src/main/kotlin/dev/erth/sync/core/erth_core.kt",
            "src/main/kotlin/dev/erth/sync/WatchFlow.kt",
            "src/main/resources/linux-x86-64/liberth_mobile.so",
            "README.md",
        ],
    )?;
    expect(
        &dist.swift,
        &[
            "Package.swift",
            "Sources/ErthSync/ErthSync.swift",
            "Sources/ErthSync/ErthSyncStreams.swift",
            "Sources/ErthSyncFFI/module.modulemap",
            "lib/liberth_mobile.so",
        ],
    )
}

fn vite_app(dist: &Dist, work: &Path) -> Result<()> {
    fs::create_dir_all(work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let script = repo_root()
        .join("bindings-wasm")
        .join("tests")
        .join("e2e")
        .join("dist.mjs");
    let (ok, out) = cargo::run_captured(
        Command::new("node")
            .arg(&script)
            .current_dir(work)
            .env("ERTH_TARBALL", &dist.npm)
            .env("ERTH_README", repo_root().join("README.md"))
            .env("ERTH_BUNDLERS", npm::bundlers()?)
            .env("ERTH_NODE_MODULES", npm::playwright_core()?)
            .env("ERTH_CHROMIUM", CHROMIUM_BIN)
            .env("ERTH_E2E_WORK", work),
    )?;
    counts::report("dist.mjs", ok, counts::e2e(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workflow cannot run here (it needs the public CI and the
    /// registries' tokens): check that it runs this suite and publishes
    /// what `cargo xtask dist` names, with the pinned twine.
    #[test]
    fn the_release_workflow_runs_this_suite_and_publishes_what_dist_builds() {
        let path = repo_root()
            .join(".github")
            .join("workflows")
            .join("release.yml");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for expected in [
            "cargo xtask test dist",
            &format!("twine=={}", crate::tools::TWINE),
            "CARGO_TARGET_DIR: /tmp/erth-target",
            "DIST: /tmp/erth-target/dist",
            "\"$DIST/erth-sync-$VERSION.tgz\"",
            "\"$DIST\"/erth_sync-\"$VERSION\"-*.whl \"$DIST/erth_sync-$VERSION.tar.gz\"",
            "files: /tmp/erth-target/dist/*",
            "tags: [\"v*\"]",
        ] {
            assert!(
                text.contains(expected),
                "{} lacks {expected}",
                path.display()
            );
        }
    }

    #[test]
    fn reads_the_glibc_versions_a_binary_needs() {
        let listing = "0000 DF *UND* 0000 (GLIBC_2.2.5) write\n\
                       0000 DF *UND* 0000 (GLIBC_2.17) clock_gettime\n\
                       0000 DF *UND* 0000 (GLIBC_2.3.4) __memcpy_chk\n";
        assert_eq!(glibc_versions(listing), vec![(2, 2), (2, 17), (2, 3)]);
        assert_eq!(glibc_versions(listing).into_iter().max(), Some((2, 17)));
    }
}
