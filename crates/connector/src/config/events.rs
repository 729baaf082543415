//! `[events]` (real-time events: mapping options, cart recovery, outbox delivery) and
//! `[server]` (`ct-omnisend serve`, with `[server.oidc]` and `[server.admin]`). Raw TOML shape
//! and checked settings.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// `[events]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    /// Send `ordered product` (one per order line) after each `placed order` (default false:
    /// each line costs a request of the brand's quota; see BENCHMARKS.md §6).
    pub ordered_product_events: Option<bool>,
    /// Send `started checkout` when a cart gains a shipping address (default false: the
    /// storefront API is the precise source).
    pub checkout_on_shipping_address: Option<bool>,
    /// Env var holding the cart-recovery signing secret (default
    /// `CT_OMNISEND_RECOVERY_SECRET`).
    pub recovery_secret_env: Option<String>,
    /// Hours a cart-recovery link stays valid (default 168).
    pub recovery_ttl_hours: Option<u64>,
    /// Seconds a delivery worker holds a claimed event before another may take it (default 30).
    pub lease_secs: Option<u64>,
    /// Hours an event is retried before it becomes a rejected record (default 24).
    pub max_age_hours: Option<u64>,
    /// First retry delay in milliseconds; doubles per attempt, with full jitter (default 1000).
    pub retry_base_ms: Option<u64>,
    /// Longest retry delay in seconds (default 300).
    pub retry_max_secs: Option<u64>,
    /// Due events beyond which delivery switches from single requests to `/batches`
    /// (default 20).
    pub batch_threshold: Option<usize>,
    /// Single requests in flight per instance (default 4).
    pub concurrency: Option<usize>,
    /// Days processed notifications and the bodies of sent events are kept (default 30; 0 =
    /// keep forever). The ledger itself (event ids and facts) is always kept.
    pub retention_days: Option<u64>,
}

/// `[server.oidc]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    /// Expected `aud` (the push endpoint URL or a configured audience). Required to enable.
    pub audience: Option<String>,
    /// Expected `email` of the push service account.
    pub service_account_email: Option<String>,
    /// JWKS URL (default Google's).
    pub jwks_url: Option<String>,
    /// Accepted issuers (default both Google forms).
    pub issuers: Option<Vec<String>>,
}

/// `[server.admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// User name of HTTP Basic authentication on `/admin` (default `admin`).
    pub username: Option<String>,
    /// Env var holding the admin password (default `CT_OMNISEND_ADMIN_PASSWORD`); unset = the
    /// admin page is off.
    pub password_env: Option<String>,
}

/// `[server]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Listen address (default `127.0.0.1:8080`; `--listen` and `PORT` override).
    pub listen: Option<String>,
    /// Seconds a request may take (default 10).
    pub request_timeout_secs: Option<u64>,
    /// Seconds to finish in-flight work after SIGTERM/SIGINT (default 10).
    pub shutdown_grace_secs: Option<u64>,
    /// `/readyz` answers 503 while a sync cursor is older than this many seconds, when delta
    /// runs are scheduled (default 86400; 0 = not checked).
    pub ready_max_cursor_age_secs: Option<u64>,
    /// Pub/Sub push OIDC verification (in addition to the webhook token).
    #[serde(default)]
    pub oidc: Option<RawOidc>,
    /// The admin page (`GET /admin`).
    #[serde(default)]
    pub admin: Option<RawAdmin>,
}

/// Checked `[events]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsSettings {
    /// `ordered product` events.
    pub ordered_product_events: bool,
    /// `started checkout` on a shipping address.
    pub checkout_on_shipping_address: bool,
    /// Env var of the recovery secret.
    pub recovery_secret_env: String,
    /// Recovery link lifetime.
    pub recovery_ttl: Duration,
    /// Claim lease.
    pub lease: Duration,
    /// Retry horizon.
    pub max_age: Duration,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Backlog that switches delivery to `/batches`.
    pub batch_threshold: usize,
    /// Single requests in flight.
    pub concurrency: usize,
    /// How long processed notifications and sent event bodies are kept (`None` = forever).
    pub retention: Option<Duration>,
}

