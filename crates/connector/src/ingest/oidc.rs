//! Verification of the OIDC ID token that authenticates a Google Pub/Sub push.
//!
//! A push subscription with authentication enabled sends every request with
//! `Authorization: Bearer <JWT>`: a Google-signed OpenID Connect ID token for the subscription's
//! push service account. [`OidcVerifier::verify`] decides whether such a token is genuine and
//! meant for us; the webhook handler answers 401 for every [`OidcError`] except
//! [`OidcError::KeysUnavailable`], for which it answers 503 ([`OidcError::is_unavailable`]) so
//! that Pub/Sub retries once Google's keys can be fetched again.
//!
//! # What is checked, and why
//!
//! In this order; the first failure is the answer. Nothing but the first three steps runs before
//! the signature is verified, so an unsigned token learns nothing about the configuration.
//!
//! 1. **Shape**: three base64url segments, at most [`MAX_TOKEN_LEN`] bytes, a JSON header with
//!    a `kid` and no `crit` extension ([`OidcError::Malformed`]). Bounds the work an arbitrary
//!    string can cause.
//! 2. **Algorithm is RS256** ([`OidcError::Algorithm`]). Google signs ID tokens with RS256 only.
//!    Anything else is refused *before* a key is looked up: `none` would need no signature at
//!    all, and `HS256` is the algorithm-confusion attack (an HMAC "signed" with the public RSA
//!    key as the secret). The library is also told to accept RS256 only, so the check is made
//!    twice.
//! 3. **Key**: the header's `kid` names a key of the JWKS at [`OidcSettings::jwks_url`]
//!    ([`OidcError::UnknownKey`], or [`OidcError::KeysUnavailable`] when no key set could ever be
//!    fetched). Only RSA keys meant for signatures (`use` absent or `sig`, `alg` absent or
//!    `RS256`) are used.
//! 4. **Signature** ([`OidcError::BadSignature`]): proves Google issued exactly these claims.
//! 5. **`exp`** is required and not past, with [`OidcSettings::leeway`] for clock skew
//!    ([`OidcError::Expired`]): a captured token is useless after its hour.
//! 6. **`iat`, `nbf`** (when present) not in the future beyond the leeway
//!    ([`OidcError::NotYetValid`]): a token from the future means a broken clock or a forgery.
//! 7. **`iss`** is one of [`OidcSettings::issuers`] ([`OidcError::WrongIssuer`]): the key set
//!    is Google's, but only tokens Google issued *as an OIDC provider* count.
//! 8. **`aud`** equals [`OidcSettings::audience`] ([`OidcError::WrongAudience`]): any Google
//!    customer can mint a Google-signed ID token for *their* audience; only the audience set on
//!    our push subscription proves the token was minted for us. (An array `aud` passes when it
//!    contains the audience, as RFC 7519 §4.1.3 reads.)
//! 9. **`email`**, when [`OidcSettings::service_account_email`] is set, equals it (ASCII case
//!    ignored) and `email_verified` is `true` ([`OidcError::WrongServiceAccount`],
//!    [`OidcError::EmailNotVerified`]): without it, a push from *any* subscription whose owner
//!    knows our audience would pass. Set it in production.
//!
//! `sub` is required (it is the service account's unique id) and returned in [`VerifiedPush`].
//!
//! # Keys and caching
//!
//! The JWKS is fetched on the first verification, then kept for
//! [`OidcSettings::jwks_cache_ttl`], or for the response's `Cache-Control: max-age` (less its
//! `Age`) when it has one, clamped to [`MIN_CACHE_TTL`]..=[`MAX_CACHE_TTL`]. Google rotates its
//! keys by publishing the new key before signing with it, so a token naming an unknown `kid`
//! triggers a refetch, but at most one per [`REFETCH_INTERVAL`]: a flood of tokens with made-up
//! key ids cannot turn us into a load generator against Google.
//!
//! Fetches are serialised by one `tokio` mutex: concurrent verifications that all need the keys
//! wait for a single fetch and then use its result (no stampede). A verification whose key is in
//! an expired set does not wait for a refresh another task is already running; it uses the
//! expired set.
//!
//! A failed fetch (network, non-2xx, unparseable or keyless body) never discards keys already
//! held: verification goes on with the cached set, retrying at most once per
//! [`REFETCH_INTERVAL`]. With no key set at all it fails with [`OidcError::KeysUnavailable`],
//! retrying at most once per [`NO_KEYS_RETRY_INTERVAL`].
//!
//! # Privacy
//!
//! No error, log line or `Debug` output holds the token or the token's `email`. Errors quote at
//! most a (sanitised, shortened) `alg`, `kid`, `iss` or `aud`, which identify no person.
//!
//! # Time
//!
//! Claim times and cache ages are read from a [`Clock`], the system clock unless
//! [`OidcVerifier::with_clock`] supplies another (tests move a manual clock instead of sleeping).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

