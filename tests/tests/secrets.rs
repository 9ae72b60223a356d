//! Secrets go only where they belong: the encryption key only to the
//! server it was given for (a recorder standing in for another server never
//! sees it after `set_remote`), nothing to where a redirect points (never
//! followed), plain HTTP only to this machine unless allowed and never with
//! the key, no answer read past the size limit, and no credential a server
//! puts into its messages stored in a refused or quarantined row's record
//! or the status.

#![allow(clippy::unwrap_used)] // test code

mod common;

use erth_core::hlc::SystemClock;
use erth_core::store::sqlite::SqliteStore;
use erth_core::transport::native::NativeTransport;
use erth_core::transport::{TransportError, MAX_RESPONSE_BYTES};
use erth_core::{Config, Database, Error, ErrorKind};
use erth_tests::{hrana, Answer, Recorder, TestServer};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "k3y-of-server-a-0123456789abcdef";
const KEY_B: &str = "k3y-of-server-b-fedcba9876543210";
const TOKEN: &str = "t0ken-of-server-a";
const HEADER: &str = "x-turso-encryption-key";

/// A replica in `dir` with `config` (its URL, token and key included).
async fn replica(dir: &Path, name: &str, config: Config) -> Result<Database, Error> {
    let store = SqliteStore::open(dir.join(format!("{name}.db"))).unwrap();
    let transport = NativeTransport::new(Duration::from_secs(20)).unwrap();
    Database::open(
        Arc::new(store),
        Arc::new(transport),
        Arc::new(SystemClock),
        config,
    )
    .await
}

fn refusing() -> Answer {
    Answer::Status {
        status: 400,
        body: "not a Hrana server".into(),
    }
}

#[tokio::test]
async fn the_encryption_key_goes_only_to_the_server_it_was_given_for() {
    let a = Recorder::start(refusing()).await.unwrap();
    let b = Recorder::start(refusing()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = replica(
        dir.path(),
        "r",
        Config {
            url: Some(a.url().into()),
            auth_token: Some(TOKEN.into()),
            encryption_key: Some(KEY.into()),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    db.sync().await.unwrap_err();
    let to_a = a.requests();
    assert!(!to_a.is_empty());
    assert!(
        to_a.iter().all(|r| r.header(HEADER) == Some(KEY)),
        "{to_a:?}"
    );

    // Another server (another port is another origin): no key goes there.
    db.set_remote(Some(b.url()), Some("t0ken-of-server-b"))
        .unwrap();
    db.sync().await.unwrap_err();
    let to_b = b.requests();
    assert!(!to_b.is_empty(), "the replica never tried server b");
    assert!(
        to_b.iter()
            .all(|r| r.header(HEADER).is_none() && !r.contains(KEY)),
        "server b saw server a's key: {to_b:?}"
    );
    assert!(
        to_b.iter().all(|r| !r.contains(TOKEN)),
        "server a's token went to b"
    );

    // Back to server a (another path, the same origin): the key goes again.
    db.set_remote(Some(&format!("{}/base", a.url())), Some(TOKEN))
        .unwrap();
    db.sync().await.unwrap_err();
    let again = &a.requests()[to_a.len()..];
    assert!(!again.is_empty() && again.iter().all(|r| r.header(HEADER) == Some(KEY)));

    // Server b with a key of its own.
    db.set_remote_with_key(Some(b.url()), None, Some(KEY_B))
        .unwrap();
    db.sync().await.unwrap_err();
    let with_key = &b.requests()[to_b.len()..];
    assert!(!with_key.is_empty());
    assert!(with_key
        .iter()
        .all(|r| r.header(HEADER) == Some(KEY_B) && !r.contains(KEY)));
    let shown = format!("{db:?} {:?}", db.status().await.unwrap());
    assert!(!shown.contains(KEY) && !shown.contains(KEY_B), "{shown}");
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    for status in [301, 302, 303, 307, 308] {
        let elsewhere = Recorder::start(refusing()).await.unwrap();
        let redirecting = Recorder::start(Answer::Redirect {
            status,
            location: format!("{}/v2/pipeline", elsewhere.url()),
        })
        .await
        .unwrap();
        let db = replica(
            dir.path(),
            &format!("r{status}"),
            Config {
                url: Some(redirecting.url().into()),
                auth_token: Some(TOKEN.into()),
                encryption_key: Some(KEY.into()),
                ..Config::default()
            },
        )
        .await
        .unwrap();
        db.add_todo("a body worth stealing").await.unwrap();
        let e = db.sync().await.unwrap_err();
        assert_eq!(
            elsewhere.requests(),
            Vec::new(),
            "HTTP {status}: the redirect was followed"
        );
        assert!(
            matches!(e, Error::Redirected { status: s } if s == status),
            "HTTP {status}: {e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::Server);
        assert_eq!(redirecting.requests().len(), 1, "HTTP {status}: retried");
        assert_eq!(db.status().await.unwrap().pending_changes, 1);
    }
}

#[tokio::test]
async fn plain_http_leaves_this_machine_only_when_allowed_and_never_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let open = |url: &str, insecure: bool, key: Option<&str>| {
        let config = Config {
            url: Some(url.into()),
            encryption_key: key.map(str::to_owned),
            allow_insecure_http: insecure,
            ..Config::default()
        };
        let path = dir.path().to_owned();
        let name = format!("r{}", erth_core::ids::new_id());
        async move { replica(&path, &name, config).await.map(|_| ()) }
    };
    for remote in [
        "http://db.example",
        "http://192.168.1.2:8080",
        "http://10.0.0.5",
        "http://nas.local",
        "http://db.internal",
    ] {
        let e = open(remote, false, None).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{remote}: {e:?}");
        open(remote, true, None).await.unwrap();
        // The key never travels in clear text, opt-in or not.
        let e = open(remote, true, Some(KEY)).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{remote}: {e:?}");
        assert!(!e.to_string().contains(KEY));
    }
    for local in ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"] {
        open(local, false, Some(KEY)).await.unwrap();
    }
    open("https://db.example", false, Some(KEY)).await.unwrap();
}

#[tokio::test]
async fn an_answer_past_the_size_limit_is_a_typed_error_read_no_further() {
    let dir = tempfile::tempdir().unwrap();
    // 16 MiB past the limit, in chunks with no length announced; and a
    // length announced far past it.
    for answer in [
        Answer::Chunked {
            bytes: MAX_RESPONSE_BYTES + 16 * 1024 * 1024,
        },
        Answer::Announced { length: 1 << 40 },
    ] {
        let server = Recorder::start(answer.clone()).await.unwrap();
        let db = replica(
            dir.path(),
            &format!("r{}", erth_core::ids::new_id()),
            Config {
                url: Some(server.url().into()),
                ..Config::default()
            },
        )
        .await
        .unwrap();
        let started = Instant::now();
        let e = db.sync().await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Network(TransportError::ResponseTooLarge { limit_bytes }) if limit_bytes == MAX_RESPONSE_BYTES
            ),
            "{answer:?}: {e:?}"
        );
        assert_eq!(server.requests().len(), 1, "{answer:?}: asked again");
        assert!(started.elapsed() < Duration::from_secs(15), "{answer:?}");
    }
}

