//! `erth`: a native face of the engine and a tool to inspect a replica.
//!
//! `erth --db FILE [--schema SCHEMA.json] [--remote URL] [--token-env VAR] [--json] <command>`;
//! the schema defaults to `ERTH_SCHEMA` (a path, or the JSON itself), and
//! without one the replica has the built-in `todos` table; the server URL and
//! token default to `ERTH_DATABASE_URL` and `ERTH_AUTH_TOKEN`; with neither
//! the replica is local-only.
//!
//! Secrets come from files or environment variables (`--auth-token-file`,
//! `--encryption-key-file`, `ERTH_AUTH_TOKEN`, `ERTH_ENCRYPTION_KEY`): a
//! command line is visible to other users of the machine (`ps`), so a key
//! given as `--encryption-key` or a token inside the `--remote` URL is
//! used, with a warning on stderr. Human output escapes control characters
//! and bidirectional overrides (`\u{1b}`, `\n`) in everything it prints
//! from data (titles, SQL results, the server's messages), so a value
//! cannot drive the terminal; `--json` output is exact. Exit codes: 0 ok, 1 error, 2 usage or invalid
//! input (bad SQL included), 3 not found, 4 auth, 5 network, 6 the replica
//! file stayed locked by another process past the timeout, 7 a wrong or
//! missing key (the file key of an encrypted replica, or a column key).
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

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use erth_core::{Config, Database, Error, ErrorKind, Rows, SqlValue};
use std::borrow::Cow;
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
    /// The replica's SQLite file (created if missing); every command but
    /// `recovery-phrase` needs it.
    #[arg(long, env = "ERTH_DB")]
    db: Option<std::path::PathBuf>,
    /// The synced tables: a schema JSON file (or the JSON itself); default
    /// $ERTH_SCHEMA, else the built-in todos table.
    #[arg(long, env = "ERTH_SCHEMA")]
    schema: Option<String>,
    /// Server URL (libsql://, https://, http:// for a server on this
    /// machine); default $ERTH_DATABASE_URL. A token in it (?authToken=)
    /// works, with a warning: prefer --auth-token-file.
    #[arg(long)]
    remote: Option<String>,
    /// Key of a database encrypted with your own key (Turso Cloud), sent
    /// as `x-turso-encryption-key` to the --remote server only (never over
    /// plain http:// but to this machine); default $ERTH_ENCRYPTION_KEY.
    /// Prefer --encryption-key-file or the variable: command lines are
    /// visible to other users (a warning says so).
    #[arg(long, env = "ERTH_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    /// A file holding the encryption key (surrounding whitespace ignored).
    #[arg(
        long,
        env = "ERTH_ENCRYPTION_KEY_FILE",
        conflicts_with = "encryption_key"
    )]
    encryption_key_file: Option<std::path::PathBuf>,
    /// A file of the keys of the schema's end-to-end encrypted columns:
    /// each 64 hex digits (32 bytes) or a recovery phrase (`erth
    /// recovery-phrase`), one per line or comma-separated, the one that
    /// seals new values first; default $ERTH_COLUMN_KEYS_FILE,
    /// else the keys in $ERTH_COLUMN_KEYS. Keys are never taken from the
    /// command line.
    #[arg(long, env = "ERTH_COLUMN_KEYS_FILE")]
    column_keys_file: Option<std::path::PathBuf>,
    /// A file holding the key of the replica's file, encrypted at rest
    /// (SQLCipher 4): 64 hex digits or a recovery phrase; default
    /// $ERTH_FILE_KEY_FILE, else the key in $ERTH_FILE_KEY. A new file is
    /// created encrypted; an existing one must have this key (exit 7
    /// otherwise, the file untouched). Never taken from the command line.
    #[arg(long, env = "ERTH_FILE_KEY_FILE")]
    file_key_file: Option<std::path::PathBuf>,
    /// Name of the environment variable holding the auth token (default ERTH_AUTH_TOKEN).
    #[arg(long, default_value = "ERTH_AUTH_TOKEN")]
    token_env: String,
    /// A file holding the auth token (surrounding whitespace ignored);
    /// instead of the --token-env variable.
    #[arg(long, env = "ERTH_AUTH_TOKEN_FILE")]
    auth_token_file: Option<std::path::PathBuf>,
    /// Allow plain http:// to a host other than this machine (127.0.0.1,
    /// ::1, localhost): the token travels in clear text (the encryption
    /// key never does).
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
    /// Subscribe this replica to the rows of TABLE that FILTER (one SQL
    /// expression, run on the server) selects: from then on TABLE pulls
    /// only its subscriptions' rows, and rows that leave them are evicted.
    /// The next sync backfills it (`--wait` syncs until its rows are here).
    /// A filter chooses what this device downloads, not who may read what.
    Subscribe {
        name: String,
        table: String,
        filter: String,
        /// The filter's `?` parameters as a JSON array, e.g. '["ann", 3]'.
        #[arg(long)]
        params: Option<String>,
        /// End the subscription this many ms from now.
        #[arg(long)]
        ttl_ms: Option<u64>,
        /// Sync until the subscription's rows are on this replica.
        #[arg(long)]
        wait: bool,
    },
    /// End a subscription (its rows leave at the next sync).
    Unsubscribe { name: String },
    /// This replica's subscriptions, and whether their rows are here.
    Subscriptions,
    /// Remove from the server the tombstones (deleted rows) whose delete
    /// is older than DURATION, in batches syncs do not notice. A replica
    /// offline for longer compares ids at its next sync and never brings a
    /// purged row back; each replica drops its own tombstones once purged.
    Purge {
        /// How old a delete must be: a number and a unit (ms, s, m, h, d),
        /// e.g. 12h, 30d; 0 purges every tombstone.
        #[arg(long, value_parser = parse_age, default_value = "30d")]
        older_than: u64,
    },
    /// Print a new recovery phrase (24 BIP-39 English words, 256 random
    /// bits): put it in the column keys file or the file key file instead
    /// of a hex key (one phrase gives a column key and a different file
    /// key), and write it down; the same phrase gives the same keys on
    /// every device.
    /// Needs no database.
    RecoveryPhrase,
    /// Rewrite the replica's file under another key: from its current key
    /// (--file-key-file, $ERTH_FILE_KEY; none: a plain file) to the key in
    /// --new-key-file (or $ERTH_NEW_FILE_KEY), or to a plain file with
    /// --plain. Every row, the sync state and the file's permissions are
    /// kept; the file must be closed by every other program (exit 6
    /// otherwise).
    ChangeFileKey {
        /// A file holding the new key (64 hex digits or a recovery phrase).
        #[arg(long, env = "ERTH_NEW_FILE_KEY_FILE")]
        new_key_file: Option<std::path::PathBuf>,
        /// Decrypt: the file becomes a plain SQLite file (a new key given
        /// by the environment is then ignored).
        #[arg(long)]
        plain: bool,
    },
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