/// Google's JWKS for the ID tokens it signs.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// The two forms of `iss` Google puts in ID tokens.
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Tokens longer than this (in bytes) are refused unparsed. Google's are about 1 KiB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Least time between two JWKS fetches while a key set is held: bounds refetches for unknown
/// `kid`s and retries after a failed refresh.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Least time between two JWKS fetches while no key set is held (every fetch so far failed).
pub const NO_KEYS_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Shortest cache lifetime a `Cache-Control: max-age` can set.
pub const MIN_CACHE_TTL: Duration = Duration::from_secs(60);

/// Longest cache lifetime a `Cache-Control: max-age` can set.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Time limit for one JWKS request (connect, headers and body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest JWKS body read, in bytes. Google's is about 2 KiB.
const MAX_JWKS_BODY: usize = 256 * 1024;

/// Longest `alg`/`kid`/`iss`/`aud` quoted in an error, in characters.
const MAX_QUOTED: usize = 64;

/// How to verify Pub/Sub push tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSettings {
    /// Where the signing keys are: [`GOOGLE_JWKS_URL`].
    pub jwks_url: String,
    /// Accepted `iss` values: [`GOOGLE_ISSUERS`] (both forms).
    pub issuers: Vec<String>,
    /// The required `aud`: the audience configured on the push subscription (Pub/Sub's default
    /// is the push endpoint URL). An empty audience accepts no token.
    pub audience: String,
    /// The push subscription's service account; when set, `email` must equal it and
    /// `email_verified` must be `true`. `None` accepts any Google-issued token for
    /// [`audience`](Self::audience): fine for tests, not for production.
    pub service_account_email: Option<String>,
    /// How long a fetched JWKS is used when its response has no `Cache-Control: max-age`
    /// (1 hour).
    pub jwks_cache_ttl: Duration,
    /// Allowed clock skew for `exp`, `iat` and `nbf` (60 s).
    pub leeway: Duration,
}

impl OidcSettings {
    /// Google's JWKS and issuers, no service-account check, 1 h cache, 60 s leeway.
    pub fn google(audience: impl Into<String>) -> Self {
        Self {
            jwks_url: GOOGLE_JWKS_URL.to_owned(),
            issuers: GOOGLE_ISSUERS.iter().map(|&s| s.to_owned()).collect(),
            audience: audience.into(),
            service_account_email: None,
            jwks_cache_ttl: Duration::from_secs(60 * 60),
            leeway: Duration::from_secs(60),
        }
    }

    /// The same, requiring pushes from `email` (with `email_verified`).
    pub fn with_service_account(mut self, email: impl Into<String>) -> Self {
        self.service_account_email = Some(email.into());
        self
    }
}

/// Where the verifier reads the current time. Implemented by every
/// `Fn() -> OffsetDateTime + Send + Sync`, e.g. `OffsetDateTime::now_utc`.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

impl<F> Clock for F
where
    F: Fn() -> OffsetDateTime + Send + Sync,
{
    fn now(&self) -> OffsetDateTime {
        self()
    }
}

