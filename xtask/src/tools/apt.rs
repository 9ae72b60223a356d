//! Debian packages, installed with `apt-get` when a file they provide is
//! missing (`apt-get update` first if a plain install fails). Each set below
//! names the files a suite uses and the packages that provide them.

use crate::Result;
use std::path::Path;
use std::process::{Command, Stdio};

/// Files that must exist, each with the Debian package that provides it.
/// Only the packages of missing files are installed: a machine whose
/// Node.js comes from elsewhere (NodeSource's `nodejs` bundles npm and
/// conflicts with Debian's `npm`) must not be asked for Debian's.
#[derive(Debug)]
pub struct Packages(pub &'static [(&'static str, &'static str)]);

pub const CHROMIUM_BIN: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER_BIN: &str = "/usr/bin/chromedriver";
/// Firefox ESR, driven through geckodriver.
pub const FIREFOX_BIN: &str = "/usr/bin/firefox-esr";
/// WebKitGTK's WebDriver server, run under `xvfb-run`.
pub const WEBKITDRIVER_BIN: &str = "/usr/bin/WebKitWebDriver";
pub const JAVA_BIN: &str = "/usr/bin/java";
pub const JNA_JAR: &str = "/usr/share/java/jna.jar";
pub const JUNIT_JAR: &str = "/usr/share/java/junit4.jar";
pub const HAMCREST_JAR: &str = "/usr/share/java/hamcrest-core.jar";

/// What builds the npm package: SQLite's C for wasm32, Node.js, gzip.
pub const WASM_BUILD: Packages = Packages(&[
    ("/usr/bin/clang", "clang"),
    ("/usr/bin/node", "nodejs"),
    ("/usr/bin/npm", "npm"),
    ("/usr/bin/gzip", "gzip"),
]);
pub const NODE: Packages = Packages(&[("/usr/bin/node", "nodejs"), ("/usr/bin/npm", "npm")]);
pub const CHROMIUM: Packages = Packages(&[
    (CHROMIUM_BIN, "chromium"),
    (CHROMEDRIVER_BIN, "chromium-driver"),
]);
pub const FIREFOX: Packages = Packages(&[(FIREFOX_BIN, "firefox-esr")]);
/// WebKitGTK's driver, Xvfb, and the PyGObject browser of
/// `bindings-wasm/tests/e2e/webkit-browser.py`.
pub const WEBKIT: Packages = Packages(&[
    (WEBKITDRIVER_BIN, "webkit2gtk-driver"),
    ("/usr/bin/xvfb-run", "xvfb"),
    ("/usr/bin/xauth", "xauth"),
    (
        "/usr/lib/x86_64-linux-gnu/girepository-1.0/WebKit2-4.1.typelib",
        "gir1.2-webkit2-4.1",
    ),
    (
        "/usr/lib/python3/dist-packages/gi/__init__.py",
        "python3-gi",
    ),
]);
/// A JRE, JNA and JUnit 4 for the Kotlin tests.
pub const JVM: Packages = Packages(&[
    (JAVA_BIN, "default-jre-headless"),
    (JNA_JAR, "libjna-java"),
    (JUNIT_JAR, "junit4"),
    (HAMCREST_JAR, "junit4"),
]);
/// `strip` for the aarch64 wheel's library (Debian's own `strip` reads x86 only).
pub const AARCH64_STRIP: &str = "/usr/bin/aarch64-linux-gnu-strip";
pub const BINUTILS_AARCH64: Packages = Packages(&[
    (AARCH64_STRIP, "binutils-aarch64-linux-gnu"),
    ("/usr/bin/strip", "binutils"),
]);
/// Builds the Swift chroot.
pub const MMDEBSTRAP: Packages = Packages(&[("/usr/bin/mmdebstrap", "mmdebstrap")]);

/// Makes sure every file of `set` exists, installing the packages of the
/// missing ones.
pub fn ensure(set: &Packages) -> Result<()> {
    let present = |f: &str| Path::new(f).is_file();
    let mut missing: Vec<&str> = Vec::new();
    for &(file, package) in set.0 {
        if !present(file) && !missing.contains(&package) {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let packages = missing.join(" ");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    println!("installing {packages} with apt-get");
    if !install() {
        let updated = Command::new("apt-get")
            .arg("update")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !updated || !install() {
            return Err(format!(
                "could not install the Debian packages {packages} (needs root and Debian's \
                 package mirror); install them by hand: apt-get update && apt-get install -y \
                 {packages}"
            )
            .into());
        }
    }
    match set.0.iter().find(|(file, _)| !present(file)) {
        None => Ok(()),
        Some((file, _)) => {
            Err(format!("{file} is still missing after installing {packages}").into())
        }
    }
}
