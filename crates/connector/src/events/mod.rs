//! Real-time events (issue 4): from stored notifications to Omnisend events, once each.
//!
//! ```text
//! webhook / storefront ──► inbox ──► process ──► outbox (+ facts, versions) ──► deliver ──► Omnisend
//!        (ingest)        (durable)   (re-read,     (one transaction)          (lease, rate,
//!                                     map, diff)                                retry, batches)
//! ```
//!
//! * [`process`]: inbox → outbox, stale notifications dropped, causal order per order, cart
//!   diffs against the last snapshot.
//! * [`deliver`]: outbox → Omnisend, single requests or `/batches` under backlog, backoff with
//!   full jitter, rejected records when Omnisend refuses or the retry horizon passes.
//! * [`storefront`]: `POST /events/storefront`.

pub mod deliver;
pub mod process;
pub mod storefront;
