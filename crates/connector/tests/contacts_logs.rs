//! No email or phone reaches a log line, at any level. Its own test binary: the capture is a
//! thread-local subscriber, and tests of other binaries running alongside cannot interfere.

mod support;

use std::sync::{Arc, Mutex};

use emulators::customers as shopgen;
use serde_json::json;
use support::shop::*;

/// A `MakeWriter` collecting every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_email_or_phone_appears_unmasked_in_any_log_line_at_any_level() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests of this binary may have run (on other threads, without a subscriber) and left
    // callsites cached as uninteresting; recompute with this one in place.
    tracing::callsite::rebuild_interest_cache();
    let shop = Shop::start().await;
    shop.sync(false).await;
    // A delta with an email change and a deletion logs too.
    shop.ct
        .update_customer(&shopgen::customer_id(SEED, 1), |c| {
            c["email"] = json!("Moved.Person@Example.com")
        });
    shop.ct.delete_customer(&shopgen::customer_id(SEED, 14));
    shop.sync(false).await;
    drop(_guard);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines().count() > 100,
        "the capture saw the run's logs ({} lines)",
        text.lines().count()
    );
    let mut secrets: Vec<String> = vec!["moved.person@example.com".into()];
    for n in 0..CUSTOMERS {
        secrets.push(shopgen::raw_email(n).trim().to_owned());
        secrets.extend(shopgen::normalised_email(n));
        secrets.extend(shopgen::expected_e164(n));
        secrets.extend(shopgen::raw_phone(n).filter(|p| p.len() > 6));
    }
    for i in 0..GUEST_ORDERS {
        secrets.push(shopgen::guest_order_email(i, CUSTOMERS).to_lowercase());
    }
    let lower = text.to_lowercase();
    for s in secrets {
        assert!(
            !lower.contains(&s.to_lowercase()),
            "{s:?} appears in the logs:\n{}",
            text.lines()
                .find(|l| l.to_lowercase().contains(&s.to_lowercase()))
                .unwrap_or_default()
        );
    }
}
