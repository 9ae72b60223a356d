//! Per-user databases behind JWTs: the server side of the isolation model
//! "one database per user, one token per user" ([`super::AuthProxy::per_user`]).
//!
//! Each user's database has its own URL, `<proxy>/<user>`, and lives on its
//! own upstream server. A request must carry `Authorization: Bearer <JWT>`,
//! an HS256 token signed with the app's secret whose claim `sub` names the
//! user and whose `exp` has not passed (no leeway); it may open only the
//! database of that user. A missing, malformed, forged (another key, another
//! algorithm, `alg: none`) or expired token gets 401; a valid token for
//! another user's database gets 403; an unknown database 404. Nothing
//! refused is forwarded. Tokens are never logged or echoed.

use super::http::{Request, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;

/// The claims the proxy reads from a token.
#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
}

/// Who may open which database, and where each one lives.
pub(super) struct Users {
    key: DecodingKey,
    validation: Validation,
    /// Upstream base URL per user.
    upstreams: HashMap<String, String>,
}

impl Users {
    /// Tokens signed with `secret` (HS256); `upstreams` maps each user to
    /// the base URL of their database's server. `None` for an empty secret.
    pub fn new(secret: &[u8], upstreams: HashMap<String, String>) -> Option<Users> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Some(Users {
            key: DecodingKey::from_secret(secret).ok()?,
            validation,
            upstreams,
        })
    }

    /// Checks `request` and points it at its user's server (its target
    /// without the `/<user>` prefix, its upstream set); or the refusal to
    /// send back.
    pub fn route(&self, request: &mut Request) -> Result<(), Response> {
        let rest = request.target.strip_prefix('/').unwrap_or("");
        let (user, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let Some(upstream) = self.upstreams.get(user) else {
            return Err(Response::text(404, "no such database"));
        };
        let Some(token) = bearer(request) else {
            return Err(Response::text(401, "Unauthorized: no bearer token"));
        };
        let claims = jsonwebtoken::decode::<Claims>(&token, &self.key, &self.validation)
            .map_err(|_| Response::text(401, "Unauthorized: invalid or expired token"))?
            .claims;
        if claims.sub != user {
            return Err(Response::text(
                403,
                "Forbidden: this token is for another user's database",
            ));
        }
        request.upstream = Some(upstream.clone());
        request.target = target.to_owned();
        Ok(())
    }
}

/// The bearer token of `request`, if it has one.
fn bearer(request: &Request) -> Option<String> {
    let value = String::from_utf8_lossy(request.header("authorization")?).into_owned();
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}
