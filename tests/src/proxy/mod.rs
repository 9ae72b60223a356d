//! An HTTP/1.1 reverse proxy on 127.0.0.1 in front of a Hrana server, for
//! fault injection ([`FaultProxy`]) and bearer-token checks ([`AuthProxy`]:
//! one fixed token, or per-user JWTs that each open only their user's
//! database, [`AuthProxy::per_user`]).
//!
//! Besides network faults it can answer transactions as a server whose
//! commit failed (contention, an MVCC conflict) and send responses at a
//! throttled rate (a slow link).
//!
//! Each client request is read whole, sent upstream as a fresh request (no
//! upstream connection is kept open: tursodb serves one connection at a
//! time), and answered on the client's connection, which may stay open for
//! more requests, unless a fault or the token check decides otherwise.
//! Faults are drawn from an RNG seeded at start, so a failing run can be
//! replayed with its seed (given the same request order). The proxy never
//! logs or echoes tokens. Dropping the proxy stops it and every connection.

mod conn;
mod faults;
mod http;
#[cfg(test)]
mod tests;
mod users;

pub use faults::{FaultStats, Faults, Oversize, PageFault};

/// A rewrite of forwarded answers: given the SQL of every statement in the
/// request and the upstream's answer body, the body to send instead
/// (`None`: the answer as it came). See [`FaultProxy::rewrite_answers`].
pub type Rewrite = Arc<dyn Fn(&[String], &str) -> Option<String> + Send + Sync>;

use crate::error::{io_err, Error, Result};
use faults::Fault;
use http::Request;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A fault-injecting reverse proxy; see the module docs.
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// State shared by the proxy handle and its connection tasks.
struct Shared {
    upstream: String,
    client: reqwest::Client,
    control: Mutex<Control>,
}

/// See [`FaultProxy::run_before`].
#[derive(Debug, Clone)]
struct RunBefore {
    trigger: String,
    token: Option<String>,
    statements: Vec<String>,
}

/// Everything the handle can change at run time, and the counters.
struct Control {
    faults: Faults,
    rng: StdRng,
    drop_next: u64,
    /// Pipelines running a transaction still to answer as a failed commit.
    fail_commits: u64,
    /// The Hrana error code and message of those failed commits.
    commit_error: (String, String),
    /// Response bodies are sent at this many bytes per second.
    throttle: Option<u64>,
    /// The token may only read (see [`FaultProxy::set_read_only`]).
    read_only: bool,
    /// Request bodies over this many bytes are not forwarded (see
    /// [`FaultProxy::refuse_bodies_over`]).
    body_limit: Option<(usize, Oversize)>,
    /// Tables the token may not write (see [`FaultProxy::deny_writes_to`]).
    denied_tables: Vec<String>,
    /// Answers as sqld does past its limits (see [`FaultProxy::limit_like_sqld`]).
    sqld_limits: bool,
    /// What every pull page gets (see [`FaultProxy::fault_pages`]).
    page_fault: Option<PageFault>,
    /// Requests still forwarded before the link is cut (see [`FaultProxy::cut_after`]).
    cut_after: Option<u64>,
    /// Tables the token may not read (see [`FaultProxy::deny_reads_of`]).
    denied_reads: Vec<String>,
    /// The token may not change the schema (see [`FaultProxy::deny_schema_changes`]).
    no_ddl: bool,
    /// Rewrites forwarded answers (see [`FaultProxy::rewrite_answers`]).
    rewrite: Option<Rewrite>,
    /// Runs statements upstream first (see [`FaultProxy::run_before`]).
    run_before: Option<RunBefore>,
    token: Option<String>,
    /// Per-user JWTs and databases (see [`AuthProxy::per_user`]).
    users: Option<users::Users>,
    /// A header (lowercase name, value) every request must carry.
    required_header: Option<(String, String)>,
    stats: FaultStats,
}

/// What to do with one request.
#[derive(Debug)]
enum Plan {
    /// Answer this without forwarding.
    Answer(http::Response),
    /// Read the request, never answer it (the client's timeout fires);
    /// the connection closes when the proxy stops.
    Stall,
    Unauthorized,
    Reset,
    DropRequest,
    Status(u16),
    Forward {
        delay: Duration,
        then: After,
    },
}

/// What to do with the upstream's answer.
#[derive(Debug)]
enum After {
    Answer,
    DropResponse,
    Truncate,
    NonJson,
}

