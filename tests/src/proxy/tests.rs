//! Tests of the proxy against a tiny counting upstream, and one against a
//! real tursodb.

use super::http::{self, Response};
use super::*;
use crate::hrana;
use crate::server::TestServer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An upstream that answers every request with JSON describing it and a
/// running count, then closes the connection (as tursodb does).
struct Upstream {
    url: String,
    hits: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let hits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let mut buf = Vec::new();
                let Ok(request) = http::read_request(&mut stream, &mut buf).await else {
                    continue;
                };
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let body = serde_json::json!({
                    "n": n,
                    "method": request.method.as_str(),
                    "target": request.target,
                    "body": String::from_utf8_lossy(&request.body),
                    "authorization": request.header("authorization").is_some(),
                });
                let response = Response {
                    status: 200,
                    headers: vec![("content-type".into(), b"application/json".to_vec())],
                    body: body.to_string().into_bytes(),
                };
                let _ = http::write_response(&mut stream, &response, false).await;
            }
        });
        Upstream { url, hits, task }
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A client that opens a new connection per request, so a connection the
/// proxy closed is never reused behind the test's back.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

async fn post(url: &str, body: &str) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{url}/v2/pipeline"))
        .body(body.to_string())
        .send()
        .await
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&response.bytes().await.expect("body")).expect("json")
}

async fn setup(faults: Faults) -> (Upstream, FaultProxy) {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(&upstream.url, 42).await.expect("proxy");
    proxy.set_faults(faults);
    (upstream, proxy)
}

/// Sends one raw request and returns what the proxy did with the connection.
async fn raw_exchange(url: &str) -> std::io::Result<Vec<u8>> {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"POST /v2/pipeline HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(response)
}

