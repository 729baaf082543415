//! Pub/Sub push OIDC token verification (`connector::ingest::oidc`) against a local JWKS server.
//!
//! The keys in `fixtures/oidc/` are test-only RSA-2048 keys made once with
//! `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` (see the README there). Tokens
//! are signed with `jsonwebtoken::encode`; the JWKS is served by an axum server on 127.0.0.1 that
//! counts its requests. Time is a manual clock handed to the verifier, moved forward instead of
//! sleeping.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connector::ingest::oidc::{
    GOOGLE_ISSUERS, OidcError, OidcSettings, OidcVerifier, REFETCH_INTERVAL, VerifiedPush,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const KEY_1: &str = include_str!("fixtures/oidc/test-key-1.pem");
const KEY_2: &str = include_str!("fixtures/oidc/test-key-2.pem");
const JWKS_1: &str = include_str!("fixtures/oidc/jwks-key-1.json");
const JWKS_1_AND_2: &str = include_str!("fixtures/oidc/jwks-key-1-and-2.json");

const AUDIENCE: &str = "https://connector.example.com/webhooks/commercetools";
const ACCOUNT: &str = "ct-push@shop-project.iam.gserviceaccount.com";
const START: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

// ---------------------------------------------------------------------------------------------
// A JWKS server

struct Jwks {
    body: Mutex<String>,
    cache_control: Mutex<Option<&'static str>>,
    down: AtomicBool,
    delay: Mutex<Duration>,
    hits: AtomicUsize,
}