impl FaultProxy {
    /// Starts a proxy on a free 127.0.0.1 port in front of `upstream` (a base
    /// URL such as `http://127.0.0.1:8080`; `libsql://` means `https://`),
    /// with no faults and no token check. `seed` seeds the fault RNG.
    pub async fn start(upstream: &str, seed: u64) -> Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io_err("binding the proxy to 127.0.0.1:0"))?;
        let port = listener
            .local_addr()
            .map_err(io_err("reading the proxy's port"))?
            .port();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| Error::Http {
                what: "building the proxy's HTTP client".into(),
                source,
            })?;
        let shared = Arc::new(Shared {
            upstream: crate::hrana::http_base(upstream),
            client,
            control: Mutex::new(Control {
                faults: Faults::none(),
                rng: StdRng::seed_from_u64(seed),
                drop_next: 0,
                fail_commits: 0,
                commit_error: (String::new(), String::new()),
                throttle: None,
                read_only: false,
                body_limit: None,
                denied_tables: Vec::new(),
                sqld_limits: false,
                page_fault: None,
                cut_after: None,
                denied_reads: Vec::new(),
                no_ddl: false,
                rewrite: None,
                run_before: None,
                token: None,
                users: None,
                required_header: None,
                stats: FaultStats::default(),
            }),
        });
        let task = tokio::spawn(conn::accept_loop(listener, Arc::clone(&shared)));
        Ok(FaultProxy {
            url: format!("http://127.0.0.1:{port}"),
            shared,
            task,
        })
    }

    /// Passes every forwarded answer through `rewrite` (a hostile server:
    /// counters, sizes and lengths no honest server gives), or with `None`
    /// stops rewriting. The status stays the upstream's.
    pub fn rewrite_answers(&self, rewrite: Option<Rewrite>) {
        self.shared.control().rewrite = rewrite;
    }

    /// Runs `statements` on the upstream (each on its own, with `token`),
    /// once, just before forwarding the first request whose SQL contains
    /// `trigger`: another client's write that lands between two requests
    /// of a sync (e.g. a purge between a replica's check and its push).
    pub fn run_before(&self, trigger: &str, token: Option<&str>, statements: Vec<String>) {
        self.shared.control().run_before = Some(RunBefore {
            trigger: trigger.to_owned(),
            token: token.map(str::to_owned),
            statements,
        });
    }

    /// Whether the statements of [`FaultProxy::run_before`] still wait for
    /// their trigger.
    pub fn run_before_pending(&self) -> bool {
        self.shared.control().run_before.is_some()
    }

    /// `http://127.0.0.1:<port>`: give this to the client instead of the
    /// upstream URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Replaces the fault settings for the requests that follow.
    ///
    /// # Panics
    ///
    /// If `faults` is invalid (see [`Faults::validate`]): that is a bug in
    /// the test that wrote it.
    pub fn set_faults(&self, faults: Faults) {
        if let Err(e) = faults.validate() {
            panic!("FaultProxy::set_faults: {e}");
        }
        self.shared.control().faults = faults;
    }

    /// Forwards the next `n` requests upstream, then closes each client
    /// connection without answering (the server commits, the client never
    /// learns it). Takes precedence over [`Faults`]; adds to any pending count.
    pub fn drop_next_responses(&self, n: u64) {
        self.shared.control().drop_next += n;
    }

    /// Requires the header `name: value` on every request except CORS
    /// preflights (as a database encrypted with the customer's key needs
    /// `x-turso-encryption-key`); others get HTTP 400 and count as
    /// [`FaultStats::missing_header`]. The value is never logged.
    pub fn require_header(&self, name: &str, value: &str) {
        self.shared.control().required_header = Some((name.to_ascii_lowercase(), value.to_owned()));
    }

    /// Answers the next `n` pipelines that run a transaction (a batch whose
    /// first step is `BEGIN ...`) as a server whose commit failed does,
    /// without forwarding them: every step before the `COMMIT` ok, the
    /// `COMMIT` failed with Hrana error `code` and `message`, the `ROLLBACK`
    /// ok; nothing commits. This is sqld's answer to an MVCC commit conflict
    /// (`BEGIN CONCURRENT`: `SQLITE_BUSY_SNAPSHOT`, reported by its primary
    /// code `SQLITE_BUSY`) or to a busy database. Adds to any pending count.
    pub fn fail_next_commits(&self, n: u64, code: &str, message: &str) {
        let mut control = self.shared.control();
        control.fail_commits += n;
        control.commit_error = (code.to_owned(), message.to_owned());
    }

    /// Stops answering transactions as failed commits (see
    /// [`FaultProxy::fail_next_commits`]): the server recovered.
    pub fn clear_failed_commits(&self) {
        self.shared.control().fail_commits = 0;
    }

    /// Sends every response body at `bytes_per_second` from now on (a slow
    /// link; `None`: full speed). Requests are read at full speed.
    pub fn set_throttle(&self, bytes_per_second: Option<u64>) {
        self.shared.control().throttle = bytes_per_second.filter(|&b| b > 0);
    }

    /// Request bodies over `bytes` are not forwarded: answered HTTP 413, or
    /// never answered (a link that cannot carry that much within the
    /// client's timeout). `None`: no limit.
    pub fn refuse_bodies_over(&self, limit: Option<(usize, Oversize)>) {
        self.shared.control().body_limit = limit;
    }

    /// Answers as sqld does for a read-only token (`true`): a pipeline
    /// with any statement that is not a read or a transaction boundary
    /// (`SELECT`, `BEGIN`, `COMMIT`, `ROLLBACK`, `END`) is refused whole
    /// with HTTP 403 before anything runs (sqld checks the whole program:
    /// `check_program_auth`, libsql-server/src/connection/mod.rs; status
    /// 403, as sqld answers a read-only token writing). `false`: full
    /// access again.
    pub fn set_read_only(&self, read_only: bool) {
        self.shared.control().read_only = read_only;
    }

    /// Answers as a server whose token may not write to `tables` (a token
    /// restricted per table): a transaction that writes to one of them
    /// (`INSERT INTO`, `UPDATE`, `DELETE FROM`, `REPLACE INTO`) is answered
    /// without forwarding, its `BEGIN` ok, that statement failed with
    /// SQLite's authorizer code `SQLITE_AUTH` (sqld's name for
    /// `SQLITE_AUTH`, `sqlite_error_code` in libsql-server/src/hrana/stmt.rs),
    /// the steps after it not run and the `ROLLBACK` ok. Empty: no restriction.
    pub fn deny_writes_to(&self, tables: &[&str]) {
        self.shared.control().denied_tables = tables.iter().map(|t| t.to_string()).collect();
    }

    /// Answers as sqld does past its limits (`true`): a statement whose
    /// result holds a string or blob over 5,000,000 bytes (SQLite's default
    /// length limit, which sqld keeps: a JSON page the server builds as one
    /// string) fails with `SQLITE_TOOBIG`, and a request whose answer is
    /// over 10,000,000 bytes is answered with a `RESPONSE_TOO_LARGE` error
    /// instead. tursodb has neither limit.
    pub fn limit_like_sqld(&self, on: bool) {
        self.shared.control().sqld_limits = on;
    }

    /// Gives every request that asks for a pull page (a `SELECT` of a
    /// `_seq` range, `"_seq" > ? AND "_seq" <= ?`) `fault` instead of an
    /// answer; `None`: pages pass again. Other requests pass.
    pub fn fault_pages(&self, fault: Option<PageFault>) {
        self.shared.control().page_fault = fault;
    }

    /// Answers as a server whose token may not read `tables` (a token
    /// restricted per table and action): every statement that names one of
    /// them (quoted, as the engine writes names) fails with `SQLITE_AUTH`,
    /// the others run. Empty: no restriction.
    pub fn deny_reads_of(&self, tables: &[&str]) {
        self.shared.control().denied_reads = tables.iter().map(|t| t.to_string()).collect();
    }

    /// Answers as a server whose token may not change the schema (`true`):
    /// a pipeline with a `CREATE`, `DROP` or `ALTER` statement is refused
    /// whole with HTTP 403 before anything runs, as sqld refuses a token
    /// without that right. `false`: allowed again.
    pub fn deny_schema_changes(&self, deny: bool) {
        self.shared.control().no_ddl = deny;
    }

    /// Forwards the next `n` requests as usual, then resets every
    /// connection without forwarding (a link cut, or a process killed, at
    /// that point of a sync); `None`: the link works again.
    pub fn cut_after(&self, n: Option<u64>) {
        self.shared.control().cut_after = n;
    }

    /// Requires `Authorization: Bearer <token>` on every request except CORS
    /// preflights (`OPTIONS`, forwarded as they are); others get 401
    /// `Unauthorized` without being forwarded. `None` turns the check off.
    pub fn set_token(&self, token: Option<String>) {
        self.shared.control().token = token;
    }

    /// The counters so far.
    pub fn stats(&self) -> FaultStats {
        self.shared.control().stats
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately leaves out the token.
        f.debug_struct("FaultProxy")
            .field("url", &self.url)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks: aborting it ends them all.
        self.task.abort();
    }
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        // A panicking connection task cannot leave the counters inconsistent
        // in a way that matters to a test: keep going.
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Control {
    /// Decides what happens to `request` (pointing it at its user's
    /// server, with per-user routes), and counts it.
    fn plan(&mut self, request: &mut Request) -> Plan {
        self.stats.requests += 1;
        if let Some(users) = &self.users {
            if request.method != reqwest::Method::OPTIONS {
                if let Err(refusal) = users.route(request) {
                    self.stats.rejected += 1;
                    return Plan::Answer(refusal);
                }
            }
        }
        if let Some(token) = &self.token {
            if request.method != reqwest::Method::OPTIONS && !has_token(request, token) {
                self.stats.rejected += 1;
                return Plan::Unauthorized;
            }
        }
        if let Some((name, value)) = &self.required_header {
            let carried = request.header(name).is_some_and(|v| v == value.as_bytes());
            if request.method != reqwest::Method::OPTIONS && !carried {
                self.stats.missing_header += 1;
                return Plan::Status(400);
            }
        }
        if let Some((limit, how)) = self.body_limit {
            if request.body.len() > limit {
                self.stats.oversize += 1;
                return match how {
                    Oversize::Status413 => {
                        Plan::Answer(http::Response::text(413, "Payload Too Large"))
                    }
                    Oversize::Stall => Plan::Stall,
                };
            }
        }
        if self.no_ddl && pipeline_statements(request).iter().any(|sql| is_ddl(sql)) {
            self.stats.forbidden += 1;
            return Plan::Answer(http::Response::text(
                403,
                "Forbidden: the current session is not authorized to change the schema",
            ));
        }
        if self.read_only && pipeline_statements(request).iter().any(|sql| !is_read(sql)) {
            self.stats.forbidden += 1;
            return Plan::Answer(http::Response::text(
                403,
                "Forbidden: the current session is not authorized to write",
            ));
        }
        if let Some(left) = self.cut_after.as_mut() {
            if *left == 0 {
                self.stats.reset += 1;
                return Plan::Reset;
            }
            *left -= 1;
        }
        if let Some(fault) = self.page_fault {
            if pipeline_statements(request)
                .iter()
                .any(|sql| sql.contains(PAGE_RANGE))
            {
                self.stats.page_faults += 1;
                return match fault {
                    PageFault::TooLarge => {
                        Plan::Answer(request_error("RESPONSE_TOO_LARGE", "Response is too large"))
                    }
                    PageFault::Stall => Plan::Stall,
                };
            }
        }
        if let Some(response) = denied_write(request, &self.denied_tables) {
            self.stats.forbidden += 1;
            return Plan::Answer(response);
        }
        if self.fail_commits > 0 {
            if let Some(response) = failed_commit(request, &self.commit_error) {
                self.fail_commits -= 1;
                self.stats.failed_commits += 1;
                return Plan::Answer(response);
            }
        }
        if self.drop_next > 0 {
            self.drop_next -= 1;
            self.stats.count(Fault::DropResponse);
            return Plan::Forward {
                delay: Duration::ZERO,
                then: After::DropResponse,
            };
        }
        let fault = self.faults.pick(&mut self.rng);
        if let Some(fault) = fault {
            self.stats.count(fault);
        }
        let then = match fault {
            Some(Fault::Reset) => return Plan::Reset,
            Some(Fault::DropRequest) => return Plan::DropRequest,
            Some(Fault::Status5xx) => {
                let codes = [500, 502, 503];
                return Plan::Status(codes[rand::Rng::random_range(&mut self.rng, 0..codes.len())]);
            }
            Some(Fault::DropResponse) => After::DropResponse,
            Some(Fault::Truncate) => After::Truncate,
            Some(Fault::NonJson) => After::NonJson,
            None => After::Answer,
        };
        let delay = self.faults.delay(&mut self.rng);
        if delay > 0 {
            self.stats.delayed += 1;
        }
        Plan::Forward {
            delay: Duration::from_millis(delay),
            then,
        }
    }
}

