//! A tiny scripted commercetools stand-in (axum) for auth and retry tests: a token endpoint
//! checking HTTP Basic credentials, and API endpoints that check the bearer token and answer
//! from a queue of scripted responses (default: 200 with an empty paged response).
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use commercetools::CtConfig;

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "very-secret-value-42";
pub const PROJECT: &str = "test-project";

/// One scripted API answer.
#[derive(Clone, Debug)]
pub struct Scripted {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<String>,
    pub delay: Duration,
}

impl Scripted {
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_string(),
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

#[derive(Default)]
pub struct State {
    pub expires_in: AtomicU64,
    pub token_delay_ms: AtomicU64,
    pub issued: AtomicU64,
    pub valid_tokens: Mutex<HashSet<String>>,
    pub token_requests: AtomicU64,
    pub token_forms: Mutex<Vec<String>>,
    pub api_requests: AtomicU64,
    pub api_uris: Mutex<Vec<String>>,
    pub script: Mutex<VecDeque<Scripted>>,
    /// Reject every bearer token (even fresh ones).
    pub reject_all_tokens: std::sync::atomic::AtomicBool,
}

pub struct MockCt {
    pub state: Arc<State>,
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockCt {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockCt {
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        state.expires_in.store(172_800, Ordering::SeqCst);
        let st = state.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let st = st.clone();
            async move { handle(st, req).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { state, url, task }
    }

    pub fn config(&self) -> CtConfig {
        let mut c = CtConfig::new(PROJECT, &self.url, &self.url, CLIENT_ID, CLIENT_SECRET);
        c.max_retries = 3;
        c.timeout = Duration::from_secs(5);
        c
    }

    pub fn client(&self) -> commercetools::CtClient {
        fast_client(self.config())
    }

    pub fn push(&self, s: Scripted) {
        self.state.script.lock().unwrap().push_back(s);
    }

    pub fn revoke_tokens(&self) {
        self.state.valid_tokens.lock().unwrap().clear();
    }

    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    pub fn api_requests(&self) -> u64 {
        self.state.api_requests.load(Ordering::SeqCst)
    }

    pub fn api_uris(&self) -> Vec<String> {
        self.state.api_uris.lock().unwrap().clone()
    }
}

/// A client with millisecond backoff, so retry tests are fast.
pub fn fast_client(config: CtConfig) -> commercetools::CtClient {
    commercetools::CtClient::new_with_backoff(
        config,
        Duration::from_millis(1),
        Duration::from_millis(5),
    )
    .unwrap()
}

fn json(status: u16, body: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn basic_ok(req: &Request<Body>) -> bool {
    use base64::Engine;
    let creds =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let expected = format!("Basic {creds}");
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
}

async fn handle(st: Arc<State>, req: Request<Body>) -> Response {
    let path = req.uri().path().to_string();
    if path == "/oauth/token" && req.method() == "POST" {
        st.token_requests.fetch_add(1, Ordering::SeqCst);
        let ok = basic_ok(&req);
        let form =
            String::from_utf8(to_bytes(req.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
        st.token_forms.lock().unwrap().push(form);
        let delay = st.token_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if !ok {
            return json(
                401,
                r#"{"statusCode":401,"message":"Please provide valid client credentials using HTTP Basic Authentication.","errors":[{"code":"invalid_client","message":"Please provide valid client credentials using HTTP Basic Authentication."}],"error":"invalid_client","error_description":"Please provide valid client credentials using HTTP Basic Authentication."}"#.into(),
            );
        }
        let n = st.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("token-{n}");
        st.valid_tokens.lock().unwrap().insert(token.clone());
        let expires_in = st.expires_in.load(Ordering::SeqCst);
        return json(
            200,
            format!(
                r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{expires_in},"scope":"view_products:{PROJECT}"}}"#
            ),
        );
    }
    st.api_requests.fetch_add(1, Ordering::SeqCst);
    st.api_uris.lock().unwrap().push(req.uri().to_string());
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let valid = bearer
        .as_ref()
        .is_some_and(|t| st.valid_tokens.lock().unwrap().contains(t))
        && !st.reject_all_tokens.load(Ordering::SeqCst);
    if !valid {
        return json(
            401,
            r#"{"statusCode":401,"message":"invalid_token","errors":[{"code":"invalid_token","message":"invalid_token"}],"error":"invalid_token"}"#.into(),
        );
    }
    let next = st.script.lock().unwrap().pop_front();
    match next {
        Some(s) => {
            if !s.delay.is_zero() {
                tokio::time::sleep(s.delay).await;
            }
            let mut resp = json(s.status, s.body);
            if let Some(ra) = s.retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, ra.parse().unwrap());
            }
            resp
        }
        None => json(
            200,
            r#"{"limit":20,"offset":0,"count":0,"results":[]}"#.into(),
        ),
    }
}

/// A URL where nothing listens (bound, then released).
pub async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