struct JwksServer {
    state: Arc<Jwks>,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(body: &str) -> Self {
        let state = Arc::new(Jwks {
            body: Mutex::new(body.to_owned()),
            cache_control: Mutex::new(None),
            down: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
            hits: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/oauth2/v3/certs", get(serve_jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/oauth2/v3/certs", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state, url, task }
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn publish(&self, body: &str) {
        *self.state.body.lock().unwrap() = body.to_owned();
    }

    /// Closes the listening socket: later connections are refused.
    async fn stop(&self) {
        self.task.abort();
        while !self.task.is_finished() {
            tokio::task::yield_now().await;
        }
    }

    fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

async fn serve_jwks(State(state): State<Arc<Jwks>>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if state.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let body = state.body.lock().unwrap().clone();
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(value) = *state.cache_control.lock().unwrap() {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, value.parse().unwrap());
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Clock, settings, tokens

#[derive(Clone)]
struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    fn new() -> Self {
        Self(Arc::new(AtomicI64::new(START.unix_timestamp())))
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0.load(Ordering::SeqCst)).unwrap()
    }

    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
    }
}

fn settings(url: &str) -> OidcSettings {
    OidcSettings {
        jwks_url: url.to_owned(),
        ..OidcSettings::google(AUDIENCE).with_service_account(ACCOUNT)
    }
}

fn verifier_with(settings: OidcSettings, clock: &ManualClock) -> OidcVerifier {
    let clock = clock.clone();
    OidcVerifier::with_clock(
        settings,
        reqwest::Client::new(),
        Arc::new(move || clock.now()),
    )
}

fn verifier(server: &JwksServer, clock: &ManualClock) -> OidcVerifier {
    verifier_with(settings(&server.url), clock)
}

/// The claims of a genuine Pub/Sub push token, issued just now and valid for an hour.
fn claims(clock: &ManualClock) -> Value {
    let now = clock.now().unix_timestamp();
    json!({
        "aud": AUDIENCE,
        "azp": "105432101234567890123",
        "email": ACCOUNT,
        "email_verified": true,
        "exp": now + 3600,
        "iat": now,
        "iss": "https://accounts.google.com",
        "sub": "105432101234567890123",
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn sign_as(kid: &str, pem: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Signed by key 1, as Google would.
fn sign(claims: &Value) -> String {
    sign_as("test-key-1", KEY_1, claims)
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn refused(verifier: &OidcVerifier, token: &str) -> OidcError {
    match verifier.verify(token).await {
        Ok(push) => panic!("accepted: {push:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// Accepting

#[tokio::test]
async fn a_genuine_push_token_is_accepted_and_names_the_service_account() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);

    let push: VerifiedPush = verifier.verify(&sign(&claims(&clock))).await.unwrap();

    assert_eq!(push.email.as_deref(), Some(ACCOUNT));
    assert_eq!(push.subject, "105432101234567890123");
    assert_eq!(push.expires_at, START + Duration::from_secs(3600));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn both_forms_of_the_google_issuer_are_accepted() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    for issuer in GOOGLE_ISSUERS {
        let token = sign(&with(claims(&clock), "iss", json!(issuer)));
        assert!(verifier.verify(&token).await.is_ok(), "{issuer}");
    }
}

#[tokio::test]
async fn a_token_within_the_leeway_of_its_expiry_is_still_accepted() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let token = sign(&claims(&clock));
    clock.advance(Duration::from_secs(3600 + 59));
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn without_a_configured_service_account_any_account_is_accepted() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier_with(
        OidcSettings {
            service_account_email: None,
            ..settings(&server.url)
        },
        &clock,
    );
    let token = sign(&with(
        claims(&clock),
        "email",
        json!("someone@else.example"),
    ));
    let push = verifier.verify(&token).await.unwrap();
    assert_eq!(push.email.as_deref(), Some("someone@else.example"));
}

// ---------------------------------------------------------------------------------------------
// Refusing, claim by claim

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let token = sign(&with(
        claims(&clock),
        "aud",
        json!("https://attacker.example/push"),
    ));
    assert_eq!(
        refused(&verifier, &token).await,
        OidcError::WrongAudience {
            found: "https://attacker.example/push".to_owned()
        }
    );
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let token = sign(&with(
        claims(&clock),
        "iss",
        json!("https://securetoken.google.com/other"),
    ));
    assert!(matches!(
        refused(&verifier, &token).await,
        OidcError::WrongIssuer { .. }
    ));
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let token = sign(&claims(&clock));
    clock.advance(Duration::from_secs(3600 + 60));
    assert_eq!(
        refused(&verifier, &token).await,
        OidcError::Expired {
            expired_at: START + Duration::from_secs(3600)
        }
    );
}

#[tokio::test]
async fn a_token_without_an_expiry_is_refused() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let mut claims = claims(&clock);
    claims.as_object_mut().unwrap().remove("exp");
    assert!(matches!(
        refused(&verifier, &sign(&claims)).await,
        OidcError::Malformed { .. }
    ));
}

#[tokio::test]
async fn a_token_that_is_not_valid_yet_is_refused() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let later = clock.now().unix_timestamp() + 120;

    let issued_later = sign(&with(claims(&clock), "iat", json!(later)));
    assert_eq!(
        refused(&verifier, &issued_later).await,
        OidcError::NotYetValid { claim: "iat" }
    );
    let valid_later = sign(&with(claims(&clock), "nbf", json!(later)));
    assert_eq!(
        refused(&verifier, &valid_later).await,
        OidcError::NotYetValid { claim: "nbf" }
    );
}

#[tokio::test]
async fn a_token_of_another_service_account_is_refused() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let token = sign(&with(
        claims(&clock),
        "email",
        json!("intruder@other-project.iam.gserviceaccount.com"),
    ));
    assert_eq!(
        refused(&verifier, &token).await,
        OidcError::WrongServiceAccount
    );
}

#[tokio::test]
async fn a_token_whose_email_is_not_verified_is_refused() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    for verified in [json!(false), json!(null)] {
        let token = sign(&with(claims(&clock), "email_verified", verified));
        assert_eq!(
            refused(&verifier, &token).await,
            OidcError::EmailNotVerified
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Refusing forgeries

#[tokio::test]
async fn a_token_signed_by_an_unpublished_key_under_a_published_key_id_is_refused() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let token = sign_as("test-key-1", KEY_2, &claims(&clock));
    assert_eq!(refused(&verifier, &token).await, OidcError::BadSignature);
}

#[tokio::test]
async fn a_token_with_altered_claims_is_refused() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let genuine = sign(&with(claims(&clock), "aud", json!("https://other.example")));
    let parts: Vec<&str> = genuine.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(&claims(&clock)), parts[2]);
    assert_eq!(refused(&verifier, &forged).await, OidcError::BadSignature);
}

#[tokio::test]
async fn unsigned_hmac_and_other_algorithm_tokens_are_refused_before_any_key_is_fetched() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let claims = claims(&clock);

