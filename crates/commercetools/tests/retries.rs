//! Retry and error classification against a scripted server.

mod support;

use std::time::{Duration, Instant};

use commercetools::{CtConfig, CtError};
use support::{MockCt, Scripted, dead_url, fast_client};

type Json = serde_json::Value;

const ERROR_400: &str = r#"{
  "statusCode": 400,
  "message": "First error message.",
  "errors": [
    { "code": "SyntaxError", "message": "First error message." },
    { "code": "SemanticError", "message": "Second error message." }
  ]
}"#;

#[tokio::test]
async fn retries_on_503_then_succeeds() {
    let mock = MockCt::start().await;
    mock.push(Scripted::status(503, r#"{"statusCode":503,"message":"Over capacity","errors":[{"code":"OverCapacity","message":"Over capacity"}]}"#));
    mock.push(Scripted::status(502, "<html>bad gateway</html>"));
    mock.push(Scripted::status(200, r#"{"id":"p1"}"#));
    let got: Option<Json> = mock.client().get("products/p1", &[]).await.unwrap();
    assert_eq!(got.unwrap()["id"], "p1");
    assert_eq!(mock.api_requests(), 3);
}

#[tokio::test]
async fn retries_on_429_and_honours_retry_after() {
    let mock = MockCt::start().await;
    let mut s = Scripted::status(429, r#"{"statusCode":429,"message":"Too many requests"}"#);
    s.retry_after = Some("1".into());
    mock.push(s);
    let client = mock.client();
    let started = Instant::now();
    let got: Option<Json> = client.get("products", &[]).await.unwrap();
    assert!(got.is_some());
    // The computed backoff is at most 5 ms; only Retry-After explains a 1 s wait.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mock.api_requests(), 2);
}

#[tokio::test]
async fn does_not_retry_on_400_and_returns_typed_error() {
    let mock = MockCt::start().await;
    mock.push(Scripted::status(400, ERROR_400));
    let err = mock
        .client()
        .get::<Json>(
            "product-projections",
            &[("where".into(), "nonsense".into())],
        )
        .await
        .unwrap_err();
    match &err {
        CtError::Api {
            status,
            message,
            errors,
            path,
        } => {
            assert_eq!(*status, 400);
            assert_eq!(message, "First error message.");
            let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
            assert_eq!(codes, ["SyntaxError", "SemanticError"]);
            assert_eq!(path, "product-projections");
        }
        other => panic!("expected Api, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(mock.api_requests(), 1);
}

#[tokio::test]
async fn retries_a_500_on_a_read_but_not_a_409() {
    let mock = MockCt::start().await;
    mock.push(Scripted::status(
        500,
        r#"{"statusCode":500,"message":"General","errors":[{"code":"General","message":"boom"}]}"#,
    ));
    mock.push(Scripted::status(409, r#"{"statusCode":409,"message":"Version mismatch. Concurrent modification.","errors":[{"code":"ConcurrentModification","message":"Version mismatch.","currentVersion":7}]}"#));
    mock.push(Scripted::status(409, r#"{"statusCode":409,"message":"Version mismatch. Concurrent modification.","errors":[{"code":"ConcurrentModification","message":"Version mismatch.","currentVersion":7}]}"#));
    let client = mock.client();
    // The 500 is retried; the retry meets the first 409, which is final.
    let first = client.get::<Json>("a", &[]).await.unwrap_err();
    assert!(first.has_code("ConcurrentModification"));
    let e409 = client.get::<Json>("b", &[]).await.unwrap_err();
    assert!(e409.has_code("ConcurrentModification"));
    let CtError::Api { errors, .. } = &e409 else {
        panic!()
    };
    assert_eq!(errors[0].extra["currentVersion"], 7);
    assert_eq!(mock.api_requests(), 3);
}

#[tokio::test]
async fn gives_up_after_max_retries_with_the_last_error() {
    let mock = MockCt::start().await;
    for _ in 0..10 {
        mock.push(Scripted::status(503, r#"{"statusCode":503,"message":"Over capacity","errors":[{"code":"OverCapacity","message":"Over capacity"}]}"#));
    }
    let mut config = mock.config();
    config.max_retries = 2;
    let err = fast_client(config).get::<Json>("x", &[]).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.has_code("OverCapacity"));
    assert!(err.is_transient());
    assert_eq!(mock.api_requests(), 3, "first attempt + 2 retries");
}

#[tokio::test]
async fn timeouts_are_retried() {
    let mock = MockCt::start().await;
    let mut slow = Scripted::status(200, r#"{"slow":true}"#);
    slow.delay = Duration::from_secs(2);
    mock.push(slow);
    mock.push(Scripted::status(200, r#"{"slow":false}"#));
    let mut config = mock.config();
    config.timeout = Duration::from_millis(300);
    let got: Option<Json> = fast_client(config).get("x", &[]).await.unwrap();
    assert_eq!(got.unwrap()["slow"], false);
    assert_eq!(mock.api_requests(), 2);
}

#[tokio::test]
async fn get_returns_none_on_404_and_query_treats_it_as_an_error() {
    let mock = MockCt::start().await;
    let nf = r#"{"statusCode":404,"message":"The Resource with ID 'x' was not found.","errors":[{"code":"ResourceNotFound","message":"not found"}]}"#;
    mock.push(Scripted::status(404, nf));
    mock.push(Scripted::status(404, nf));
    let client = mock.client();
    assert!(
        client
            .get::<Json>("products/x", &[])
            .await
            .unwrap()
            .is_none()
    );
    let err = client.query::<Json>("nope", &[]).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(mock.api_requests(), 2);
}

#[tokio::test]
async fn undecodable_body_is_a_decode_error_naming_the_path() {
    let mock = MockCt::start().await;
    mock.push(Scripted::status(200, r#"{"limit":"twenty"}"#));
    let err = mock
        .client()
        .query::<Json>("categories", &[])
        .await
        .unwrap_err();
    let CtError::Decode { path, .. } = &err else {
        panic!("expected Decode, got {err:?}")
    };
    assert_eq!(path, "categories");
}

#[tokio::test]
async fn query_parameters_are_sent_with_repeated_keys() {
    let mock = MockCt::start().await;
    let q = vec![
        ("where".to_string(), r#"id > "a""#.to_string()),
        ("where".to_string(), "published = true".to_string()),
        ("sort".to_string(), "id asc".to_string()),
    ];
    mock.client()
        .query::<Json>("/product-projections", &q)
        .await
        .unwrap();
    assert_eq!(
        mock.api_uris(),
        [
            "/test-project/product-projections?where=id+%3E+%22a%22&where=published+%3D+true&sort=id+asc"
        ]
    );
}

#[tokio::test]
async fn unreachable_host_is_a_clear_error() {
    let url = dead_url().await;
    let mut config = CtConfig::new("p", &url, &url, "id", "secret-xyz");
    config.max_retries = 2;
    let client = fast_client(config);
    let started = Instant::now();
    let err = client.get::<Json>("products", &[]).await.unwrap_err();
    eprintln!("{err}");
    match &err {
        CtError::Unreachable { url: u, message } => {
            assert_eq!(u, &format!("{url}/oauth/token"));
            assert!(message.contains("connection failed"), "{message}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(err.is_transient());
    assert!(!format!("{err} {err:?}").contains("secret-xyz"));
    assert_eq!(client.requests_sent(), 3, "first attempt + 2 retries");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn invalid_urls_are_config_errors() {
    let c = CtConfig::new("p", "not a url", "http://auth", "id", "s");
    assert!(matches!(
        commercetools::CtClient::new(c),
        Err(CtError::Config(_))
    ));
    let c = CtConfig::new("", "http://api", "http://auth", "id", "s");
    assert!(matches!(
        commercetools::CtClient::new(c),
        Err(CtError::Config(_))
    ));
    let c = CtConfig::new("p", "http://api/", "http://auth/", "id", "s");
    assert!(commercetools::CtClient::new(c).is_ok());
}
