//! Signed, expiring cart-recovery tokens: the `{token}` of a store's `cart_recovery_url`, sent
//! to Omnisend as the `abandonedCheckoutURL` of cart events so an email can bring the shopper
//! back to their cart. The storefront checks the token before restoring the cart; the format
//! and the check are specified in `docs/cart-recovery.md`.
//!
//! Format (version 1), all ASCII and URL-safe:
//!
//! ```text
//! v1.<cart id>.<store key>.<expiry>.<mac>
//! ```
//!
//! * `<cart id>`: the commercetools cart id; `<store key>`: the cart's store key, empty for a
//!   cart without a store. Both only use `A-Z a-z 0-9 _ -` (commercetools ids are UUIDs, keys
//!   match `^[A-Za-z0-9_-]+$`), so `.` separates unambiguously;
//! * `<expiry>`: Unix time in whole seconds (decimal digits); the token is valid while
//!   `now < expiry`;
//! * `<mac>`: base64url without padding of HMAC-SHA256(secret, `v1.<cart id>.<store
//!   key>.<expiry>`), i.e. of everything before the last `.`.
//!
//! Verification compares the MAC in constant time ([`hmac::Mac::verify_slice`]) before it
//! looks at the expiry, so a forged token never learns more than "invalid".

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::config::UrlTemplate;

type HmacSha256 = Hmac<Sha256>;

/// The token format version, the first field of every token.
pub const TOKEN_VERSION: &str = "v1";

/// Minimum secret length in bytes (256 bits, the HMAC-SHA256 output size).
pub const MIN_SECRET_LEN: usize = 32;

/// Default validity of a token in hours (`[events] recovery_ttl_hours`): one week.
pub const DEFAULT_TTL_HOURS: u32 = 168;

/// Longest token [`RecoveryToken::verify`] looks at; anything longer is malformed.
pub const MAX_TOKEN_LEN: usize = 1024;

/// Longest cart id or store key a token carries.
const MAX_FIELD_LEN: usize = 256;

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredCart {
    /// The commercetools cart id.
    pub cart_id: String,
    /// The cart's store key (`None` for a cart without a store).
    pub store_key: Option<String>,
    /// When the token stops being valid (whole seconds).
    pub expires_at: OffsetDateTime,
}

/// Why a token could not be made or was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("the cart recovery secret must be at least {MIN_SECRET_LEN} bytes long")]
    WeakSecret,
    /// A value to sign cannot be put in a token.
    #[error("cannot sign a cart recovery token: {field} {reason}")]
    InvalidField {
        /// `cart_id`, `store_key` or `expires_at`.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// Not a token of this format (wrong shape, characters or encoding).
    #[error("malformed cart recovery token")]
    Malformed,
    /// A token of another format version.
    #[error("unsupported cart recovery token version")]
    UnsupportedVersion,
    /// The MAC does not match: tampered with, or signed with another secret.
    #[error("cart recovery token signature does not match")]
    BadSignature,
    /// Authentic, but expired at the given instant.
    #[error("cart recovery token expired at {0}")]
    Expired(OffsetDateTime),
}

/// Signing and verification of cart-recovery tokens (see the module docs for the format).
#[derive(Clone, Copy, Debug)]
pub struct RecoveryToken;

impl RecoveryToken {
    /// The token for `cart_id` (in store `store_key`, if any), valid until `expires_at`
    /// (truncated to whole seconds).
    pub fn sign(
        secret: &[u8],
        cart_id: &str,
        store_key: Option<&str>,
        expires_at: OffsetDateTime,
    ) -> Result<String, RecoveryError> {
        check_secret(secret)?;
        if !valid_field(cart_id) {
            return Err(RecoveryError::InvalidField {
                field: "cart_id",
                reason: "must be 1 to 256 characters of A-Z a-z 0-9 _ -",
            });
        }
        if let Some(store) = store_key
            && !valid_field(store)
        {
            return Err(RecoveryError::InvalidField {
                field: "store_key",
                reason: "must be 1 to 256 characters of A-Z a-z 0-9 _ -",
            });
        }
        let expiry = expires_at.unix_timestamp();
        if expiry < 0 {
            return Err(RecoveryError::InvalidField {
                field: "expires_at",
                reason: "is before 1970",
            });
        }
        let payload = format!(
            "{TOKEN_VERSION}.{cart_id}.{}.{expiry}",
            store_key.unwrap_or("")
        );
        let mac = URL_SAFE_NO_PAD.encode(mac(secret, &payload).finalize().into_bytes());
        Ok(format!("{payload}.{mac}"))
    }

