//! ct-omnisend's domain: configuration, pure mapping, the state store and the sync engine.
//! The two API crates (`commercetools`, `omnisend`) meet only here.

pub mod admin;
pub mod app;
pub mod budget;
pub mod config;
pub mod consent;
pub mod events;
pub mod identity;
pub mod ingest;
pub mod mapping;
pub mod recovery;
pub mod replay;
pub mod schedule;
pub mod serve;
pub mod store;
pub mod subscriptions;
pub mod sync;
pub mod telemetry;
