//! Where the server is and how we prove who we are: [`Endpoint`] parses the
//! URLs users paste (`libsql://`, `https://`, `http://` for development
//! servers on this machine), takes an `authToken` query parameter (any
//! case: `AUTH_TOKEN`, `auth_token`) out of the URL as the token, drops
//! every other parameter that looks like a secret
//! ([`crate::redact::is_secret_param`]: it is neither sent nor shown), and
//! refuses plain HTTP to any host but loopback (`127.0.0.0/8`, `::1`,
//! `localhost`) unless the caller opts in. [`AuthToken`] and
//! [`EncryptionKey`] never show their value in `Debug` or `Display`; a
//! [`BoundKey`] is an encryption key tied to the origin it was given for.
use crate::error::{Error, Result};
use crate::redact::{is_secret_param, is_token_param};
use std::net::IpAddr;
use url::{Host, Url};

/// A secret bearer token. Its value leaves only through [`AuthToken::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(String);

impl AuthToken {
    /// Wraps a token; an empty or whitespace-only one means "no token".
    pub fn new(token: impl Into<String>) -> Option<AuthToken> {
        let t = token.into();
        let t = t.trim();
        (!t.is_empty()).then(|| AuthToken(t.to_owned()))
    }

    /// The raw value, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

/// The key of a database encrypted with the customer's own key (Turso
/// Cloud), sent as `x-turso-encryption-key` on every request. Its value
/// leaves only through [`EncryptionKey::expose`]; `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey(String);

impl EncryptionKey {
    /// Wraps a key; an empty or whitespace-only one means "no key".
    pub fn new(key: impl Into<String>) -> Option<EncryptionKey> {
        let k = key.into();
        let k = k.trim();
        (!k.is_empty()).then(|| EncryptionKey(k.to_owned()))
    }

    /// The raw value, for the `x-turso-encryption-key` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// A parsed server address (without credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: Url,
}

/// Whether `host` is this machine: `127.0.0.0/8`, `::1` (or an IPv4-mapped
/// loopback address), or the name `localhost`. Private networks
/// (`192.168.0.0/16`, `10.0.0.0/8`, `*.local`, `*.internal`) are not: other
/// machines on them can read plain HTTP.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback() || IpAddr::V6(*ip).to_canonical().is_loopback(),
    }
}

