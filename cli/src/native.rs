//! `erth`: a native face of the engine and a tool to inspect a replica.
//!
//! `erth --db FILE [--schema SCHEMA.json] [--remote URL] [--token-env VAR] [--json] <command>`;
//! the schema defaults to `ERTH_SCHEMA` (a path, or the JSON itself), and
//! without one the replica has the built-in `todos` table; the server URL and
//! token default to `ERTH_DATABASE_URL` and `ERTH_AUTH_TOKEN`; with neither
//! the replica is local-only. Exit codes: 0 ok, 1 error, 2 usage or invalid
//! input (bad SQL included), 3 not found, 4 auth, 5 network, 6 the replica
//! file stayed locked by another process past the timeout.
//!
//! Several `erth` processes (and an app) may use one replica file at once:
//! writes wait for each other, syncs wait for each other (see
//! `ARCHITECTURE.md`, "Several processes, one file").
//!
//! `erth sql "STATEMENT" [--params JSON_ARRAY]` runs the app's SQL on the
//! replica: a query prints its rows (a table, or with `--json` one JSON array
//! of objects keyed by column name), a write prints how many rows changed.
//! In JSON, integers are exact, reals are numbers, blobs are lowercase hex
//! strings. Parameters are a JSON array: numbers (integers exact), strings,
//! `null`, `true`/`false` (1/0), and `{"blob": "HEX"}` for a blob.

use clap::{Parser, Subcommand};
use erth_core::{Config, Database, Error, ErrorKind, Rows, SqlValue};
use std::process::ExitCode;

/// `println!` for the command's output, except that a closed pipe ends the
/// process quietly with exit 0 (`erth dump | head`), as `head` expects;
/// `println!` panics there. Any other write error exits 1 with a message.
macro_rules! out {
    ($($arg:tt)*) => {
        print_line(format_args!($($arg)*))
    };
}

fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("erth: writing the output: {e}");
        std::process::exit(1);
    }
}

#[derive(Parser)]
#[command(
    name = "erth",
    version,
    about = "Inspect, edit and sync an Erth Sync replica"
)]
struct Args {
    /// The replica's SQLite file (created if missing).
    #[arg(long, env = "ERTH_DB")]
    db: std::path::PathBuf,
    /// The synced tables: a schema JSON file (or the JSON itself); default
    /// $ERTH_SCHEMA, else the built-in todos table.
    #[arg(long, env = "ERTH_SCHEMA")]
    schema: Option<String>,
    /// Server URL (libsql://, https://, http:// for local servers); default $ERTH_DATABASE_URL.
    #[arg(long)]
    remote: Option<String>,
    /// Key of a database encrypted with your own key (Turso Cloud), sent
    /// as `x-turso-encryption-key`; default $ERTH_ENCRYPTION_KEY (prefer the
    /// variable: command lines are visible to other users).
    #[arg(long, env = "ERTH_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    /// Name of the environment variable holding the auth token (default ERTH_AUTH_TOKEN).
    #[arg(long, default_value = "ERTH_AUTH_TOKEN")]
    token_env: String,
    /// Allow http:// to a non-private host (the token travels in clear text).
    #[arg(long)]
    allow_insecure_http: bool,
    /// How long one request to the server may take, in ms (default 30000).
    #[arg(long, env = "ERTH_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// The most one sync may take, in ms (default 600000; 0: no limit).
    #[arg(long, env = "ERTH_SYNC_TIMEOUT_MS")]
    sync_timeout_ms: Option<u64>,
    /// Install the server's guard at bootstrap (triggers that refuse what no
    /// honest replica writes; needs a token that may change the schema).
    #[arg(long, env = "ERTH_SERVER_GUARD")]
    server_guard: bool,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Most rows per pull page (default 10,000). For tests that need pulls
    /// of many pages (the crash suite kills `erth sync` between them).
    #[arg(long, env = "ERTH_PULL_PAGE_ROWS", hide = true)]
    pull_page_rows: Option<usize>,
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
    /// Rows the server refused (set aside, still pending), with its reasons.
    Rejected,
    /// Make every refused row pending again; the next sync pushes them.
    RetryRejected,
    /// Rows from the server this replica would not apply (they break the
    /// row layout), with why.
    Quarantined,
    /// Empty the list of quarantined rows (they stay unapplied).
    ForgetQuarantined,
    /// Drop the local changes of a refused row and take the server's version
    /// (a row the server never had is removed).
    DiscardRejected { table: String, id: String },
    /// Every row with tombstones and clocks, sorted by id (compare replicas
    /// byte for byte); every table, or only TABLE.
    Dump { table: Option<String> },
    /// Run one SQL statement on the replica (writes to synced tables sync).
    Sql {
        statement: String,
        /// Positional parameters as a JSON array, e.g. '[1, "x", null, {"blob": "00ff"}]'.
        #[arg(long)]
        params: Option<String>,
    },
}