/// Whether `c` may not reach a terminal as it is: control characters (C0,
/// DEL, C1: escape sequences start with them) and the bidirectional marks
/// and overrides that make text read otherwise than it is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` fit for a terminal: each character of [`needs_escape`] written
/// as `\n`, `\r`, `\t` or `\u{XX}`.
fn esc(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Reads a secret from `path`, without surrounding whitespace. A path that
/// looks like a key itself (64 hex digits, or several words: a recovery
/// phrase given where its file's path belongs) is not shown in the error.
fn secret_file(path: &std::path::Path, what: &str) -> erth_core::Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| {
            let text = path.to_string_lossy();
            let looks_like_a_key = text.split_whitespace().count() > 2
                || (text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()));
            Error::InvalidInput(if looks_like_a_key {
                format!(
                    "cannot read the {what} file: the argument looks like a key itself (not \
                     shown); give the path of a file that holds it"
                )
            } else {
                format!("cannot read the {what} file {}: {e}", path.display())
            })
        })
}

/// Column keys from their text, the sealing one first: one per line (or
/// separated by commas), each 64 hex digits or a recovery phrase; hex keys
/// may also share a line, separated by spaces. The error never shows a key.
fn column_keys(text: &str) -> erth_core::Result<erth_core::encrypted::ColumnKeys> {
    let mut keys: Vec<&str> = Vec::new();
    for entry in text
        .split(['\n', ','])
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        let tokens: Vec<&str> = entry.split_whitespace().collect();
        if tokens.len() > 1 && tokens.iter().all(|t| t.len() == 64) {
            keys.extend(tokens);
        } else {
            keys.push(entry);
        }
    }
    erth_core::encrypted::ColumnKeys::from_text(&keys)
}

