//! Debian packages, installed with `apt-get` when a file they provide is
//! missing (`apt-get update` first if a plain install fails). Each set below
//! names the files a suite uses and the packages that provide them.

use crate::Result;
use std::path::Path;
use std::process::{Command, Stdio};

/// Files that must exist, and the Debian packages that provide them.
#[derive(Debug)]
pub struct Packages {
    pub files: &'static [&'static str],
    pub packages: &'static [&'static str],
}

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
pub const WASM_BUILD: Packages = Packages {
    files: &[
        "/usr/bin/clang",
        "/usr/bin/node",
        "/usr/bin/npm",
        "/usr/bin/gzip",
    ],
    packages: &["clang", "nodejs", "npm", "gzip"],
};
pub const NODE: Packages = Packages {
    files: &["/usr/bin/node", "/usr/bin/npm"],
    packages: &["nodejs", "npm"],
};
pub const CHROMIUM: Packages = Packages {
    files: &[CHROMIUM_BIN, CHROMEDRIVER_BIN],
    packages: &["chromium", "chromium-driver"],
};
pub const FIREFOX: Packages = Packages {
    files: &[FIREFOX_BIN],
    packages: &["firefox-esr"],
};
/// WebKitGTK's driver, Xvfb, and the PyGObject browser of
/// `bindings-wasm/tests/e2e/webkit-browser.py`.
pub const WEBKIT: Packages = Packages {
    files: &[
        WEBKITDRIVER_BIN,
        "/usr/bin/xvfb-run",
        "/usr/bin/xauth",
        "/usr/lib/x86_64-linux-gnu/girepository-1.0/WebKit2-4.1.typelib",
        "/usr/lib/python3/dist-packages/gi/__init__.py",
    ],
    packages: &[
        "webkit2gtk-driver",
        "xvfb",
        "xauth",
        "gir1.2-webkit2-4.1",
        "python3-gi",
    ],
};
/// A JRE, JNA and JUnit 4 for the Kotlin tests.
pub const JVM: Packages = Packages {
    files: &[JAVA_BIN, JNA_JAR, JUNIT_JAR, HAMCREST_JAR],
    packages: &["default-jre-headless", "libjna-java", "junit4"],
};
/// `strip` for the aarch64 wheel's library (Debian's own `strip` reads x86 only).
pub const AARCH64_STRIP: &str = "/usr/bin/aarch64-linux-gnu-strip";
pub const BINUTILS_AARCH64: Packages = Packages {
    files: &[AARCH64_STRIP, "/usr/bin/strip"],
    packages: &["binutils-aarch64-linux-gnu", "binutils"],
};
/// Builds the Swift chroot.
pub const MMDEBSTRAP: Packages = Packages {
    files: &["/usr/bin/mmdebstrap"],
    packages: &["mmdebstrap"],
};

/// Makes sure `set.files` exist, installing `set.packages` if not.
pub fn ensure(set: &Packages) -> Result<()> {
    let present = |f: &&str| Path::new(f).is_file();
    if set.files.iter().all(present) {
        return Ok(());
    }
    let packages = set.packages.join(" ");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(set.packages)
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
    match set.files.iter().find(|f| !present(f)) {
        None => Ok(()),
        Some(missing) => {
            Err(format!("{missing} is still missing after installing {packages}").into())
        }
    }
}
