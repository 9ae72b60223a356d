//! Python packages from PyPI, in virtual environments in the cache: the
//! packaging tools (maturin with zig, twine, wheel) for the `python` and
//! `dist` suites and `cargo xtask dist`, the wheels their test venvs install
//! from (pytest and mypy; pytest for the oldest Python too), and the
//! benchmarks' baselines (SQLModel, pyturso). [`oldest_python`] finds the
//! oldest CPython the package supports on this machine.

use super::{
    GREENLET, MATURIN, MYPY, PYTEST, PYTEST_OLDEST, PYTEST_OLDEST_BACKPORTS, PYTURSO, SQLALCHEMY,
    SQLMODEL, TWINE, WHEEL, ZIGLANG,
};
use crate::cargo;
use crate::Result;
use erth_tests::cache;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `python -m pip`, quietly.
pub const PIP: [&str; 4] = ["-m", "pip", "--disable-pip-version-check", "--quiet"];

/// The oldest Python the package supports (`requires-python` in
/// `bindings-mobile/python/pyproject.toml`).
pub const OLDEST_PYTHON: &str = "3.9";

/// The interpreter of a virtual environment.
pub fn python_in(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The packaging tools and test wheels (see [`Tools`]), installed once.
pub fn tools() -> Result<Tools> {
    let dir = cache::install_dir(
        &format!(
            "python-maturin-{MATURIN}-ziglang-{ZIGLANG}-twine-{TWINE}-wheel-{WHEEL}-pytest-{PYTEST}-mypy-{MYPY}"
        ),
        |dir| {
            println!(
                "installing maturin {MATURIN}, ziglang {ZIGLANG}, twine {TWINE}, wheel {WHEEL} \
                 and the wheels of pytest {PYTEST} and mypy {MYPY} from PyPI into the cache"
            );
            let venv = dir.join("venv");
            new_venv(&venv)?;
            step(
                Command::new(python_in(&venv))
                    .args(PIP)
                    .arg("install")
                    .arg(format!("maturin=={MATURIN}"))
                    .arg(format!("ziglang=={ZIGLANG}"))
                    .arg(format!("twine=={TWINE}"))
                    .arg(format!("wheel=={WHEEL}")),
                "pip install maturin, ziglang, twine and wheel from PyPI",
            )?;
            step(
                Command::new(python_in(&venv))
                    .args(PIP)
                    .args(["download", "--dest"])
                    .arg(dir.join("wheels"))
                    .arg(format!("pytest=={PYTEST}"))
                    .arg(format!("mypy=={MYPY}")),
                "pip download pytest and mypy from PyPI",
            )
        },
    )?;
    Ok(Tools { dir })
}

/// The cached Python tools.
#[derive(Debug, Clone)]
pub struct Tools {
    dir: PathBuf,
}

impl Tools {
    /// The venv with maturin, ziglang, twine and wheel.
    pub fn venv(&self) -> PathBuf {
        self.dir.join("venv")
    }

    /// Its interpreter.
    pub fn python(&self) -> PathBuf {
        python_in(&self.venv())
    }

    /// `python -m <module>` of the venv, with the venv's `bin` first on
    /// `PATH` (maturin finds zig as `python -m ziglang` there).
    pub fn module(&self, module: &str) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.venv().join("bin")];
        paths.extend(std::env::split_paths(&path));
        let mut cmd = Command::new(self.python());
        cmd.args(["-m", module]);
        if let Ok(joined) = std::env::join_paths(paths) {
            cmd.env("PATH", joined);
        }
        cmd
    }

    /// Wheels of pytest and mypy (and their dependencies) for this
    /// machine's `python3`.
    pub fn test_wheels(&self) -> PathBuf {
        self.dir.join("wheels")
    }

    /// Wheels of pytest and its dependencies for [`OLDEST_PYTHON`]
    /// ([`PYTEST_OLDEST`] and [`PYTEST_OLDEST_BACKPORTS`]), downloaded once
    /// by this venv's pip. `pip download --python-version` picks wheels for
    /// that Python but evaluates the requirements' markers for the running
    /// one, so the backports pytest needs only before 3.11 are named.
    pub fn oldest_test_wheels(&self) -> Result<PathBuf> {
        let backports = PYTEST_OLDEST_BACKPORTS.join("-").replace("==", "-");
        Ok(cache::install_dir(
            &format!("python{OLDEST_PYTHON}-wheels-pytest-{PYTEST_OLDEST}-{backports}"),
            |dir| {
                println!(
                    "downloading pytest {PYTEST_OLDEST} for Python {OLDEST_PYTHON} from PyPI into the cache"
                );
                step(
                    Command::new(self.python())
                        .args(PIP)
                        .args(["download", "--only-binary=:all:", "--python-version"])
                        .arg(OLDEST_PYTHON)
                        .arg("--dest")
                        .arg(dir)
                        .arg(format!("pytest=={PYTEST_OLDEST}"))
                        .args(PYTEST_OLDEST_BACKPORTS),
                    "pip download pytest for the oldest Python from PyPI",
                )
            },
        )?)
    }
}