impl Endpoint {
    /// Parses `url`; returns the endpoint and the token found in its
    /// `authToken` query parameter (any case, `_`/`-` ignored:
    /// `AUTH_TOKEN`, `auth_token`), if any. Other parameters that look like
    /// secrets (`token`, `jwt`, `key`, `encryptionKey`, ...: see
    /// [`crate::redact::is_secret_param`]) are dropped: never sent, never shown.
    ///
    /// `http://` (and `ws://`) is accepted for loopback hosts
    /// (`127.0.0.0/8`, `::1`, `localhost`); for any other host only when
    /// `allow_insecure_http` is set (the token then travels in clear text).
    ///
    /// Errors: [`Error::InvalidInput`] for a URL that does not parse, has
    /// no host, carries a user name or password, has another scheme than
    /// `libsql`, `https`, `wss`, `http` or `ws`, or is plain HTTP to a host
    /// that is not loopback without the opt-in.
    pub fn parse(url: &str, allow_insecure_http: bool) -> Result<(Endpoint, Option<AuthToken>)> {
        let url = url.trim();
        let mut parsed =
            Url::parse(url).map_err(|e| Error::InvalidInput(format!("server URL: {e}")))?;
        let mut token = None;
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(k, v)| {
                if is_token_param(&k) {
                    token = AuthToken::new(v.into_owned());
                    None
                } else if is_secret_param(&k) {
                    None
                } else {
                    Some((k.into_owned(), v.into_owned()))
                }
            })
            .collect();
        parsed.set_query(None);
        if !kept.is_empty() {
            parsed.query_pairs_mut().extend_pairs(kept);
        }
        parsed.set_fragment(None);
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Error::InvalidInput(
                "server URL: put credentials in the auth token, not in the URL".into(),
            ));
        }
        let scheme = parsed.scheme().to_owned();
        let rebuilt = match scheme.as_str() {
            "https" => parsed,
            "libsql" | "wss" => {
                let s = parsed
                    .as_str()
                    .replacen(&format!("{scheme}://"), "https://", 1);
                Url::parse(&s).map_err(|e| Error::InvalidInput(format!("server URL: {e}")))?
            }
            "http" | "ws" => {
                let host = parsed
                    .host()
                    .ok_or_else(|| Error::InvalidInput("server URL has no host".into()))?;
                if !is_loopback(&host) && !allow_insecure_http {
                    return Err(Error::InvalidInput(format!(
                        "refusing plain http:// to {host}: only this machine (127.0.0.1, ::1, localhost) is reached over plain HTTP without opting in, as the token would travel in clear text; use https://, or, for a development server, opt in: `--allow-insecure-http` (erth CLI), `allowInsecureHttp: true` (npm, Kotlin, Swift), `allow_insecure_http=True` (Python)"
                    )));
                }
                let s = parsed
                    .as_str()
                    .replacen(&format!("{scheme}://"), "http://", 1);
                Url::parse(&s).map_err(|e| Error::InvalidInput(format!("server URL: {e}")))?
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "server URL scheme {other:?}: use libsql://, https:// or http://"
                )))
            }
        };
        if rebuilt.host_str().unwrap_or("").is_empty() {
            return Err(Error::InvalidInput("server URL has no host".into()));
        }
        Ok((Endpoint { base: rebuilt }, token))
    }

    /// The URL of Hrana-over-HTTP v2's pipeline endpoint.
    pub fn pipeline_url(&self) -> String {
        let mut u = self.base.clone();
        let path = u.path().trim_end_matches('/').to_owned();
        u.set_path(&format!("{path}/v2/pipeline"));
        u.to_string()
    }

    /// The URL to show users: without the token and any other parameter
    /// that looks like a secret (they were removed at parse).
    pub fn display_url(&self) -> String {
        self.base.to_string().trim_end_matches('/').to_owned()
    }

    /// Whether `other` has the same origin (scheme, host and port, as the
    /// browser's same-origin rule; `libsql://` counts as `https://`).
    pub fn same_origin(&self, other: &Endpoint) -> bool {
        self.base.origin() == other.base.origin()
    }

    /// Plain HTTP to a host that is not loopback (only ever parsed with
    /// `allow_insecure_http`): what is sent can be read on the way.
    pub fn is_insecure(&self) -> bool {
        self.base.scheme() == "http" && !self.base.host().is_some_and(|h| is_loopback(&h))
    }
}

/// An encryption key and the origin of the server it was given for: the
/// key is sent to that origin only ([`BoundKey::key_for`]), so moving a
/// replica to another server ([`crate::Database::set_remote`]) never sends
/// it there, and a new server needs the key given again.
#[derive(Clone)]
pub struct BoundKey {
    origin: Endpoint,
    key: EncryptionKey,
}

impl BoundKey {
    /// Ties `key` to `endpoint`'s origin.
    ///
    /// Errors: [`Error::InvalidInput`] when `endpoint` is plain HTTP to a
    /// host that is not loopback: the key never travels in clear text,
    /// `allow_insecure_http` or not.
    pub fn new(endpoint: &Endpoint, key: EncryptionKey) -> Result<BoundKey> {
        if endpoint.is_insecure() {
            return Err(Error::InvalidInput(
                "refusing to send the encryption key over plain http://: use https:// (the key is never sent in clear text, even with insecure HTTP allowed)".into(),
            ));
        }
        Ok(BoundKey {
            origin: endpoint.clone(),
            key,
        })
    }

    /// The key, if `endpoint` has the origin it was given for.
    pub fn key_for(&self, endpoint: &Endpoint) -> Option<EncryptionKey> {
        self.origin.same_origin(endpoint).then(|| self.key.clone())
    }
}

