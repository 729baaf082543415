//! Typed configuration.
//!
//! Two layers, parse-don't-validate: [`RawSettings`] is what the TOML file and the environment
//! say (serde, unknown keys refused); [`Settings::from_raw`] checks every value and builds the
//! typed [`Settings`] the rest of the connector uses, or fails naming the offending key.
//! Precedence: command-line flag > environment variable > config file > default.
//! `docs/configuration.md` documents every key; a test keeps it in step with this file.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Environment variables of the interface contract.
pub mod env {
    /// commercetools project key.
    pub const CTP_PROJECT_KEY: &str = "CTP_PROJECT_KEY";
    /// commercetools API client id.
    pub const CTP_CLIENT_ID: &str = "CTP_CLIENT_ID";
    /// commercetools API client secret.
    pub const CTP_CLIENT_SECRET: &str = "CTP_CLIENT_SECRET";
    /// commercetools API URL.
    pub const CTP_API_URL: &str = "CTP_API_URL";
    /// commercetools auth URL.
    pub const CTP_AUTH_URL: &str = "CTP_AUTH_URL";
    /// Space-separated scopes (optional).
    pub const CTP_SCOPES: &str = "CTP_SCOPES";
    /// Omnisend API key of the default brand.
    pub const OMNISEND_API_KEY: &str = "OMNISEND_API_KEY";
    /// Omnisend API base URL.
    pub const OMNISEND_API_URL: &str = "OMNISEND_API_URL";
    /// Config file path.
    pub const CT_OMNISEND_CONFIG: &str = "CT_OMNISEND_CONFIG";
    /// State store URL.
    pub const CT_OMNISEND_STATE: &str = "CT_OMNISEND_STATE";
    /// Webhook shared secret (`Authorization: Bearer T` or `?token=T`).
    pub const CT_OMNISEND_WEBHOOK_TOKEN: &str = "CT_OMNISEND_WEBHOOK_TOKEN";
    /// Storefront event API token (`Authorization: Bearer T`).
    pub const CT_OMNISEND_STOREFRONT_TOKEN: &str = "CT_OMNISEND_STOREFRONT_TOKEN";
}

/// Default commercetools region when no URL is configured.
pub const DEFAULT_REGION: &str = "europe-west1.gcp";
/// Default Omnisend API base URL.
pub const DEFAULT_OMNISEND_API_URL: &str = "https://api.omnisend.com/api";
/// Default state store.
pub const DEFAULT_STATE_URL: &str = "sqlite://ct-omnisend.db";

/// A configuration error, always naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed (syntax, unknown key, wrong type).
    #[error("config: {0}")]
    Parse(String),
    /// A value is missing or invalid.
    #[error("config: `{key}`: {reason}")]
    Invalid {
        /// Dotted key, e.g. `stores[1].locales[0]`.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

mod contacts;
mod events;
mod schedule;
mod subscriptions;
pub use contacts::{
    AddressKind, ChannelConsentSettings, ContactsSettings, CustomFieldSettings, PhoneSource,
    PrimaryIdentifier, RESERVED_PROPERTIES, RawChannelConsent, RawConsentRule, RawContacts,
    RawCustomFields, ReadFrom, property_name,
};
pub use events::{
    AdminSettings, DEFAULT_ADMIN_PASSWORD_ENV, EventsSettings, GOOGLE_JWKS_URL, OidcConfig,
    RawAdmin, RawEvents, RawOidc, RawServer, ServerSettings,
};
pub use schedule::{CronSchedule, RawSchedule, ScheduleSettings};
pub use subscriptions::{
    AwsAuth, DEFAULT_KEY_PREFIX, DestinationSettings, RawDestination, RawSubscriptions,
    SubscriptionFormat, SubscriptionsSettings,
};

// ---------------------------------------------------------------------------------------------
// Raw layer: exactly the TOML shape.

/// `[commercetools]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommercetools {
    /// Project key (env `CTP_PROJECT_KEY`).
    pub project_key: Option<String>,
    /// API URL (env `CTP_API_URL`); default from `region`.
    pub api_url: Option<String>,
    /// Auth URL (env `CTP_AUTH_URL`); default from `region`.
    pub auth_url: Option<String>,
    /// Region used for default URLs, e.g. `europe-west1.gcp`.
    pub region: Option<String>,
    /// Client id (env `CTP_CLIENT_ID`).
    pub client_id: Option<String>,
    /// Client secret (env `CTP_CLIENT_SECRET`; prefer the environment).
    pub client_secret: Option<String>,
    /// Scopes (env `CTP_SCOPES`).
    pub scopes: Option<String>,
    /// Page size for queries, 1–500 (default 500).
    pub page_size: Option<u32>,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: Option<u64>,
}

