//! Hrana-over-HTTP v2 client on the `libsql_hrana::proto` types: builds
//! pipeline requests (one batch per round trip), parses responses, maps
//! errors by HTTP status and Hrana `code` (never by message), retries
//! transient failures with backoff. Transport-agnostic: all I/O goes through
//! [`Transport`].
//!
//! Every text the server sends back (error messages, HTTP bodies) is
//! clipped and stripped of credential-shaped strings and of this client's
//! own token and key before it enters an error or a batch's outcome
//! ([`crate::redact`]); a redirect is [`Error::Redirected`], never followed.
//!
//! Server compatibility: positional arguments only; results are read from
//! `RETURNING` rows, never from `affected_row_count`/`last_insert_rowid`.
//!
//! Streams and `close`: sqld (and Turso Cloud) keeps a stream that a
//! pipeline does not close for 10 s and answers HTTP 429 after 128 of them,
//! so pipelines to it must end with `close`; tursodb has no streams and
//! answers HTTP 500 to a `close` (measured on tursodb 0.6 to 0.8). The client
//! learns which server it talks to without a failing request: its first
//! pipeline carries no `close`; a server that kept the stream answers with a
//! baton, which the client closes at once (`{"baton": b, "requests":
//! [close]}`) and from then on ends every pipeline with `close`; a server
//! that answers `"baton": null` kept nothing and never gets a `close`.

use crate::endpoint::{AuthToken, EncryptionKey, Endpoint};
use crate::error::{clip, Error, Result};
use crate::transport::{HttpRequest, Transport};
use crate::value::{Rows, SqlValue, Statement};
use libsql_hrana::proto;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

pub use libsql_hrana::proto::BatchCond;

/// The most of a server's error message kept (bytes; SQLite's own are
/// far shorter).
const MAX_MESSAGE_BYTES: usize = 1_000;
/// The most of a server's error code kept (bytes).
const MAX_CODE_BYTES: usize = 100;

const CLOSE_UNKNOWN: u8 = 0;
const CLOSE_SUPPORTED: u8 = 1;
const CLOSE_UNSUPPORTED: u8 = 2;

/// How often and how patiently to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per request (1 = no retry).
    pub attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay_ms: 150,
            max_delay_ms: 2_000,
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `n` (0-based), with jitter in [50%, 100%].
    pub(crate) fn delay(&self, n: u32) -> u64 {
        let full = self
            .base_delay_ms
            .saturating_mul(1 << n.min(16))
            .min(self.max_delay_ms);
        let jitter = (crate::ids::new_uuid().as_u128() as u64) % (full / 2 + 1);
        full - jitter
    }
}

/// One step of a batch: a statement and the condition under which it runs.
#[derive(Debug, Clone)]
pub struct Step {
    pub cond: Option<BatchCond>,
    pub stmt: Statement,
}

/// What a batch did, step by step.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// Rows of each step that ran and succeeded.
    pub results: Vec<Option<Rows>>,
    /// Error of each step that ran and failed.
    pub errors: Vec<Option<(String, String)>>,
}

impl BatchOutcome {
    /// The first failed step as a typed error.
    pub fn first_error(&self) -> Option<Error> {
        self.first_error_step().map(|(_, e)| e)
    }

    /// The first failed step: its index and typed error.
    pub fn first_error_step(&self) -> Option<(usize, Error)> {
        self.errors.iter().enumerate().find_map(|(i, e)| {
            e.as_ref().map(|(code, message)| {
                (
                    i,
                    Error::Server {
                        code: code.clone(),
                        message: message.clone(),
                    },
                )
            })
        })
    }
}

/// A Hrana client for one server.
pub struct HranaClient {
    endpoint: Endpoint,
    token: RwLock<Option<AuthToken>>,
    encryption_key: Option<EncryptionKey>,
    close: AtomicU8,
    transport: Arc<dyn Transport>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for HranaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HranaClient")
            .field("url", &self.endpoint.display_url())
            .field("has_token", &self.has_token())
            .field("has_encryption_key", &self.encryption_key.is_some())
            .finish_non_exhaustive()
    }
}

/// A value as the Hrana protocol types carry it.
pub fn to_proto(v: &SqlValue) -> proto::Value {
    match v {
        SqlValue::Null => proto::Value::Null,
        SqlValue::Integer(i) => proto::Value::Integer { value: *i },
        SqlValue::Real(r) => proto::Value::Float { value: *r },
        SqlValue::Text(t) => proto::Value::Text {
            value: Arc::from(t.as_str()),
        },
        SqlValue::Blob(b) => proto::Value::Blob {
            value: bytes::Bytes::from(b.clone()),
        },
    }
}

