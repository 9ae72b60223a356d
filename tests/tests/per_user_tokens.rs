//! One database per user, one token per user: the isolation model for apps
//! whose users must not see each other's data (Turso's: a database per user
//! or tenant, tokens from the app's identity provider). The engine itself
//! syncs whatever its token may read; the server decides what that is.
//!
//! The app's side, as these tests play it: its backend signs a short-lived
//! JWT per user (HS256 with the app's secret, claim `sub` = the user, `exp`)
//! and hands each signed-in user their database's URL and token; the
//! replica is opened with both, and `set_auth_token` swaps in a fresh token
//! before the old one expires. The server's side: an [`AuthProxy::per_user`]
//! in front of one `tursodb` per user, which opens a database only to a
//! valid token of its user (as a Turso database token is scoped to its
//! database). Checked: two users sync their own todos, and only theirs; a
//! user's token can neither read nor write the other's database; expired,
//! forged, unsigned and malformed tokens are refused with a typed `Auth`
//! error that never holds the token, and a fresh token resumes sync.

#![allow(clippy::unwrap_used)] // test code

use erth_core::{Config, Database, ErrorKind};
use erth_tests::{hrana, AuthProxy, TestServer};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The app's signing secret (its identity provider's, in a real app).
const SECRET: &[u8] = b"erth per-user test secret: 32 bytes or more";

/// A JWT for `user` that expires `valid_for_s` seconds from now (negative:
/// expired), signed with `secret`.
fn token_signed(secret: &[u8], user: &str, valid_for_s: i64) -> String {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: i64,
        iat: i64,
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = Claims {
        sub: user,
        exp: now + valid_for_s,
        iat: now,
    };
    let key = EncodingKey::from_secret(secret).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

/// What the app's backend gives a signed-in user: a token for one hour.
fn token_for(user: &str) -> String {
    token_signed(SECRET, user, 3600)
}

/// Two users, each with their own server database behind one per-user
/// proxy; `None` in external mode (one shared server: no second database).
async fn two_users() -> Option<(TestServer, TestServer, AuthProxy)> {
    let alice = TestServer::start().await.unwrap();
    if alice.is_external() {
        eprintln!("skipped: ERTH_TEST_HRANA_URL is set, there is only one server database");
        return None;
    }
    let bob = TestServer::start().await.unwrap();
    let proxy = AuthProxy::per_user(SECRET, &[("alice", alice.url()), ("bob", bob.url())])
        .await
        .unwrap();
    Some((alice, bob, proxy))
}

/// A device's replica of `url` with `token`, in `dir/name.db`.
async fn device(dir: &Path, name: &str, url: &str, token: Option<&str>) -> Database {
    let config = Config {
        url: Some(url.to_owned()),
        auth_token: token.map(str::to_owned),
        ..Config::default()
    };
    Database::open_native(dir.join(format!("{name}.db")), config)
        .await
        .unwrap()
}

async fn titles(db: &Database) -> Vec<String> {
    let mut titles: Vec<String> = db
        .list_active_todos()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.title)
        .collect();
    titles.sort();
    titles
}