/// What a valid token says about the push's sender.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedPush {
    /// `email`, when `email_verified` is `true`: the push service account.
    pub email: Option<String>,
    /// `sub`: the service account's unique numeric id.
    pub subject: String,
    /// `exp`.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for VerifiedPush {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedPush")
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a token was refused. The messages quote neither the token nor its `email`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// No `Authorization: Bearer` token (see [`bearer_token`]).
    #[error("no bearer token")]
    MissingToken,
    /// Not a well-formed JWT, or a required claim is missing or mistyped.
    #[error("malformed token: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The header's `alg` is not RS256 (`none`, `HS256`… are refused).
    #[error("token algorithm `{alg}` is not accepted (only RS256)")]
    Algorithm {
        /// The header's `alg`, sanitised.
        alg: String,
    },
    /// No key of the JWKS has the token's `kid` (also after a refetch, or refetching was
    /// rate-limited).
    #[error("token signed with unknown key `{kid}`")]
    UnknownKey {
        /// The header's `kid`, sanitised.
        kid: String,
    },
    /// The signature does not verify with the key the `kid` names.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("token expired at {expired_at}")]
    Expired {
        /// `exp`.
        expired_at: OffsetDateTime,
    },
    /// `iat` or `nbf` is in the future (beyond the leeway).
    #[error("token not valid yet: `{claim}` is in the future")]
    NotYetValid {
        /// `iat` or `nbf`.
        claim: &'static str,
    },
    /// `iss` is not one of the accepted issuers.
    #[error("token issuer `{found}` is not accepted")]
    WrongIssuer {
        /// The token's `iss`, sanitised.
        found: String,
    },
    /// `aud` is not the configured audience.
    #[error("token audience `{found}` is not the configured audience")]
    WrongAudience {
        /// The token's `aud` (the first one of an array), sanitised.
        found: String,
    },
    /// `email` is absent or not the configured service account.
    #[error("token is not for the configured push service account")]
    WrongServiceAccount,
    /// `email_verified` is not `true`.
    #[error("token email is not verified")]
    EmailNotVerified,
    /// No signing key could be fetched yet; answer 503 so that the push is retried.
    #[error("token signing keys unavailable: {reason}")]
    KeysUnavailable {
        /// Why the last JWKS fetch failed.
        reason: String,
    },
}

impl OidcError {
    /// `true` for [`KeysUnavailable`](Self::KeysUnavailable): our fault, answer 503 (the push
    /// is retried). Every other error means the token is not acceptable: answer 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable { .. })
    }

    fn malformed(reason: &'static str) -> Self {
        Self::Malformed { reason }
    }
}

/// The token of an `Authorization` header value: `Bearer <token>` (scheme in any case).
pub fn bearer_token(authorization: &str) -> Result<&str, OidcError> {
    let (scheme, token) = authorization
        .trim()
        .split_once(' ')
        .ok_or(OidcError::MissingToken)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(OidcError::MissingToken);
    }
    Ok(token)
}

/// Verifies Pub/Sub push tokens against Google's keys; see the [module documentation](self).
///
/// Cheap to clone: clones share the key cache.
#[derive(Clone)]
pub struct OidcVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    settings: OidcSettings,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    validation: Validation,
    /// The current key set; read without waiting, replaced after a successful fetch.
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held for the whole of a fetch: fetches never overlap.
    fetch: tokio::sync::Mutex<FetchState>,
}

/// One fetched JWKS.
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fetched_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl KeySet {
    fn is_fresh(&self, now: OffsetDateTime) -> bool {
        // A clock that went back before the fetch also counts as expired.
        self.fetched_at <= now && now < self.expires_at
    }

    fn has(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }
}

#[derive(Default)]
struct FetchState {
    /// When the last fetch started.
    last_attempt: Option<OffsetDateTime>,
    /// Why the last fetch failed, while no fetch has succeeded since.
    last_error: Option<String>,
}

impl FetchState {
    fn may_fetch(&self, now: OffsetDateTime, interval: Duration) -> bool {
        match self.last_attempt {
            None => true,
            // A clock that went back before the last attempt allows one at once.
            Some(last) => !(last <= now && now < last + interval),
        }
    }
}

impl fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl OidcVerifier {
    /// A verifier fetching keys with `http` (a timeout of [`FETCH_TIMEOUT`] is set per request),
    /// reading the system clock. No request is made until the first [`verify`](Self::verify).
    pub fn new(settings: OidcSettings, http: reqwest::Client) -> Self {
        Self::with_clock(settings, http, Arc::new(OffsetDateTime::now_utc))
    }