/// A protocol value as a [`SqlValue`] (`Protocol` error for a value without a type).
pub fn from_proto(v: proto::Value) -> Result<SqlValue> {
    Ok(match v {
        proto::Value::Null => SqlValue::Null,
        proto::Value::Integer { value } => SqlValue::Integer(value),
        proto::Value::Float { value } => SqlValue::Real(value),
        proto::Value::Text { value } => SqlValue::Text(value.to_string()),
        proto::Value::Blob { value } => SqlValue::Blob(value.to_vec()),
        proto::Value::None => return Err(Error::Protocol("value without a type".into())),
    })
}

fn stmt_to_proto(s: &Statement) -> proto::Stmt {
    let mut p = proto::Stmt::new(s.sql.clone(), true);
    p.args = s.args.iter().map(to_proto).collect();
    p
}

fn rows_from_proto(r: proto::StmtResult) -> Result<Rows> {
    let columns = r
        .cols
        .into_iter()
        .map(|c| c.name.unwrap_or_default())
        .collect::<Vec<_>>();
    let mut rows = Vec::with_capacity(r.rows.len());
    for row in r.rows {
        if row.values.len() != columns.len() {
            return Err(Error::Protocol(format!(
                "row has {} values for {} columns",
                row.values.len(),
                columns.len()
            )));
        }
        rows.push(
            row.values
                .into_iter()
                .map(from_proto)
                .collect::<Result<Vec<_>>>()?,
        );
    }
    Ok(Rows { columns, rows })
}

/// Parses a pipeline response body holding one batch result (and maybe a
/// `close` result). Also says whether the server rejected `close`.
pub fn parse_batch_response(body: &[u8], steps: usize) -> Result<(BatchOutcome, bool)> {
    parse_pipeline_response(body, steps).map(|a| (a.outcome, a.close_rejected))
}

/// What one pipeline response says.
#[derive(Debug)]
pub struct PipelineAnswer {
    pub outcome: BatchOutcome,
    /// The server answered the `close` request with an error.
    pub close_rejected: bool,
    /// The stream the server kept open (`None`: it kept none).
    pub baton: Option<String>,
}

/// [`parse_batch_response`], with the stream's baton.
pub fn parse_pipeline_response(body: &[u8], steps: usize) -> Result<PipelineAnswer> {
    let resp: proto::PipelineRespBody = serde_json::from_slice(body).map_err(|e| {
        Error::Protocol(format!(
            "not a Hrana pipeline response ({e}): {}",
            clip(&String::from_utf8_lossy(body), 200)
        ))
    })?;
    let baton = resp.baton;
    let mut results = resp.results.into_iter();
    let batch = match results.next() {
        Some(proto::StreamResult::Ok {
            response: proto::StreamResponse::Batch(b),
        }) => b.result,
        Some(proto::StreamResult::Error { error }) => {
            return Err(Error::Server {
                code: clip(&error.code, MAX_CODE_BYTES),
                message: clip(&error.message, MAX_MESSAGE_BYTES),
            })
        }
        Some(other) => {
            return Err(Error::Protocol(clip(
                &format!("expected a batch result, got {other:?}"),
                200,
            )))
        }
        None => return Err(Error::Protocol("pipeline response has no results".into())),
    };
    let close_rejected = matches!(results.next(), Some(proto::StreamResult::Error { .. }));
    if batch.step_results.len() != steps || batch.step_errors.len() != steps {
        return Err(Error::Protocol(format!(
            "batch of {steps} steps answered with {} results and {} errors",
            batch.step_results.len(),
            batch.step_errors.len()
        )));
    }
    let results = batch
        .step_results
        .into_iter()
        .map(|r| r.map(rows_from_proto).transpose())
        .collect::<Result<Vec<_>>>()?;
    let errors = batch
        .step_errors
        .into_iter()
        .map(|e| {
            e.map(|e| {
                (
                    clip(&e.code, MAX_CODE_BYTES),
                    clip(&e.message, MAX_MESSAGE_BYTES),
                )
            })
        })
        .collect();
    Ok(PipelineAnswer {
        outcome: BatchOutcome { results, errors },
        close_rejected,
        baton,
    })
}

