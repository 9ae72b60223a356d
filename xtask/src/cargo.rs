//! Child processes: where the repository and the target directory are,
//! cargo run from the repository root into that target directory, and
//! commands echoed before they run (streamed, or captured for their counts).

use crate::Result;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The workspace root (this crate's parent directory).
pub fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or(manifest_dir.clone(), PathBuf::from)
}

/// `$CARGO_TARGET_DIR` if set (relative to the current directory), else
/// `$CACHE/target`, shared by every checkout on the machine.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => std::env::current_dir()
            .map(|cwd| cwd.join(&dir))
            .unwrap_or_else(|_| PathBuf::from(dir)),
        None => erth_tests::cache::cache_dir().join("target"),
    }
}

/// `cargo <args>` (the cargo that runs xtask), from the repository root,
/// building into [`target_dir`].
pub fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args)
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", target_dir());
    cmd
}

/// Echoes `cmd`, runs it with inherited stdio, and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})").into())
    }
}

/// Runs `cmd` (no stdin), prints its output when it ends, and returns its
/// exit success and the combined stdout+stderr text (for reading the test
/// counts).
pub fn run_captured(cmd: &mut Command) -> Result<(bool, String)> {
    let shown = display(cmd);
    println!("$ {shown}");
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{text}");
    Ok((output.status.success(), text))
}

/// A command as a person would type it (program name without its path).
pub fn display(cmd: &Command) -> String {
    let program = PathBuf::from(cmd.get_program());
    let program = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    std::iter::once(program)
        .chain(cmd.get_args().map(|a| quote(&a.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@*".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}
