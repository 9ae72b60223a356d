//! `erth`: a native face of the engine and a tool to inspect a replica.
//!
//! `erth --db FILE [--remote URL] [--token-env VAR] [--json] <command>`;
//! the server URL and token default to `ERTH_DATABASE_URL` and
//! `ERTH_AUTH_TOKEN`; with neither the replica is local-only. Exit codes:
//! 0 ok, 1 error, 2 usage, 3 not found, 4 auth, 5 network.

use clap::{Parser, Subcommand};
use erth_core::{Config, Database, ErrorKind, SqlValue};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "erth",
    version,
    about = "Inspect, edit and sync an Erth Sync replica"
)]
struct Args {
    /// The replica's SQLite file (created if missing).
    #[arg(long, env = "ERTH_DB")]
    db: std::path::PathBuf,
    /// Server URL (libsql://, https://, http:// for local servers); default $ERTH_DATABASE_URL.
    #[arg(long)]
    remote: Option<String>,
    /// Name of the environment variable holding the auth token (default ERTH_AUTH_TOKEN).
    #[arg(long, default_value = "ERTH_AUTH_TOKEN")]
    token_env: String,
    /// Allow http:// to a non-private host (the token travels in clear text).
    #[arg(long)]
    allow_insecure_http: bool,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Add a todo; prints its id.
    Add { title: String },
    /// List active todos, newest first.
    List,
    /// Rename a todo.
    Rename { id: String, title: String },
    /// Mark a todo completed.
    Done { id: String },
    /// Mark a todo not completed.
    Undone { id: String },
    /// Delete a todo (a tombstone that syncs).
    Delete { id: String },
    /// Push local changes and pull remote ones.
    Sync,
    /// Pending changes, last sync, last error.
    Status,
    /// Every row with tombstones and clocks, sorted by id (compare replicas byte for byte).
    Dump,
}

fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound => 3,
        ErrorKind::Auth => 4,
        ErrorKind::Network => 5,
        ErrorKind::InvalidInput => 2,
        _ => 1,
    }
}

fn cell_json(v: &SqlValue) -> serde_json::Value {
    match v {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => (*i).into(),
        SqlValue::Real(r) => (*r).into(),
        SqlValue::Text(t) => t.clone().into(),
        SqlValue::Blob(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
    }
}

async fn run(args: Args) -> erth_core::Result<()> {
    let url = args
        .remote
        .clone()
        .or_else(|| std::env::var("ERTH_DATABASE_URL").ok())
        .filter(|u| !u.trim().is_empty());
    let token = std::env::var(&args.token_env).ok();
    let config = Config {
        url,
        auth_token: token,
        allow_insecure_http: args.allow_insecure_http,
        ..Config::default()
    };
    let db = Database::open_native(&args.db, config).await?;
    let print_todo = |t: &erth_core::Todo| {
        if args.json {
            println!("{}", serde_json::to_string(t).unwrap_or_default());
        } else {
            println!(
                "{}  [{}] {}",
                t.id,
                if t.is_completed { "x" } else { " " },
                t.title
            );
        }
    };
    match &args.command {
        Command::Add { title } => {
            let t = db.add_todo(title).await?;
            if args.json {
                print_todo(&t);
            } else {
                println!("{}", t.id);
            }
        }
        Command::List => {
            let todos = db.list_active_todos().await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&todos).unwrap_or_default()
                );
            } else {
                todos.iter().for_each(print_todo);
            }
        }
        Command::Rename { id, title } => print_todo(&db.rename_todo(id, title).await?),
        Command::Done { id } => print_todo(&db.set_todo_completed(id, true).await?),
        Command::Undone { id } => print_todo(&db.set_todo_completed(id, false).await?),
        Command::Delete { id } => {
            if !db.delete_todo(id).await? {
                return Err(erth_core::Error::NotFound {
                    table: "todos".into(),
                    id: id.clone(),
                });
            }
            println!("deleted {id}");
        }
        Command::Sync => {
            let r = db.sync().await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"pushed": r.pushed, "pulled": r.pulled, "duration_ms": r.duration_ms})
                );
            } else {
                println!(
                    "pushed {} rows, pulled {} rows in {} ms",
                    r.pushed, r.pulled, r.duration_ms
                );
            }
        }
        Command::Status => {
            let s = db.status().await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"pending_changes": s.pending_changes, "last_sync_at_ms": s.last_sync_at_ms,
                        "last_error": s.last_error, "remote_url": s.remote_url})
                );
            } else {
                println!(
                    "remote:          {}",
                    s.remote_url.as_deref().unwrap_or("(none: local-only)")
                );
                println!("pending changes: {}", s.pending_changes);
                println!(
                    "last sync:       {}",
                    s.last_sync_at_ms
                        .map_or("never".into(), |t| format!("{t} ms since epoch"))
                );
            }
        }
        Command::Dump => {
            let def = db.table("todos")?.clone();
            let cols = def.row_columns();
            let rows = db.dump("todos").await?;
            if args.json {
                let out: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        let cells = r.to_cells();
                        serde_json::Value::Object(
                            cols.iter()
                                .cloned()
                                .zip(cells.iter().map(cell_json))
                                .collect(),
                        )
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            } else {
                println!("{}", cols.join("\t"));
                for r in rows {
                    let cells: Vec<String> = r
                        .to_cells()
                        .iter()
                        .map(|c| cell_json(c).to_string())
                        .collect();
                    println!("{}", cells.join("\t"));
                }
            }
        }
    }
    Ok(())
}

/// The `erth` command.
#[tokio::main(flavor = "current_thread")]
pub async fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                eprintln!(
                    "{}",
                    serde_json::json!({"error": e.to_string(), "kind": format!("{:?}", e.kind())})
                );
            } else {
                eprintln!("erth: {e}");
            }
            ExitCode::from(exit_code(e.kind()))
        }
    }
}
