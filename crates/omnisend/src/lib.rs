//! Client for the Omnisend API, version 2026-03-15 (`https://api.omnisend.com/api`).
//!
//! * [`models`]: request and response bodies of the catalog and batch endpoints, with limits.
//! * [`contacts`]: the contact request body (`ContactRequest`).
//! * [`OmnisendClient`]: products, categories, batches, contacts and events over one
//!   `reqwest::Client`, with retries ([`retry`]) and per-brand rate control ([`rate`]).
//! * [`problem`]: RFC 9457 problem bodies; [`OmnisendError`]: what a call can fail with.
//! * `contract` (feature `contract`): the official OpenAPI schemas as JSON Schema validators,
//!   for contract tests.
//!
//! Every request carries `Authorization: Omnisend-API-Key <key>`, `Omnisend-Version: 2026-03-15`,
//! `Content-Type: application/json` and `User-Agent: ct-omnisend/<version>`, and takes one permit
//! from the shared [`RateController`] per attempt.

#![warn(missing_docs)]

pub mod batches;
pub mod client;
pub mod config;
pub mod contacts;
#[cfg(feature = "contract")]
pub mod contract;
pub mod error;
pub mod models;
pub mod problem;
pub mod rate;
pub mod retry;

pub use client::{Deleted, OmnisendClient, SendGuard, Upserted};
pub use config::OmnisendConfig;
pub use error::OmnisendError;
pub use models::BatchCreated;
pub use problem::{FieldError, Problem};
pub use rate::{BudgetDecision, RateController, SharedBudget};
pub use retry::{RetryAction, classify_status, classify_transport};

/// The Omnisend API version this crate speaks, sent as the `Omnisend-Version` header.
pub const API_VERSION: &str = "2026-03-15";

/// The `User-Agent` of every request: `ct-omnisend/<crate version>`.
pub const USER_AGENT: &str = concat!("ct-omnisend/", env!("CARGO_PKG_VERSION"));