    // `alg: none`, with and without a signature segment.
    let none_header = b64(&json!({"alg": "none", "typ": "JWT", "kid": "test-key-1"}));
    let unsigned = format!("{none_header}.{}.", b64(&claims));
    let none_signed = format!(
        "{none_header}.{}.{}",
        b64(&claims),
        URL_SAFE_NO_PAD.encode("x")
    );
    // Algorithm confusion: HS256 keyed with the published public key.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("test-key-1".to_owned());
    let confused = encode(&hs, &claims, &EncodingKey::from_secret(JWKS_1.as_bytes())).unwrap();
    // A stronger RSA algorithm is still not the one Google uses.
    let mut rs512 = Header::new(Algorithm::RS512);
    rs512.kid = Some("test-key-1".to_owned());
    let rs512 = encode(
        &rs512,
        &claims,
        &EncodingKey::from_rsa_pem(KEY_1.as_bytes()).unwrap(),
    )
    .unwrap();

    for (token, alg) in [
        (unsigned, "none"),
        (none_signed, "none"),
        (confused, "HS256"),
        (rs512, "RS512"),
    ] {
        assert_eq!(
            refused(&verifier, &token).await,
            OidcError::Algorithm {
                alg: alg.to_owned()
            }
        );
    }
    assert_eq!(
        server.hits(),
        0,
        "no key is fetched for a refused algorithm"
    );
}

#[tokio::test]
async fn strings_that_are_not_tokens_are_refused_as_malformed() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let signed_string = sign(&json!("a string, not claims"));
    for token in [
        "garbage".to_owned(),
        "not.a.jwt".to_owned(),
        "a.b.c.d".to_owned(),
        "x".repeat(100_000),
        signed_string,
    ] {
        assert!(
            matches!(
                refused(&verifier, &token).await,
                OidcError::Malformed { .. }
            ),
            "{token:.40}"
        );
    }
    // With a well-formed RS256 header, the signature is checked before anything else.
    let rs256 = b64(&json!({"alg": "RS256", "kid": "test-key-1"}));
    for token in [
        format!("{rs256}.%%%.sig"),
        format!("{rs256}.{}.", b64(&claims(&clock))),
    ] {
        assert_eq!(refused(&verifier, &token).await, OidcError::BadSignature);
    }
    assert_eq!(refused(&verifier, "").await, OidcError::MissingToken);
}

#[tokio::test]
async fn error_messages_quote_neither_the_token_nor_the_email() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let secret_email = "jane.doe@private.example";
    let base = with(claims(&clock), "email", json!(secret_email));
    let mut errors = Vec::new();
    for token in [
        sign(&with(base.clone(), "aud", json!("other"))),
        sign(&base),
        sign(&with(base.clone(), "email_verified", json!(false))),
        sign_as("test-key-1", KEY_2, &base),
        sign_as("test-key-2", KEY_2, &base),
        format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&base)),
    ] {
        let error = refused(&verifier, &token).await;
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains(secret_email), "{text}");
            for part in token.split('.').filter(|p| p.len() > 8) {
                assert!(!text.contains(part), "{text}");
            }
        }
        errors.push(error);
    }
    assert!(errors.iter().all(|e| !e.is_unavailable()));
}