impl std::fmt::Debug for BoundKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundKey")
            .field("origin", &self.origin.display_url())
            .field("key", &self.key)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_users_paste() {
        let (e, t) = Endpoint::parse("libsql://db-org.turso.io", false).unwrap();
        assert_eq!(e.pipeline_url(), "https://db-org.turso.io/v2/pipeline");
        assert!(t.is_none());
        let (e, _) = Endpoint::parse("https://x.example/base/", false).unwrap();
        assert_eq!(e.pipeline_url(), "https://x.example/base/v2/pipeline");
        for local in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://localhost:1",
            "http://LOCALHOST:1",
            "http://[::1]:9",
            "http://[::ffff:127.0.0.1]:9",
        ] {
            let (e, _) = Endpoint::parse(local, false).unwrap();
            assert!(e.pipeline_url().starts_with("http://"), "{local}");
            assert!(!e.is_insecure(), "{local}");
        }
    }

    #[test]
    fn plain_http_leaves_this_machine_only_with_the_opt_in() {
        for remote in [
            "http://192.168.1.2",
            "http://10.0.0.1",
            "http://172.16.0.1",
            "http://169.254.1.1",
            "http://[fd00::1]",
            "http://printer.local",
            "http://db.internal",
            "http://db.localhost",
            "http://localhost.evil.example",
            "ws://db.turso.io",
        ] {
            let e = Endpoint::parse(remote, false).unwrap_err();
            assert!(matches!(e, Error::InvalidInput(_)), "{remote}: {e:?}");
            // The message names the switch of every face.
            let text = e.to_string();
            for switch in [
                "--allow-insecure-http",
                "allowInsecureHttp",
                "allow_insecure_http",
            ] {
                assert!(text.contains(switch), "{remote}: {text}");
            }
            let (e, _) = Endpoint::parse(remote, true).unwrap();
            assert!(e.is_insecure(), "{remote}");
        }
    }

    #[test]
    fn every_secret_parameter_is_taken_out() {
        for name in ["authToken", "auth_token", "AUTH_TOKEN", "AuthToken"] {
            let (e, t) =
                Endpoint::parse(&format!("libsql://db.turso.io?{name}=s3cret&x=1"), false).unwrap();
            assert_eq!(t.unwrap().expose(), "s3cret", "{name}");
            assert!(!e.display_url().contains("s3cret"), "{name}");
        }
        for name in [
            "token",
            "jwt",
            "access_token",
            "key",
            "encryptionKey",
            "TOKEN",
        ] {
            let (e, t) =
                Endpoint::parse(&format!("https://db.io/p?{name}=s3cret&x=1"), false).unwrap();
            assert!(t.is_none(), "{name}");
            for shown in [e.display_url(), e.pipeline_url(), format!("{e:?}")] {
                assert!(!shown.contains("s3cret"), "{name}: {shown}");
                assert!(shown.contains("x=1"), "{name}: {shown}");
            }
        }
    }

    #[test]
    fn a_key_goes_to_its_origin_only_and_never_over_plain_http() {
        let parse = |u: &str| Endpoint::parse(u, true).unwrap().0;
        let key = EncryptionKey::new("k3y-s3cret").unwrap();
        let bound = BoundKey::new(&parse("libsql://a.turso.io"), key.clone()).unwrap();
        assert!(bound
            .key_for(&parse("https://a.turso.io/other/path"))
            .is_some());
        for other in [
            "https://b.turso.io",
            "https://a.turso.io:8443",
            "http://a.turso.io",
            "https://evil.a.turso.io",
        ] {
            assert!(bound.key_for(&parse(other)).is_none(), "{other}");
        }
        assert!(!format!("{bound:?}").contains("s3cret"));
        let e = BoundKey::new(&parse("http://db.example"), key.clone()).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
        assert!(BoundKey::new(&parse("http://127.0.0.1:8080"), key).is_ok());
    }

    #[test]
    fn token_in_query_is_taken_out() {
        let (e, t) = Endpoint::parse("libsql://db.turso.io?authToken=s3cret&x=1", false).unwrap();
        assert_eq!(t.unwrap().expose(), "s3cret");
        assert!(!e.display_url().contains("s3cret"));
        assert!(!e.pipeline_url().contains("s3cret"));
        assert!(!format!("{e:?}").contains("s3cret"));
        assert!(e.display_url().contains("x=1"));
    }

    #[test]
    fn refuses_clear_text_to_public_hosts() {
        let e = Endpoint::parse("http://db.turso.io", false).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)));
        assert!(Endpoint::parse("http://db.turso.io", true).is_ok());
        for bad in [
            "",
            "ftp://x",
            "not a url",
            "https://user:pw@x.io",
            "file:///etc/passwd",
        ] {
            assert!(Endpoint::parse(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_never_prints() {
        let t = AuthToken::new("s3cret").unwrap();
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(AuthToken::new("  ").is_none());
    }
}
