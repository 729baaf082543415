//! commercetools HTTP API client and the models ct-omnisend reads.
//!
//! * [`CtClient`]: authenticated, retrying requests against one project ([`client`]).
//! * [`CtConfig`]: connection settings ([`config`]).
//! * [`Pager`]: keyset pagination, full and delta ([`paging`]).
//! * [`CtError`]: typed errors that never contain credentials ([`error`]).
//! * [`models`], [`money`], [`localized`], [`price`]: resource models and price selection.
//! * [`subscription`]: Subscriptions (models, create/update/delete by key).

#![warn(missing_docs)]

mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod localized;
pub mod models;
pub mod money;
pub mod paging;
pub mod price;
pub mod retry;
pub mod subscription;

pub use client::CtClient;
pub use config::CtConfig;
pub use error::{CtError, ErrorObject};
pub use localized::LocalizedString;
pub use money::TypedMoney;
pub use paging::{DeltaPosition, Keyed, PageMode, Pager, format_watermark};