/// `[omnisend]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOmnisend {
    /// Base URL (env `OMNISEND_API_URL`).
    pub api_url: Option<String>,
    /// Request ceiling per brand per minute (default 360).
    pub requests_per_minute: Option<u32>,
    /// Requests that may go out back to back (default 5).
    pub burst: Option<u32>,
    /// Per-request timeout in seconds (default 30).
    pub timeout_secs: Option<u64>,
    /// Items per batch, 1–100 (default 100).
    pub batch_size: Option<usize>,
    /// Milliseconds between batch status polls (default 2000).
    pub batch_poll_interval_ms: Option<u64>,
    /// Attempts per request before giving up (default 6).
    pub max_attempts: Option<u32>,
}

/// `[state]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// `sqlite://PATH` or `postgres://…` (env `CT_OMNISEND_STATE`).
    pub url: Option<String>,
}

/// `[catalog]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    /// Variant attribute giving `vendor` (default `brand`).
    pub vendor_attribute: Option<String>,
    /// Variant attributes whose values become `tags` (default `["tags"]`).
    pub tag_attributes: Option<Vec<String>>,
    /// Attributes appended to a variant's title (default `["color", "size"]`).
    pub variant_title_attributes: Option<Vec<String>>,
    /// What an unpublished product becomes: `delete` (default) or `not_available`.
    pub unpublished: Option<String>,
    /// Seconds a delta run re-reads before its cursor (default 60).
    pub delta_overlap_secs: Option<u64>,
}

/// `[[stores]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// commercetools store key, or `default` for the project-wide route.
    pub key: Option<String>,
    /// Locale fallback chain.
    pub locales: Option<Vec<String>>,
    /// ISO 4217 currency.
    pub currency: Option<String>,
    /// ISO 3166 country for price selection.
    pub country: Option<String>,
    /// Distribution channel key for price selection.
    pub price_channel: Option<String>,
    /// Supply channel key for availability.
    pub supply_channel: Option<String>,
    /// Product URL template.
    pub product_url: Option<String>,
    /// Cart recovery URL template (`{token}`).
    pub cart_recovery_url: Option<String>,
    /// Name of the env var holding this brand's Omnisend API key.
    pub omnisend_api_key_env: Option<String>,
    /// Contacts of this store are keyed by `email` (default) or `phone`.
    pub primary_identifier: Option<String>,
}

/// The whole file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// `[commercetools]`.
    #[serde(default)]
    pub commercetools: RawCommercetools,
    /// `[omnisend]`.
    #[serde(default)]
    pub omnisend: RawOmnisend,
    /// `[state]`.
    #[serde(default)]
    pub state: RawState,
    /// `[catalog]`.
    #[serde(default)]
    pub catalog: RawCatalog,
    /// `[contacts]`.
    #[serde(default)]
    pub contacts: RawContacts,
    /// `[events]`.
    #[serde(default)]
    pub events: RawEvents,
    /// `[server]`.
    #[serde(default)]
    pub server: RawServer,
    /// `[schedule]`.
    #[serde(default)]
    pub schedule: RawSchedule,
    /// `[subscriptions]`.
    #[serde(default)]
    pub subscriptions: RawSubscriptions,
    /// `[[stores]]`.
    #[serde(default)]
    pub stores: Vec<RawStore>,
}