/// A statement that fails on any server: what a denied read is sent as
/// (see [`FaultProxy::deny_reads_of`]).
const DENIED: &str = "SELECT * FROM \"_erth_test_proxy_denied\"";

/// `request` with every statement that names a table of `denied` replaced by
/// one that fails, and the indexes (request, step) of those statements.
fn deny_reads(request: &mut Request, denied: &[String]) -> Vec<(usize, Option<usize>)> {
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
        return Vec::new();
    };
    let names: Vec<String> = denied.iter().map(|t| format!("\"{t}\"")).collect();
    let names_one = |sql: &str| names.iter().any(|n| sql.contains(n.as_str()));
    let mut hit = Vec::new();
    for (r, req) in body["requests"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if req["stmt"]["sql"].as_str().is_some_and(names_one) {
            req["stmt"]["sql"] = DENIED.into();
            hit.push((r, None));
        }
        for (s, step) in req["batch"]["steps"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if step["stmt"]["sql"].as_str().is_some_and(names_one) {
                step["stmt"]["sql"] = DENIED.into();
                hit.push((r, Some(s)));
            }
        }
    }
    if !hit.is_empty() {
        request.body = body.to_string().into_bytes();
    }
    hit
}

/// `response` with the errors of the denied statements `hit` said as the
/// authorizer says them (`SQLITE_AUTH`).
fn denied_answer(response: http::Response, hit: &[(usize, Option<usize>)]) -> http::Response {
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&response.body) else {
        return response;
    };
    let auth =
        serde_json::json!({"message": "not authorized to read this table", "code": "SQLITE_AUTH"});
    for &(r, step) in hit {
        let result = &mut body["results"][r];
        match step {
            None => *result = serde_json::json!({"type": "error", "error": auth.clone()}),
            Some(s) => {
                if !result["response"]["result"]["step_errors"][s].is_null() {
                    result["response"]["result"]["step_errors"][s] = auth.clone();
                }
            }
        }
    }
    http::Response::synthetic(response.status, "application/json", &body.to_string())
}

