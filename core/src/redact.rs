//! Secrets out of text that is shown or stored: server messages, HTTP
//! bodies and URLs pass through here before they enter an error, the
//! status, a refused or quarantined row's record, or a log line.
//!
//! Three shapes are recognized (a leaf: it imports nothing of the engine):
//!
//! - a URL or form parameter whose name says it holds a secret
//!   ([`is_secret_param`]: `authToken`, `AUTH_TOKEN`, `token`, `jwt`,
//!   `access_token`, `key`, `encryptionKey`, `apiKey`, `secret`,
//!   `password`, `sig`, ... in any case, with or without `_`/`-`): its value
//!   becomes `<redacted>`;
//! - an HTTP credential: `Bearer <value>` or `Basic <value>` (any case);
//! - anything shaped like a JWT or JWE: base64url segments joined by dots,
//!   the first starting with `eyJ` (`{"` in base64url: every JWT header
//!   does), as Turso's and sqld's tokens are.
//!
//! The engine also removes the exact token and key it holds from the
//! server's texts ([`scrub`]), whatever their shape.

/// What a redacted secret reads as.
pub const REDACTED: &str = "<redacted>";

/// Parameter names that hold the auth token (compared as
/// [`normalized`]): `authToken`, `auth_token`, `AUTH-TOKEN`, ...
const TOKEN_PARAMS: [&str; 1] = ["authtoken"];
/// Words that make a parameter name a secret's wherever they appear in it
/// (compared as [`normalized`]).
const SECRET_WORDS: [&str; 8] = [
    "token",
    "jwt",
    "key",
    "secret",
    "passw",
    "auth",
    "credential",
    "signature",
];
/// Parameter names that are a secret's only when they are the whole name.
const SECRET_NAMES: [&str; 4] = ["sig", "pwd", "pass", "session"];

/// `name` lowercased, without `_` and `-`: `AUTH_TOKEN` and `authToken`
/// are one name.
fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether a URL parameter named `name` carries the auth token
/// (`authToken`, `auth_token`, `AUTH_TOKEN`, `auth-token`): the engine
/// takes it out of a server URL as the token.
pub fn is_token_param(name: &str) -> bool {
    TOKEN_PARAMS.contains(&normalized(name).as_str())
}

/// Whether a URL (or form) parameter named `name` looks like it holds a
/// secret: the auth token's names ([`is_token_param`]), and any name with
/// `token`, `jwt`, `key`, `secret`, `passw`, `auth`, `credential` or
/// `signature` in it, or named `sig`, `pwd`, `pass` or `session` (any case,
/// `_` and `-` ignored). Such parameters are never sent to the server nor
/// shown.
pub fn is_secret_param(name: &str) -> bool {
    let n = normalized(name);
    SECRET_WORDS.iter().any(|w| n.contains(w)) || SECRET_NAMES.contains(&n.as_str())
}

/// A character that may appear in a base64url segment of a JWT.
fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A character that may appear in a parameter name.
fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// Where a secret's value ends: whitespace, a quote, or a URL or list
/// delimiter.
fn ends_value(b: u8) -> bool {
    b.is_ascii_whitespace() || b"&#\"'<>,;)]}".contains(&b)
}

/// The length of the JWT-shaped run at the start of `s` (see the module
/// docs), if there is one: `eyJ`, at least 8 base64url characters, and at
/// least one more dot-separated segment.
fn jwt_len(s: &[u8]) -> Option<usize> {
    if !s.starts_with(b"eyJ") {
        return None;
    }
    let first = s.iter().take_while(|b| is_b64url(**b)).count();
    if first < 8 {
        return None;
    }
    let mut end = first;
    let mut dots = 0;
    while s.get(end) == Some(&b'.') {
        let seg = s[end + 1..].iter().take_while(|b| is_b64url(**b)).count();
        if seg == 0 && dots > 0 {
            break;
        }
        end += 1 + seg;
        dots += 1;
    }
    (dots >= 1).then_some(end)
}