#[tokio::test]
async fn passes_requests_and_answers_through() {
    let (upstream, proxy) = setup(Faults::none()).await;
    let response = client()
        .post(format!("{}/v2/pipeline?x=1", proxy.url()))
        .header("content-type", "application/json")
        .body("hello")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = json(response).await;
    assert_eq!(body["method"], "POST");
    assert_eq!(body["target"], "/v2/pipeline?x=1");
    assert_eq!(body["body"], "hello");
    assert_eq!(upstream.hits(), 1);
    let stats = proxy.stats();
    assert_eq!(
        (stats.requests, stats.forwarded, stats.faults_injected),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn serves_pipelined_requests_on_one_connection() {
    let (upstream, proxy) = setup(Faults::none()).await;
    let addr = proxy.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request =
        |close: &str| format!("POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n{close}\r\nabc");
    let both = request("") + &request("connection: close\r\n");
    stream.write_all(both.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let response = String::from_utf8_lossy(&response);
    assert_eq!(response.matches("HTTP/1.1 200 OK").count(), 2, "{response}");
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn drop_request_closes_without_forwarding() {
    let (upstream, proxy) = setup(Faults {
        drop_request: 1.0,
        ..Faults::none()
    })
    .await;
    let response = raw_exchange(proxy.url()).await.expect("a clean close");
    assert!(response.is_empty());
    assert_eq!(upstream.hits(), 0);
    let stats = proxy.stats();
    assert_eq!(
        (stats.drop_request, stats.faults_injected, stats.forwarded),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn reset_resets_the_connection() {
    let (upstream, proxy) = setup(Faults {
        reset: 1.0,
        ..Faults::none()
    })
    .await;
    let err = raw_exchange(proxy.url()).await.expect_err("a reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    assert_eq!(upstream.hits(), 0);
    assert_eq!(proxy.stats().reset, 1);
}

#[tokio::test]
async fn drop_response_forwards_then_closes() {
    let (upstream, proxy) = setup(Faults {
        drop_response: 1.0,
        ..Faults::none()
    })
    .await;
    assert!(post(proxy.url(), "{}").await.is_err());
    assert_eq!(
        upstream.hits(),
        1,
        "the upstream must have seen the request"
    );
    let stats = proxy.stats();
    assert_eq!((stats.drop_response, stats.forwarded), (1, 1));
}

#[tokio::test]
async fn status_5xx_answers_without_forwarding() {
    let (upstream, proxy) = setup(Faults {
        status_5xx: 1.0,
        ..Faults::none()
    })
    .await;
    let mut seen = Vec::new();
    for _ in 0..12 {
        let response = post(proxy.url(), "{}").await.expect("an answer");
        assert!(response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain"));
        seen.push(response.status().as_u16());
    }
    assert!(seen.iter().all(|s| [500, 502, 503].contains(s)), "{seen:?}");
    assert!(seen.iter().any(|&s| s != seen[0]), "always {}", seen[0]);
    assert_eq!(upstream.hits(), 0);
    assert_eq!(proxy.stats().status_5xx, 12);
}

#[tokio::test]
async fn truncate_sends_half_a_body() {
    let (upstream, proxy) = setup(Faults {
        truncate: 1.0,
        ..Faults::none()
    })
    .await;
    let response = post(proxy.url(), "{}").await.expect("a head");
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "the body must be cut short"
    );
    assert_eq!(upstream.hits(), 1);
    assert_eq!(proxy.stats().truncate, 1);
}

#[tokio::test]
async fn non_json_replaces_the_answer_after_forwarding() {
    let (upstream, proxy) = setup(Faults {
        non_json: 1.0,
        ..Faults::none()
    })
    .await;
    let response = post(proxy.url(), "{}").await.expect("an answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html");
    assert_eq!(response.text().await.expect("body"), "<html>oops</html>");
    assert_eq!(upstream.hits(), 1);
    assert_eq!(proxy.stats().non_json, 1);
}

#[tokio::test]
async fn delay_waits_before_forwarding() {
    let (upstream, proxy) = setup(Faults {
        delay_ms: (150, 150),
        ..Faults::none()
    })
    .await;
    let start = Instant::now();
    let response = post(proxy.url(), "{}").await.expect("an answer");
    assert_eq!(response.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(upstream.hits(), 1);
    let stats = proxy.stats();
    assert_eq!((stats.delayed, stats.faults_injected), (1, 0));
}

#[tokio::test]
async fn drop_next_responses_loses_exactly_that_many() {
    let (upstream, proxy) = setup(Faults::none()).await;
    proxy.drop_next_responses(1);
    assert!(post(proxy.url(), "{}").await.is_err());
    assert_eq!(upstream.hits(), 1, "the lost one reached the upstream");
    let response = post(proxy.url(), "{}").await.expect("second is answered");
    let body = json(response).await;
    assert_eq!(body["n"], 2, "both reached the upstream");
    let stats = proxy.stats();
    assert_eq!((stats.drop_response, stats.forwarded), (1, 2));
}

#[tokio::test]
async fn failed_commits_answer_transactions_only_without_forwarding() {
    let (upstream, proxy) = setup(Faults::none()).await;
    proxy.fail_next_commits(1, "SQLITE_BUSY", "database is locked");
    // Not a transaction: forwarded as usual.
    let plain =
        r#"{"requests":[{"type":"batch","batch":{"steps":[{"stmt":{"sql":"SELECT 1"}}]}}]}"#;
    assert_eq!(
        json(post(proxy.url(), plain).await.expect("answer")).await["n"],
        1
    );
    let tx = r#"{"requests":[{"type":"batch","batch":{"steps":[{"stmt":{"sql":"BEGIN IMMEDIATE"}},
        {"stmt":{"sql":"INSERT INTO t VALUES (1)"}},{"stmt":{"sql":"COMMIT"}},{"stmt":{"sql":"ROLLBACK"}}]}},
        {"type":"close"}]}"#;
    let answer = json(post(proxy.url(), tx).await.expect("answer")).await;
    let result = &answer["results"][0]["response"]["result"];
    assert_eq!(result["step_errors"][2]["code"], "SQLITE_BUSY", "{answer}");
    assert!(result["step_results"][2].is_null());
    assert!(result["step_results"][3].is_object(), "the ROLLBACK ran");
    assert_eq!(answer["results"][1]["response"]["type"], "close");
    assert_eq!(upstream.hits(), 1, "the failed commit was not forwarded");
    // Only one was asked for: the next transaction is forwarded.
    assert_eq!(
        json(post(proxy.url(), tx).await.expect("answer")).await["n"],
        2
    );
    assert_eq!(proxy.stats().failed_commits, 1);
}

#[tokio::test]
async fn read_only_and_per_table_tokens_are_refused_like_the_server() {
    let (upstream, proxy) = setup(Faults::none()).await;
    proxy.set_read_only(true);
    let read =
        r#"{"requests":[{"type":"batch","batch":{"steps":[{"stmt":{"sql":"SELECT * FROM t"}}]}}]}"#;
    let write = r#"{"requests":[{"type":"execute","stmt":{"sql":"SELECT 1"}},
        {"type":"execute","stmt":{"sql":"CREATE TABLE IF NOT EXISTS t (x)"}}]}"#;
    assert_eq!(post(proxy.url(), read).await.expect("answer").status(), 200);
    assert_eq!(
        post(proxy.url(), write).await.expect("answer").status(),
        403
    );
    assert_eq!(upstream.hits(), 1, "the refused pipeline was not forwarded");
    proxy.set_read_only(false);
    proxy.deny_writes_to(&["secrets"]);
    let tx = |table: &str| {
        format!(
            r#"{{"requests":[{{"type":"batch","batch":{{"steps":[{{"stmt":{{"sql":"BEGIN IMMEDIATE"}}}},
            {{"stmt":{{"sql":"INSERT INTO \"{table}\" (x) VALUES (1)"}}}},{{"stmt":{{"sql":"UPDATE \"_erth_meta\" SET v = v + 1"}}}},
            {{"stmt":{{"sql":"COMMIT"}}}},{{"stmt":{{"sql":"ROLLBACK"}}}}]}}}}]}}"#
        )
    };
    let answer = json(post(proxy.url(), &tx("secrets")).await.expect("answer")).await;
    let result = &answer["results"][0]["response"]["result"];
    assert_eq!(result["step_errors"][1]["code"], "SQLITE_AUTH", "{answer}");
    assert!(result["step_results"][3].is_null(), "no COMMIT");
    assert!(result["step_results"][4].is_object(), "the ROLLBACK ran");
    assert_eq!(upstream.hits(), 1);
    assert_eq!(
        json(post(proxy.url(), &tx("notes")).await.expect("answer")).await["n"],
        2
    );
    assert_eq!(proxy.stats().forbidden, 2);
}