/// What a pull page's `SELECT` says (see [`FaultProxy::fault_pages`]).
const PAGE_RANGE: &str = "\"_seq\" > ? AND \"_seq\" <= ?";

/// sqld's limit on a string or blob a statement builds or returns.
const SQLD_MAX_LENGTH: usize = 5_000_000;
/// sqld's limit on one answer.
const SQLD_MAX_RESPONSE: usize = 10_000_000;

/// An answer whose only request failed as a whole with `code`.
fn request_error(code: &str, message: &str) -> http::Response {
    let answer = serde_json::json!({"baton": null, "base_url": null,
        "results": [{"type": "error", "error": {"message": message, "code": code}}]});
    http::Response::synthetic(200, "application/json", &answer.to_string())
}

/// `response` as sqld would give it past its limits (see
/// [`FaultProxy::limit_like_sqld`]); counts what it changed.
fn limit_like_sqld(response: http::Response, stats: &mut FaultStats) -> http::Response {
    if response.status != 200 {
        return response;
    }
    if response.body.len() > SQLD_MAX_RESPONSE {
        stats.too_large += 1;
        return request_error("RESPONSE_TOO_LARGE", "Response is too large");
    }
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&response.body) else {
        return response;
    };
    let mut changed = false;
    for result in body["results"].as_array_mut().into_iter().flatten() {
        let batch = &mut result["response"]["result"];
        let Some(steps) = batch["step_results"].as_array().cloned() else {
            continue;
        };
        for (i, step) in steps.iter().enumerate() {
            if step.is_null() || !holds_too_long_value(step) {
                continue;
            }
            batch["step_results"][i] = serde_json::Value::Null;
            batch["step_errors"][i] = serde_json::json!({
                "message": "string or blob too big", "code": "SQLITE_TOOBIG"});
            stats.too_big += 1;
            changed = true;
        }
    }
    if !changed {
        return response;
    }
    http::Response::synthetic(200, "application/json", &body.to_string())
}