/// The schema text of `--schema`: the JSON itself, or a file holding it.
fn schema_text(arg: &str) -> erth_core::Result<String> {
    if arg.trim_start().starts_with('{') {
        return Ok(arg.to_owned());
    }
    std::fs::read_to_string(arg)
        .map_err(|e| Error::InvalidInput(format!("cannot read the schema file {arg}: {e}")))
}

/// `--params`: a JSON array of values.
fn params(json: Option<&str>) -> erth_core::Result<Vec<SqlValue>> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let bad = |what: String| Error::InvalidInput(format!("--params: {what}"));
    let list: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| bad(format!("not a JSON array: {e}")))?;
    list.into_iter()
        .enumerate()
        .map(|(i, v)| {
            Ok(match v {
                serde_json::Value::Null => SqlValue::Null,
                serde_json::Value::Bool(b) => SqlValue::Integer(i64::from(b)),
                serde_json::Value::String(s) => SqlValue::Text(s),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => SqlValue::Integer(i),
                    (None, Some(f)) if !n.is_u64() => SqlValue::Real(f),
                    _ => {
                        return Err(bad(format!(
                            "parameter {}: {n} does not fit in 64 bits",
                            i + 1
                        )))
                    }
                },
                serde_json::Value::Object(o) => match o.get("blob").and_then(|h| h.as_str()) {
                    Some(hex) if o.len() == 1 => {
                        SqlValue::Blob(erth_core::value::from_hex(hex).ok_or_else(|| {
                            bad(format!("parameter {}: blob is not lowercase hex", i + 1))
                        })?)
                    }
                    _ => {
                        return Err(bad(format!(
                            "parameter {}: objects are {{\"blob\": \"HEX\"}}",
                            i + 1
                        )))
                    }
                },
                serde_json::Value::Array(_) => {
                    return Err(bad(format!(
                        "parameter {}: arrays are not SQL values",
                        i + 1
                    )))
                }
            })
        })
        .collect()
}

/// Rows as JSON objects keyed by column name.
fn rows_json(rows: &Rows) -> serde_json::Value {
    rows.rows
        .iter()
        .map(|r| {
            serde_json::Value::Object(
                rows.columns
                    .iter()
                    .cloned()
                    .zip(r.iter().map(cell_json))
                    .collect(),
            )
        })
        .collect()
}

/// A cell as a person reads it in a table.
fn cell_text(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => "NULL".into(),
        SqlValue::Text(t) => t.clone(),
        SqlValue::Blob(_) => format!("x'{}'", cell_json(v).as_str().unwrap_or_default()),
        other => cell_json(other).to_string(),
    }
}

/// Rows as an aligned text table.
fn print_table(rows: &Rows) {
    let cells: Vec<Vec<String>> = rows
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(cell_text)
                .map(|c| c.replace(['\n', '\t'], " "))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = rows.columns.iter().map(|c| c.chars().count()).collect();
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |r: &[String]| {
        r.iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    out!("{}", line(&rows.columns));
    out!(
        "{}",
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>())
    );
    for r in &cells {
        out!("{}", line(r));
    }
    out!(
        "({} row{})",
        cells.len(),
        if cells.len() == 1 { "" } else { "s" }
    );
}

/// `2026-11-30 10:20:31 UTC (3 minutes ago)`: `at_ms` (ms since the Unix
/// epoch) as a UTC date and time, and how long before `now_ms` it was.
fn human_time(at_ms: u64, now_ms: u64) -> String {
    let secs = at_ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let ago = match now_ms.checked_sub(at_ms).map(|ms| ms / 1000) {
        None => "in the future: this device's clock is behind".to_owned(),
        Some(s) if s < 60 => format!("{s} second{} ago", if s == 1 { "" } else { "s" }),
        Some(s) => {
            let (n, unit) = match s {
                60..3_600 => (s / 60, "minute"),
                3_600..86_400 => (s / 3_600, "hour"),
                _ => (s / 86_400, "day"),
            };
            format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
        }
    };
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC ({ago})",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// A todo in the CLI's JSON (snake_case, as the rest of its output).
fn todo_json(t: &erth_core::Todo) -> serde_json::Value {
    serde_json::json!({"id": t.id, "title": t.title, "is_completed": t.is_completed,
        "created_at": t.created_at, "updated_at": t.updated_at})
}

fn refusal_json(t: &erth_core::TableRefusal) -> serde_json::Value {
    serde_json::json!({"table": t.table, "code": t.code, "message": t.message})
}

fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound => 3,
        ErrorKind::Auth => 4,
        ErrorKind::Network => 5,
        ErrorKind::InvalidInput | ErrorKind::Sql | ErrorKind::SchemaChange => 2,
        ErrorKind::DatabaseLocked => 6,
        _ => 1,
    }
}