    /// Checks `token` against `secret` at `now`: shape, version, MAC (constant time), then
    /// expiry.
    pub fn verify(
        secret: &[u8],
        token: &str,
        now: OffsetDateTime,
    ) -> Result<RecoveredCart, RecoveryError> {
        Self::verify_any(&[secret], token, now)
    }

    /// Like [`RecoveryToken::verify`], accepting a token signed with any of `secrets` (current
    /// secret first, then the previous ones still inside their grace period): key rotation.
    pub fn verify_any(
        secrets: &[&[u8]],
        token: &str,
        now: OffsetDateTime,
    ) -> Result<RecoveredCart, RecoveryError> {
        if secrets.is_empty() {
            return Err(RecoveryError::WeakSecret);
        }
        for secret in secrets {
            check_secret(secret)?;
        }
        let parsed = parse(token)?;
        let tag = URL_SAFE_NO_PAD
            .decode(parsed.mac)
            .map_err(|_| RecoveryError::Malformed)?;
        let authentic = secrets
            .iter()
            .any(|secret| mac(secret, parsed.payload).verify_slice(&tag).is_ok());
        if !authentic {
            return Err(RecoveryError::BadSignature);
        }
        if now >= parsed.expires_at {
            return Err(RecoveryError::Expired(parsed.expires_at));
        }
        Ok(RecoveredCart {
            cart_id: parsed.cart_id.to_owned(),
            store_key: (!parsed.store_key.is_empty()).then(|| parsed.store_key.to_owned()),
            expires_at: parsed.expires_at,
        })
    }
}

/// Checks that a secret is long enough to sign or verify tokens (call it when loading the
/// configuration, so a weak secret fails at start-up rather than on the first cart).
pub fn check_secret(secret: &[u8]) -> Result<(), RecoveryError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(RecoveryError::WeakSecret);
    }
    Ok(())
}

/// The recovery URL: `template` (a store's `cart_recovery_url`) with `{token}` replaced by the
/// token, and `{cart_id}` / `{store}` by the cart id and store key should the template use
/// them (the configuration currently only allows `{token}`). Values are percent-encoded; a
/// token needs no encoding.
pub fn recovery_url(
    template: &UrlTemplate,
    cart_id: &str,
    store_key: Option<&str>,
    token: &str,
) -> String {
    template.render(&[
        ("token", token),
        ("cart_id", cart_id),
        ("store", store_key.unwrap_or("")),
    ])
}

struct Parsed<'a> {
    payload: &'a str,
    cart_id: &'a str,
    store_key: &'a str,
    expires_at: OffsetDateTime,
    mac: &'a str,
}

fn parse(token: &str) -> Result<Parsed<'_>, RecoveryError> {
    if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
        return Err(RecoveryError::Malformed);
    }
    let (payload, mac) = token.rsplit_once('.').ok_or(RecoveryError::Malformed)?;
    let fields: Vec<&str> = payload.split('.').collect();
    let &[version, cart_id, store_key, expiry] = fields.as_slice() else {
        return Err(RecoveryError::Malformed);
    };
    if version != TOKEN_VERSION {
        return Err(if version.starts_with('v') {
            RecoveryError::UnsupportedVersion
        } else {
            RecoveryError::Malformed
        });
    }
    if !valid_field(cart_id) || !(store_key.is_empty() || valid_field(store_key)) {
        return Err(RecoveryError::Malformed);
    }
    if expiry.is_empty() || expiry.len() > 12 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RecoveryError::Malformed);
    }
    let seconds: i64 = expiry.parse().map_err(|_| RecoveryError::Malformed)?;
    let expires_at =
        OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| RecoveryError::Malformed)?;
    if mac.is_empty() {
        return Err(RecoveryError::Malformed);
    }
    Ok(Parsed {
        payload,
        cart_id,
        store_key,
        expires_at,
        mac,
    })
}

