//! Client configuration.

use std::time::Duration;

use secrecy::SecretString;

/// Default base URL of the dated (2026-03-15) Omnisend API.
pub const DEFAULT_API_URL: &str = "https://api.omnisend.com/api";
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of HTTP attempts per call (first attempt included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// Default pause between batch status poll rounds.
pub const DEFAULT_BATCH_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Default `origin` sent with batches.
pub const DEFAULT_ORIGIN: &str = "ct-omnisend";

/// Settings of an [`crate::OmnisendClient`]. `Debug` redacts the API key.
#[derive(Clone, Debug)]
pub struct OmnisendConfig {
    /// Base URL including the `/api` path, e.g. `https://api.omnisend.com/api` (default) or an
    /// emulator's base URL. A trailing slash is ignored.
    pub api_url: String,
    /// The brand's API key, sent as `Authorization: Omnisend-API-Key <key>`.
    pub api_key: SecretString,
    /// Timeout of one HTTP attempt (default 30 s).
    pub timeout: Duration,
    /// HTTP attempts per call, first attempt included (default 6; values below 1 mean 1).
    pub max_attempts: u32,
    /// Pause between poll rounds of [`crate::OmnisendClient::wait_batches`] (default 2 s).
    pub batch_poll_interval: Duration,
    /// `origin` recorded on batches created by this client (default `ct-omnisend`).
    pub origin: String,
    /// Take rate permits ahead of ordinary clients sharing the rate controller
    /// ([`crate::RateController::acquire_priority`]; default `false`): for real-time events.
    pub priority: bool,
}

impl OmnisendConfig {
    /// A configuration with every default and the given API key.
    pub fn new(api_key: impl Into<String>) -> Self {
        OmnisendConfig {
            api_url: DEFAULT_API_URL.to_owned(),
            api_key: SecretString::from(api_key.into()),
            timeout: DEFAULT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            batch_poll_interval: DEFAULT_BATCH_POLL_INTERVAL,
            origin: DEFAULT_ORIGIN.to_owned(),
            priority: false,
        }
    }

    /// The same configuration with another base URL (e.g. an emulator's).
    pub fn with_api_url(mut self, api_url: impl Into<String>) -> Self {
        self.api_url = api_url.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_does_not_contain_the_key() {
        let config = OmnisendConfig::new("super-secret-key-123");
        let text = format!("{config:?}");
        assert!(!text.contains("super-secret-key-123"), "{text}");
        assert_eq!(config.api_url, DEFAULT_API_URL);
        assert_eq!(config.max_attempts, 6);
    }
}