// ---------------------------------------------------------------------------------------------
// Key cache

#[tokio::test]
async fn the_key_set_is_fetched_once_for_many_verifications() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let clone = verifier.clone();
    for _ in 0..20 {
        verifier.verify(&sign(&claims(&clock))).await.unwrap();
        clone.verify(&sign(&claims(&clock))).await.unwrap();
        clock.advance(Duration::from_secs(60));
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_verifications_share_one_fetch() {
    let server = JwksServer::start(JWKS_1).await;
    *server.state.delay.lock().unwrap() = Duration::from_millis(200);
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let token = sign(&claims(&clock));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let verifier = verifier.clone();
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn the_key_set_is_refetched_once_its_lifetime_is_over() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    verifier.verify(&sign(&claims(&clock))).await.unwrap();

    clock.advance(Duration::from_secs(3599));
    verifier.verify(&sign(&claims(&clock))).await.unwrap();
    assert_eq!(server.hits(), 1);

    clock.advance(Duration::from_secs(1));
    verifier.verify(&sign(&claims(&clock))).await.unwrap();
    verifier.verify(&sign(&claims(&clock))).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn the_response_max_age_overrides_the_configured_lifetime() {
    let server = JwksServer::start(JWKS_1).await;
    *server.state.cache_control.lock().unwrap() =
        Some("public, max-age=120, must-revalidate, no-transform");
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    verifier.verify(&sign(&claims(&clock))).await.unwrap();

    clock.advance(Duration::from_secs(119));
    verifier.verify(&sign(&claims(&clock))).await.unwrap();
    assert_eq!(server.hits(), 1);
    clock.advance(Duration::from_secs(1));
    verifier.verify(&sign(&claims(&clock))).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_rotated_key_is_found_by_one_refetch() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    verifier.verify(&sign(&claims(&clock))).await.unwrap();

    // Google publishes the new key, then starts signing with it.
    server.publish(JWKS_1_AND_2);
    clock.advance(Duration::from_secs(60));
    let rotated = sign_as("test-key-2", KEY_2, &claims(&clock));
    let push = verifier.verify(&rotated).await.unwrap();
    assert_eq!(push.email.as_deref(), Some(ACCOUNT));
    assert_eq!(server.hits(), 2);

    // Both keys are now cached.
    verifier.verify(&rotated).await.unwrap();
    verifier.verify(&sign(&claims(&clock))).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_key_ids_refetches_at_most_once_per_30_seconds() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    verifier.verify(&sign(&claims(&clock))).await.unwrap();
    assert_eq!(server.hits(), 1);
    // The first fetch counts too: a refetch is allowed 30 s after it.
    clock.advance(REFETCH_INTERVAL);

    let unknown = sign_as("test-key-2", KEY_2, &claims(&clock));
    let made_up: Vec<String> = (0..20)
        .map(|i| sign_as(&format!("made-up-{i}"), KEY_2, &claims(&clock)))
        .collect();

    // A concurrent flood: one refetch, which does not have the key.
    let tasks: Vec<_> = made_up
        .iter()
        .chain(std::iter::repeat_n(&unknown, 20))
        .map(|token| {
            let verifier = verifier.clone();
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(matches!(
            task.await.unwrap(),
            Err(OidcError::UnknownKey { .. })
        ));
    }
    assert_eq!(server.hits(), 2);

    // Within the interval nothing is fetched, even once the key is published.
    server.publish(JWKS_1_AND_2);
    clock.advance(REFETCH_INTERVAL - Duration::from_secs(1));
    for token in &made_up {
        assert!(matches!(
            refused(&verifier, token).await,
            OidcError::UnknownKey { .. }
        ));
    }
    assert_eq!(
        refused(&verifier, &unknown).await,
        OidcError::UnknownKey {
            kid: "test-key-2".to_owned()
        }
    );
    assert_eq!(server.hits(), 2);
    // Known keys keep working without fetches.
    verifier.verify(&sign(&claims(&clock))).await.unwrap();
    assert_eq!(server.hits(), 2);

    // After it, one refetch finds the new key.
    clock.advance(Duration::from_secs(1));
    verifier.verify(&unknown).await.unwrap();
    for token in &made_up {
        assert!(matches!(
            refused(&verifier, token).await,
            OidcError::UnknownKey { .. }
        ));
    }
    assert_eq!(server.hits(), 3);
}

// ---------------------------------------------------------------------------------------------
// Key server failures

#[tokio::test]
async fn with_no_key_server_and_nothing_cached_the_keys_are_unavailable() {
    // A port that was free a moment ago: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/oauth2/v3/certs", listener.local_addr().unwrap());
    drop(listener);
    let clock = ManualClock::new();
    let verifier = verifier_with(settings(&url), &clock);

    let error = refused(&verifier, &sign(&claims(&clock))).await;
    assert!(
        matches!(error, OidcError::KeysUnavailable { .. }),
        "{error:?}"
    );
    assert!(error.is_unavailable());
}

#[tokio::test]
async fn a_failing_key_server_is_retried_a_few_seconds_later_while_nothing_is_cached() {
    let server = JwksServer::start(JWKS_1).await;
    server.set_down(true);
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    let token = sign(&claims(&clock));

    for _ in 0..5 {
        let error = refused(&verifier, &token).await;
        assert!(error.is_unavailable(), "{error:?}");
        assert!(error.to_string().contains("503"), "{error}");
    }
    assert_eq!(server.hits(), 1);

    server.set_down(false);
    clock.advance(Duration::from_secs(5));
    verifier.verify(&token).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_key_set_without_usable_keys_counts_as_unavailable() {
    let server = JwksServer::start(r#"{"keys": [{"kty": "EC", "kid": "x"}]}"#).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    assert!(
        refused(&verifier, &sign(&claims(&clock)))
            .await
            .is_unavailable()
    );
}

#[tokio::test]
async fn with_the_key_server_down_after_a_fetch_the_cached_keys_are_still_used() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    let verifier = verifier(&server, &clock);
    verifier.verify(&sign(&claims(&clock))).await.unwrap();

    // Down, and the cached set has expired: one attempt, then the cached keys.
    server.set_down(true);
    clock.advance(Duration::from_secs(2 * 3600));
    for _ in 0..10 {
        verifier.verify(&sign(&claims(&clock))).await.unwrap();
    }
    assert_eq!(server.hits(), 2);

    // Still down 30 s later: one more attempt, still the cached keys.
    clock.advance(REFETCH_INTERVAL);
    verifier.verify(&sign(&claims(&clock))).await.unwrap();
    assert_eq!(server.hits(), 3);

    // Back: the next attempt replaces the set.
    server.set_down(false);
    server.publish(JWKS_1_AND_2);
    clock.advance(REFETCH_INTERVAL);
    verifier
        .verify(&sign_as("test-key-2", KEY_2, &claims(&clock)))
        .await
        .unwrap();
    assert_eq!(server.hits(), 4);
}

#[tokio::test]
async fn with_the_key_server_gone_after_a_fetch_the_cached_keys_are_still_used() {
    let server = JwksServer::start(JWKS_1).await;
    let clock = ManualClock::new();
    // No pooled connection may outlive the server.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let verifier = {
        let clock = clock.clone();
        OidcVerifier::with_clock(settings(&server.url), http, Arc::new(move || clock.now()))
    };
    verifier.verify(&sign(&claims(&clock))).await.unwrap();

    server.stop().await;
    clock.advance(Duration::from_secs(2 * 3600));
    let push = verifier.verify(&sign(&claims(&clock))).await.unwrap();
    assert_eq!(push.email.as_deref(), Some(ACCOUNT));
    assert_eq!(server.hits(), 1);
}
