//! Python packages from PyPI, in virtual environments in the cache:
//! maturin (and pytest's wheels) for the `python` suite, and the
//! benchmarks' baselines (SQLModel, pyturso).

use super::{MATURIN, PYTEST, PYTURSO, SQLALCHEMY, SQLMODEL};
use crate::cargo;
use crate::Result;
use erth_tests::cache;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `python -m pip`, quietly.
pub const PIP: [&str; 4] = ["-m", "pip", "--disable-pip-version-check", "--quiet"];

/// The interpreter of a virtual environment.
pub fn python_in(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The `python` suite's tools: `venv/` with maturin, and `wheels/` with
/// pytest and its dependencies, from which each run's fresh venv installs
/// pytest without going to PyPI again.
pub fn maturin_and_pytest() -> Result<PathBuf> {
    Ok(cache::install_dir(
        &format!("python-maturin-{MATURIN}-pytest-{PYTEST}"),
        |dir| {
            println!("installing maturin {MATURIN} and pytest {PYTEST} from PyPI into the cache");
            let venv = dir.join("venv");
            new_venv(&venv)?;
            step(
                Command::new(python_in(&venv))
                    .args(PIP)
                    .arg("install")
                    .arg(format!("maturin=={MATURIN}")),
                "pip install maturin from PyPI",
            )?;
            step(
                Command::new(python_in(&venv))
                    .args(PIP)
                    .args(["download", "--dest"])
                    .arg(dir.join("wheels"))
                    .arg(format!("pytest=={PYTEST}")),
                "pip download pytest from PyPI",
            )
        },
    )?)
}

/// Wheels of SQLModel and SQLAlchemy (and their dependencies) for the
/// `python` suite's dialect tests, downloaded once into the cache; each
/// run's fresh venv installs them from there.
pub fn sqlmodel_wheels() -> Result<PathBuf> {
    let tools = maturin_and_pytest()?;
    Ok(cache::install_dir(
        &format!("python-wheels-sqlmodel-{SQLMODEL}-sqlalchemy-{SQLALCHEMY}"),
        |dir| {
            println!("downloading sqlmodel {SQLMODEL} and sqlalchemy {SQLALCHEMY} from PyPI into the cache");
            step(
                Command::new(python_in(&tools.join("venv")))
                    .args(PIP)
                    .args(["download", "--dest"])
                    .arg(dir)
                    .arg(format!("sqlmodel=={SQLMODEL}"))
                    .arg(format!("sqlalchemy=={SQLALCHEMY}")),
                "pip download sqlmodel and sqlalchemy from PyPI",
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