/// The titles in a server database's `todos` table (read directly, no proxy).
async fn server_titles(server: &TestServer) -> Vec<String> {
    let results = hrana::execute(
        server.url(),
        server.token(),
        &["SELECT title FROM todos ORDER BY title"],
    )
    .await
    .unwrap();
    results[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0]["value"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn each_user_syncs_their_own_database() {
    let Some((alice_server, bob_server, proxy)) = two_users().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (alice_token, bob_token) = (token_for("alice"), token_for("bob"));
    let alice = device(
        dir.path(),
        "alice-phone",
        &proxy.user_url("alice"),
        Some(&alice_token),
    )
    .await;
    let bob = device(
        dir.path(),
        "bob-phone",
        &proxy.user_url("bob"),
        Some(&bob_token),
    )
    .await;
    alice.add_todo("alice: call the bank").await.unwrap();
    bob.add_todo("bob: water the plants").await.unwrap();
    assert_eq!(alice.sync().await.unwrap().pushed, 1);
    assert_eq!(bob.sync().await.unwrap().pushed, 1);

    // Alice's second device gets her todos, and only hers.
    let laptop = device(
        dir.path(),
        "alice-laptop",
        &proxy.user_url("alice"),
        Some(&alice_token),
    )
    .await;
    laptop.sync().await.unwrap();
    assert_eq!(titles(&laptop).await, ["alice: call the bank"]);
    laptop.add_todo("alice: book the train").await.unwrap();
    laptop.sync().await.unwrap();
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(
        titles(&alice).await,
        ["alice: book the train", "alice: call the bank"]
    );
    assert_eq!(titles(&bob).await, ["bob: water the plants"]);
    // Each server database holds its user's rows only.
    assert_eq!(
        server_titles(&alice_server).await,
        ["alice: book the train", "alice: call the bank"]
    );
    assert_eq!(server_titles(&bob_server).await, ["bob: water the plants"]);
    assert_eq!(proxy.rejected(), 0);
}

#[tokio::test]
async fn a_token_opens_only_its_own_users_database() {
    let Some((alice_server, bob_server, proxy)) = two_users().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bob = device(
        dir.path(),
        "bob",
        &proxy.user_url("bob"),
        Some(&token_for("bob")),
    )
    .await;
    bob.add_todo("bob's secret").await.unwrap();
    bob.sync().await.unwrap();

    // Alice's valid token on Bob's database: refused, nothing read or written.
    let alice_token = token_for("alice");
    let intruder = device(
        dir.path(),
        "intruder",
        &proxy.user_url("bob"),
        Some(&alice_token),
    )
    .await;
    intruder.add_todo("alice's todo in bob's db").await.unwrap();
    let before = proxy.rejected();
    let e = intruder.sync().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(proxy.rejected() > before);
    assert!(!format!("{e} {e:?}").contains(&alice_token));
    assert_eq!(titles(&intruder).await, ["alice's todo in bob's db"]);
    assert_eq!(intruder.status().await.unwrap().pending_changes, 1);
    assert_eq!(server_titles(&bob_server).await, ["bob's secret"]);

    // Bob's token on Alice's database (a URL swapped, a token copied): refused.
    let alice = device(
        dir.path(),
        "alice",
        &proxy.user_url("alice"),
        Some(&alice_token),
    )
    .await;
    alice.add_todo("alice's own").await.unwrap();
    alice.sync().await.unwrap();
    alice.set_auth_token(Some(&token_for("bob")));
    alice.add_todo("pushed with bob's token").await.unwrap();
    assert_eq!(alice.sync().await.unwrap_err().kind(), ErrorKind::Auth);
    assert_eq!(server_titles(&alice_server).await, ["alice's own"]);
    // With her own token again, it goes through.
    alice.set_auth_token(Some(&alice_token));
    alice.sync().await.unwrap();
    assert_eq!(
        server_titles(&alice_server).await,
        ["alice's own", "pushed with bob's token"]
    );
    assert_eq!(server_titles(&bob_server).await, ["bob's secret"]);
}

#[tokio::test]
async fn expired_forged_and_malformed_tokens_are_refused_and_a_fresh_one_resumes() {
    let Some((alice_server, _bob_server, proxy)) = two_users().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = device(dir.path(), "alice", &proxy.user_url("alice"), None).await;
    db.add_todo("kept while refused").await.unwrap();
    let unsigned = {
        // `alg: none`, no signature: what a forger sends first.
        let signed = token_for("alice");
        let payload = signed.split('.').nth(1).unwrap().to_owned();
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
    };
    let refused: [(&str, Option<String>); 6] = [
        ("no token", None),
        ("expired", Some(token_signed(SECRET, "alice", -5))),
        (
            "forged (another key)",
            Some(token_signed(
                b"not the app's secret, but as long as it",
                "alice",
                3600,
            )),
        ),
        ("unsigned (alg none)", Some(unsigned)),
        ("malformed", Some("not.a.jwt".to_owned())),
        ("no user", Some(token_signed(SECRET, "", 3600))),
    ];
    for (what, token) in &refused {
        db.set_auth_token(token.as_deref());
        let before = proxy.rejected();
        let e = db.sync().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{what}: {e}");
        assert_eq!(
            proxy.rejected() - before,
            1,
            "{what}: one request, no retries"
        );
        if let Some(token) = token {
            let shown = format!("{e} {e:?} {db:?} {:?}", db.status().await.unwrap());
            assert!(!shown.contains(token.as_str()), "{what}: the token leaked");
        }
        assert_eq!(db.status().await.unwrap().pending_changes, 1, "{what}");
    }
    // Nothing reached Alice's database: not even the engine's tables.
    let tables = hrana::execute(
        alice_server.url(),
        alice_server.token(),
        &["SELECT count(*) FROM sqlite_schema"],
    )
    .await
    .unwrap();
    assert_eq!(tables[0]["rows"][0][0]["value"], "0");

    // The app gets a fresh token for the user and sync resumes.
    db.set_auth_token(Some(&token_for("alice")));
    assert_eq!(db.sync().await.unwrap().pushed, 1);
    assert_eq!(server_titles(&alice_server).await, ["kept while refused"]);
}