/// The oldest CPython the package supports ([`OLDEST_PYTHON`]) on this
/// machine, if any: pyenv's (`$PYENV_ROOT`, default `~/.pyenv`), else one
/// on `PATH`. None of the registries serves CPython itself (Debian 12 has
/// 3.11 only), so where neither has one the tests say so and run on `python3`.
pub fn oldest_python() -> Option<PathBuf> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")))?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{OLDEST_PYTHON}."))
        })
        .map(|e| e.path().join("bin").join("python3"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().or_else(|| {
        let name = format!("python{OLDEST_PYTHON}");
        Command::new(&name)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| PathBuf::from(name))
    })
}

/// Wheels of SQLModel, SQLAlchemy and greenlet (and their dependencies)
/// for the `python` suite's dialect tests, downloaded once into the cache; each
/// run's fresh venv installs them from there.
pub fn sqlmodel_wheels() -> Result<PathBuf> {
    let tools = tools()?;
    Ok(cache::install_dir(
        &format!("python-wheels-sqlmodel-{SQLMODEL}-sqlalchemy-{SQLALCHEMY}-greenlet-{GREENLET}"),
        |dir| {
            println!("downloading sqlmodel {SQLMODEL}, sqlalchemy {SQLALCHEMY} and greenlet {GREENLET} from PyPI into the cache");
            step(
                Command::new(tools.python())
                    .args(PIP)
                    .args(["download", "--dest"])
                    .arg(dir)
                    .arg(format!("sqlmodel=={SQLMODEL}"))
                    .arg(format!("sqlalchemy=={SQLALCHEMY}"))
                    .arg(format!("greenlet=={GREENLET}")),
                "pip download sqlmodel, sqlalchemy and greenlet from PyPI",
            )
        },
    )?)
}

/// The benchmarks' interpreter, in a venv with SQLModel and pyturso.
pub fn bench_baselines() -> Result<PathBuf> {
    let dir = cache::install_dir(
        &format!("bench-python-sqlmodel-{SQLMODEL}-pyturso-{PYTURSO}"),
        |dir| {
            println!("installing sqlmodel {SQLMODEL} and pyturso {PYTURSO} into a venv");
            let venv = dir.join("venv");
            new_venv(&venv)?;
            step(
                Command::new(python_in(&venv))
                    .args(PIP)
                    .arg("install")
                    .arg(format!("sqlmodel=={SQLMODEL}"))
                    .arg(format!("pyturso=={PYTURSO}")),
                "pip install from PyPI",
            )
        },
    )?;
    Ok(python_in(&dir.join("venv")))
}

fn new_venv(venv: &Path) -> erth_tests::Result<()> {
    step(
        Command::new("python3").args(["-m", "venv"]).arg(venv),
        "python3 -m venv (Debian: apt-get install -y python3 python3-venv)",
    )
}

fn step(cmd: &mut Command, what: &str) -> erth_tests::Result<()> {
    cargo::run(cmd).map_err(|e| erth_tests::Error::Install(format!("{what}: {e}")))
}