impl RawSettings {
    /// Reads a TOML file (if given) and applies the contract's environment variables on top.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::Parse(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let overrides = [
            ("commercetools.project_key", env::CTP_PROJECT_KEY),
            ("commercetools.client_id", env::CTP_CLIENT_ID),
            ("commercetools.client_secret", env::CTP_CLIENT_SECRET),
            ("commercetools.api_url", env::CTP_API_URL),
            ("commercetools.auth_url", env::CTP_AUTH_URL),
            ("commercetools.scopes", env::CTP_SCOPES),
            ("omnisend.api_url", env::OMNISEND_API_URL),
            ("state.url", env::CT_OMNISEND_STATE),
        ];
        for (key, var) in overrides {
            builder = builder
                .set_override_option(key, env(var).filter(|v| !v.is_empty()))
                .map_err(|e| ConfigError::Parse(e.to_string()))?;
        }
        let cfg = builder
            .build()
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.try_deserialize()
            .map_err(|e| ConfigError::Parse(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Typed layer.

/// A commercetools/IETF locale such as `en`, `en-US`, `de-DE`, `zh-Hans-CN`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Locale(String);

impl Locale {
    /// Parses a locale: a 2–3 letter lower-case language, then subtags of 2–8 letters/digits.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('-');
        let lang = parts.next()?;
        let lang_ok = (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase());
        let rest_ok = parts
            .all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        (lang_ok && rest_ok).then(|| Self(s.to_owned()))
    }
    /// As text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Locale {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Upper-case ISO 4217 currency code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CurrencyCode(String);

impl CurrencyCode {
    /// Three ASCII letters, normalised to upper case.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| Self(s.to_ascii_uppercase()))
    }
    /// As text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Upper-case ISO 3166-1 alpha-2 country code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CountryCode(String);

impl CountryCode {
    /// Two ASCII letters, normalised to upper case.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| Self(s.to_ascii_uppercase()))
    }
    /// As text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Placeholders a product URL template may use.
pub const URL_PLACEHOLDERS: &[&str] = &["slug", "locale", "key", "id", "sku"];

/// A checked URL template such as `https://shop.example.com/{locale}/p/{slug}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate(String);

impl UrlTemplate {
    /// Checks that the template is an absolute http(s) URL whose placeholders are all known.
    pub fn parse(s: &str, allowed: &[&str]) -> Result<Self, String> {
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in {s:?}"))?
                + open;
            let name = &rest[open + 1..close];
            if !allowed.contains(&name) {
                return Err(format!(
                    "unknown placeholder {{{name}}} (allowed: {})",
                    allowed.join(", ")
                ));
            }
            rest = &rest[close + 1..];
        }
        let probe = allowed
            .iter()
            .fold(s.to_owned(), |acc, p| acc.replace(&format!("{{{p}}}"), "x"));
        check_http_url(&probe)?;
        Ok(Self(s.to_owned()))
    }
    /// Whether `{name}` occurs.
    pub fn uses(&self, name: &str) -> bool {
        self.0.contains(&format!("{{{name}}}"))
    }
    /// Replaces each `{name}` with its percent-encoded value.
    pub fn render(&self, values: &[(&str, &str)]) -> String {
        let mut out = self.0.clone();
        for (name, value) in values {
            let placeholder = format!("{{{name}}}");
            if out.contains(&placeholder) {
                let encoded = percent_encoding::utf8_percent_encode(value, URL_SEGMENT).to_string();
                out = out.replace(&placeholder, &encoded);
            }
        }
        out
    }
    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters escaped in a URL path segment or query value.
const URL_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn check_http_url(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s).map_err(|e| format!("{s:?} is not a valid URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!("{s:?} is not an http(s) URL"));
    }
    Ok(u)
}

/// What happens to a product that is unpublished in commercetools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnpublishedPolicy {
    /// Remove it from Omnisend (default).
    Delete,
    /// Keep it with `status: notAvailable`.
    NotAvailable,
}

/// commercetools connection.
#[derive(Clone, Debug)]
pub struct CommercetoolsSettings {
    /// Project key.
    pub project_key: String,
    /// API base URL.
    pub api_url: String,
    /// Auth base URL.
    pub auth_url: String,
    /// Client id, when set.
    pub client_id: Option<String>,
    /// Client secret, when set.
    pub client_secret: Option<SecretString>,
    /// Scopes.
    pub scopes: Option<String>,
    /// Query page size.
    pub page_size: u32,
    /// Request timeout.
    pub timeout: Duration,
}

/// Omnisend connection and quota.
#[derive(Clone, Debug)]
pub struct OmnisendSettings {
    /// Base URL.
    pub api_url: String,
    /// Ceiling per brand per minute.
    pub requests_per_minute: u32,
    /// Small burst.
    pub burst: u32,
    /// Request timeout.
    pub timeout: Duration,
    /// Items per batch.
    pub batch_size: usize,
    /// Poll interval for batch status.
    pub batch_poll_interval: Duration,
    /// Attempts per request.
    pub max_attempts: u32,
}

/// Catalog mapping options (shared by all stores).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogSettings {
    /// Attribute giving `vendor`.
    pub vendor_attribute: Option<String>,
    /// Attributes giving `tags`.
    pub tag_attributes: Vec<String>,
    /// Attributes appended to variant titles.
    pub variant_title_attributes: Vec<String>,
    /// Unpublished products.
    pub unpublished: UnpublishedPolicy,
    /// Delta re-read window.
    pub delta_overlap: Duration,
}