fn valid_field(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_FIELD_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn mac(secret: &[u8], payload: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(payload.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UrlTemplate;
    use time::Duration;
    use time::macros::datetime;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER: &[u8] = b"fedcba9876543210fedcba9876543210";
    const CART: &str = "2a3baa00-44fa-4ab8-bec7-933c31e18dcc";

    fn now() -> OffsetDateTime {
        datetime!(2026-03-01 12:00 UTC)
    }

    fn token(store: Option<&str>) -> String {
        RecoveryToken::sign(SECRET, CART, store, now() + Duration::hours(168)).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_to_its_cart_store_and_expiry() {
        let t = token(Some("eu-shop"));
        assert!(t.starts_with(&format!("v1.{CART}.eu-shop.")));
        let cart = RecoveryToken::verify(SECRET, &t, now()).unwrap();
        assert_eq!(cart.cart_id, CART);
        assert_eq!(cart.store_key.as_deref(), Some("eu-shop"));
        assert_eq!(cart.expires_at, now() + Duration::hours(168));
    }

    #[test]
    fn a_cart_without_a_store_has_an_empty_store_field() {
        let t = token(None);
        assert!(t.starts_with(&format!("v1.{CART}..")));
        let cart = RecoveryToken::verify(SECRET, &t, now()).unwrap();
        assert_eq!(cart.store_key, None);
    }

    #[test]
    fn the_token_matches_an_independently_computed_hmac() {
        // Computed with the documented recipe, as a storefront would.
        let expiry = (now() + Duration::hours(1)).unix_timestamp();
        let payload = format!("v1.{CART}.eu-shop.{expiry}");
        let mut m = HmacSha256::new_from_slice(SECRET).unwrap();
        m.update(payload.as_bytes());
        let expected = format!(
            "{payload}.{}",
            URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        );
        let t =
            RecoveryToken::sign(SECRET, CART, Some("eu-shop"), now() + Duration::hours(1)).unwrap();
        assert_eq!(t, expected);
        // 32-byte MAC → 43 base64url characters.
        assert_eq!(t.rsplit_once('.').unwrap().1.len(), 43);
    }

    #[test]
    fn the_documented_test_vector_holds() {
        // docs/cart-recovery.md, "Test vector" (computed with Python's hmac module).
        let expected = "v1.2a3baa00-44fa-4ab8-bec7-933c31e18dcc.eu-shop.1773000000.\
                        wX8C4qRq1AyfZBaNXuXItQgZzTSzd3SHAMuTPpNlfw8";
        let expires_at = datetime!(2026-03-08 20:00 UTC);
        assert_eq!(expires_at.unix_timestamp(), 1_773_000_000);
        assert_eq!(
            RecoveryToken::sign(SECRET, CART, Some("eu-shop"), expires_at).unwrap(),
            expected
        );
        let cart =
            RecoveryToken::verify(SECRET, expected, expires_at - Duration::seconds(1)).unwrap();
        assert_eq!(cart.store_key.as_deref(), Some("eu-shop"));
    }

    #[test]
    fn a_token_is_rejected_once_expired() {
        let t = RecoveryToken::sign(SECRET, CART, None, now() + Duration::seconds(10)).unwrap();
        assert!(RecoveryToken::verify(SECRET, &t, now() + Duration::seconds(9)).is_ok());
        assert_eq!(
            RecoveryToken::verify(SECRET, &t, now() + Duration::seconds(10)),
            Err(RecoveryError::Expired(now() + Duration::seconds(10)))
        );
    }

    #[test]
    fn a_tampered_token_is_rejected() {
        let t = token(Some("eu-shop"));
        let other_cart = t.replacen(CART, "2a3baa00-44fa-4ab8-bec7-933c31e18dcd", 1);
        assert_eq!(
            RecoveryToken::verify(SECRET, &other_cart, now()),
            Err(RecoveryError::BadSignature)
        );
        let other_store = t.replacen(".eu-shop.", ".us-shop.", 1);
        assert_eq!(
            RecoveryToken::verify(SECRET, &other_store, now()),
            Err(RecoveryError::BadSignature)
        );
        let (payload, _) = t.rsplit_once('.').unwrap();
        let (head, expiry) = payload.rsplit_once('.').unwrap();
        let later: i64 = expiry.parse::<i64>().unwrap() + 3600;
        let extended = format!("{head}.{later}.{}", t.rsplit_once('.').unwrap().1);
        assert_eq!(
            RecoveryToken::verify(SECRET, &extended, now()),
            Err(RecoveryError::BadSignature)
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_rejected() {
        let t = token(None);
        assert_eq!(
            RecoveryToken::verify(OTHER, &t, now()),
            Err(RecoveryError::BadSignature)
        );
    }

    #[test]
    fn the_previous_secret_still_verifies_during_rotation() {
        let old = RecoveryToken::sign(OTHER, CART, None, now() + Duration::hours(1)).unwrap();
        let cart = RecoveryToken::verify_any(&[SECRET, OTHER], &old, now()).unwrap();
        assert_eq!(cart.cart_id, CART);
        assert_eq!(
            RecoveryToken::verify_any(&[SECRET], &old, now()),
            Err(RecoveryError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_are_rejected_without_panicking() {
        let good = token(Some("eu-shop"));
        let mac = good.rsplit_once('.').unwrap().1;
        for bad in [
            String::new(),
            "v1".into(),
            "v1.a.b.c".into(),
            format!("v1.{CART}.eu-shop.{mac}"),
            format!("v1.{CART}.eu-shop.12x.{mac}"),
            format!("v1.{CART}.eu-shop..{mac}"),
            format!("v1.{CART}.eu shop.1.{mac}"),
            format!("v1..eu-shop.1.{mac}"),
            format!("v1.{CART}.eu-shop.1.!!!"),
            format!("v1.{CART}.eu-shop.1."),
            format!("v1.{CART}.eu-shop.99999999999999.{mac}"),
            format!("x1.{CART}.eu-shop.1.{mac}"),
            format!("v1.{CART}.é.1.{mac}"),
            "v1.".repeat(400),
        ] {
            assert_eq!(
                RecoveryToken::verify(SECRET, &bad, now()),
                Err(RecoveryError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            RecoveryToken::verify(SECRET, &good.replacen("v1.", "v2.", 1), now()),
            Err(RecoveryError::UnsupportedVersion)
        );
    }

    #[test]
    fn short_secrets_and_unsignable_values_are_refused() {
        let later = now() + Duration::hours(1);
        assert_eq!(
            RecoveryToken::sign(b"short", CART, None, later),
            Err(RecoveryError::WeakSecret)
        );
        assert_eq!(
            RecoveryToken::verify(b"short", &token(None), now()),
            Err(RecoveryError::WeakSecret)
        );
        assert!(matches!(
            RecoveryToken::sign(SECRET, "a.b", None, later),
            Err(RecoveryError::InvalidField {
                field: "cart_id",
                ..
            })
        ));
        assert!(matches!(
            RecoveryToken::sign(SECRET, CART, Some(""), later),
            Err(RecoveryError::InvalidField {
                field: "store_key",
                ..
            })
        ));
        assert!(matches!(
            RecoveryToken::sign(SECRET, CART, None, datetime!(1969-12-31 0:00 UTC)),
            Err(RecoveryError::InvalidField {
                field: "expires_at",
                ..
            })
        ));
    }

    #[test]
    fn the_recovery_url_carries_the_token_unencoded() {
        let template = UrlTemplate::parse(
            "https://shop.example.com/cart/recover?t={token}",
            &["token"],
        )
        .unwrap();
        let t = token(Some("eu-shop"));
        assert_eq!(
            recovery_url(&template, CART, Some("eu-shop"), &t),
            format!("https://shop.example.com/cart/recover?t={t}")
        );
        let with_cart = UrlTemplate::parse(
            "https://shop.example.com/{store}/cart/{cart_id}?t={token}",
            &["token", "cart_id", "store"],
        )
        .unwrap();
        assert_eq!(
            recovery_url(&with_cart, CART, None, "tok"),
            format!("https://shop.example.com//cart/{CART}?t=tok")
        );
    }
}