/// A file key from `file` or else the variable `var` (hex or a recovery
/// phrase); `None` when neither is set. The error never shows the key.
fn secret_key(
    file: Option<&std::path::Path>,
    var: &str,
    what: &str,
) -> erth_core::Result<Option<erth_core::file_key::FileKey>> {
    let text = match file {
        Some(path) => secret_file(path, what)?,
        None => match std::env::var(var) {
            Ok(text) if !text.trim().is_empty() => text,
            _ => return Ok(None),
        },
    };
    erth_core::file_key::FileKey::from_text(&text).map(Some)
}

/// `erth change-file-key`: rewrites `--db` from `old` to the new key (or to
/// a plain file).
fn change_file_key(
    args: &Args,
    old: Option<erth_core::file_key::FileKey>,
    new_key_file: Option<&std::path::Path>,
    plain: bool,
) -> erth_core::Result<()> {
    let Some(path) = &args.db else {
        return Err(Error::InvalidInput(
            "--db FILE (or ERTH_DB) names the replica's file to rewrite".into(),
        ));
    };
    let new = if plain {
        None
    } else {
        secret_key(new_key_file, "ERTH_NEW_FILE_KEY", "new file key")?
    };
    if new.is_none() && !plain {
        return Err(Error::InvalidInput(
            "give the new key (--new-key-file or ERTH_NEW_FILE_KEY), or --plain to decrypt".into(),
        ));
    }
    erth_core::file_key::change_file_key(path, old.as_ref(), new.as_ref())?;
    if args.json {
        out!("{}", serde_json::json!({ "encrypted": new.is_some() }));
    } else if new.is_some() {
        out!("{}: encrypted with the new key", path.display());
    } else {
        out!("{}: now a plain file", path.display());
    }
    Ok(())
}