/// Whether a step result holds a text over [`SQLD_MAX_LENGTH`] bytes, or a
/// blob over it once decoded.
fn holds_too_long_value(step: &serde_json::Value) -> bool {
    step["rows"].as_array().into_iter().flatten().any(|row| {
        row.as_array().into_iter().flatten().any(|cell| {
            let text = cell["value"].as_str().map(str::len);
            let blob = cell["base64"].as_str().map(|b| b.len() / 4 * 3);
            text.or(blob).is_some_and(|len| len > SQLD_MAX_LENGTH)
        })
    })
}

/// The SQL of every statement in a pipeline request body.
fn pipeline_statements(request: &Request) -> Vec<String> {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in body["requests"].as_array().into_iter().flatten() {
        if let Some(sql) = r["stmt"]["sql"].as_str() {
            out.push(sql.to_owned());
        }
        for step in r["batch"]["steps"].as_array().into_iter().flatten() {
            if let Some(sql) = step["stmt"]["sql"].as_str() {
                out.push(sql.to_owned());
            }
        }
    }
    out
}

/// A statement a read-only token may run (sqld: reads and transaction
/// boundaries).
fn is_read(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "SELECT" | "BEGIN" | "COMMIT" | "ROLLBACK" | "END"
    )
}

/// A statement that changes the schema.
fn is_ddl(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(first.as_str(), "CREATE" | "DROP" | "ALTER")
}

