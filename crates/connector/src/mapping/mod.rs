//! Pure mapping from commercetools models to Omnisend request bodies.

pub mod catalog;
pub mod contacts;
pub mod events;
pub mod text;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A record that cannot be mapped: never sent, never fatal, listed by `rejected list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// `product`, `category`, …
    pub entity: &'static str,
    /// commercetools id.
    pub id: String,
    /// The field at fault (commercetools naming).
    pub field: String,
    /// Why.
    pub reason: String,
}

impl Rejection {
    /// A rejection of `entity` `id` because of `field`.
    pub fn new(entity: &'static str, id: &str, field: &str, reason: impl Into<String>) -> Self {
        Self {
            entity,
            id: id.to_owned(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}: {}",
            self.entity, self.id, self.field, self.reason
        )
    }
}

/// Hex SHA-256 of a body's JSON serialization: equal payloads hash equal, so unchanged records
/// are skipped. Field order is fixed by the struct definitions.
pub fn payload_hash<T: Serialize>(body: &T) -> String {
    let mut hasher = Sha256::new();
    // Writing straight into the hasher avoids an intermediate buffer on the hot path.
    serde_json::to_writer(HashWriter(&mut hasher), body)
        .expect("serializing a mapped body cannot fail");
    hex::encode(hasher.finalize())
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