/// `text` with every secret of a shape it recognizes (see the module docs)
/// replaced by [`REDACTED`]; other text is unchanged.
pub fn secrets(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    // `copied`: bytes of `text` before `i` already in `out`.
    let (mut i, mut copied) = (0, 0);
    let boundary = |i: usize| i == 0 || !is_name_char(bytes[i - 1]);
    while i < bytes.len() {
        if !boundary(i) {
            i += 1;
            continue;
        }
        if let Some(len) = jwt_len(&bytes[i..]) {
            out.push_str(&text[copied..i]);
            out.push_str(REDACTED);
            i += len;
            copied = i;
            continue;
        }
        let word = bytes[i..].iter().take_while(|b| is_name_char(**b)).count();
        if word == 0 {
            i += 1;
            continue;
        }
        let name = &text[i..i + word];
        let after = i + word;
        let scheme = name.eq_ignore_ascii_case("bearer") || name.eq_ignore_ascii_case("basic");
        let value_at = if scheme && bytes.get(after) == Some(&b' ') {
            Some(after + bytes[after..].iter().take_while(|b| **b == b' ').count())
        } else if bytes.get(after) == Some(&b'=') && is_secret_param(name) {
            Some(after + 1)
        } else {
            None
        };
        if let Some(start) = value_at {
            let len = bytes[start..]
                .iter()
                .take_while(|b| !ends_value(**b))
                .count();
            // A credential after `Bearer` is a token, not a word of prose.
            let long_enough = if scheme { len >= 8 } else { len > 0 };
            if long_enough {
                out.push_str(&text[copied..start]);
                out.push_str(REDACTED);
                copied = start + len;
            }
            i = start + len;
            continue;
        }
        i = after;
    }
    out.push_str(&text[copied..]);
    out
}

/// `text` with every occurrence of each of `exact` (the secrets the engine
/// holds: its token and key) replaced by [`REDACTED`]. Values shorter than
/// 6 bytes are left alone: replacing them would garble the text and they
/// protect nothing.
pub fn scrub(text: &str, exact: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in exact.iter().filter(|s| s.len() >= 6) {
        if out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn parameter_names_that_hold_secrets() {
        for name in [
            "authToken",
            "AUTH_TOKEN",
            "auth-token",
            "token",
            "jwt",
            "access_token",
            "key",
            "encryptionKey",
            "apiKey",
            "X-Api-Key",
            "secret",
            "password",
            "sig",
            "Authorization",
        ] {
            assert!(is_secret_param(name), "{name}");
        }
        for name in ["x", "tls", "page", "mode", "signal"] {
            assert!(!is_secret_param(name), "{name}");
        }
        assert!(is_token_param("AUTH_TOKEN") && is_token_param("authToken"));
        assert!(!is_token_param("token"));
    }

    #[test]
    fn secrets_become_redacted() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJpYXQiOjE3MDB9.c2lnbmF0dXJl";
        let cases = [
            (
                format!("bad token {jwt} here"),
                "bad token <redacted> here".to_owned(),
            ),
            (
                "Authorization: Bearer s3cret-token, then".into(),
                "Authorization: Bearer <redacted>, then".into(),
            ),
            (
                "GET https://db.io/v2?x=1&authToken=abc&AUTH_TOKEN=def#f".into(),
                "GET https://db.io/v2?x=1&authToken=<redacted>&AUTH_TOKEN=<redacted>#f".into(),
            ),
            (
                "\"key=k1 jwt=j2 mode=ro\"".into(),
                "\"key=<redacted> jwt=<redacted> mode=ro\"".into(),
            ),
            (format!("{jwt}.enc.more"), "<redacted>".into()),
        ];
        for (text, want) in cases {
            assert_eq!(secrets(&text), want, "{text}");
        }
        // Ordinary text, multibyte included, is left as it was.
        for text in [
            "UNIQUE constraint failed: todos.id",
            "a bearer of news",
            "été = 3; mode=7",
            "eyJ alone",
            "",
        ] {
            assert_eq!(secrets(text), text);
        }
    }

    #[test]
    fn exact_secrets_are_scrubbed() {
        assert_eq!(
            scrub(
                "echo: opaque-token-1 and k3y-value",
                &["opaque-token-1", "k3y-value"]
            ),
            "echo: <redacted> and <redacted>"
        );
        assert_eq!(scrub("a b c", &["a"]), "a b c");
    }
}
