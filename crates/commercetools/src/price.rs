//! commercetools price selection, done locally so one fetch serves every store.
//!
//! Mirrors the documented precedence: a price only matches when its currency equals the
//! selector's and each of its scopes (country, channel, customer group) is either unset or
//! equal to the selector's; among the matches, the most specific scope wins in the order
//! customerGroup+channel+country > customerGroup+channel > customerGroup+country >
//! customerGroup > channel+country > channel > country > base price, and within one scope a
//! price with a validity period beats one without. Prices outside their validity are ignored.

use time::OffsetDateTime;

use crate::models::Price;

/// What the store asks for.
#[derive(Clone, Debug, Default)]
pub struct PriceSelector<'a> {
    /// ISO 4217 currency (case-insensitive).
    pub currency: &'a str,
    /// ISO country.
    pub country: Option<&'a str>,
    /// Distribution channel id.
    pub channel_id: Option<&'a str>,
    /// Customer group id.
    pub customer_group_id: Option<&'a str>,
}

/// The price commercetools would select for `selector` at instant `now`.
pub fn select_price<'p>(
    prices: &'p [Price],
    selector: &PriceSelector<'_>,
    now: OffsetDateTime,
) -> Option<&'p Price> {
    prices
        .iter()
        .filter(|p| {
            p.value
                .currency_code
                .eq_ignore_ascii_case(selector.currency)
        })
        .filter(|p| {
            scope_matches(p.country.as_deref(), selector.country, |a, b| {
                a.eq_ignore_ascii_case(b)
            })
        })
        .filter(|p| {
            scope_matches(
                p.channel.as_ref().map(|r| r.id.as_str()),
                selector.channel_id,
                |a, b| a == b,
            )
        })
        .filter(|p| {
            scope_matches(
                p.customer_group.as_ref().map(|r| r.id.as_str()),
                selector.customer_group_id,
                |a, b| a == b,
            )
        })
        .filter(|p| {
            p.valid_from.is_none_or(|from| from <= now)
                && p.valid_until.is_none_or(|until| now < until)
        })
        .max_by_key(|p| rank(p))
}

fn scope_matches(
    price_scope: Option<&str>,
    wanted: Option<&str>,
    eq: impl Fn(&str, &str) -> bool,
) -> bool {
    match (price_scope, wanted) {
        (None, _) => true,
        (Some(p), Some(w)) => eq(p, w),
        (Some(_), None) => false,
    }
}

/// Higher is more specific. Bits: customer group (8), channel (4), country (2), validity (1).
fn rank(p: &Price) -> u8 {
    (u8::from(p.customer_group.is_some()) << 3)
        | (u8::from(p.channel.is_some()) << 2)
        | (u8::from(p.country.is_some()) << 1)
        | u8::from(p.valid_from.is_some() || p.valid_until.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Reference;
    use crate::money::TypedMoney;
    use time::macros::datetime;

    fn price(cents: i64, currency: &str) -> Price {
        Price {
            id: format!("{currency}-{cents}"),
            value: TypedMoney::cents(currency, cents),
            country: None,
            customer_group: None,
            channel: None,
            valid_from: None,
            valid_until: None,
            discounted: None,
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-06-01 0:00 UTC);

    fn sel<'a>(
        currency: &'a str,
        country: Option<&'a str>,
        channel: Option<&'a str>,
    ) -> PriceSelector<'a> {
        PriceSelector {
            currency,
            country,
            channel_id: channel,
            customer_group_id: None,
        }
    }

    #[test]
    fn only_prices_in_the_requested_currency_match() {
        let prices = [price(100, "EUR"), price(200, "USD")];
        assert_eq!(
            select_price(&prices, &sel("usd", None, None), NOW)
                .unwrap()
                .value
                .cent_amount,
            200
        );
        assert!(select_price(&prices, &sel("GBP", None, None), NOW).is_none());
    }

    #[test]
    fn channel_price_beats_country_price_which_beats_base_price() {
        let base = price(100, "USD");
        let mut country = price(200, "USD");
        country.country = Some("US".into());
        let mut channel = price(300, "USD");
        channel.channel = Some(Reference {
            type_id: "channel".into(),
            id: "ch".into(),
        });
        let prices = [base, country, channel];
        assert_eq!(
            select_price(&prices, &sel("USD", Some("US"), Some("ch")), NOW)
                .unwrap()
                .value
                .cent_amount,
            300
        );
        assert_eq!(
            select_price(&prices, &sel("USD", Some("US"), None), NOW)
                .unwrap()
                .value
                .cent_amount,
            200
        );
        assert_eq!(
            select_price(&prices, &sel("USD", Some("CA"), None), NOW)
                .unwrap()
                .value
                .cent_amount,
            100
        );
    }

    #[test]
    fn scoped_price_never_matches_a_selector_without_that_scope() {
        let mut country = price(200, "USD");
        country.country = Some("US".into());
        assert!(select_price(&[country], &sel("USD", None, None), NOW).is_none());
    }

    #[test]
    fn expired_and_future_prices_are_ignored_and_valid_ones_win_their_scope() {
        let base = price(100, "USD");
        let mut expired = price(50, "USD");
        expired.valid_until = Some(datetime!(2026-01-01 0:00 UTC));
        let mut future = price(60, "USD");
        future.valid_from = Some(datetime!(2027-01-01 0:00 UTC));
        assert_eq!(
            select_price(
                &[base.clone(), expired, future],
                &sel("USD", None, None),
                NOW
            )
            .unwrap()
            .value
            .cent_amount,
            100
        );
        let mut current = price(70, "USD");
        current.valid_from = Some(datetime!(2026-01-01 0:00 UTC));
        current.valid_until = Some(datetime!(2027-01-01 0:00 UTC));
        assert_eq!(
            select_price(&[base, current], &sel("USD", None, None), NOW)
                .unwrap()
                .value
                .cent_amount,
            70
        );
    }
}