/// The table a statement writes to, if it is an `INSERT INTO`, `UPDATE`,
/// `DELETE FROM` or `REPLACE INTO`.
fn written_table(sql: &str) -> Option<String> {
    let mut words = sql.split_whitespace();
    let verb = words.next()?.to_ascii_uppercase();
    let name = match verb.as_str() {
        "UPDATE" => words.next()?,
        "INSERT" | "DELETE" | "REPLACE" => {
            let into = words.next()?;
            if into.eq_ignore_ascii_case("OR") {
                words.next()?;
                words.next()?;
            }
            words.next()?
        }
        _ => return None,
    };
    Some(
        name.trim_matches('"')
            .split('(')
            .next()?
            .trim_matches('"')
            .to_owned(),
    )
}

/// The authorizer's answer to a transaction writing to a denied table.
fn denied_write(request: &Request, denied: &[String]) -> Option<http::Response> {
    if denied.is_empty() {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(&request.body).ok()?;
    let requests = body["requests"].as_array()?;
    let steps = requests.first()?["batch"]["steps"].as_array()?;
    let sql = |i: usize| steps.get(i)?["stmt"]["sql"].as_str();
    if !sql(0)?.to_ascii_uppercase().starts_with("BEGIN") {
        return None;
    }
    let refused = (0..steps.len()).find(|&i| {
        sql(i)
            .and_then(written_table)
            .is_some_and(|t| denied.iter().any(|d| d.eq_ignore_ascii_case(&t)))
    })?;
    let last = steps.len() - 1;
    let empty = serde_json::json!({"cols": [], "rows": [], "affected_row_count": 0, "last_insert_rowid": null});
    let results: Vec<serde_json::Value> = (0..steps.len())
        .map(|i| {
            if i < refused || i == last {
                empty.clone()
            } else {
                serde_json::Value::Null
            }
        })
        .collect();
    let errors: Vec<serde_json::Value> = (0..steps.len())
        .map(|i| {
            if i == refused {
                serde_json::json!({"message": "not authorized", "code": "SQLITE_AUTH"})
            } else {
                serde_json::Value::Null
            }
        })
        .collect();
    let mut answers = vec![
        serde_json::json!({"type": "ok", "response": {"type": "batch",
        "result": {"step_results": results, "step_errors": errors}}}),
    ];
    if requests.get(1).is_some_and(|r| r["type"] == "close") {
        answers.push(serde_json::json!({"type": "ok", "response": {"type": "close"}}));
    }
    let answer = serde_json::json!({"baton": null, "base_url": null, "results": answers});
    Some(http::Response::synthetic(
        200,
        "application/json",
        &answer.to_string(),
    ))
}

/// The answer of a server whose `COMMIT` failed, for a pipeline whose
/// batch is a transaction (`BEGIN` ... `COMMIT`, `ROLLBACK`); `None` for
/// any other request.
fn failed_commit(request: &Request, (code, message): &(String, String)) -> Option<http::Response> {
    let body: serde_json::Value = serde_json::from_slice(&request.body).ok()?;
    let requests = body["requests"].as_array()?;
    let steps = requests.first()?["batch"]["steps"].as_array()?;
    let sql = |i: usize| steps.get(i)?["stmt"]["sql"].as_str();
    if !sql(0)?.to_ascii_uppercase().starts_with("BEGIN") {
        return None;
    }
    let commit =
        (0..steps.len()).find(|&i| sql(i).is_some_and(|s| s.eq_ignore_ascii_case("COMMIT")))?;
    let empty = serde_json::json!({"cols": [], "rows": [], "affected_row_count": 0, "last_insert_rowid": null});
    let results: Vec<serde_json::Value> = (0..steps.len())
        .map(|i| {
            if i == commit {
                serde_json::Value::Null
            } else {
                empty.clone()
            }
        })
        .collect();
    let errors: Vec<serde_json::Value> = (0..steps.len())
        .map(|i| {
            if i == commit {
                serde_json::json!({"message": message, "code": code})
            } else {
                serde_json::Value::Null
            }
        })
        .collect();
    let mut answers = vec![
        serde_json::json!({"type": "ok", "response": {"type": "batch",
        "result": {"step_results": results, "step_errors": errors}}}),
    ];
    if requests.get(1).is_some_and(|r| r["type"] == "close") {
        answers.push(serde_json::json!({"type": "ok", "response": {"type": "close"}}));
    }
    let answer = serde_json::json!({"baton": null, "base_url": null, "results": answers});
    Some(http::Response::synthetic(
        200,
        "application/json",
        &answer.to_string(),
    ))
}

fn has_token(request: &Request, token: &str) -> bool {
    let Some(value) = request.header("authorization") else {
        return false;
    };
    let value = String::from_utf8_lossy(value);
    let mut parts = value.trim().splitn(2, ' ');
    let scheme_ok = parts
        .next()
        .is_some_and(|s| s.eq_ignore_ascii_case("bearer"));
    scheme_ok && parts.next().is_some_and(|t| t.trim() == token)
}

/// A [`FaultProxy`] that checks `Authorization: Bearer <token>` like sqld:
/// a missing or wrong token gets 401 `Unauthorized` (plain text) and is not
/// forwarded; CORS preflights pass unchecked. No faults unless set through
/// [`AuthProxy::proxy`].
#[derive(Debug)]
pub struct AuthProxy {
    proxy: FaultProxy,
}

impl AuthProxy {
    /// Starts a proxy in front of `upstream` that requires `token`.
    pub async fn start(upstream: &str, token: &str) -> Result<AuthProxy> {
        let proxy = FaultProxy::start(upstream, 0).await?;
        proxy.set_token(Some(token.to_string()));
        Ok(AuthProxy { proxy })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        self.proxy.url()
    }

    /// Starts a proxy for per-user databases: user `u`'s database is
    /// `<url>/u` ([`AuthProxy::user_url`]), served by `upstreams`' server
    /// for `u`, and only to `Authorization: Bearer <JWT>` with an HS256
    /// signature by `secret`, claim `sub` = `u` and an `exp` still ahead (no
    /// leeway). A missing, malformed, forged or expired token gets 401, a
    /// token of another user 403, an unknown database 404; none is
    /// forwarded, each counts in [`AuthProxy::rejected`].
    pub async fn per_user(secret: &[u8], upstreams: &[(&str, &str)]) -> Result<AuthProxy> {
        let Some((_, first)) = upstreams.first() else {
            return Err(Error::Server(
                "AuthProxy::per_user needs at least one user".into(),
            ));
        };
        let routes = upstreams
            .iter()
            .map(|(user, url)| (user.to_string(), crate::hrana::http_base(url)))
            .collect();
        let users = users::Users::new(secret, routes)
            .ok_or_else(|| Error::Server("AuthProxy::per_user needs a secret".into()))?;
        let proxy = FaultProxy::start(first, 0).await?;
        proxy.shared.control().users = Some(users);
        Ok(AuthProxy { proxy })
    }

    /// The database URL of `user` (see [`AuthProxy::per_user`]).
    pub fn user_url(&self, user: &str) -> String {
        format!("{}/{user}", self.proxy.url())
    }

    /// Changes the required token at run time (`None`: accept everything).
    pub fn set_token(&self, token: Option<String>) {
        self.proxy.set_token(token);
    }

    /// How many requests were refused so far (401; per user, also 403 and 404).
    pub fn rejected(&self) -> u64 {
        self.proxy.stats().rejected
    }

    /// The underlying proxy, for fault injection and the full counters.
    pub fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }
}
