//! Connection settings of the commercetools client.

use std::time::Duration;

use secrecy::SecretString;

/// The regions of the commercetools HTTP API (`api.{region}.commercetools.com`).
pub const REGIONS: [&str; 5] = [
    "us-central1.gcp",
    "us-east-2.aws",
    "europe-west1.gcp",
    "eu-central-1.aws",
    "australia-southeast1.gcp",
];

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout applied to every request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of retries of a transient failure.
pub const DEFAULT_MAX_RETRIES: u32 = 5;

/// Connection settings. Both URLs are explicit; [`CtConfig::region_urls`] gives defaults.
#[derive(Clone, Debug)]
pub struct CtConfig {
    /// Project key (first path segment of every API call).
    pub project_key: String,
    /// API base URL, e.g. `https://api.europe-west1.gcp.commercetools.com` (trailing slash optional).
    pub api_url: String,
    /// Auth base URL, e.g. `https://auth.europe-west1.gcp.commercetools.com` (trailing slash optional).
    pub auth_url: String,
    /// API client id.
    pub client_id: String,
    /// API client secret (never logged or shown in errors).
    pub client_secret: SecretString,
    /// Space-separated scopes to request; `None` omits `scope` (token has all client scopes).
    pub scopes: Option<String>,
    /// Per-request timeout (default 30 s); the connect timeout is 5 s.
    pub timeout: Duration,
    /// Retries of a transient failure after the first attempt (default 5).
    pub max_retries: u32,
}

impl CtConfig {
    /// Settings with the default timeout and retry count.
    pub fn new(
        project_key: impl Into<String>,
        api_url: impl Into<String>,
        auth_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            project_key: project_key.into(),
            api_url: api_url.into(),
            auth_url: auth_url.into(),
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            scopes: None,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }

    /// `(api_url, auth_url)` of a commercetools region (`europe-west1.gcp`, …), or `None`
    /// for an unknown region. See [`REGIONS`].
    pub fn region_urls(region: &str) -> Option<(String, String)> {
        let region = region.trim();
        REGIONS.iter().find(|r| **r == region).map(|r| {
            (
                format!("https://api.{r}.commercetools.com"),
                format!("https://auth.{r}.commercetools.com"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_urls_are_known_for_every_region_and_none_otherwise() {
        assert_eq!(
            CtConfig::region_urls("europe-west1.gcp"),
            Some((
                "https://api.europe-west1.gcp.commercetools.com".to_string(),
                "https://auth.europe-west1.gcp.commercetools.com".to_string()
            ))
        );
        for r in REGIONS {
            assert!(CtConfig::region_urls(r).is_some());
        }
        assert_eq!(CtConfig::region_urls("mars-1.gcp"), None);
    }

    #[test]
    fn debug_output_does_not_contain_the_secret() {
        let c = CtConfig::new("p", "http://a", "http://b", "id", "s3cr3t-value");
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
    }
}