/// One store route: a commercetools store to one Omnisend brand.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Store key (`default` = project-wide).
    pub key: String,
    /// Locale fallback chain.
    pub locales: Vec<Locale>,
    /// Currency.
    pub currency: CurrencyCode,
    /// Country for price selection.
    pub country: Option<CountryCode>,
    /// Distribution channel key.
    pub price_channel: Option<String>,
    /// Supply channel key.
    pub supply_channel: Option<String>,
    /// Product URL template.
    pub product_url: UrlTemplate,
    /// Cart recovery URL template.
    pub cart_recovery_url: Option<UrlTemplate>,
    /// Env var name holding the brand's API key (routes naming the same variable are one
    /// brand: their contacts are merged).
    pub omnisend_api_key_env: String,
    /// Identifier contacts are keyed by.
    pub primary_identifier: PrimaryIdentifier,
}

/// One Omnisend brand: the store routes sending with one API key variable.
#[derive(Clone, Debug)]
pub struct Brand<'a> {
    /// The API key variable's name (the brand's id in the state store).
    pub id: String,
    /// Its routes, in configuration order.
    pub stores: Vec<&'a StoreSettings>,
}

impl Brand<'_> {
    /// The route a commercetools store key belongs to (`None` = global customer → `default`).
    pub fn route_for(&self, store_key: Option<&str>) -> Option<&StoreSettings> {
        let key = store_key.unwrap_or(DEFAULT_ROUTE);
        self.stores.iter().copied().find(|s| s.key == key)
    }

    /// The primary identifier (the same for all its routes; checked at load).
    pub fn primary_identifier(&self) -> PrimaryIdentifier {
        self.stores
            .first()
            .map_or(PrimaryIdentifier::Email, |s| s.primary_identifier)
    }
}