fn cell_json(v: &SqlValue) -> serde_json::Value {
    match v {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => (*i).into(),
        SqlValue::Real(r) => (*r).into(),
        SqlValue::Text(t) => t.clone().into(),
        SqlValue::Blob(b) => erth_core::value::to_hex(b).into(),
    }
}

async fn run(args: Args) -> erth_core::Result<()> {
    let url = args
        .remote
        .clone()
        .or_else(|| std::env::var("ERTH_DATABASE_URL").ok())
        .filter(|u| !u.trim().is_empty());
    let token = std::env::var(&args.token_env).ok();
    let defaults = Config::default();
    let mut config = Config {
        url,
        auth_token: token,
        encryption_key: args.encryption_key.clone(),
        allow_insecure_http: args.allow_insecure_http,
        request_timeout_ms: args
            .request_timeout_ms
            .unwrap_or(defaults.request_timeout_ms),
        sync_timeout_ms: args.sync_timeout_ms.unwrap_or(defaults.sync_timeout_ms),
        server_guard: args.server_guard,
        ..defaults
    };
    if let Some(rows) = args.pull_page_rows {
        config.pull_page_rows = rows;
    }
    if let Some(schema) = args.schema.as_deref().filter(|s| !s.trim().is_empty()) {
        config = config.with_schema_json(&schema_text(schema)?)?;
    }
    let db = Database::open_native(&args.db, config).await?;
    let print_todo = |t: &erth_core::Todo| {
        if args.json {
            out!("{}", todo_json(t));
        } else {
            out!(
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
                out!("{}", t.id);
            }
        }
        Command::List => {
            let todos = db.list_active_todos().await?;
            if args.json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(&todos.iter().map(todo_json).collect::<Vec<_>>())
                        .unwrap_or_default()
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
            out!("deleted {id}");
        }
        Command::Sync => {
            let r = db.sync().await?;
            let status = db.status().await?;
            let unknown = status.unknown_server_columns;
            if args.json {
                out!(
                    "{}",
                    serde_json::json!({"pushed": r.pushed, "pulled": r.pulled, "duration_ms": r.duration_ms,
                        "unknown_server_columns": unknown, "rejected": status.rejected,
                        "quarantined": status.quarantined,
                        "refused_tables": status.refused_tables.iter().map(refusal_json).collect::<Vec<_>>()})
                );
            } else {
                out!(
                    "pushed {} rows, pulled {} rows in {} ms",
                    r.pushed,
                    r.pulled,
                    r.duration_ms
                );
                if !unknown.is_empty() {
                    out!(
                        "the server has columns this schema does not declare (left alone): {}",
                        unknown.join(", ")
                    );
                }
                if status.rejected > 0 {
                    out!(
                        "{} rows refused by the server are set aside (see `erth rejected`)",
                        status.rejected
                    );
                }
                if status.quarantined > 0 {
                    out!(
                        "{} rows from the server break the row layout and were not applied (see `erth quarantined`)",
                        status.quarantined
                    );
                }
                for t in &status.refused_tables {
                    out!(
                        "the server refuses changes to table {} ({}: {}); they stay pending",
                        t.table,
                        t.code,
                        t.message
                    );
                }
            }
        }
        Command::Rejected => {
            let rows = db.rejected_rows().await?;
            if args.json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({"table": r.table, "id": r.id, "code": r.code,
                            "message": r.message, "rejected_at_ms": r.rejected_at_ms})
                    })
                    .collect();
                out!("{}", serde_json::Value::Array(list));
            } else if rows.is_empty() {
                out!("no refused rows");
            } else {
                for r in &rows {
                    out!("{} {} {}: {}", r.table, r.id, r.code, r.message);
                }
            }
        }
        Command::RetryRejected => {
            let n = db.retry_rejected().await?;
            if args.json {
                out!("{}", serde_json::json!({"retried": n}));
            } else {
                out!("{n} refused rows are pending again; the next sync pushes them");
            }
        }
        Command::Quarantined => {
            let rows = db.quarantined_rows().await?;
            if args.json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({"table": r.table, "id": r.id, "seq": r.seq,
                            "reason": r.reason, "quarantined_at_ms": r.quarantined_at_ms})
                    })
                    .collect();
                out!("{}", serde_json::Value::Array(list));
            } else if rows.is_empty() {
                out!("no quarantined rows");
            } else {
                for r in &rows {
                    out!("{} {} (_seq {}): {}", r.table, r.id, r.seq, r.reason);
                }
            }
        }
        Command::ForgetQuarantined => {
            let n = db.forget_quarantined().await?;
            if args.json {
                out!("{}", serde_json::json!({"forgotten": n}));
            } else {
                out!("forgot {n} quarantined rows (they stay unapplied)");
            }
        }
        Command::DiscardRejected { table, id } => {
            db.discard_rejected(table, id).await?;
            if args.json {
                out!("{}", serde_json::json!({"discarded": id}));
            } else {
                out!("discarded the local changes of {table} {id}");
            }
        }
        Command::Status => {
            let s = db.status().await?;
            if args.json {
                out!(
                    "{}",
                    serde_json::json!({"pending_changes": s.pending_changes, "last_sync_at_ms": s.last_sync_at_ms,
                        "last_error": s.last_error, "remote_url": s.remote_url, "rejected": s.rejected,
                        "quarantined": s.quarantined,
                        "refused_tables": s.refused_tables.iter().map(refusal_json).collect::<Vec<_>>()})
                );
            } else {
                out!(
                    "remote:          {}",
                    s.remote_url.as_deref().unwrap_or("(none: local-only)")
                );
                out!("pending changes: {}", s.pending_changes);
                out!("refused rows:    {}", s.rejected);
                out!("quarantined:     {}", s.quarantined);
                for t in &s.refused_tables {
                    out!(
                        "refused table:   {} ({}: {}); its changes stay pending",
                        t.table,
                        t.code,
                        t.message
                    );
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                out!(
                    "last sync:       {}",
                    s.last_sync_at_ms
                        .map_or("never".into(), |t| human_time(t, now))
                );
                if let Some(e) = &s.last_error {
                    out!("last error:      {e}");
                }
            }
        }
        Command::Dump { table } => {
            let names: Vec<String> = match table {
                Some(t) => vec![db.table(t)?.name.clone()],
                None => db.tables().iter().map(|t| t.name.clone()).collect(),
            };
            let mut all = serde_json::Map::new();
            for name in &names {
                let def = db.table(name)?.clone();
                let cols = def.row_columns();
                let rows = db.dump(name).await?;
                if args.json {
                    let out: Vec<serde_json::Value> = rows
                        .iter()
                        .map(|r| {
                            serde_json::Value::Object(
                                cols.iter()
                                    .cloned()
                                    .zip(r.to_cells().iter().map(cell_json))
                                    .collect(),
                            )
                        })
                        .collect();
                    all.insert(name.clone(), out.into());
                } else {
                    if table.is_none() {
                        out!("== {name} ==");
                    }
                    out!("{}", cols.join("\t"));
                    for r in rows {
                        let cells: Vec<String> = r
                            .to_cells()
                            .iter()
                            .map(|c| cell_json(c).to_string())
                            .collect();
                        out!("{}", cells.join("\t"));
                    }
                }
            }
            if args.json {
                let out = match table {
                    Some(t) => all.remove(t).unwrap_or_default(),
                    None => serde_json::Value::Object(all),
                };
                out!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            }
        }
        Command::Sql {
            statement,
            params: p,
        } => {
            let out = db.execute(statement, &params(p.as_deref())?).await?;
            let is_query = !out.rows.columns.is_empty();
            match (is_query, args.json) {
                (true, true) => out!("{}", rows_json(&out.rows)),
                (true, false) => print_table(&out.rows),
                (false, true) => out!(
                    "{}",
                    serde_json::json!({"rows_affected": out.rows_affected})
                ),
                (false, false) => out!(
                    "{} row{} changed",
                    out.rows_affected,
                    if out.rows_affected == 1 { "" } else { "s" }
                ),
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
                    serde_json::json!({"error": e.to_string(), "kind": e.kind().as_str()})
                );
            } else {
                eprintln!("erth: {e}");
            }
            ExitCode::from(exit_code(e.kind()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human_time;

    #[test]
    fn times_read_as_utc_and_how_long_ago() {
        let at = 1_796_026_385_534; // 2026-11-30 08:13:05.534 UTC
        assert_eq!(
            human_time(at, at + 3 * 60_000 + 5_000),
            "2026-11-30 08:13:05 UTC (3 minutes ago)"
        );
        assert_eq!(
            human_time(at, at + 1_000),
            "2026-11-30 08:13:05 UTC (1 second ago)"
        );
        assert_eq!(
            human_time(0, 2 * 86_400_000),
            "1970-01-01 00:00:00 UTC (2 days ago)"
        );
        assert_eq!(
            human_time(951_782_400_000, 951_782_400_000 + 7_200_000),
            "2000-02-29 00:00:00 UTC (2 hours ago)"
        );
        assert!(human_time(at, at - 1).ends_with("(in the future: this device's clock is behind)"));
    }
}
