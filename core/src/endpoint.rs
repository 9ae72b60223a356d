//! Where the server is and how we prove who we are: [`Endpoint`] parses the
//! URLs users paste (`libsql://`, `https://`, `http://` for development
//! servers), takes an `authToken` query parameter out of the URL, and refuses
//! plain HTTP to public hosts unless the caller opts in. [`AuthToken`] and
//! [`EncryptionKey`] never show their value in `Debug` or `Display`.

use crate::error::{Error, Result};
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

fn is_private(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            *d == "localhost"
                || d.ends_with(".localhost")
                || d.ends_with(".local")
                || d.ends_with(".internal")
        }
        Host::Ipv4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Host::Ipv6(ip) => {
            ip.is_loopback()
                || IpAddr::V6(*ip).to_canonical().is_loopback()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
        }
    }
}

impl Endpoint {
    /// Parses `url`; returns the endpoint and the token found in its
    /// `authToken` / `auth_token` query parameter, if any.
    ///
    /// `http://` is accepted for loopback and private hosts; for any other
    /// host only when `allow_insecure_http` is set.
    pub fn parse(url: &str, allow_insecure_http: bool) -> Result<(Endpoint, Option<AuthToken>)> {
        let url = url.trim();
        let mut parsed =
            Url::parse(url).map_err(|e| Error::InvalidInput(format!("server URL: {e}")))?;
        let mut token = None;
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(k, v)| {
                if k == "authToken" || k == "auth_token" {
                    token = AuthToken::new(v.into_owned());
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
                if !is_private(&host) && !allow_insecure_http {
                    return Err(Error::InvalidInput(format!(
                        "refusing plain http:// to {host}: the token would travel in clear text; use https:// (or opt in to insecure HTTP for a development server)"
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

    /// The URL to show users (credentials already removed).
    pub fn display_url(&self) -> String {
        self.base.to_string().trim_end_matches('/').to_owned()
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
            "http://localhost:1",
            "http://[::1]:9",
            "http://192.168.1.2",
            "http://10.0.0.1",
        ] {
            let (e, _) = Endpoint::parse(local, false).unwrap();
            assert!(e.pipeline_url().starts_with("http://"), "{local}");
        }
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