/// The route key of global (store-less) customers, orders and carts.
pub const DEFAULT_ROUTE: &str = "default";

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// commercetools.
    pub commercetools: CommercetoolsSettings,
    /// Omnisend.
    pub omnisend: OmnisendSettings,
    /// State store URL.
    pub state_url: String,
    /// Catalog mapping.
    pub catalog: CatalogSettings,
    /// Contacts mapping.
    pub contacts: ContactsSettings,
    /// Real-time events.
    pub events: EventsSettings,
    /// `serve`.
    pub server: ServerSettings,
    /// `serve`'s scheduled jobs.
    pub schedule: ScheduleSettings,
    /// The commercetools Subscriptions `subscriptions install` provisions.
    pub subscriptions: SubscriptionsSettings,
    /// Store routes.
    pub stores: Vec<StoreSettings>,
}

impl Settings {
    /// Loads file + environment and checks everything.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_raw(RawSettings::load(path, env)?)
    }

    /// Checks a raw configuration.
    pub fn from_raw(raw: RawSettings) -> Result<Self, ConfigError> {
        let ct = raw.commercetools;
        let project_key = ct
            .project_key
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                invalid(
                    "commercetools.project_key",
                    format!("is required (or set {})", env::CTP_PROJECT_KEY),
                )
            })?;
        if !project_key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "commercetools.project_key",
                format!("{project_key:?} may only contain a-z, 0-9, - and _"),
            ));
        }
        let region = ct.region.unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let api_url = url_or_default(ct.api_url, "commercetools.api_url", || {
            format!("https://api.{region}.commercetools.com")
        })?;
        let auth_url = url_or_default(ct.auth_url, "commercetools.auth_url", || {
            format!("https://auth.{region}.commercetools.com")
        })?;
        let page_size = ct.page_size.unwrap_or(500);
        if !(1..=500).contains(&page_size) {
            return Err(invalid(
                "commercetools.page_size",
                "must be between 1 and 500",
            ));
        }

        let os = raw.omnisend;
        let omnisend_api_url = url_or_default(os.api_url, "omnisend.api_url", || {
            DEFAULT_OMNISEND_API_URL.to_owned()
        })?;
        let requests_per_minute = os.requests_per_minute.unwrap_or(360);
        if requests_per_minute == 0 {
            return Err(invalid(
                "omnisend.requests_per_minute",
                "must be at least 1",
            ));
        }
        if requests_per_minute > 400 {
            tracing::warn!(
                requests_per_minute,
                "omnisend.requests_per_minute is above Omnisend's documented 400/min"
            );
        }
        let batch_size = os.batch_size.unwrap_or(100);
        if !(1..=100).contains(&batch_size) {
            return Err(invalid(
                "omnisend.batch_size",
                "must be between 1 and 100 (Omnisend's batch limit)",
            ));
        }

        let state_url = raw
            .state
            .url
            .unwrap_or_else(|| DEFAULT_STATE_URL.to_owned());
        if !(state_url.starts_with("sqlite:")
            || state_url.starts_with("postgres://")
            || state_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "state.url",
                format!(
                    "{:?}: use sqlite://PATH or postgres://…",
                    redact_password(&state_url)
                ),
            ));
        }

        let cat = raw.catalog;
        let unpublished = match cat.unpublished.as_deref().unwrap_or("delete") {
            "delete" => UnpublishedPolicy::Delete,
            "not_available" => UnpublishedPolicy::NotAvailable,
            other => {
                return Err(invalid(
                    "catalog.unpublished",
                    format!("{other:?}: expected \"delete\" or \"not_available\""),
                ));
            }
        };
        let catalog = CatalogSettings {
            vendor_attribute: match cat.vendor_attribute {
                Some(a) if a.is_empty() => None,
                Some(a) => Some(a),
                None => Some("brand".to_owned()),
            },
            tag_attributes: cat
                .tag_attributes
                .unwrap_or_else(|| vec!["tags".to_owned()]),
            variant_title_attributes: cat
                .variant_title_attributes
                .unwrap_or_else(|| vec!["color".to_owned(), "size".to_owned()]),
            unpublished,
            delta_overlap: Duration::from_secs(cat.delta_overlap_secs.unwrap_or(60)),
        };

        let contacts = ContactsSettings::from_raw(raw.contacts)?;
        let events = EventsSettings::from_raw(raw.events)?;
        let server = ServerSettings::from_raw(raw.server)?;
        let schedule = ScheduleSettings::from_raw(raw.schedule)?;
        let subscriptions = SubscriptionsSettings::from_raw(raw.subscriptions)?;

        if raw.stores.is_empty() {
            return Err(invalid(
                "stores",
                "at least one [[stores]] entry is required",
            ));
        }
        let mut keys = HashSet::new();
        let stores = raw
            .stores
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let store = store_from_raw(i, s)?;
                if !keys.insert(store.key.clone()) {
                    return Err(invalid(
                        format!("stores[{i}].key"),
                        format!("{:?} appears twice", store.key),
                    ));
                }
                Ok(store)
            })
            .collect::<Result<Vec<_>, _>>()?;
        for a in &stores {
            if let Some(b) = stores.iter().find(|b| {
                b.omnisend_api_key_env == a.omnisend_api_key_env
                    && b.primary_identifier != a.primary_identifier
            }) {
                return Err(invalid(
                    "stores.primary_identifier",
                    format!(
                        "stores {:?} and {:?} share the brand {} but key contacts differently \
                         ({} and {}); one brand has one primary identifier",
                        a.key,
                        b.key,
                        a.omnisend_api_key_env,
                        a.primary_identifier.as_str(),
                        b.primary_identifier.as_str()
                    ),
                ));
            }
        }

        Ok(Settings {
            commercetools: CommercetoolsSettings {
                project_key,
                api_url,
                auth_url,
                client_id: ct.client_id.filter(|s| !s.is_empty()),
                client_secret: ct
                    .client_secret
                    .filter(|s| !s.is_empty())
                    .map(SecretString::from),
                scopes: ct.scopes.filter(|s| !s.is_empty()),
                page_size,
                timeout: Duration::from_secs(ct.timeout_secs.unwrap_or(30)),
            },
            omnisend: OmnisendSettings {
                api_url: omnisend_api_url,
                requests_per_minute,
                burst: os.burst.unwrap_or(5).max(1),
                timeout: Duration::from_secs(os.timeout_secs.unwrap_or(30)),
                batch_size,
                batch_poll_interval: Duration::from_millis(
                    os.batch_poll_interval_ms.unwrap_or(2000),
                ),
                max_attempts: os.max_attempts.unwrap_or(6).max(1),
            },
            state_url,
            catalog,
            contacts,
            events,
            server,
            schedule,
            subscriptions,
            stores,
        })
    }

    /// The brands (routes grouped by `omnisend_api_key_env`), in configuration order. With
    /// `only`, just the brand holding that store.
    pub fn brands(&self, only: Option<&str>) -> Result<Vec<Brand<'_>>, ConfigError> {
        let selected = self.select_stores(only)?;
        let mut out: Vec<Brand<'_>> = Vec::new();
        for store in &self.stores {
            if !selected
                .iter()
                .any(|s| s.omnisend_api_key_env == store.omnisend_api_key_env)
            {
                continue;
            }
            match out.iter_mut().find(|b| b.id == store.omnisend_api_key_env) {
                Some(b) => b.stores.push(store),
                None => out.push(Brand {
                    id: store.omnisend_api_key_env.clone(),
                    stores: vec![store],
                }),
            }
        }
        Ok(out)
    }

    /// The stores selected by `--store` (all when `None`).
    pub fn select_stores(&self, only: Option<&str>) -> Result<Vec<&StoreSettings>, ConfigError> {
        match only {
            None => Ok(self.stores.iter().collect()),
            Some(k) => self
                .stores
                .iter()
                .find(|s| s.key == k)
                .map(|s| vec![s])
                .ok_or_else(|| invalid("--store", format!("no [[stores]] entry with key {k:?}"))),
        }
    }
}