impl HranaClient {
    pub fn new(
        endpoint: Endpoint,
        token: Option<AuthToken>,
        transport: Arc<dyn Transport>,
        retry: RetryPolicy,
    ) -> Self {
        HranaClient {
            endpoint,
            token: RwLock::new(token),
            encryption_key: None,
            close: AtomicU8::new(CLOSE_UNKNOWN),
            transport,
            retry,
        }
    }

    /// Sends `key` as `x-turso-encryption-key` on every request (Turso
    /// Cloud's databases encrypted with the customer's own key).
    pub fn with_encryption_key(mut self, key: Option<EncryptionKey>) -> Self {
        self.encryption_key = key;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Replaces the token for the next requests.
    pub fn set_token(&self, token: Option<AuthToken>) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token;
    }

    pub fn has_token(&self) -> bool {
        self.token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Runs a batch, retrying transient failures with the retry policy's
    /// backoff (a batch must be safe to run twice: every batch the engine
    /// sends is idempotent), except a timeout, which is returned at once: a
    /// server that does not answer costs one request timeout, and the caller
    /// decides (the sync engine asks for a smaller page or batch, or fails).
    pub async fn batch(&self, steps: &[Step]) -> Result<BatchOutcome> {
        self.batch_retrying(Body::Steps(steps)).await
    }

    /// Encodes `steps` now, to be sent later by [`HranaClient::send`]: a
    /// caller can do a request's CPU work while an earlier request is still
    /// running (the sync engine's push).
    pub fn prepare(&self, steps: &[Step]) -> Result<PreparedBatch> {
        let with_close = self.close.load(Ordering::Relaxed) == CLOSE_SUPPORTED;
        Ok(PreparedBatch {
            body: encode(steps, with_close)?,
            steps: steps.len(),
            with_close,
        })
    }

    /// [`HranaClient::batch`] of a batch encoded by [`HranaClient::prepare`].
    pub async fn send(&self, batch: &PreparedBatch) -> Result<BatchOutcome> {
        self.batch_retrying(Body::Prepared(batch)).await
    }

    async fn batch_retrying(&self, body: Body<'_>) -> Result<BatchOutcome> {
        let mut attempt = 0;
        loop {
            match self.batch_once(body).await {
                Err(e)
                    if e.is_transient() && !e.is_timeout() && attempt + 1 < self.retry.attempts =>
                {
                    let delay = self.retry.delay(attempt);
                    tracing::debug!(error = %e, attempt, delay, "transient Hrana failure; retrying");
                    self.transport.sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Waits `ms` milliseconds on the transport's timer (backoff between
    /// attempts that the caller retries itself).
    pub async fn sleep(&self, ms: u64) {
        self.transport.sleep(ms).await;
    }

    /// Runs one statement (no transaction).
    pub async fn execute(&self, stmt: Statement) -> Result<Rows> {
        let out = self.batch(&[Step { cond: None, stmt }]).await?;
        if let Some(e) = out.first_error() {
            return Err(e);
        }
        out.results
            .into_iter()
            .next()
            .flatten()
            .ok_or_else(|| Error::Protocol("statement has no result".into()))
    }

    async fn batch_once(&self, body: Body<'_>) -> Result<BatchOutcome> {
        let (state, body, steps) = match body {
            Body::Steps(steps) => {
                let state = self.close.load(Ordering::Relaxed);
                (state, encode(steps, state == CLOSE_SUPPORTED)?, steps.len())
            }
            // Encoded without `close` (the server was not known to keep
            // streams then): read the answer as a first pipeline's, so a
            // stream it kept is closed.
            Body::Prepared(p) => (
                if p.with_close {
                    CLOSE_SUPPORTED
                } else {
                    CLOSE_UNKNOWN
                },
                p.body.clone(),
                p.steps,
            ),
        };
        let answer = match self.post(body, steps).await {
            Ok(answer) => answer,
            Err(e) => return Err(self.scrub(e)),
        };
        if answer.close_rejected {
            tracing::debug!("server rejects the close request; not sending it again");
            self.close.store(CLOSE_UNSUPPORTED, Ordering::Relaxed);
        } else if state == CLOSE_UNKNOWN {
            match answer.baton {
                Some(baton) => {
                    self.close.store(CLOSE_SUPPORTED, Ordering::Relaxed);
                    self.close_stream(baton).await;
                }
                None => self.close.store(CLOSE_UNSUPPORTED, Ordering::Relaxed),
            }
        }
        let mut outcome = answer.outcome;
        self.scrub_outcome(&mut outcome);
        Ok(outcome)
    }

    /// The token and key this client sends, for [`Error::scrubbed`].
    fn secrets(&self) -> Vec<String> {
        let token = self.token.read().unwrap_or_else(|p| p.into_inner());
        token
            .iter()
            .map(|t| t.expose().to_owned())
            .chain(self.encryption_key.iter().map(|k| k.expose().to_owned()))
            .collect()
    }

    /// `e` without this client's token and key in its server texts.
    fn scrub(&self, e: Error) -> Error {
        let secrets = self.secrets();
        e.scrubbed(&secrets.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The failed steps' codes and messages without this client's token
    /// and key.
    fn scrub_outcome(&self, outcome: &mut BatchOutcome) {
        let secrets = self.secrets();
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        if secrets.is_empty() {
            return;
        }
        for (code, message) in outcome.errors.iter_mut().flatten() {
            *code = crate::redact::scrub(code, &secrets);
            *message = crate::redact::scrub(message, &secrets);
        }
    }

    /// Closes the stream a server kept open for a pipeline without `close`.
    /// Best effort: an unclosed stream expires on its own (sqld: 10 s).
    async fn close_stream(&self, baton: String) {
        let body = serde_json::to_vec(&proto::PipelineReqBody {
            baton: Some(baton),
            requests: vec![proto::StreamRequest::Close(proto::CloseStreamReq {})],
        });
        if let Ok(body) = body {
            let request = HttpRequest {
                url: self.endpoint.pipeline_url(),
                headers: self.headers(),
                body,
            };
            if let Err(e) = self.transport.post(request).await {
                tracing::debug!(error = %e, "closing the first stream failed; it expires on its own");
            }
        }
    }

    fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if let Some(t) = self
            .token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            headers.push(("authorization".to_owned(), format!("Bearer {}", t.expose())));
        }
        if let Some(k) = &self.encryption_key {
            headers.push(("x-turso-encryption-key".to_owned(), k.expose().to_owned()));
        }
        headers
    }

    async fn post(&self, body: Vec<u8>, steps: usize) -> Result<PipelineAnswer> {
        let headers = self.headers();
        let resp = self
            .transport
            .post(HttpRequest {
                url: self.endpoint.pipeline_url(),
                headers,
                body,
            })
            .await?;
        match resp.status {
            200 => parse_pipeline_response(&resp.body, steps),
            401 | 403 => Err(Error::Auth {
                status: resp.status,
            }),
            status @ 300..=399 => Err(Error::Redirected { status }),
            status => Err(Error::Http {
                status,
                body: clip(&String::from_utf8_lossy(&resp.body), 300),
            }),
        }
    }
}

/// A batch encoded ahead of sending ([`HranaClient::prepare`]).
#[derive(Debug)]
pub struct PreparedBatch {
    body: Vec<u8>,
    steps: usize,
    /// Ends with `close` (the server keeps streams).
    with_close: bool,
}

/// What one attempt of a batch sends.
#[derive(Debug, Clone, Copy)]
enum Body<'a> {
    Steps(&'a [Step]),
    Prepared(&'a PreparedBatch),
}

/// The pipeline request body of a batch of `steps`, ending with `close`
/// when `with_close`.
fn encode(steps: &[Step], with_close: bool) -> Result<Vec<u8>> {
    let batch = proto::Batch {
        steps: steps
            .iter()
            .map(|s| proto::BatchStep {
                condition: s.cond.clone(),
                stmt: stmt_to_proto(&s.stmt),
            })
            .collect(),
        replication_index: None,
    };
    let mut requests = vec![proto::StreamRequest::Batch(proto::BatchStreamReq { batch })];
    if with_close {
        requests.push(proto::StreamRequest::Close(proto::CloseStreamReq {}));
    }
    serde_json::to_vec(&proto::PipelineReqBody {
        baton: None,
        requests,
    })
    .map_err(|e| Error::InvalidInput(format!("cannot encode request: {e}")))
}

/// `ok(step)`.
pub fn ok(step: usize) -> BatchCond {
    BatchCond::Ok { step: step as u32 }
}

/// `not(ok(step))`.
pub fn not_ok(step: usize) -> BatchCond {
    BatchCond::Not {
        cond: Box::new(ok(step)),
    }
}

/// Wraps `stmts` in `BEGIN IMMEDIATE` .. `COMMIT`, each step conditioned on
/// the previous one, with `ROLLBACK` when the commit did not happen.
/// Returns the steps and the index of the `COMMIT` step.
pub fn transaction(stmts: Vec<Statement>) -> (Vec<Step>, usize) {
    let mut steps = vec![Step {
        cond: None,
        stmt: Statement::plain("BEGIN IMMEDIATE"),
    }];
    for stmt in stmts {
        let prev = steps.len() - 1;
        steps.push(Step {
            cond: Some(ok(prev)),
            stmt,
        });
    }
    let commit = steps.len();
    steps.push(Step {
        cond: Some(ok(commit - 1)),
        stmt: Statement::plain("COMMIT"),
    });
    steps.push(Step {
        cond: Some(not_ok(commit)),
        stmt: Statement::plain("ROLLBACK"),
    });
    (steps, commit)
}

// Native only: the scripted transport below is a `Send` async-trait impl.
#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)] // test code, including the scripted transport
mod tests {
    use super::*;

    #[test]
    fn parses_a_tursodb_style_response() {
        let body = br#"{"baton":null,"base_url":null,"results":[{"type":"ok","response":{"type":"batch","result":{
            "step_results":[{"cols":[{"name":"a","decltype":null},{"name":"b"}],"rows":[[{"type":"integer","value":"5"},{"type":"blob","base64":"AAE"}]],
            "affected_row_count":0,"last_insert_rowid":null,"extra_field":1}, null],
            "step_errors":[null,{"message":"boom","code":"SQLITE_BUSY"}]}}}]}"#;
        let (out, close_rejected) = parse_batch_response(body, 2).unwrap();
        assert!(!close_rejected);
        let rows = out.results[0].as_ref().unwrap();
        assert_eq!(
            rows.rows[0],
            vec![SqlValue::Integer(5), SqlValue::Blob(vec![0, 1])]
        );
        let e = out.first_error().unwrap();
        assert_eq!(e.server_code(), Some("SQLITE_BUSY"));
        assert!(e.is_transient());
    }

    #[test]
    fn padded_base64_is_accepted() {
        let body = br#"{"results":[{"type":"ok","response":{"type":"batch","result":{
            "step_results":[{"cols":[{"name":"b"}],"rows":[[{"type":"blob","base64":"AAE="}]],"affected_row_count":0,"last_insert_rowid":null}],
            "step_errors":[null]}}},{"type":"error","error":{"message":"no close","code":"X"}}]}"#;
        let (out, close_rejected) = parse_batch_response(body, 1).unwrap();
        assert!(close_rejected);
        assert_eq!(
            out.results[0].as_ref().unwrap().rows[0][0],
            SqlValue::Blob(vec![0, 1])
        );
    }

    #[test]
    fn malformed_responses_are_typed_errors() {
        let cases: [&[u8]; 7] = [
            b"",
            b"<html>oops</html>",
            b"{\"results\":[]}",
            b"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":{\"cols\":[],\"rows\":[],\"affected_row_count\":0,\"last_insert_rowid\":null}}}]}",
            b"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"batch\",\"result\":{\"step_results\":[],\"step_errors\":[]}}}]}",
            b"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"batch\",\"result\":{\"step_results\":[{\"cols\":[{\"name\":\"a\"}],\"rows\":[[]],\"affected_row_count\":0,\"last_insert_rowid\":null}],\"step_errors\":[null]}}}]}",
            b"{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"batch\",\"result\":{\"step_results\":[{\"cols\":[{\"name\":\"a\"}],\"rows\":[[{\"type\":\"integer\",\"value\":\"x\"}]],\"affected_row_count\":0,\"last_insert_rowid\":null}],\"step_errors\":[null]}}}]}",
        ];
        for body in cases {
            let e = parse_batch_response(body, 1).expect_err(&String::from_utf8_lossy(body));
            assert!(matches!(e, Error::Protocol(_)), "{e:?}");
        }
        let e = parse_batch_response(
            br#"{"results":[{"type":"error","error":{"message":"m","code":"ARGS_INVALID"}}]}"#,
            1,
        )
        .unwrap_err();
        assert_eq!(e.server_code(), Some("ARGS_INVALID"));
    }

    #[test]
    fn transaction_steps_are_chained() {
        let (steps, commit) = transaction(vec![Statement::plain("A"), Statement::plain("B")]);
        assert_eq!(steps.len(), 5);
        assert_eq!(commit, 3);
        assert!(matches!(steps[2].cond, Some(BatchCond::Ok { step: 1 })));
        assert!(matches!(steps[4].cond, Some(BatchCond::Not { .. })));
    }

    /// A scripted server: answers each request from `answer` (given the
    /// body and how many requests came before), records bodies and the
    /// backoff sleeps between them.
    struct Scripted {
        answer: fn(&str, usize) -> (u16, String),
        seen: std::sync::Mutex<Vec<String>>,
        slept: std::sync::Mutex<Vec<u64>>,
    }

    #[async_trait::async_trait]
    impl Transport for Scripted {
        async fn post(
            &self,
            request: HttpRequest,
        ) -> Result<crate::transport::HttpResponse, crate::transport::TransportError> {
            let body = String::from_utf8(request.body).unwrap();
            let before = self.seen.lock().unwrap().len();
            let (status, text) = (self.answer)(&body, before);
            self.seen.lock().unwrap().push(body);
            Ok(crate::transport::HttpResponse {
                status,
                body: text.into_bytes(),
            })
        }
        async fn sleep(&self, ms: u64) {
            self.slept.lock().unwrap().push(ms);
        }
    }

    const OK_BATCH: &str = r#"{"type":"ok","response":{"type":"batch","result":{"step_results":[{"cols":[],"rows":[],"affected_row_count":0,"last_insert_rowid":null}],"step_errors":[null]}}}"#;

    fn client(answer: fn(&str, usize) -> (u16, String)) -> (HranaClient, Arc<Scripted>) {
        client_with(
            answer,
            RetryPolicy {
                attempts: 3,
                base_delay_ms: 1,
                max_delay_ms: 1,
            },
        )
    }

    fn client_with(
        answer: fn(&str, usize) -> (u16, String),
        retry: RetryPolicy,
    ) -> (HranaClient, Arc<Scripted>) {
        let t = Arc::new(Scripted {
            answer,
            seen: Default::default(),
            slept: Default::default(),
        });
        let (endpoint, _) = Endpoint::parse("http://127.0.0.1:9", false).unwrap();
        let token = AuthToken::new("s3cret-token");
        (HranaClient::new(endpoint, token, t.clone(), retry), t)
    }

    /// `(lowest, highest)` delay before retry `n`: the exponential step,
    /// capped, minus up to half of it as jitter.
    fn delay_range(p: &RetryPolicy, n: u32) -> (u64, u64) {
        let full = (p.base_delay_ms << n).min(p.max_delay_ms);
        (full - full / 2, full)
    }

    #[tokio::test]
    async fn servers_that_keep_streams_get_close() {
        // sqld's behaviour: a pipeline without close keeps its stream and
        // answers with a baton; with close, the baton is null.
        let (c, t) = client(|body, _| {
            if body.contains(r#""type":"batch""#) && !body.contains(r#""type":"close""#) {
                (200, format!(r#"{{"baton":"b1","results":[{OK_BATCH}]}}"#))
            } else if body.contains(r#""type":"batch""#) {
                (
                    200,
                    format!(
                        r#"{{"baton":null,"results":[{OK_BATCH},{{"type":"ok","response":{{"type":"close"}}}}]}}"#
                    ),
                )
            } else {
                (
                    200,
                    r#"{"baton":null,"results":[{"type":"ok","response":{"type":"close"}}]}"#
                        .into(),
                )
            }
        });
        for _ in 0..3 {
            c.execute(Statement::plain("SELECT 1")).await.unwrap();
        }
        let seen = t.seen.lock().unwrap();
        assert_eq!(
            seen.len(),
            4,
            "first pipeline, its close, two closed pipelines"
        );
        assert!(!seen[0].contains(r#""type":"close""#));
        assert!(seen[1].contains(r#""baton":"b1""#) && seen[1].contains(r#""type":"close""#));
        assert!(!seen[1].contains(r#""type":"batch""#));
        assert!(seen[2..].iter().all(|b| b.contains(r#""type":"close""#)));
    }

    #[tokio::test]
    async fn servers_without_streams_never_see_close() {
        // tursodb's behaviour: no batons, and HTTP 500 to a close.
        let (c, t) = client(|body, _| {
            if body.contains(r#""type":"close""#) {
                (500, "unknown variant `close`".into())
            } else {
                (200, format!(r#"{{"baton":null,"results":[{OK_BATCH}]}}"#))
            }
        });
        for _ in 0..3 {
            c.execute(Statement::plain("SELECT 1")).await.unwrap();
        }
        let seen = t.seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "no failed request");
        assert!(!seen.iter().any(|b| b.contains(r#""type":"close""#)));
    }

    #[tokio::test]
    async fn auth_errors_are_typed_and_not_retried() {
        let (c, t) = client(|_, _| (401, "Unauthorized".into()));
        let e = c.execute(Statement::plain("SELECT 1")).await.unwrap_err();
        assert!(matches!(e, Error::Auth { status: 401 }), "{e:?}");
        assert_eq!(t.seen.lock().unwrap().len(), 1);
        assert!(!format!("{e} {e:?} {c:?}").contains("s3cret"));
        // A read-only token writing (sqld): 403, the same way.
        let (c, t) = client(|_, _| (403, "Forbidden".into()));
        let e = c.execute(Statement::plain("SELECT 1")).await.unwrap_err();
        assert!(matches!(e, Error::Auth { status: 403 }), "{e:?}");
        assert_eq!(t.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn transient_errors_are_retried_then_surface_typed() {
        let (c, t) = client(|_, _| (503, "busy".into()));
        let e = c.execute(Statement::plain("SELECT 1")).await.unwrap_err();
        assert!(matches!(e, Error::Http { status: 503, .. }), "{e:?}");
        assert!(e.is_transient());
        assert_eq!(t.seen.lock().unwrap().len(), 3, "attempts = 3");
    }

    #[tokio::test]
    async fn token_travels_only_in_the_header() {
        let (c, t) = client(|_, _| (200, format!(r#"{{"results":[{OK_BATCH}]}}"#)));
        c.execute(Statement::plain("SELECT 1")).await.unwrap();
        assert!(!t.seen.lock().unwrap()[0].contains("s3cret"));
        c.set_token(None);
        assert!(!c.has_token());
    }

    #[tokio::test]
    async fn redirects_are_typed_errors_sent_once() {
        for status in [301, 302, 307, 308] {
            let (c, t) = match status {
                301 => client(|_, _| (301, String::new())),
                302 => client(|_, _| (302, String::new())),
                307 => client(|_, _| (307, String::new())),
                _ => client(|_, _| (308, String::new())),
            };
            let e = c.execute(Statement::plain("SELECT 1")).await.unwrap_err();
            assert!(
                matches!(e, Error::Redirected { status: s } if s == status),
                "{e:?}"
            );
            assert!(!e.is_transient());
            assert_eq!(t.seen.lock().unwrap().len(), 1, "not retried");
        }
    }

    #[tokio::test]
    async fn server_texts_lose_credentials_before_they_are_kept() {
        // A server that echoes the request's token (whatever its shape),
        // a JWT and a bearer header into its error messages and bodies.
        let step = |_: &str, _: usize| {
            (
                200,
                r#"{"results":[{"type":"ok","response":{"type":"batch","result":{"step_results":[null],"step_errors":[{"message":"no: s3cret-token / Bearer abcdefghijkl / eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig","code":"SQLITE_CONSTRAINT"}]}}}]}"#.into(),
            )
        };
        let (c, _) = client(step);
        let out = c
            .batch(&[Step {
                cond: None,
                stmt: Statement::plain("SELECT 1"),
            }])
            .await
            .unwrap();
        let e = out.first_error().unwrap();
        let text = format!("{e} {e:?}");
        for secret in ["s3cret-token", "abcdefghijkl", "eyJhbGciOiJIUzI1NiJ9"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("SQLITE_CONSTRAINT") && text.contains("<redacted>"),
            "{text}"
        );
        let (c, _) = client(|_, _| (500, format!("s3cret-token {}", "x".repeat(5_000))));
        let e = c.execute(Statement::plain("SELECT 1")).await.unwrap_err();
        let text = e.to_string();
        assert!(
            !text.contains("s3cret-token") && text.len() < 1_000,
            "{text}"
        );
        let (c, _) = client(|_, _| {
            (
                200,
                r#"{"results":[{"type":"error","error":{"message":"authToken=s3cret-token","code":"X"}}]}"#.into(),
            )
        });
        let e = c.execute(Statement::plain("SELECT 1")).await.unwrap_err();
        assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
    }

    #[test]
    fn retry_delays_double_with_jitter_up_to_the_cap() {
        let p = RetryPolicy::default();
        for n in 0..10 {
            let (low, high) = delay_range(&p, n);
            let drawn: std::collections::BTreeSet<u64> = (0..200).map(|_| p.delay(n)).collect();
            assert!(
                drawn.iter().all(|d| (low..=high).contains(d)),
                "retry {n}: {drawn:?} outside {low}..={high}"
            );
            // Jitter: 200 draws from [full/2, full] are not all the same.
            assert!(drawn.len() > 1, "retry {n}: no jitter, always {drawn:?}");
        }
        // Growth: each step doubles until the cap.
        let highs: Vec<u64> = (0..6).map(|n| delay_range(&p, n).1).collect();
        assert_eq!(highs, [150, 300, 600, 1_200, 2_000, 2_000]);
        assert!(
            p.delay(3) > delay_range(&p, 0).1,
            "retry 3 waits longer than any retry 0"
        );
    }

    #[tokio::test]
    async fn retries_back_off_between_attempts() {
        let retry = RetryPolicy {
            attempts: 4,
            base_delay_ms: 100,
            max_delay_ms: 250,
        };
        let (c, t) = client_with(|_, _| (503, "busy".into()), retry);
        c.execute(Statement::plain("SELECT 1")).await.unwrap_err();
        assert_eq!(t.seen.lock().unwrap().len(), 4);
        let slept = t.slept.lock().unwrap().clone();
        assert_eq!(slept.len(), 3, "a pause before each retry: {slept:?}");
        for (n, ms) in slept.iter().enumerate() {
            let (low, high) = delay_range(&retry, n as u32);
            assert!(
                (low..=high).contains(ms),
                "pause {n}: {ms} ms, not in {low}..={high}"
            );
        }
    }

    #[tokio::test]
    async fn http_429_is_retried_then_surfaces_as_a_server_error() {
        let (c, t) = client(|_, _| (429, "Too Many Requests".into()));
        let e = c.execute(Statement::plain("SELECT 1")).await.unwrap_err();
        assert!(matches!(e, Error::Http { status: 429, .. }), "{e:?}");
        assert_eq!(e.kind(), crate::error::ErrorKind::Server);
        assert_eq!(t.seen.lock().unwrap().len(), 3, "attempts = 3");
        assert_eq!(t.slept.lock().unwrap().len(), 2);
    }

    /// `first` for the first request, then an ok batch.
    fn first_then_ok(before: usize, first: (u16, &str)) -> (u16, String) {
        if before == 0 {
            (first.0, first.1.to_owned())
        } else {
            (200, format!(r#"{{"results":[{OK_BATCH}]}}"#))
        }
    }

    #[tokio::test]
    async fn http_429_then_ok_succeeds_on_the_retry() {
        let (c, t) = client(|_, n| first_then_ok(n, (429, "Too Many Requests")));
        c.execute(Statement::plain("SELECT 1")).await.unwrap();
        assert_eq!(t.seen.lock().unwrap().len(), 2);
        assert_eq!(t.slept.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn sqlite_busy_is_retried_for_the_request_but_not_inside_a_batch() {
        // The whole request refused with SQLITE_BUSY: retried.
        const BUSY: &str = r#"{"results":[{"type":"error","error":{"message":"database is locked","code":"SQLITE_BUSY"}}]}"#;
        let (c, t) = client(|_, n| first_then_ok(n, (200, BUSY)));
        c.execute(Statement::plain("SELECT 1")).await.unwrap();
        assert_eq!(t.seen.lock().unwrap().len(), 2);
        // One step of a batch failing with SQLITE_BUSY: the batch ran (and
        // rolled back, for a transaction), so the client does not resend
        // it; the caller gets the typed error (the push runs its
        // transaction again with backoff: `crate::sync`).
        let (c, t) = client(|_, _| {
            (
                200,
                r#"{"results":[{"type":"ok","response":{"type":"batch","result":{"step_results":[null],"step_errors":[{"message":"database is locked","code":"SQLITE_BUSY"}]}}}]}"#.into(),
            )
        });
        let e = c.execute(Statement::plain("SELECT 1")).await.unwrap_err();
        assert_eq!(e.server_code(), Some("SQLITE_BUSY"));
        assert_eq!(t.seen.lock().unwrap().len(), 1);
    }
}
