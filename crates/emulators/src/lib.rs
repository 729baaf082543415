//! Local, in-process emulators of the two remote APIs the connector talks to:
//!
//! * [`CtEmulator`] — a commercetools HTTP API (OAuth client-credentials token endpoint, product
//!   projections, products, categories, stores, channels, product types, customers, customer
//!   groups, types, carts, orders, discount codes, messages, and the in-store customer/cart/order
//!   endpoints) with a real `where` predicate parser, sorting and paging, plus order and cart
//!   lifecycle operations that record the Messages commercetools emits, and a writable
//!   Subscriptions endpoint (create, update, delete with version checks).
//! * [`OmnisendEmulator`] — the Omnisend API version `2026-03-15` (products, product categories,
//!   batches, contacts, events) with spec validation, RFC 9457 problem errors, a sliding-window
//!   rate limiter and a request log.
//!
//! Both are real HTTP servers (axum on `127.0.0.1:0`), started with `start(config).await`, with
//! optional fault injection ([`Faults`]). They are test equipment for integration tests and the
//! engine of `ct-omnisend demo`; the [`seed`] module generates a deterministic shop catalog for
//! them and the [`customers`] module deterministic customers, guest orders and carts; the
//! [`orders`] module builds deterministic orders, carts, line items and discount codes, and
//! [`notify`] what a commercetools Subscription delivers (Platform and CloudEvents payloads,
//! the Pub/Sub push envelope).
//!
//! All timing uses [`tokio::time`], so tests may run under `tokio::time::pause()`.

pub mod commercetools;
pub mod customers;
pub mod faults;
pub mod notify;
pub mod omnisend;
pub mod orders;
pub mod seed;
mod util;

pub use commercetools::{CtEmulator, CtEmulatorConfig};
pub use faults::Faults;
pub use omnisend::{LoggedRequest, OmnisendEmulator, OmnisendEmulatorConfig};
