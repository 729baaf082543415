//! Who may see the admin page and press its buttons.
//!
//! * **Authentication:** HTTP Basic with `server.admin.username` and the password, or
//!   `Authorization: Bearer <password>`. Both sides are hashed (SHA-256) before the
//!   constant-time comparison, so neither the content nor the length of the password shows in
//!   the timing.
//! * **CSRF:** a browser sends Basic credentials with any request to the page's origin, also
//!   one a hostile site makes it send. Every POST therefore carries a hidden form field whose
//!   value only the page knows: HMAC-SHA256 of a fixed label under the password, so it changes
//!   with the password and needs no server-side session. On top of that a POST whose `Origin`
//!   names another host, or that the browser marks `Sec-Fetch-Site: cross-site`, is refused.

use axum::http::{HeaderMap, header};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::ingest::webhook::same;

/// Name of the hidden form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// What the `WWW-Authenticate` header of a 401 says.
pub const CHALLENGE: &str = "Basic realm=\"ct-omnisend admin\"";

/// The admin credentials and the CSRF token derived from them.
pub struct Credentials {
    username: String,
    password: SecretString,
    csrf: String,
}

impl Credentials {
    /// Credentials for `username` and `password`.
    pub fn new(username: &str, password: SecretString) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(password.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(b"ct-omnisend admin csrf v1\n");
        mac.update(username.as_bytes());
        let csrf = hex::encode(mac.finalize().into_bytes());
        Self {
            username: username.to_owned(),
            password,
            csrf,
        }
    }

    /// Whether the request's `Authorization` header carries these credentials.
    pub fn authenticates(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        let password = self.password.expose_secret().as_bytes();
        if scheme.eq_ignore_ascii_case("bearer") {
            return digest_eq(rest.as_bytes(), password);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
        // Both comparisons always run: which part was wrong does not show in the timing.
        digest_eq(user, self.username.as_bytes()) & digest_eq(pass, password)
    }

    /// The value of the hidden [`CSRF_FIELD`] in the page's forms.
    pub fn csrf_token(&self) -> &str {
        &self.csrf
    }

    /// Whether a submitted form body (`application/x-www-form-urlencoded`) carries the CSRF
    /// token.
    pub fn csrf_ok(&self, form_body: &[u8]) -> bool {
        url::form_urlencoded::parse(form_body)
            .find(|(k, _)| k == CSRF_FIELD)
            .is_some_and(|(_, v)| digest_eq(v.as_bytes(), self.csrf.as_bytes()))
    }
}

fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    same(&Sha256::digest(a), &Sha256::digest(b))
}

/// Whether the browser says the request comes from another site: `Sec-Fetch-Site:
/// cross-site`, or an `Origin` (`null` included) whose host and port are not the ones the
/// request was sent to (`Host`, or `X-Forwarded-Host` behind a proxy).
pub fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site").is_some_and(|v| v.trim().eq_ignore_ascii_case("cross-site")) {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Some(origin) = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()) else {
        return true;
    };
    let Some(origin_host) = origin.host_str() else {
        // `null` (sandboxed frames, some redirects) and other opaque origins.
        return true;
    };
    let origin_port = origin.port_or_known_default();
    let matches = |authority: &str| {
        url::Url::parse(&format!("{}://{}", origin.scheme(), authority.trim())).is_ok_and(|u| {
            u.host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
                && u.port_or_known_default() == origin_port
        })
    };
    let same_host = [text("host"), text("x-forwarded-host")]
        .into_iter()
        .flatten()
        .any(|a| a.split(',').next().is_some_and(matches));
    !same_host
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn creds() -> Credentials {
        Credentials::new("admin", SecretString::from("s3cret-pass"))
    }

    fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn basic_and_bearer_pass_only_with_the_right_secret() {
        let c = creds();
        let ok = |v: &str| c.authenticates(&with(&[("authorization", v)]));
        assert!(ok(&basic("admin", "s3cret-pass")));
        assert!(ok("Bearer s3cret-pass"));
        assert!(ok(&basic("admin", "s3cret-pass").replace("Basic", "basic")));
        assert!(!ok(&basic("admin", "s3cret-pas")));
        assert!(!ok(&basic("root", "s3cret-pass")));
        assert!(!ok("Bearer s3cret-pass2"));
        assert!(!ok("Basic not-base64!"));
        assert!(!ok("Digest s3cret-pass"));
        assert!(!c.authenticates(&HeaderMap::new()));
    }

    #[test]
    fn a_password_with_a_colon_is_split_at_the_first_colon() {
        let c = Credentials::new("admin", SecretString::from("a:b"));
        assert!(c.authenticates(&with(&[("authorization", &basic("admin", "a:b"))])));
    }

    #[test]
    fn the_csrf_token_depends_on_the_password_and_is_checked_in_the_form() {
        let c = creds();
        let other = Credentials::new("admin", SecretString::from("another"));
        assert_ne!(c.csrf_token(), other.csrf_token());
        assert!(!c.csrf_token().contains("s3cret"));
        assert!(c.csrf_ok(format!("csrf={}", c.csrf_token()).as_bytes()));
        assert!(!c.csrf_ok(format!("csrf={}", other.csrf_token()).as_bytes()));
        assert!(!c.csrf_ok(b"other=1"));
        assert!(!c.csrf_ok(b""));
    }

    #[test]
    fn only_same_host_origins_pass() {
        let h = |pairs: &[(&'static str, &str)]| cross_site(&with(pairs));
        assert!(!h(&[("host", "127.0.0.1:8080")]));
        assert!(!h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ]));
        assert!(!h(&[
            ("host", "admin.example.com"),
            ("origin", "https://admin.example.com:443")
        ]));
        assert!(!h(&[
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-host", "admin.example.com"),
            ("origin", "https://admin.example.com")
        ]));
        assert!(!h(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:9090")
        ]));
        assert!(h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example")
        ]));
        assert!(h(&[("host", "127.0.0.1:8080"), ("origin", "null")]));
        assert!(h(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ]));
    }
}