/// The URL with any password replaced by `****` (for messages and logs).
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        Ok(_) => url.to_owned(),
        // Unparseable: hide whatever sits between `//` and `@`.
        Err(_) => match (url.find("//"), url.rfind('@')) {
            (Some(a), Some(b)) if a + 2 < b => format!("{}****{}", &url[..a + 2], &url[b..]),
            _ => url.to_owned(),
        },
    }
}

fn url_or_default(
    value: Option<String>,
    key: &str,
    default: impl FnOnce() -> String,
) -> Result<String, ConfigError> {
    let s = value
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(default);
    check_http_url(&s).map_err(|reason| invalid(key, reason))?;
    Ok(s.trim_end_matches('/').to_owned())
}

fn store_from_raw(i: usize, s: RawStore) -> Result<StoreSettings, ConfigError> {
    let k = |field: &str| format!("stores[{i}].{field}");
    let key = s
        .key
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| invalid(k("key"), "is required"))?;
    let primary_identifier = contacts::primary_from_raw(i, s.primary_identifier)?;
    let locales_raw = s.locales.filter(|l| !l.is_empty()).ok_or_else(|| {
        invalid(
            k("locales"),
            "needs at least one locale, e.g. [\"en-US\", \"en\"]",
        )
    })?;
    let locales = locales_raw
        .iter()
        .enumerate()
        .map(|(j, l)| {
            Locale::parse(l).ok_or_else(|| {
                invalid(
                    format!("stores[{i}].locales[{j}]"),
                    format!("{l:?} is not a locale (expected e.g. \"en\" or \"en-US\")"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let currency_raw = s
        .currency
        .ok_or_else(|| invalid(k("currency"), "is required, e.g. \"USD\""))?;
    let currency = CurrencyCode::parse(&currency_raw).ok_or_else(|| {
        invalid(
            k("currency"),
            format!("{currency_raw:?} is not an ISO 4217 code"),
        )
    })?;
    let country = s
        .country
        .map(|c| {
            CountryCode::parse(&c).ok_or_else(|| {
                invalid(
                    k("country"),
                    format!("{c:?} is not an ISO 3166-1 alpha-2 code"),
                )
            })
        })
        .transpose()?;
    let product_url_raw = s.product_url.ok_or_else(|| {
        invalid(
            k("product_url"),
            "is required, e.g. \"https://shop.example.com/{locale}/p/{slug}\"",
        )
    })?;
    let product_url = UrlTemplate::parse(&product_url_raw, URL_PLACEHOLDERS)
        .map_err(|r| invalid(k("product_url"), r))?;
    let cart_recovery_url = s
        .cart_recovery_url
        .map(|u| UrlTemplate::parse(&u, &["token"]).map_err(|r| invalid(k("cart_recovery_url"), r)))
        .transpose()?;
    let omnisend_api_key_env = s
        .omnisend_api_key_env
        .unwrap_or_else(|| env::OMNISEND_API_KEY.to_owned());
    if omnisend_api_key_env.is_empty()
        || !omnisend_api_key_env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(invalid(
            k("omnisend_api_key_env"),
            format!("{omnisend_api_key_env:?} is not an environment variable name"),
        ));
    }
    Ok(StoreSettings {
        key,
        locales,
        currency,
        country,
        price_channel: s.price_channel.filter(|c| !c.is_empty()),
        supply_channel: s.supply_channel.filter(|c| !c.is_empty()),
        product_url,
        cart_recovery_url,
        omnisend_api_key_env,
        primary_identifier,
    })
}

/// Bump when the catalog mapping code changes what it sends: the next run then refreshes fully.
pub const CATALOG_MAPPING_VERSION: u32 = 1;

impl StoreSettings {
    /// Fingerprint of everything that shapes this store's catalog payloads. A change makes the
    /// next run a full refresh.
    pub fn catalog_fingerprint(&self, catalog: &CatalogSettings) -> String {
        let text = format!(
            "v{CATALOG_MAPPING_VERSION}|{}|{:?}|{}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}",
            self.key,
            self.locales.iter().map(Locale::as_str).collect::<Vec<_>>(),
            self.currency.as_str(),
            self.country.as_ref().map(CountryCode::as_str),
            self.price_channel,
            self.supply_channel,
            self.product_url.as_str(),
            catalog.vendor_attribute,
            catalog.tag_attributes,
            catalog.variant_title_attributes,
            catalog.unpublished,
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::load(Some(&path), &|_| None)
    }

    const GOOD: &str = r#"
[commercetools]
project_key = "my-shop"
[[stores]]
key = "us"
locales = ["en-US", "en"]
currency = "usd"
product_url = "https://shop.example.com/{locale}/p/{slug}"
"#;

    #[test]
    fn a_minimal_file_gets_documented_defaults() {
        let s = load(GOOD).unwrap();
        assert_eq!(
            s.commercetools.api_url,
            "https://api.europe-west1.gcp.commercetools.com"
        );
        assert_eq!(s.omnisend.requests_per_minute, 360);
        assert_eq!(s.omnisend.api_url, DEFAULT_OMNISEND_API_URL);
        assert_eq!(s.state_url, DEFAULT_STATE_URL);
        assert_eq!(s.stores[0].currency.as_str(), "USD");
        assert_eq!(s.stores[0].omnisend_api_key_env, "OMNISEND_API_KEY");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load(&format!("{GOOD}\n[omnisend]\nrequests_per_minut = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("requests_per_minut"), "{err}");
    }

    #[test]
    fn missing_project_key_is_named() {
        let err = load(&GOOD.replace("project_key = \"my-shop\"", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("commercetools.project_key"), "{err}");
    }

    #[test]
    fn bad_url_is_named() {
        let err = load(&format!("{GOOD}\n[omnisend]\napi_url = \"not a url\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("omnisend.api_url"), "{err}");
    }

    #[test]
    fn bad_locale_is_named_with_its_index() {
        let err = load(&GOOD.replace("\"en-US\", \"en\"", "\"en-US\", \"en_GB\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stores[0].locales[1]") && err.contains("en_GB"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_state_url_is_named_without_its_password() {
        let err = load(&format!(
            "{GOOD}\n[state]\nurl = \"postgress://app:hunter2@db/x\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("state.url") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn unknown_url_placeholder_is_refused() {
        let err = load(&GOOD.replace("{slug}", "{handle}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stores[0].product_url") && err.contains("handle"),
            "{err}"
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, GOOD).unwrap();
        let env = |k: &str| match k {
            "CTP_PROJECT_KEY" => Some("other-shop".to_owned()),
            "CTP_API_URL" => Some("http://127.0.0.1:1".to_owned()),
            _ => None,
        };
        let s = Settings::load(Some(&path), &env).unwrap();
        assert_eq!(s.commercetools.project_key, "other-shop");
        assert_eq!(s.commercetools.api_url, "http://127.0.0.1:1");
    }

    #[test]
    fn fingerprint_changes_with_mapping_relevant_settings_only() {
        let s = load(GOOD).unwrap();
        let a = s.stores[0].catalog_fingerprint(&s.catalog);
        let mut other = s.stores[0].clone();
        other.omnisend_api_key_env = "OTHER".into();
        assert_eq!(a, other.catalog_fingerprint(&s.catalog));
        other.locales.reverse();
        assert_ne!(a, other.catalog_fingerprint(&s.catalog));
    }

    #[test]
    fn url_template_encodes_values() {
        let t =
            UrlTemplate::parse("https://x.example/{locale}/p/{slug}", URL_PLACEHOLDERS).unwrap();
        assert_eq!(
            t.render(&[("locale", "en-US"), ("slug", "a b/c")]),
            "https://x.example/en-US/p/a%20b%2Fc"
        );
    }
}