    /// The same, reading `clock` for claim times and cache ages.
    pub fn with_clock(
        settings: OidcSettings,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // Signature and algorithm only: the claims are checked in `check_claims`, against our
        // clock and with precise errors.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        Self {
            inner: Arc::new(Inner {
                settings,
                http,
                clock,
                validation,
                keys: RwLock::new(None),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
            }),
        }
    }

    /// The settings this verifier checks against.
    pub fn settings(&self) -> &OidcSettings {
        &self.inner.settings
    }

    /// Verifies one token (the part after `Bearer `); see the [module documentation](self).
    pub async fn verify(&self, token: &str) -> Result<VerifiedPush, OidcError> {
        let kid = parse_header(token)?;
        let set = self.keys_for(&kid).await?;
        let key = set
            .keys
            .get(&kid)
            .ok_or_else(|| OidcError::UnknownKey { kid: quote(&kid) })?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation)
            .map_err(map_jwt_error)?;
        check_claims(data.claims, &self.inner.settings, self.inner.clock.now())
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The key set to verify a token signed with `kid`, fetching it when needed and allowed.
    async fn keys_for(&self, kid: &str) -> Result<Arc<KeySet>, OidcError> {
        let cached = self.cached();
        if let Some(set) = &cached
            && set.has(kid)
            && set.is_fresh(self.inner.clock.now())
        {
            return Ok(set.clone());
        }
        let mut state = match self.inner.fetch.try_lock() {
            Ok(state) => state,
            Err(_) => {
                // Another task is fetching: with the key at hand (in an expired set), don't wait.
                if let Some(set) = cached.filter(|set| set.has(kid)) {
                    return Ok(set);
                }
                self.inner.fetch.lock().await
            }
        };

        // Whoever held the lock before may have fetched what we need.
        let now = self.inner.clock.now();
        let cached = self.cached();
        if let Some(set) = &cached
            && set.has(kid)
            && set.is_fresh(now)
        {
            return Ok(set.clone());
        }
        let interval = if cached.is_some() {
            REFETCH_INTERVAL
        } else {
            NO_KEYS_RETRY_INTERVAL
        };
        if state.may_fetch(now, interval) {
            state.last_attempt = Some(now);
            match self.fetch(now).await {
                Ok(set) => {
                    tracing::debug!(
                        keys = set.keys.len(),
                        ttl_s = (set.expires_at - set.fetched_at).whole_seconds(),
                        "oidc: fetched JWKS"
                    );
                    let set = Arc::new(set);
                    *self
                        .inner
                        .keys
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = Some(set.clone());
                    state.last_error = None;
                    return if set.has(kid) {
                        Ok(set)
                    } else {
                        Err(OidcError::UnknownKey { kid: quote(kid) })
                    };
                }
                Err(reason) => {
                    tracing::warn!(
                        url = %self.inner.settings.jwks_url,
                        cached = cached.is_some(),
                        %reason,
                        "oidc: JWKS fetch failed"
                    );
                    state.last_error = Some(reason);
                }
            }
        }
        match cached {
            Some(set) if set.has(kid) => Ok(set),
            Some(_) => Err(OidcError::UnknownKey { kid: quote(kid) }),
            None => Err(OidcError::KeysUnavailable {
                reason: state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no JWKS fetched yet".to_owned()),
            }),
        }
    }

    /// One GET of the JWKS; the error is a reason fit for logs.
    async fn fetch(&self, now: OffsetDateTime) -> Result<KeySet, String> {
        let settings = &self.inner.settings;
        let mut response = self
            .inner
            .http
            .get(&settings.jwks_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let ttl = cache_ttl(response.headers()).unwrap_or(settings.jwks_cache_ttl);
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BODY as u64)
        {
            return Err(format!("body over {MAX_JWKS_BODY} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BODY {
                return Err(format!("body over {MAX_JWKS_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_jwks(&body)?;
        Ok(KeySet {
            keys,
            fetched_at: now,
            expires_at: now + ttl,
        })
    }
}

/// The usable keys of a JWKS document, by `kid`. Keys that are not RSA signature keys for
/// RS256, or lack a `kid`, are skipped; a document without any usable key is an error.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<Value>,
    }
    let document: Document =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = HashMap::new();
    for value in document.keys {
        // One odd key (an unknown `kty`, a newer field) must not cost the others.
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
            || jwk
                .common
                .key_algorithm
                .is_some_and(|a| a != KeyAlgorithm::RS256)
        {
            continue;
        }
        if let Ok(key) = DecodingKey::from_rsa_components(&rsa.n, &rsa.e) {
            keys.insert(kid, key);
        }
    }
    if keys.is_empty() {
        return Err("the JWKS has no RS256 signature key with a `kid`".to_owned());
    }
    Ok(keys)
}

/// `Cache-Control: max-age` less `Age`, clamped to [`MIN_CACHE_TTL`]..=[`MAX_CACHE_TTL`].
fn cache_ttl(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let max_age = headers
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("max-age") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        })?;
    let age = headers
        .get(reqwest::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let secs = max_age.saturating_sub(age);
    Some(Duration::from_secs(secs).clamp(MIN_CACHE_TTL, MAX_CACHE_TTL))
}

/// The `kid` of a token whose header is well-formed and says RS256.
fn parse_header(token: &str) -> Result<String, OidcError> {
    #[derive(Deserialize)]
    struct Header {
        alg: Option<Value>,
        kid: Option<Value>,
        crit: Option<Value>,
    }
    if token.is_empty() {
        return Err(OidcError::MissingToken);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(OidcError::malformed("token too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError::malformed("not three dot-separated segments"));
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| OidcError::malformed("header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header)
        .map_err(|_| OidcError::malformed("header is not a JSON object"))?;
    match header.alg {
        Some(Value::String(alg)) if alg == "RS256" => {}
        Some(Value::String(alg)) => return Err(OidcError::Algorithm { alg: quote(&alg) }),
        Some(_) => return Err(OidcError::malformed("header `alg` is not a string")),
        None => return Err(OidcError::malformed("header has no `alg`")),
    }
    if header.crit.is_some() {
        return Err(OidcError::malformed("header has a `crit` extension"));
    }
    match header.kid {
        Some(Value::String(kid)) if !kid.is_empty() => Ok(kid),
        Some(Value::String(_)) | None => Err(OidcError::malformed("header has no `kid`")),
        Some(_) => Err(OidcError::malformed("header `kid` is not a string")),
    }
}

fn map_jwt_error(error: jsonwebtoken::errors::Error) -> OidcError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => OidcError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => OidcError::Algorithm {
            alg: "?".to_owned(),
        },
        ErrorKind::Base64(_) => OidcError::malformed("a segment is not base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            OidcError::malformed("header or claims are not a JSON object")
        }
        ErrorKind::InvalidToken => OidcError::malformed("not three dot-separated segments"),
        _ => OidcError::malformed("refused by the JWT decoder"),
    }
}

/// The claims looked at; every one optional and loosely typed, so that a wrong type gives a
/// precise error rather than a parse failure.
#[derive(Deserialize)]
struct Claims {
    iss: Option<Value>,
    aud: Option<Value>,
    sub: Option<Value>,
    exp: Option<Value>,
    iat: Option<Value>,
    nbf: Option<Value>,
    email: Option<Value>,
    email_verified: Option<Value>,
}

fn check_claims(
    claims: Claims,
    settings: &OidcSettings,
    now: OffsetDateTime,
) -> Result<VerifiedPush, OidcError> {
    let leeway = time::Duration::try_from(settings.leeway).unwrap_or(time::Duration::MAX);

    let exp = numeric_date(claims.exp.as_ref(), "`exp` is not a NumericDate")?
        .ok_or(OidcError::malformed("no `exp`"))?;
    if now >= exp.saturating_add(leeway) {
        return Err(OidcError::Expired { expired_at: exp });
    }
    let latest_start = now.saturating_add(leeway);
    if numeric_date(claims.iat.as_ref(), "`iat` is not a NumericDate")?
        .is_some_and(|iat| iat > latest_start)
    {
        return Err(OidcError::NotYetValid { claim: "iat" });
    }
    if numeric_date(claims.nbf.as_ref(), "`nbf` is not a NumericDate")?
        .is_some_and(|nbf| nbf > latest_start)
    {
        return Err(OidcError::NotYetValid { claim: "nbf" });
    }

    let iss = match claims.iss {
        Some(Value::String(iss)) => iss,
        Some(_) => return Err(OidcError::malformed("`iss` is not a string")),
        None => return Err(OidcError::malformed("no `iss`")),
    };
    if !settings.issuers.contains(&iss) {
        return Err(OidcError::WrongIssuer { found: quote(&iss) });
    }

    let audience = settings.audience.as_str();
    let aud_ok = |a: &str| !audience.is_empty() && a == audience;
    match claims.aud {
        Some(Value::String(aud)) if aud_ok(&aud) => {}
        Some(Value::String(aud)) => return Err(OidcError::WrongAudience { found: quote(&aud) }),
        Some(Value::Array(auds)) if auds.iter().all(Value::is_string) => {
            if !auds.iter().filter_map(Value::as_str).any(aud_ok) {
                let first = auds.first().and_then(Value::as_str).unwrap_or("");
                return Err(OidcError::WrongAudience {
                    found: quote(first),
                });
            }
        }
        Some(_) => return Err(OidcError::malformed("`aud` is not a string")),
        None => return Err(OidcError::malformed("no `aud`")),
    }

    let subject = match claims.sub {
        Some(Value::String(sub)) if !sub.is_empty() => sub,
        Some(Value::String(_)) | None => return Err(OidcError::malformed("no `sub`")),
        Some(_) => return Err(OidcError::malformed("`sub` is not a string")),
    };
    let email = match claims.email {
        Some(Value::String(email)) => Some(email),
        Some(Value::Null) | None => None,
        Some(_) => return Err(OidcError::malformed("`email` is not a string")),
    };
    // Google's ID tokens say `true`; its tokeninfo endpoint says `"true"`: accept both.
    let email_verified = match claims.email_verified {
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => s == "true",
        Some(Value::Null) | None => false,
        Some(_) => return Err(OidcError::malformed("`email_verified` is not a boolean")),
    };
    if let Some(expected) = &settings.service_account_email {
        match &email {
            Some(email) if email.eq_ignore_ascii_case(expected) => {}
            _ => return Err(OidcError::WrongServiceAccount),
        }
        if !email_verified {
            return Err(OidcError::EmailNotVerified);
        }
    }
    Ok(VerifiedPush {
        email: email.filter(|_| email_verified),
        subject,
        expires_at: exp,
    })
}

/// A JWT NumericDate (seconds since the epoch, possibly fractional; fractions are dropped).
fn numeric_date(
    value: Option<&Value>,
    reason: &'static str,
) -> Result<Option<OffsetDateTime>, OidcError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let secs = match value {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Some(i),
            (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => Some(f.floor() as i64),
            _ => None,
        },
        _ => None,
    };
    secs.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .map(Some)
        .ok_or(OidcError::malformed(reason))
}

/// `text` safe to put in an error: printable ASCII only, at most [`MAX_QUOTED`] characters.
fn quote(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_QUOTED)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.chars().count() > MAX_QUOTED {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use reqwest::header::{AGE, CACHE_CONTROL, HeaderMap, HeaderValue};
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn token_with_header(header: Value) -> String {
        format!("{}.{}.c2ln", b64(&header), b64(&json!({"sub": "1"})))
    }

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn claims(value: Value) -> Claims {
        serde_json::from_value(value).unwrap()
    }

    fn good_claims() -> Value {
        json!({
            "iss": "https://accounts.google.com",
            "aud": "https://hooks.example.com/pubsub",
            "sub": "1234567890",
            "email": "push@proj.iam.gserviceaccount.com",
            "email_verified": true,
            "iat": NOW.unix_timestamp() - 10,
            "exp": NOW.unix_timestamp() + 3590,
        })
    }

    fn settings() -> OidcSettings {
        OidcSettings::google("https://hooks.example.com/pubsub")
            .with_service_account("push@proj.iam.gserviceaccount.com")
    }

    fn with(mut value: Value, key: &str, v: Value) -> Value {
        value[key] = v;
        value
    }

    fn headers(pairs: &[(reqwest::header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn google_settings_have_the_documented_defaults() {
        let s = OidcSettings::google("aud");
        assert_eq!(s.jwks_url, GOOGLE_JWKS_URL);
        assert_eq!(
            s.issuers,
            ["https://accounts.google.com", "accounts.google.com"]
        );
        assert_eq!(s.jwks_cache_ttl, Duration::from_secs(3600));
        assert_eq!(s.leeway, Duration::from_secs(60));
        assert_eq!(s.service_account_email, None);
    }

    #[test]
    fn bearer_token_takes_the_token_after_the_scheme() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        assert_eq!(bearer_token("bearer  abc "), Ok("abc"));
        assert_eq!(bearer_token("Basic abc"), Err(OidcError::MissingToken));
        assert_eq!(bearer_token("Bearer "), Err(OidcError::MissingToken));
        assert_eq!(bearer_token(""), Err(OidcError::MissingToken));
    }

    #[test]
    fn header_must_say_rs256_and_name_a_key() {
        assert_eq!(
            parse_header(&token_with_header(json!({"alg": "RS256", "kid": "k1"}))),
            Ok("k1".to_owned())
        );
        for alg in ["none", "HS256", "RS512", "ES256", "rs256"] {
            assert_eq!(
                parse_header(&token_with_header(json!({"alg": alg, "kid": "k1"}))),
                Err(OidcError::Algorithm {
                    alg: alg.to_owned()
                })
            );
        }
        for header in [
            json!({"alg": "RS256"}),
            json!({"alg": "RS256", "kid": ""}),
            json!({"alg": "RS256", "kid": 7}),
            json!({"kid": "k1"}),
            json!({"alg": "RS256", "kid": "k1", "crit": ["exp"]}),
            json!(["RS256"]),
        ] {
            assert!(
                matches!(
                    parse_header(&token_with_header(header.clone())),
                    Err(OidcError::Malformed { .. })
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn header_parsing_refuses_what_is_not_a_jwt() {
        for token in [
            "x",
            "a.b",
            "a.b.c.d",
            "!!.b.c",
            "e30.b.c",
            &"a".repeat(20_000),
        ] {
            assert!(
                matches!(parse_header(token), Err(OidcError::Malformed { .. })),
                "{token:.20}"
            );
        }
        assert_eq!(parse_header(""), Err(OidcError::MissingToken));
    }

    #[test]
    fn good_claims_pass_and_return_the_verified_email() {
        let push = check_claims(claims(good_claims()), &settings(), NOW).unwrap();
        assert_eq!(
            push.email.as_deref(),
            Some("push@proj.iam.gserviceaccount.com")
        );
        assert_eq!(push.subject, "1234567890");
        assert_eq!(push.expires_at, NOW + time::Duration::seconds(3590));
        assert!(!format!("{push:?}").contains("push@"));
    }

    #[test]
    fn expiry_and_start_times_allow_the_leeway_and_no_more() {
        let s = settings();
        let t = |secs: i64| json!(NOW.unix_timestamp() + secs);
        assert!(check_claims(claims(with(good_claims(), "exp", t(-59))), &s, NOW).is_ok());
        assert!(matches!(
            check_claims(claims(with(good_claims(), "exp", t(-60))), &s, NOW),
            Err(OidcError::Expired { .. })
        ));
        assert!(check_claims(claims(with(good_claims(), "iat", t(60))), &s, NOW).is_ok());
        assert_eq!(
            check_claims(claims(with(good_claims(), "iat", t(61))), &s, NOW),
            Err(OidcError::NotYetValid { claim: "iat" })
        );
        assert_eq!(
            check_claims(claims(with(good_claims(), "nbf", t(61))), &s, NOW),
            Err(OidcError::NotYetValid { claim: "nbf" })
        );
        assert!(
            check_claims(
                claims(with(
                    good_claims(),
                    "exp",
                    json!(NOW.unix_timestamp() as f64 + 100.5)
                )),
                &s,
                NOW
            )
            .is_ok()
        );
        for bad in [json!("soon"), json!(null), json!(1e300)] {
            assert!(matches!(
                check_claims(claims(with(good_claims(), "exp", bad)), &s, NOW),
                Err(OidcError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn issuer_audience_and_email_are_compared_exactly() {
        let s = settings();
        assert!(
            check_claims(
                claims(with(good_claims(), "iss", json!("accounts.google.com"))),
                &s,
                NOW
            )
            .is_ok()
        );
        assert!(matches!(
            check_claims(
                claims(with(good_claims(), "iss", json!("https://evil.example"))),
                &s,
                NOW
            ),
            Err(OidcError::WrongIssuer { .. })
        ));
        assert!(
            check_claims(
                claims(with(
                    good_claims(),
                    "aud",
                    json!(["other", "https://hooks.example.com/pubsub"])
                )),
                &s,
                NOW
            )
            .is_ok()
        );
        assert_eq!(
            check_claims(
                claims(with(good_claims(), "aud", json!(["other"]))),
                &s,
                NOW
            ),
            Err(OidcError::WrongAudience {
                found: "other".to_owned()
            })
        );
        assert_eq!(
            check_claims(
                claims(with(
                    good_claims(),
                    "email",
                    json!("PUSH@proj.iam.gserviceaccount.com")
                )),
                &s,
                NOW
            )
            .map(|p| p.subject),
            Ok("1234567890".to_owned())
        );
        let no_email = {
            let mut c = good_claims();
            c.as_object_mut().unwrap().remove("email");
            c
        };
        assert_eq!(
            check_claims(claims(no_email), &s, NOW),
            Err(OidcError::WrongServiceAccount)
        );
        assert_eq!(
            check_claims(
                claims(with(good_claims(), "email_verified", json!("false"))),
                &s,
                NOW
            ),
            Err(OidcError::EmailNotVerified)
        );
        assert!(
            check_claims(
                claims(with(good_claims(), "email_verified", json!("true"))),
                &s,
                NOW
            )
            .is_ok()
        );
    }

    #[test]
    fn without_a_configured_account_an_unverified_email_is_not_returned() {
        let s = OidcSettings::google("https://hooks.example.com/pubsub");
        let push = check_claims(
            claims(with(good_claims(), "email_verified", json!(false))),
            &s,
            NOW,
        )
        .unwrap();
        assert_eq!(push.email, None);
    }

    #[test]
    fn an_empty_configured_audience_accepts_nothing() {
        let mut s = settings();
        s.audience = String::new();
        assert!(matches!(
            check_claims(claims(with(good_claims(), "aud", json!(""))), &s, NOW),
            Err(OidcError::WrongAudience { .. })
        ));
    }

    #[test]
    fn cache_lifetime_follows_max_age_less_age_within_bounds() {
        assert_eq!(cache_ttl(&headers(&[])), None);
        assert_eq!(
            cache_ttl(&headers(&[(CACHE_CONTROL, "no-transform")])),
            None
        );
        assert_eq!(
            cache_ttl(&headers(&[(
                CACHE_CONTROL,
                "public, max-age=19800, must-revalidate, no-transform"
            )])),
            Some(Duration::from_secs(19800))
        );
        assert_eq!(
            cache_ttl(&headers(&[
                (CACHE_CONTROL, "public"),
                (CACHE_CONTROL, "Max-Age=600"),
                (AGE, "100")
            ])),
            Some(Duration::from_secs(500))
        );
        assert_eq!(
            cache_ttl(&headers(&[(CACHE_CONTROL, "max-age=0")])),
            Some(MIN_CACHE_TTL)
        );
        assert_eq!(
            cache_ttl(&headers(&[(CACHE_CONTROL, "max-age=9999999")])),
            Some(MAX_CACHE_TTL)
        );
    }

    #[test]
    fn jwks_parsing_keeps_only_rs256_signature_keys_with_an_id() {
        let n = URL_SAFE_NO_PAD.encode([0xc3u8; 256]);
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "a", "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "b", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": n, "e": "AQAB"},
            {"kty": "RSA", "n": n, "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "weird", "kid": "w"},
            "not a key",
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["a", "b"]);
        assert!(parse_jwks(br#"{"keys": []}"#).is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }

    #[test]
    fn fetches_are_spaced_by_the_interval_unless_the_clock_went_back() {
        let mut state = FetchState::default();
        assert!(state.may_fetch(NOW, REFETCH_INTERVAL));
        state.last_attempt = Some(NOW);
        assert!(!state.may_fetch(NOW, REFETCH_INTERVAL));
        assert!(!state.may_fetch(NOW + time::Duration::seconds(29), REFETCH_INTERVAL));
        assert!(state.may_fetch(NOW + time::Duration::seconds(30), REFETCH_INTERVAL));
        assert!(state.may_fetch(NOW - time::Duration::seconds(1), REFETCH_INTERVAL));
    }

    #[test]
    fn quoted_text_is_printable_and_short() {
        assert_eq!(quote("RS256"), "RS256");
        assert_eq!(quote("a\nb\u{1b}[31m"), "a?b?[31m");
        assert_eq!(quote(&"x".repeat(100)).chars().count(), MAX_QUOTED + 1);
    }
}
