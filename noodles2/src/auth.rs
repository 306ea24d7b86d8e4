//! Who may connect: an authorization hook runs at the websocket upgrade with the request's path,
//! query, headers and peer address, and either admits the connection with a [`Principal`] (a name
//! and roles of the application's choosing) or refuses it with an HTTP status
//! ([`AuthRefusal`]). [`bearer_tokens`] covers the common case: `Authorization: Bearer T`, or
//! `?token=T` for clients that cannot set headers.
//!
//! ```
//! use noodles2::auth::{Principal, bearer_tokens};
//!
//! let auth = bearer_tokens([("s3cret", Principal::new("editor").with_role("propose"))]);
//! # let _ = auth;
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::http::HeaderMap;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;

/// Who is on the other end of a link, as the authorization hook decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    /// A name of the application's choosing (a user, a token's label).
    pub name: String,
    /// Roles of the application's choosing (what permissions follow from is up to it).
    pub roles: Vec<String>,
}

impl Principal {
    /// A principal without roles.
    pub fn new(name: impl Into<String>) -> Self {
        Principal {
            name: name.into(),
            roles: Vec::new(),
        }
    }

    /// With one more role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Does it have `role`?
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The websocket upgrade request, as the authorization hook sees it.
#[derive(Debug)]
pub struct AuthRequest<'a> {
    /// The request path (`/` usually).
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The peer's address.
    pub peer: SocketAddr,
}

impl AuthRequest<'_> {
    /// The bearer token: `Authorization: Bearer T`, else a `token=T` query parameter.
    pub fn bearer_token(&self) -> Option<&str> {
        let header = self
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        header.or_else(|| {
            self.query?
                .split('&')
                .find_map(|kv| kv.strip_prefix("token="))
        })
    }
}

/// A refused connection: the HTTP status the upgrade is answered with, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: {reason}")]
pub struct AuthRefusal {
    /// The HTTP status (401 for missing credentials, 403 for wrong ones, ...).
    pub status: u16,
    /// Why (sent as the response body and logged).
    pub reason: String,
}

impl AuthRefusal {
    /// 401: no credentials.
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        AuthRefusal {
            status: 401,
            reason: reason.into(),
        }
    }

    /// 403: credentials that do not admit.
    pub fn forbidden(reason: impl Into<String>) -> Self {
        AuthRefusal {
            status: 403,
            reason: reason.into(),
        }
    }
}

/// An authorization hook: admit with a principal, or refuse with a status.
pub type AuthFn = dyn Fn(&AuthRequest<'_>) -> Result<Principal, AuthRefusal> + Send + Sync;

/// The authorization hook of a listener.
pub type Authorizer = Arc<AuthFn>;

/// Admit connections that present one of `tokens` (as a bearer token or `?token=`), each with its
/// principal; refuse others with 401 (no token) or 403 (an unknown one). Tokens are compared in
/// constant time.
pub fn bearer_tokens<T: Into<String>>(
    tokens: impl IntoIterator<Item = (T, Principal)>,
) -> Authorizer {
    let tokens: Vec<(String, Principal)> = tokens.into_iter().map(|(t, p)| (t.into(), p)).collect();
    Arc::new(move |req| {
        let Some(given) = req.bearer_token() else {
            return Err(AuthRefusal::unauthorized(
                "a bearer token is required (Authorization: Bearer T, or ?token=T)",
            ));
        };
        // Every token is compared (no early exit), so the time does not tell which one is close.
        let mut found = None;
        for (token, principal) in &tokens {
            if constant_time_eq(token.as_bytes(), given.as_bytes()) && found.is_none() {
                found = Some(principal);
            }
        }
        found
            .cloned()
            .ok_or_else(|| AuthRefusal::forbidden("the bearer token is not valid"))
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    fn request<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> AuthRequest<'a> {
        AuthRequest {
            path: "/",
            query,
            headers,
            peer: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[test]
    fn bearer_tokens_admit_refuse_and_name_the_principal() {
        let auth = bearer_tokens([("abc", Principal::new("editor").with_role("propose"))]);
        let none = HeaderMap::new();
        assert_eq!(auth(&request(&none, None)).unwrap_err().status, 401);
        assert_eq!(
            auth(&request(&none, Some("token=abd"))).unwrap_err().status,
            403
        );
        let p = auth(&request(&none, Some("x=1&token=abc"))).unwrap();
        assert!(p.name == "editor" && p.has_role("propose"));
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(auth(&request(&headers, None)).unwrap().name, "editor");
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer ab"));
        assert_eq!(auth(&request(&headers, None)).unwrap_err().status, 403);
    }
}