/// Checked `[server.oidc]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcConfig {
    /// Expected audience.
    pub audience: String,
    /// Expected service account.
    pub service_account_email: Option<String>,
    /// JWKS URL.
    pub jwks_url: String,
    /// Accepted issuers.
    pub issuers: Vec<String>,
}

/// Default env var of the admin password.
pub const DEFAULT_ADMIN_PASSWORD_ENV: &str = "CT_OMNISEND_ADMIN_PASSWORD";

/// Checked `[server.admin]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminSettings {
    /// User name of HTTP Basic authentication.
    pub username: String,
    /// Env var holding the password (the page is off while it is unset or empty).
    pub password_env: String,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            username: "admin".into(),
            password_env: DEFAULT_ADMIN_PASSWORD_ENV.into(),
        }
    }
}

impl AdminSettings {
    /// Checks `[server.admin]`.
    pub fn from_raw(raw: RawAdmin) -> Result<Self, ConfigError> {
        let d = Self::default();
        let username = raw.username.unwrap_or(d.username);
        if username.is_empty() || username.contains(':') || username.chars().any(char::is_control) {
            return Err(invalid(
                "server.admin.username",
                "must be a non-empty name without `:` or control characters",
            ));
        }
        let password_env = raw.password_env.unwrap_or(d.password_env);
        if password_env.is_empty()
            || !password_env
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(invalid(
                "server.admin.password_env",
                format!("{password_env:?} is not an environment variable name"),
            ));
        }
        Ok(Self {
            username,
            password_env,
        })
    }
}

/// Checked `[server]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// Listen address.
    pub listen: String,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// Oldest acceptable sync cursor for readiness (`None` = not checked).
    pub ready_max_cursor_age: Option<Duration>,
    /// OIDC verification, when configured.
    pub oidc: Option<OidcConfig>,
    /// The admin page.
    pub admin: AdminSettings,
}

/// Google's JWKS for its OIDC ID tokens.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