#[tokio::test]
async fn a_throttled_response_arrives_whole() {
    let (upstream, proxy) = setup(Faults::none()).await;
    proxy.set_throttle(Some(20_000));
    let body = "x".repeat(5_000);
    let answer = json(post(proxy.url(), &body).await.expect("answer")).await;
    assert_eq!(answer["body"].as_str().map(str::len), Some(5_000));
    assert_eq!(upstream.hits(), 1);
    assert_eq!(proxy.stats().abandoned, 0);
}

#[tokio::test]
async fn the_seed_makes_fault_sequences_repeatable() {
    let faults = Faults {
        status_5xx: 0.3,
        non_json: 0.3,
        ..Faults::none()
    };
    let mut runs = Vec::new();
    for seed in [5, 5, 6] {
        let upstream = Upstream::start().await;
        let proxy = FaultProxy::start(&upstream.url, seed).await.expect("proxy");
        proxy.set_faults(faults.clone());
        let mut outcomes = Vec::new();
        for _ in 0..30 {
            let response = post(proxy.url(), "{}").await.expect("an answer");
            let status = response.status().as_u16();
            let html = response.text().await.expect("body").starts_with("<html>");
            outcomes.push((status, html));
        }
        runs.push(outcomes);
    }
    assert_eq!(runs[0], runs[1], "same seed, same faults");
    assert_ne!(runs[0], runs[2], "another seed, other faults");
    assert!(runs[0].iter().any(|&(s, _)| s >= 500));
    assert!(runs[0].iter().any(|&(_, html)| html));
    assert!(runs[0].iter().any(|&(s, html)| s == 200 && !html));
}