/// Warnings for secrets given on the command line, which other users of
/// the machine can read (`ps`, `/proc/<pid>/cmdline`).
fn argv_warnings(matches: &clap::ArgMatches, args: &Args) -> Vec<String> {
    let on_argv =
        |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    let mut warnings = Vec::new();
    if on_argv("encryption_key") {
        warnings.push("the encryption key was given on the command line, where other users of this machine can read it; use --encryption-key-file or ERTH_ENCRYPTION_KEY".to_owned());
    }
    if let Some(url) = args.remote.as_deref().filter(|_| on_argv("remote")) {
        if erth_core::redact::secrets(url) != url {
            warnings.push(format!(
                "the --remote URL carries a token ({}), where other users of this machine can read it; use --auth-token-file or ERTH_AUTH_TOKEN",
                esc(&erth_core::redact::secrets(url))
            ));
        }
    }
    warnings
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
        .map(|r| r.iter().map(|c| esc(&cell_text(c)).into_owned()).collect())
        .collect();
    let columns: Vec<String> = rows.columns.iter().map(|c| esc(c).into_owned()).collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
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
    out!("{}", line(&columns));
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
        ErrorKind::WrongKey => 7,
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
    if let Command::RecoveryPhrase = args.command {
        let phrase = erth_core::recovery::new_recovery_phrase()?;
        if args.json {
            out!("{}", serde_json::json!({ "recovery_phrase": phrase }));
        } else {
            out!("{phrase}");
        }
        return Ok(());
    }
    let url = args
        .remote
        .clone()
        .or_else(|| std::env::var("ERTH_DATABASE_URL").ok())
        .filter(|u| !u.trim().is_empty());
    let token = match &args.auth_token_file {
        Some(path) => Some(secret_file(path, "auth token")?),
        None => std::env::var(&args.token_env).ok(),
    };
    let encryption_key = match &args.encryption_key_file {
        Some(path) => Some(secret_file(path, "encryption key")?),
        None => args.encryption_key.clone(),
    };
    let column_keys = match &args.column_keys_file {
        Some(path) => Some(column_keys(&secret_file(path, "column keys")?)?),
        None => match std::env::var("ERTH_COLUMN_KEYS") {
            Ok(keys) if !keys.trim().is_empty() => Some(column_keys(&keys)?),
            _ => None,
        },
    };
    let file_key = secret_key(args.file_key_file.as_deref(), "ERTH_FILE_KEY", "file key")?;
    if let Command::ChangeFileKey {
        new_key_file,
        plain,
    } = &args.command
    {
        return change_file_key(&args, file_key, new_key_file.as_deref(), *plain);
    }
    let defaults = Config::default();
    let mut config = Config {
        file_key,
        column_keys,
        url,
        auth_token: token,
        encryption_key,
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
    let Some(path) = &args.db else {
        return Err(erth_core::Error::InvalidInput(
            "--db FILE (or ERTH_DB) names the replica's file; every command but recovery-phrase needs it".into(),
        ));
    };
    let db = Database::open_native(path, config).await?;
    let print_todo = |t: &erth_core::Todo| {
        if args.json {
            out!("{}", todo_json(t));
        } else {
            out!(
                "{}  [{}] {}",
                esc(&t.id),
                if t.is_completed { "x" } else { " " },
                esc(&t.title)
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
            out!("deleted {}", esc(id));
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
                        esc(&unknown.join(", "))
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
                        esc(&t.table),
                        esc(&t.code),
                        esc(&t.message)
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
                    out!(
                        "{} {} {}: {}",
                        esc(&r.table),
                        esc(&r.id),
                        esc(&r.code),
                        esc(&r.message)
                    );
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
        Command::Subscribe {
            name,
            table,
            filter,
            params: values,
            ttl_ms,
            wait,
        } => {
            db.add_subscription(name, table, filter, &params(values.as_deref())?, *ttl_ms)
                .await?;
            if *wait {
                db.wait_for_subscription(name).await?;
            }
            if !args.json {
                out!(
                    "subscribed {} to {}{}",
                    esc(name),
                    esc(table),
                    if *wait { " (its rows are here)" } else { "" }
                );
            }
        }
        Command::Purge { older_than } => {
            let report = db.purge(*older_than).await?;
            if args.json {
                let tables: Vec<_> = report
                    .tables
                    .iter()
                    .map(|t| serde_json::json!({"table": t.table, "rows": t.rows, "mark": t.mark}))
                    .collect();
                out!(
                    "{}",
                    serde_json::json!({"horizon_ms": report.horizon_ms, "tables": tables})
                );
            } else {
                for t in &report.tables {
                    out!("{}: purged {} tombstones", esc(&t.table), t.rows);
                }
            }
        }
        // Done before the database opens (they need no open replica).
        Command::RecoveryPhrase | Command::ChangeFileKey { .. } => {}
        Command::Unsubscribe { name } => {
            if !db.remove_subscription(name).await? {
                return Err(erth_core::Error::UnknownSubscription { name: name.clone() });
            }
            if !args.json {
                out!("unsubscribed {}", esc(name));
            }
        }
        Command::Subscriptions => {
            let subs = db.subscriptions().await?;
            if args.json {
                let list: Vec<_> = subs
                    .iter()
                    .map(|s| {
                        serde_json::json!({"name": s.name, "table": s.table, "filter": s.filter,
                            "ready": s.ready, "expires_at_ms": s.expires_at_ms,
                            "backfilled_rows": s.backfilled_rows})
                    })
                    .collect();
                out!("{}", serde_json::Value::Array(list));
            } else if subs.is_empty() {
                out!("no subscriptions: every table pulls all its rows");
            } else {
                for s in &subs {
                    out!(
                        "{} on {}: {} [{}]",
                        esc(&s.name),
                        esc(&s.table),
                        esc(&s.filter),
                        if s.ready { "ready" } else { "backfilling" }
                    );
                }
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
                    out!(
                        "{} {} (_seq {}): {}",
                        esc(&r.table),
                        esc(&r.id),
                        r.seq,
                        esc(&r.reason)
                    );
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
                out!("discarded the local changes of {} {}", esc(table), esc(id));
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
                    esc(s.remote_url.as_deref().unwrap_or("(none: local-only)"))
                );
                out!("pending changes: {}", s.pending_changes);
                out!("refused rows:    {}", s.rejected);
                out!("quarantined:     {}", s.quarantined);
                for t in &s.refused_tables {
                    out!(
                        "refused table:   {} ({}: {}); its changes stay pending",
                        esc(&t.table),
                        esc(&t.code),
                        esc(&t.message)
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
                    out!("last error:      {}", esc(e));
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
                        out!("== {} ==", esc(name));
                    }
                    let header: Vec<Cow<'_, str>> = cols.iter().map(|c| esc(c)).collect();
                    out!("{}", header.join("\t"));
                    for r in rows {
                        let cells: Vec<String> = r
                            .to_cells()
                            .iter()
                            .map(|c| esc(&cell_json(c).to_string()).into_owned())
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
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    for warning in argv_warnings(&matches, &args) {
        eprintln!("erth: warning: {warning}");
    }
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
                eprintln!("erth: {}", esc(&e.to_string()));
            }
            ExitCode::from(exit_code(e.kind()))
        }
    }
}

/// A purge age: a whole number and a unit (`ms`, `s`, `m`, `h`, `d`), or
/// `0`; in milliseconds.
fn parse_age(text: &str) -> std::result::Result<u64, String> {
    if text == "0" {
        return Ok(0);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .filter(|&i| i > 0)
        .ok_or_else(|| format!("{text:?} is not an age such as 12h or 30d"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: the number is too large"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: the unit is one of ms, s, m, h, d")),
    };
    n.checked_mul(ms)
        .ok_or_else(|| format!("{text:?} is too long an age"))
}

#[cfg(test)]
mod tests {
    use super::{esc, human_time, parse_age};

    #[test]
    fn terminal_output_escapes_what_would_drive_the_terminal() {
        assert_eq!(esc("plain été 😀"), "plain été 😀");
        assert_eq!(
            esc("a\u{1b}]0;t\u{7}b\nc\td\u{9b}e\u{202e}f\u{7f}"),
            "a\\u{1b}]0;t\\u{7}b\\nc\\td\\u{9b}e\\u{202e}f\\u{7f}"
        );
    }

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

    #[test]
    fn column_keys_never_show_in_errors() {
        let k1 = "11".repeat(32);
        let k2 = "22".repeat(32);
        let keys = super::column_keys(&format!("{k1}\n{k2}, ")).unwrap();
        assert_eq!(keys.ids().len(), 2);
        assert_eq!(
            super::column_keys(&format!("{k1} {k2}"))
                .unwrap()
                .ids()
                .len(),
            2
        );
        let phrase = erth_core::recovery::new_recovery_phrase().unwrap();
        let both = super::column_keys(&format!("{phrase}\r\n{k1}\n")).unwrap();
        let from_phrase = erth_core::recovery::key_from_recovery_phrase(&phrase).unwrap();
        assert_eq!(
            both.ids(),
            erth_core::encrypted::ColumnKeys::new(&[from_phrase.to_vec(), vec![0x11; 32]])
                .unwrap()
                .ids()
        );
        for bad in [
            format!("{k1},{}", "zz".repeat(32)),
            "abcd".to_owned(),
            String::new(),
        ] {
            let e = super::column_keys(&bad).unwrap_err().to_string();
            assert!(
                !e.contains(&k1) && !e.contains("zz") && !e.contains("abcd"),
                "{e}"
            );
        }
    }

    #[test]
    fn ages_have_a_unit() {
        assert_eq!(parse_age("0"), Ok(0));
        assert_eq!(parse_age("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_age("12h"), Ok(12 * 3_600_000));
        assert_eq!(parse_age("90s"), Ok(90_000));
        assert_eq!(parse_age("5m"), Ok(300_000));
        assert_eq!(parse_age("250ms"), Ok(250));
        for bad in [
            "",
            "30",
            "d",
            "-1d",
            "1w",
            "1.5h",
            "99999999999999999999d",
            "999999999999999d",
        ] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