fn positive(key: &str, v: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match v {
        Some(0) => Err(invalid(key, "must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

impl EventsSettings {
    /// Checks `[events]`.
    pub fn from_raw(raw: RawEvents) -> Result<Self, ConfigError> {
        let recovery_secret_env = raw
            .recovery_secret_env
            .unwrap_or_else(|| "CT_OMNISEND_RECOVERY_SECRET".into());
        if recovery_secret_env.trim().is_empty() {
            return Err(invalid(
                "events.recovery_secret_env",
                "must name an environment variable",
            ));
        }
        let retry_base = positive("events.retry_base_ms", raw.retry_base_ms, 1000)?;
        let retry_max = positive("events.retry_max_secs", raw.retry_max_secs, 300)?;
        if retry_base > retry_max * 1000 {
            return Err(invalid(
                "events.retry_base_ms",
                "must not exceed events.retry_max_secs",
            ));
        }
        let batch_threshold = raw.batch_threshold.unwrap_or(20);
        let concurrency = raw.concurrency.unwrap_or(4);
        if concurrency == 0 || concurrency > 64 {
            return Err(invalid("events.concurrency", "must be between 1 and 64"));
        }
        Ok(Self {
            ordered_product_events: raw.ordered_product_events.unwrap_or(false),
            checkout_on_shipping_address: raw.checkout_on_shipping_address.unwrap_or(false),
            recovery_secret_env,
            recovery_ttl: Duration::from_secs(
                3600 * positive("events.recovery_ttl_hours", raw.recovery_ttl_hours, 168)?,
            ),
            lease: Duration::from_secs(positive("events.lease_secs", raw.lease_secs, 30)?),
            max_age: Duration::from_secs(
                3600 * positive("events.max_age_hours", raw.max_age_hours, 24)?,
            ),
            retry_base: Duration::from_millis(retry_base),
            retry_max: Duration::from_secs(retry_max),
            batch_threshold,
            concurrency,
            retention: match raw.retention_days.unwrap_or(30) {
                0 => None,
                days => Some(Duration::from_secs(days * 86_400)),
            },
        })
    }
}

impl ServerSettings {
    /// Checks `[server]`.
    pub fn from_raw(raw: RawServer) -> Result<Self, ConfigError> {
        let listen = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        if listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "server.listen",
                format!("{listen:?} is not an address such as 127.0.0.1:8080"),
            ));
        }
        let oidc = match raw.oidc {
            None => None,
            Some(o) => {
                let audience = o
                    .audience
                    .filter(|a| !a.trim().is_empty())
                    .ok_or_else(|| invalid("server.oidc.audience", "is required"))?;
                let jwks_url = o.jwks_url.unwrap_or_else(|| GOOGLE_JWKS_URL.into());
                url::Url::parse(&jwks_url)
                    .map_err(|e| invalid("server.oidc.jwks_url", e.to_string()))?;
                let issuers = o.issuers.unwrap_or_else(|| {
                    vec![
                        "https://accounts.google.com".into(),
                        "accounts.google.com".into(),
                    ]
                });
                if issuers.is_empty() {
                    return Err(invalid("server.oidc.issuers", "must not be empty"));
                }
                Some(OidcConfig {
                    audience,
                    service_account_email: o.service_account_email,
                    jwks_url,
                    issuers,
                })
            }
        };
        Ok(Self {
            listen,
            request_timeout: Duration::from_secs(positive(
                "server.request_timeout_secs",
                raw.request_timeout_secs,
                10,
            )?),
            shutdown_grace: Duration::from_secs(positive(
                "server.shutdown_grace_secs",
                raw.shutdown_grace_secs,
                10,
            )?),
            ready_max_cursor_age: match raw.ready_max_cursor_age_secs.unwrap_or(86_400) {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            oidc,
            admin: AdminSettings::from_raw(raw.admin.unwrap_or_default())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let e = EventsSettings::from_raw(RawEvents::default()).unwrap();
        assert!(!e.ordered_product_events);
        assert!(!e.checkout_on_shipping_address);
        assert_eq!(e.recovery_ttl, Duration::from_secs(168 * 3600));
        assert_eq!(e.batch_threshold, 20);
        let s = ServerSettings::from_raw(RawServer::default()).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.oidc, None);
        assert_eq!(s.admin.username, "admin");
        assert_eq!(s.admin.password_env, "CT_OMNISEND_ADMIN_PASSWORD");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = EventsSettings::from_raw(RawEvents {
            concurrency: Some(0),
            ..RawEvents::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("events.concurrency"), "{e}");
        let s = ServerSettings::from_raw(RawServer {
            listen: Some("localhost".into()),
            ..RawServer::default()
        })
        .unwrap_err();
        assert!(s.to_string().contains("server.listen"), "{s}");
        let o = ServerSettings::from_raw(RawServer {
            oidc: Some(RawOidc::default()),
            ..RawServer::default()
        })
        .unwrap_err();
        assert!(o.to_string().contains("server.oidc.audience"), "{o}");
        for (raw, key) in [
            (
                RawAdmin {
                    username: Some("ad:min".into()),
                    ..RawAdmin::default()
                },
                "server.admin.username",
            ),
            (
                RawAdmin {
                    password_env: Some("NOT A NAME".into()),
                    ..RawAdmin::default()
                },
                "server.admin.password_env",
            ),
        ] {
            let a = ServerSettings::from_raw(RawServer {
                admin: Some(raw),
                ..RawServer::default()
            })
            .unwrap_err();
            assert!(a.to_string().contains(key), "{a}");
        }
    }
}
