//! `GET /admin` and its replay buttons over HTTP (port 0, SQLite), after a real catalog sync
//! against the emulators: who gets in, what the page shows (and what it must never show), and
//! that the buttons replay only with the page's form token.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use connector::admin::{AdminState, CHALLENGE, CSRF_FIELD, router};
use connector::store::{NewInboxEntry, NewRejected, Rejected, RejectedFilter};
use connector::sync::sink::Sink;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;
use support::{CLIENT_SECRET, EU_KEY, Harness, US_KEY};
use time::OffsetDateTime;

const PASSWORD: &str = "admin-password-for-tests";
const HOSTILE: &str = "<script>alert('owned')</script>";

struct Admin {
    h: Harness,
    base: String,
    /// Does not follow redirects: the 303s are asserted.
    http: reqwest::Client,
}

/// A synced shop (its generated problem products are rejected), some state for every section,
/// and the admin routes served with `password`.
async fn start(password: Option<&str>) -> Admin {
    let h = Harness::start(100).await;
    h.sync(false).await;
    let state = h.state();
    let now = OffsetDateTime::now_utc();
    state.ensure_job("catalog.delta.us", now).await.unwrap();
    assert!(
        state
            .try_start_job(
                "catalog.delta.us",
                "worker-7",
                now,
                Duration::from_secs(600),
                None,
                false
            )
            .await
            .unwrap()
    );
    state
        .store_notification(&NewInboxEntry {
            delivery_id: "admin-test-1".into(),
            source: "commercetools".into(),
            resource_type: "order".into(),
            resource_id: "order-1".into(),
            kind: "OrderCreated".into(),
            sequence_number: Some(1),
            resource_version: Some(1),
            payload: json!({}),
            received_at: now - time::Duration::minutes(3),
        })
        .await
        .unwrap();
    state
        .add_rejected(&NewRejected {
            route: "us".into(),
            entity: "notification".into(),
            ct_id: "hostile-1".into(),
            field: Some("type".into()),
            reason: HOSTILE.into(),
            payload: None,
            at: now,
        })
        .await
        .unwrap();

    let settings = Arc::new(h.settings.clone());
    let ct = connector::app::commercetools_client(&settings).unwrap();
    let sinks: HashMap<String, Sink> =
        connector::app::sinks(&settings, &support::env, None).unwrap();
    let app = router(
        AdminState::new(settings, state.clone(), ct, sinks, "test-instance-1")
            .with_password(password.map(SecretString::from))
            .with_secrets(vec![
                ("KEY_US".into(), true),
                ("KEY_EU".into(), true),
                ("CT_OMNISEND_WEBHOOK_TOKEN".into(), false),
            ]),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Admin {
        h,
        base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

impl Admin {
    async fn page(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/admin", self.base))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }

    /// The form token, read from the page like a browser would submit it.
    async fn csrf(&self) -> String {
        let html = self.page().await;
        let marker = format!("name=\"{CSRF_FIELD}\" value=\"");
        let start = html.find(&marker).expect("the page has a form token") + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .basic_auth("admin", Some(PASSWORD))
            .header("content-type", "application/x-www-form-urlencoded")
    }

    async fn open_products(&self) -> Vec<Rejected> {
        self.h
            .state()
            .list_rejected(&RejectedFilter {
                entity: Some("products".into()),
                route: Some("eu".into()),
                open_only: true,
                limit: 100,
            })
            .await
            .unwrap()
    }

    async fn record(&self, id: i64) -> Rejected {
        self.h.state().rejected(id).await.unwrap().unwrap()
    }
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .expect("a redirect names its target")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_page_answers_401_with_a_basic_challenge_unless_basic_or_bearer_credentials_are_right()
{
    let a = start(Some(PASSWORD)).await;
    let url = format!("{}/admin", a.base);
    for req in [
        a.http.get(&url),
        a.http.get(&url).basic_auth("admin", Some("wrong")),
        a.http.get(&url).basic_auth("root", Some(PASSWORD)),
        a.http.get(&url).bearer_auth("wrong"),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers().get("www-authenticate").unwrap(),
            "Basic realm=\"ct-omnisend admin\""
        );
        assert_eq!(CHALLENGE, "Basic realm=\"ct-omnisend admin\"");
        assert!(!resp.text().await.unwrap().contains("Recent runs"));
    }
    for req in [
        a.http.get(&url).basic_auth("admin", Some(PASSWORD)),
        a.http.get(&url).bearer_auth(PASSWORD),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "text/html; charset=utf-8"
        );
        assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
        assert!(resp.text().await.unwrap().contains("Recent runs"));
    }
}

#[tokio::test]
async fn without_a_password_every_admin_route_answers_404() {
    let a = start(None).await;
    let page = a
        .http
        .get(format!("{}/admin", a.base))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page.headers().get("www-authenticate").is_none());
    for path in ["/admin/rejected/replay-all", "/admin/rejected/1/replay"] {
        let resp = a.post(path).body("csrf=x").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn the_page_shows_runs_cursors_jobs_queues_rejected_records_and_the_configuration_without_secrets()
 {
    let a = start(Some(PASSWORD)).await;
    let html = a.page().await;
    for heading in [
        "Sync status",
        "Recent runs",
        "Scheduled jobs",
        "Rejected records",
        "Configuration",
    ] {
        assert!(html.contains(heading), "heading {heading:?} missing");
    }
    // Runs: the catalog sync of both stores, with its outcome.
    let runs = a.h.state().recent_runs(10).await.unwrap();
    assert!(!runs.is_empty());
    assert!(html.contains("<td>products</td>"), "a products run row");
    assert!(html.contains(">ok</span>"), "an ok outcome badge");
    // Cursors: the status table says how far each one is behind.
    assert!(html.contains(" behind"), "cursor lag");
    // Jobs: the job and the instance running it.
    assert!(html.contains("catalog.delta.us") && html.contains("worker-7"));
    // Queues: one notification waiting for about three minutes.
    assert!(
        html.contains("notifications to process; oldest 3 min old"),
        "inbox depth and age"
    );
    // Rejected records: each open one with its id, a replay button each and "replay all".
    let open = a.open_products().await;
    assert!(!open.is_empty());
    for r in &open {
        assert!(
            html.contains(&format!("action=\"/admin/rejected/{}/replay\"", r.id)),
            "replay button of record {}",
            r.id
        );
        assert!(html.contains(&r.ct_id), "record {}", r.ct_id);
    }
    assert!(html.contains("action=\"/admin/rejected/replay-all\""));
    assert!(html.contains("masterVariant.prices"), "the rejected field");
    // Configuration: values and variable names, never a secret.
    assert!(html.contains("test-shop"), "project key");
    assert!(html.contains("KEY_US") && html.contains("KEY_EU"));
    assert!(html.contains("CT_OMNISEND_WEBHOOK_TOKEN"));
    for secret in [CLIENT_SECRET, US_KEY, EU_KEY, PASSWORD, support::CLIENT_ID] {
        assert!(
            !html.contains(secret),
            "the page shows the secret {secret:?}"
        );
    }
    assert!(!html.contains(a.h.store.url()), "the state store URL");
    // Footer.
    assert!(html.contains(concat!("ct-omnisend ", env!("CARGO_PKG_VERSION"))));
    assert!(html.contains("test-instance-1"));
}

#[tokio::test]
async fn a_hostile_rejection_reason_is_escaped() {
    let a = start(Some(PASSWORD)).await;
    let html = a.page().await;
    assert!(!html.contains(HOSTILE), "the reason is not escaped");
    assert!(!html.contains("<script"), "no script element at all");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;")
            || html.contains("&lt;script&gt;alert('owned')&lt;/script&gt;"),
        "the reason is shown, escaped"
    );
}

#[tokio::test]
async fn a_replay_without_the_form_token_or_from_another_site_is_refused_and_changes_nothing() {
    let a = start(Some(PASSWORD)).await;
    let csrf = a.csrf().await;
    let r = a.open_products().await.remove(0);
    let path = format!("/admin/rejected/{}/replay", r.id);
    for req in [
        a.post(&path),
        a.post(&path).body("csrf=0123456789abcdef"),
        a.post("/admin/rejected/replay-all"),
        a.post(&path)
            .header("origin", "https://evil.example")
            .body(format!("{CSRF_FIELD}={csrf}")),
        a.post(&path)
            .header("sec-fetch-site", "cross-site")
            .body(format!("{CSRF_FIELD}={csrf}")),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    // Unauthenticated: 401 even with the token.
    let resp = a
        .http
        .post(format!("{}{path}", a.base))
        .body(format!("{CSRF_FIELD}={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let after = a.record(r.id).await;
    assert_eq!(after.attempts, r.attempts, "not re-attempted");
    assert!(after.resolved_at.is_none());
}

#[tokio::test]
async fn a_replay_with_the_form_token_resolves_a_fixed_record_and_redirects_with_the_result() {
    let a = start(Some(PASSWORD)).await;
    let csrf = a.csrf().await;
    let no_price = a
        .open_products()
        .await
        .into_iter()
        .find(|r| r.field.as_deref() == Some("masterVariant.prices"))
        .expect("a product without EUR price");
    a.h.ct.update_product(&no_price.ct_id, |p| {
        for side in ["current", "staged"] {
            let prices = p["masterData"][side]["masterVariant"]["prices"]
                .as_array_mut()
                .unwrap();
            prices.push(json!({"id": "fixed", "value": {"type": "centPrecision", "currencyCode": "EUR", "centAmount": 4599, "fractionDigits": 2}}));
        }
    });
    let resp = a
        .post(&format!("/admin/rejected/{}/replay", no_price.id))
        .header("origin", a.base.clone())
        .header("sec-fetch-site", "same-origin")
        .body(format!("{CSRF_FIELD}={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&resp),
        format!("/admin?replayed=1&resolved=1&id={}", no_price.id)
    );
    assert!(a.record(no_price.id).await.resolved_at.is_some());
    assert!(a.h.omnisend.product(EU_KEY, &no_price.ct_id).is_some());
    // The page after the redirect reports it; the record left the open list.
    let html = a
        .http
        .get(format!("{}{}", a.base, location(&resp)))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Replayed 1 record: 1 resolved."), "flash");
    assert!(!html.contains(&format!(
        "action=\"/admin/rejected/{}/replay\"",
        no_price.id
    )));

    // Replaying it again: already resolved, said so.
    let resp = a
        .post(&format!("/admin/rejected/{}/replay", no_price.id))
        .body(format!("{CSRF_FIELD}={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&resp),
        format!("/admin?error=resolved&id={}", no_price.id)
    );
}

#[tokio::test]
async fn replay_all_re_attempts_every_open_record_and_reports_how_many_are_still_rejected() {
    let a = start(Some(PASSWORD)).await;
    let csrf = a.csrf().await;
    let before = a.open_products().await;
    assert!(!before.is_empty());
    let resp = a
        .post("/admin/rejected/replay-all")
        .body(format!("{CSRF_FIELD}={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = location(&resp);
    assert!(to.starts_with("/admin?replayed="), "{to}");
    // Nothing was fixed: every product record was tried again and is still open.
    for r in before {
        let after = a.record(r.id).await;
        assert!(after.resolved_at.is_none(), "{after:?}");
        assert_eq!(
            after.attempts,
            r.attempts + 1,
            "record {} re-attempted",
            r.id
        );
    }
    let html = a
        .http
        .get(format!("{}{to}", a.base))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("still rejected."), "flash");
}