#[tokio::test]
#[should_panic(expected = "not in [0, 1]")]
async fn invalid_faults_are_a_test_bug() {
    let (_upstream, proxy) = setup(Faults::none()).await;
    proxy.set_faults(Faults {
        drop_request: 2.0,
        ..Faults::none()
    });
}

#[tokio::test]
async fn an_unreachable_upstream_gives_502() {
    let port = crate::launch::free_port().expect("port");
    let proxy = FaultProxy::start(&format!("http://127.0.0.1:{port}"), 1)
        .await
        .expect("proxy");
    let response = post(proxy.url(), "{}").await.expect("an answer");
    assert_eq!(response.status(), 502);
    let stats = proxy.stats();
    assert_eq!((stats.upstream_errors, stats.forwarded), (1, 0));
}

#[tokio::test]
async fn chunked_request_bodies_are_refused_loudly() {
    let (upstream, proxy) = setup(Faults::none()).await;
    let addr = proxy.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"POST /v2/pipeline HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        .await
        .expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    assert!(response.starts_with(b"HTTP/1.1 501"));
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn auth_proxy_checks_the_bearer_token() {
    let upstream = Upstream::start().await;
    let proxy = AuthProxy::start(&upstream.url, "s3cret")
        .await
        .expect("proxy");
    let endpoint = format!("{}/v2/pipeline", proxy.url());
    let send = |token: Option<&'static str>| {
        let mut request = client().post(&endpoint).body("{}");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let missing = send(None).await.expect("answer");
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.text().await.expect("body"), "Unauthorized");
    let wrong = send(Some("nope")).await.expect("answer");
    assert_eq!(wrong.status(), 401);
    assert!(!wrong.text().await.expect("body").contains("s3cret"));
    assert_eq!(upstream.hits(), 0);

    let right = send(Some("s3cret")).await.expect("answer");
    assert_eq!(right.status(), 200);
    let body = json(right).await;
    assert_eq!(body["authorization"], true, "the header is forwarded");

    let preflight = client()
        .request(reqwest::Method::OPTIONS, &endpoint)
        .header("origin", "http://127.0.0.1:1")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("answer");
    assert_eq!(preflight.status(), 200, "forwarded to the upstream");
    assert_eq!(upstream.hits(), 2);

    proxy.set_token(Some("rotated".into()));
    assert_eq!(send(Some("s3cret")).await.expect("answer").status(), 401);
    assert_eq!(send(Some("rotated")).await.expect("answer").status(), 200);
    proxy.set_token(None);
    assert_eq!(send(None).await.expect("answer").status(), 200);
    assert_eq!(proxy.rejected(), 3);
    assert!(!format!("{proxy:?}").contains("rotated"));
}

#[tokio::test]
async fn works_in_front_of_a_real_server_and_loses_a_committed_response() {
    let server = TestServer::start().await.expect("server");
    let proxy = FaultProxy::start(server.url(), 1).await.expect("proxy");
    let through = hrana::execute(proxy.url(), server.token(), &["SELECT 1"])
        .await
        .expect("SELECT 1 through the proxy");
    assert_eq!(through[0]["rows"][0][0]["value"], "1");

    hrana::execute(
        server.url(),
        server.token(),
        &["CREATE TABLE todos (x INTEGER)"],
    )
    .await
    .expect("create");
    proxy.drop_next_responses(1);
    // A plain pipeline (no `close`): tursodb executes it, the proxy loses the answer.
    let mut insert = client().post(format!("{}/v2/pipeline", proxy.url())).body(
        r#"{"requests":[{"type":"execute","stmt":{"sql":"INSERT INTO todos VALUES (42)"}}]}"#,
    );
    if let Some(token) = server.token() {
        insert = insert.bearer_auth(token);
    }
    assert!(insert.send().await.is_err(), "the response must be lost");
    let rows = hrana::execute(server.url(), server.token(), &["SELECT x FROM todos"])
        .await
        .expect("select");
    assert_eq!(
        rows[0]["rows"][0][0]["value"], "42",
        "the server committed it"
    );
    assert_eq!(proxy.stats().drop_response, 1);
}
