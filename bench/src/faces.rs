//! Comparison 8: what the native faces add per call. A one-row insert
//! (`add_todo`) and a point read by id (`get_todo`) through the Rust core,
//! then through the Python, Kotlin and Swift faces (the UniFFI bindings as
//! shipped: the x86-64 wheel's library), each in a process of its own, one
//! after the other, on the same database file (the one Rust used, closed in
//! between). `cargo xtask bench` builds the faces and hands them over as a
//! list (`--faces FILE`: per line a name, then a command, tab-separated); each face's
//! program (`baselines/faces/`) takes `--db FILE --n N` and prints its
//! samples in milliseconds.

use crate::report::{Check, Row, Section};
use crate::stats::{duration, factor, times, Samples};
use crate::{nums, run_json, text, Ctx};
use anyhow::{Context as _, Result};
use erth_core::{Config, Database};
use std::process::Command;
use std::time::Instant;

/// Calls of each kind timed per face (after its own warm-up).
const CALLS: usize = 500;
/// Rust's calls before the timed ones.
const WARM: usize = 20;
/// Most a face may take per call, in multiples of Rust's (issue #26).
const FACE_FACTOR: f64 = 2.0;

/// A face as `cargo xtask bench` built it.
struct Face {
    name: String,
    argv: Vec<String>,
}

fn target(face: &str, what: &str) -> String {
    format!("{face}: {what} <= {FACE_FACTOR}x the same call in Rust, same file")
}

/// The faces' names (the targets they report), as `--faces` lists them.
fn faces(ctx: &Ctx) -> Result<Vec<Face>> {
    let Some(path) = &ctx.faces else {
        return Ok(Vec::new());
    };
    let list = std::fs::read_to_string(path)
        .with_context(|| format!("reading the faces' list {}", path.display()))?;
    list.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut fields = l.split('\t').map(str::to_owned);
            let name = fields.next().context("an empty line")?;
            let argv: Vec<String> = fields.collect();
            anyhow::ensure!(!argv.is_empty(), "face {name} has no command");
            Ok(Face { name, argv })
        })
        .collect()
}

pub async fn run(ctx: &Ctx, title: &str) -> Result<Section> {
    let mut s = Section::new(title, "face", "Rust");
    let faces = faces(ctx)?;
    if faces.is_empty() {
        let reason =
            "no faces given (`cargo xtask bench` builds them; erth-bench alone takes --faces FILE)";
        s.notes.push(format!("not measured: {reason}."));
        for face in ["Python", "Kotlin", "Swift"] {
            for what in ["one-row insert", "point read"] {
                s.checks
                    .push(Check::not_measured(&target(face, what), reason));
            }
        }
        return Ok(s);
    }
    let n = ctx.pick(CALLS, CALLS / 5);
    // Next to the list, where every face can reach it (the Swift face runs
    // in a chroot whose /tmp holds the list).
    let near = ctx
        .faces
        .as_ref()
        .and_then(|p| p.parent())
        .context("the faces' list has no directory")?;
    let dir = tempfile::tempdir_in(near).context("temp dir")?;
    let file = dir.path().join("faces.db");
    let (insert, read) = rust_calls(&file, n).await?;
    s.about = format!(
        "`add_todo` (a one-row insert transaction) and `get_todo` (a point read by id), {n} \
         of each, timed one by one after a warm-up: first through the Rust core \
         (`erth_core::Database`, tokio), then through each face in a process of its own on the \
         same file (`bench/baselines/faces/`): Python's `Database` (awaited in asyncio) and \
         `BlockingDatabase`, Kotlin's `ErthDb` (suspend functions in `runBlocking`), Swift's \
         `ErthDb` (async, top-level code; built in release by SwiftPM). Medians."
    );
    s.rows
        .push(Row::new("Rust: one-row insert", insert.summary(), "", ""));
    s.rows
        .push(Row::new("Rust: point read", read.summary(), "", ""));
    for face in &faces {
        let (program, args) = face
            .argv
            .split_first()
            .with_context(|| format!("face {} has no command", face.name))?;
        let v = run_json(
            Command::new(program)
                .args(args)
                .arg("--db")
                .arg(&file)
                .args(["--n", &n.to_string()]),
            &format!("the {} face's benchmark", face.name),
        )?;
        s.versions.push(text(&v, "version")?);
        let mut measured = vec![(face.name.clone(), &v, true)];
        if v.get("blocking").is_some() {
            measured.push((format!("{} (blocking)", face.name), &v["blocking"], false));
        }
        for (name, v, checked) in measured {
            for (what, rust, key) in [
                ("one-row insert", &insert, "insert"),
                ("point read", &read, "read"),
            ] {
                let ours = Samples::from_ms(nums(&v[key])?);
                let ratio = ours.median() / rust.median();
                s.rows.push(Row::new(
                    format!("{name}: {what}"),
                    ours.summary(),
                    duration(rust.median()),
                    factor(ours.median(), rust.median()),
                ));
                if checked {
                    s.checks.push(
                        Check::new(
                            target(&name, what),
                            format!(
                                "{ratio:.2}x ({} vs {})",
                                duration(ours.median()),
                                duration(rust.median())
                            ),
                            ratio <= FACE_FACTOR,
                            format!(
                                "The face adds {} per call to Rust's {}: the UniFFI call, \
                                 its async future polled across the boundary and the \
                                 records converted.",
                                duration((ours.median() - rust.median()).max(0.0)),
                                duration(rust.median())
                            ),
                        )
                        .value(ratio, times),
                    );
                }
            }
        }
    }
    Ok(s)
}

/// Rust's side: `n` inserts, then `n` point reads of them, each timed.
async fn rust_calls(file: &std::path::Path, n: usize) -> Result<(Samples, Samples)> {
    let db = Database::open_native(file, Config::default()).await?;
    let (mut insert, mut read) = (Samples::new(), Samples::new());
    let mut ids = Vec::new();
    for i in 0..WARM + n {
        let t = Instant::now();
        let todo = db.add_todo(&format!("rust {i}")).await?;
        if i >= WARM {
            insert.push(t.elapsed());
        }
        ids.push(todo.id);
    }
    for (i, id) in ids.iter().enumerate() {
        let t = Instant::now();
        let todo = db.get_todo(id).await?;
        if i >= WARM {
            read.push(t.elapsed());
        }
        anyhow::ensure!(&todo.id == id, "read {}, not {id}", todo.id);
    }
    Ok((insert, read))
}