#[tokio::test]
async fn credentials_in_server_messages_are_never_stored_or_shown() {
    let server = TestServer::start().await.unwrap();
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ2aWN0aW0ifQ.c2lnbmF0dXJl";
    // A local server takes any token: the replica sends `opaque`, which
    // the server's messages below quote. An external one needs its own.
    let opaque = "opaque-s3cret-token-42";
    let token = server.token().unwrap_or(opaque);
    let dir = tempfile::tempdir().unwrap();
    let a = common::open(
        dir.path(),
        "a",
        server.url(),
        Some(token),
        Config::default(),
    )
    .await;
    a.add_todo("first").await.unwrap();
    a.sync().await.unwrap();
    let run = |sql: String| {
        let url = server.url().to_owned();
        let token = server.token().map(str::to_owned);
        async move {
            hrana::execute(&url, token.as_deref(), &[sql.as_str()])
                .await
                .unwrap()
        }
    };
    // A row whose id is a JWT: quarantined, and its record holds no JWT.
    let clk = "0000000000010000-0000000000000001";
    run(format!(
        "INSERT INTO todos VALUES ('{jwt}', 't', 0, 0, 1, 1, '{clk}', '{clk}', '{clk}', 1000000, 0)"
    ))
    .await;
    a.sync().await.unwrap();
    let quarantined = a.quarantined_rows().await.unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    // A server whose refusals quote credentials.
    run(format!(
        "CREATE TRIGGER refuse_all BEFORE INSERT ON todos BEGIN SELECT RAISE(ABORT, 'refused: Authorization: Bearer {opaque} token={opaque} jwt {jwt} and {opaque} alone'); END"
    ))
    .await;
    a.add_todo("refused").await.unwrap();
    a.sync().await.unwrap();
    let rejected = a.rejected_rows().await.unwrap();
    assert!(!rejected.is_empty());
    let stored = a
        .query(
            "SELECT * FROM _erth_rejected UNION ALL SELECT tbl, id, seq, reason, at_ms, NULL FROM _erth_quarantined",
            &[],
        )
        .await
        .unwrap();
    let shown = format!(
        "{rejected:?} {quarantined:?} {stored:?} {:?}",
        a.status().await.unwrap()
    );
    // The bare token is scrubbed as the replica's own (a local server);
    // in the patterns around it, whatever it is.
    for secret in [jwt, opaque] {
        assert!(!shown.contains(secret), "{secret} kept: {shown}");
    }
    assert!(
        rejected
            .iter()
            .all(|r| r.message.contains("refused") && r.message.contains("<redacted>")),
        "{rejected:?}"
    );
}
