//! Token cache behaviour against a scripted token endpoint.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use commercetools::{CtClient, CtError};
use support::{CLIENT_SECRET, MockCt, Scripted, fast_client};

type Json = serde_json::Value;

async fn get_root(c: &CtClient) -> Result<Option<Json>, CtError> {
    c.get::<Json>("product-projections", &[]).await
}

#[tokio::test]
async fn token_is_fetched_once_for_concurrent_requests() {
    let mock = MockCt::start().await;
    // A slow token endpoint makes every caller arrive while the first refresh is in flight.
    mock.state.token_delay_ms.store(100, Ordering::SeqCst);
    let client = mock.client();
    let calls = (0..20).map(|_| {
        let c = client.clone();
        async move { get_root(&c).await }
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| matches!(r, Ok(Some(_)))));
    assert_eq!(mock.token_requests(), 1);
    assert_eq!(client.tokens_fetched(), 1);
    assert_eq!(mock.api_requests(), 20);
}

#[tokio::test]
async fn token_is_refreshed_once_after_a_401() {
    let mock = MockCt::start().await;
    let client = mock.client();
    get_root(&client).await.unwrap();
    assert_eq!(mock.token_requests(), 1);

    mock.revoke_tokens();
    mock.state.token_delay_ms.store(50, Ordering::SeqCst);
    let calls = (0..10).map(|_| {
        let c = client.clone();
        async move { get_root(&c).await }
    });
    let results = futures::future::join_all(calls).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Some(_)))),
        "{results:?}"
    );
    assert_eq!(mock.token_requests(), 2, "exactly one refresh");
    // 1 initial + 10 rejected + 10 repeated.
    assert_eq!(mock.api_requests(), 21);
}

#[tokio::test]
async fn a_401_that_persists_after_one_refresh_is_an_unauthorized_error() {
    let mock = MockCt::start().await;
    mock.state.reject_all_tokens.store(true, Ordering::SeqCst);
    let client = mock.client();
    let err = get_root(&client).await.unwrap_err();
    match &err {
        CtError::Unauthorized { message } => {
            assert!(
                message.contains("even after fetching a new one"),
                "{message}"
            );
            assert!(message.contains("product-projections"), "{message}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(mock.token_requests(), 2);
    assert_eq!(
        mock.api_requests(),
        2,
        "401 is not retried beyond the one refresh"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn token_is_refreshed_before_expiry() {
    let mock = MockCt::start().await;
    mock.state.expires_in.store(1000, Ordering::SeqCst);
    let client = mock.client();
    get_root(&client).await.unwrap();
    assert_eq!(mock.token_requests(), 1);

    // 79 % of the lifetime: the cached token is still used.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(790)).await;
    tokio::time::resume();
    get_root(&client).await.unwrap();
    assert_eq!(mock.token_requests(), 1);

    // Past 80 %: refreshed proactively, before the token expires and without any 401.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(20)).await;
    tokio::time::resume();
    get_root(&client).await.unwrap();
    assert_eq!(mock.token_requests(), 2);
    assert_eq!(mock.api_requests(), 3, "no request was rejected");
}

#[tokio::test]
async fn wrong_client_secret_is_a_clear_unauthorized_error_without_the_secret() {
    let mock = MockCt::start().await;
    let mut config = mock.config();
    let wrong = "wrong-secret-do-not-print-7f3a";
    config.client_secret = wrong.to_string().into();
    let client = fast_client(config);
    let err = get_root(&client).await.unwrap_err();
    let CtError::Unauthorized { message } = &err else {
        panic!("expected Unauthorized, got {err:?}");
    };
    assert!(
        message.starts_with(&format!(
            "commercetools rejected the client credentials (invalid_client) at {}",
            mock.url
        )),
        "{message}"
    );
    for text in [err.to_string(), format!("{err:?}"), format!("{client:?}")] {
        assert!(!text.contains(wrong), "secret leaked: {text}");
        assert!(!text.contains(CLIENT_SECRET), "secret leaked: {text}");
    }
    assert_eq!(
        mock.token_requests(),
        1,
        "401 from the token endpoint is not retried"
    );
    assert_eq!(mock.api_requests(), 0);
}

#[tokio::test]
async fn scopes_are_requested_only_when_configured() {
    let mock = MockCt::start().await;
    get_root(&mock.client()).await.unwrap();
    let mut config = mock.config();
    config.scopes = Some("view_products:test-project view_categories:test-project".into());
    get_root(&fast_client(config)).await.unwrap();
    let forms = mock.state.token_forms.lock().unwrap().clone();
    assert_eq!(forms[0], "grant_type=client_credentials");
    assert_eq!(
        forms[1],
        "grant_type=client_credentials&scope=view_products%3Atest-project+view_categories%3Atest-project"
    );
}

#[tokio::test]
async fn forbidden_is_a_typed_error_naming_the_scope_problem() {
    let mock = MockCt::start().await;
    mock.push(Scripted::status(
        403,
        r#"{"statusCode":403,"message":"Insufficient scope. One of the following scopes is missing: view_products","errors":[{"code":"insufficient_scope","message":"Insufficient scope."}],"error":"insufficient_scope"}"#,
    ));
    let err = get_root(&mock.client()).await.unwrap_err();
    let CtError::Forbidden { message } = &err else {
        panic!("expected Forbidden, got {err:?}");
    };
    assert!(message.contains("insufficient_scope"), "{message}");
    assert!(message.contains("view_products"), "{message}");
    assert_eq!(mock.api_requests(), 1);
}

#[tokio::test]
async fn requests_sent_counts_token_requests_and_every_attempt() {
    let mock = MockCt::start().await;
    mock.push(Scripted::status(503, "{}"));
    let client = mock.client();
    get_root(&client).await.unwrap();
    assert_eq!(client.requests_sent(), 3, "token + 503 + 200");
    assert_eq!(
        client.clone().requests_sent(),
        3,
        "clones share the counter"
    );
}
