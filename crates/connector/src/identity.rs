//! Contact identifiers parsed at the boundary: [`Email`] and [`PhoneE164`].
//!
//! Pure: no I/O, no clock, no global configuration (the phone metadata of the `phonenumber`
//! crate is static data compiled into it). A value of either type is always in the exact form
//! Omnisend receives, so nothing past the boundary re-normalises. Errors never carry the raw
//! value, only its mask (see [`Email::mask`], [`PhoneE164::mask`]): logs and rejection records
//! stay free of PII.

use std::fmt::{self, Write as _};

use email_address::{EmailAddress, Options};
use phonenumber::Mode;
use phonenumber::country::Id;

use crate::config::CountryCode;

/// Longest email accepted: the 254 characters an SMTP path can carry (RFC 5321 §4.5.3.1.3).
pub const EMAIL_MAX_LEN: usize = 254;

/// Longest raw phone text looked at; anything longer is not a phone number but free text.
pub const PHONE_MAX_LEN: usize = 40;

/// Which identifier a parse error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentityField {
    /// The email identifier.
    Email,
    /// The phone identifier.
    Phone,
}

impl IdentityField {
    /// `email` or `phone`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }
}

impl fmt::Display for IdentityField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an identifier was refused. Carries the field, the reason and a masked form of the input;
/// never the input itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Nothing left after trimming.
    #[error("{field}: is empty")]
    Empty {
        /// The identifier at fault.
        field: IdentityField,
    },
    /// Present but not usable as an Omnisend identifier.
    #[error("{field}: {reason} (got {masked})")]
    Invalid {
        /// The identifier at fault.
        field: IdentityField,
        /// The input, masked.
        masked: String,
        /// Why, in words fit for a rejection record.
        reason: String,
    },
}

impl IdentityError {
    /// The identifier at fault.
    pub fn field(&self) -> IdentityField {
        match self {
            Self::Empty { field } | Self::Invalid { field, .. } => *field,
        }
    }

    /// The reason alone (without the masked value), for a rejection record's `reason`.
    pub fn reason(&self) -> &str {
        match self {
            Self::Empty { .. } => "is empty",
            Self::Invalid { reason, .. } => reason,
        }
    }
}

/// A normalised email address: trimmed, lower-cased and syntax-checked.
///
/// Lower-casing matters because Omnisend's email identifier is case-sensitive: `Jane@x.com` and
/// `jane@x.com` would be two contacts. The whole address is lower-cased (also the local part,
/// which RFC 5321 allows to be case-sensitive): no mailbox provider a shop meets treats case as
/// significant, and one contact per person matters more.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Trims, lower-cases and checks `raw`.
    ///
    /// Refused: empty input; more than [`EMAIL_MAX_LEN`] characters; display names
    /// (`Jane <jane@x.com>`); domain literals (`jane@[127.0.0.1]`); a domain without a dot
    /// (`jane@localhost`); anything `email_address` rejects as invalid syntax.
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(IdentityError::Empty {
                field: IdentityField::Email,
            });
        }
        let lower = trimmed.to_lowercase();
        let invalid = |reason: String| IdentityError::Invalid {
            field: IdentityField::Email,
            masked: mask_email_text(&lower),
            reason,
        };
        if lower.chars().count() > EMAIL_MAX_LEN {
            return Err(invalid(format!("longer than {EMAIL_MAX_LEN} characters")));
        }
        if lower.chars().any(char::is_whitespace) {
            return Err(invalid("contains whitespace".to_owned()));
        }
        let options = Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        EmailAddress::parse_with_options(&lower, options).map_err(|e| {
            invalid(
                e.to_string()
                    .trim_end_matches('.')
                    .to_lowercase()
                    .to_string(),
            )
        })?;
        Ok(Self(lower))
    }

    /// The address as Omnisend receives it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the last `@`.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or(&self.0, |(l, _)| l)
    }

    /// The part after the last `@`.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// A loggable form: first character of the local part, `***`, then `@domain`
    /// (`jane@example.com` → `j***@example.com`). A one-character local part is fully hidden
    /// (`j@x.com` → `***@x.com`). The length of the local part is not revealed.
    pub fn mask(&self) -> String {
        mask_email_text(&self.0)
    }
}

impl fmt::Display for Email {
    /// Displays the mask, so that an `Email` formatted into a log line by accident leaks nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mask())
    }
}

/// Masks any text that may be an email (valid or not).
/// Free text (an error message from an API, which may quote what it refused) with every
/// email-like word and every number of seven or more digits masked, for logs.
pub fn mask_text(text: &str) -> String {
    let is_break = |c: char| c.is_whitespace() || "\"'`,;()[]{}<>".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') {
            out.push_str(&mask_email_text(word));
        } else if word.chars().filter(char::is_ascii_digit).count() >= 7 {
            out.push_str(&mask_phone_text(word));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if is_break(c) {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn mask_email_text(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((local, domain)) => format!("{}@{domain}", mask_local(local)),
        None => mask_local(s),
    }
}

fn mask_local(local: &str) -> String {
    let mut chars = local.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(_)) => format!("{first}***"),
        _ => "***".to_owned(),
    }
}

/// A phone number in E.164: `+`, country code and national number, 7 to 15 digits in all
/// (e.g. `+4915112345678`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// Parses `raw` into E.164.
    ///
    /// A number written internationally (starting with `+`) is parsed on its own. Any other
    /// number is read as a national number of each country in `countries` in order (the
    /// caller passes the address country, then the store country) and the first country under
    /// which it is a valid number wins; an international dialling prefix such as `00` is
    /// understood for that country. The number must be *valid* for its country according to
    /// libphonenumber's metadata, not merely of a plausible length.
    ///
    /// Refused: empty input; more than [`PHONE_MAX_LEN`] characters; characters other than
    /// digits, spaces and `+ ( ) - . /` (so extensions such as `ext. 12` are refused: E.164
    /// cannot carry them); a national number with no country to read it in; a number valid in
    /// none of the countries.
    pub fn parse(raw: &str, countries: &[CountryCode]) -> Result<Self, IdentityError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(IdentityError::Empty {
                field: IdentityField::Phone,
            });
        }
        let invalid = |reason: String| IdentityError::Invalid {
            field: IdentityField::Phone,
            masked: mask_phone_text(trimmed),
            reason,
        };
        if trimmed.chars().count() > PHONE_MAX_LEN {
            return Err(invalid(format!("longer than {PHONE_MAX_LEN} characters")));
        }
        if let Some(c) = trimmed
            .chars()
            .find(|c| !(c.is_ascii_digit() || " +()-./".contains(*c)))
        {
            let what = if c.is_ascii_alphabetic() {
                "letters".to_owned()
            } else {
                format!("the character {c:?}")
            };
            return Err(invalid(format!(
                "contains {what}; only digits, spaces and + ( ) - . / are allowed"
            )));
        }
        if trimmed.starts_with('+') {
            return parse_in(trimmed, None)
                .ok_or_else(|| invalid("not a valid international number".to_owned()));
        }
        if countries.is_empty() {
            return Err(invalid(
                "a national number (no leading +) and no country to read it in".to_owned(),
            ));
        }
        countries
            .iter()
            .filter_map(|c| c.as_str().parse::<Id>().ok())
            .find_map(|id| parse_in(trimmed, Some(id)))
            .ok_or_else(|| {
                let tried: Vec<&str> = countries.iter().map(CountryCode::as_str).collect();
                invalid(format!(
                    "not a valid number in any of the countries {}",
                    tried.join(", ")
                ))
            })
    }

    /// The number as Omnisend receives it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A loggable form: `+`, the first two and the last two digits, one `*` per hidden digit
    /// (`+4915112345689` → `+49*********89`). At least three digits are always hidden.
    pub fn mask(&self) -> String {
        mask_phone_text(&self.0)
    }
}

impl fmt::Display for PhoneE164 {
    /// Displays the mask, so that a `PhoneE164` formatted into a log line by accident leaks
    /// nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mask())
    }
}

/// Parses with libphonenumber's metadata and returns the E.164 text when the number is valid.
fn parse_in(text: &str, country: Option<Id>) -> Option<PhoneE164> {
    widen_regex_cache();
    let number = phonenumber::parse(country, text).ok()?;
    if !number.is_valid() {
        return None;
    }
    let mut out = String::with_capacity(16);
    // The formatter reports an unknown country code as a `fmt::Error`; `to_string` would panic.
    write!(out, "{}", number.format().mode(Mode::E164)).ok()?;
    if !is_e164(&out) {
        return None;
    }
    // A national reading can yield an E.164 text that does not read back as the same valid
    // number (seen with Lithuanian `0…` numbers); such a number is refused rather than sent in a
    // form Omnisend, or our own next run, would read differently.
    // Validity depends only on the country code and the national number, so reading the text
    // back to the same two is enough (a full second validation cost a third of a parse).
    if country.is_some() {
        let back = phonenumber::parse(None, &out).ok()?;
        if back.code().value() != number.code().value() || back.national() != number.national() {
            return None;
        }
    }
    Some(PhoneE164(out))
}

/// The `phonenumber` crate compiles its metadata's patterns on demand into one global cache of
/// 100 entries; a shop's handful of countries already needs more, so with the default every
/// parse recompiles regexes (98 % of a contact's mapping time, measured by the `contacts`
/// bench). Raised once to 1,000 entries (a few MB at most).
fn widen_regex_cache() {
    static WIDENED: std::sync::Once = std::sync::Once::new();
    WIDENED.call_once(|| {
        if let Ok(mut cache) = phonenumber::metadata::DATABASE.cache().lock() {
            cache.set_capacity(1_000);
        }
    });
}

/// `^\+[1-9][0-9]{6,14}$`.
fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Masks any text that may be a phone number (valid or not): keeps a leading `+`, the first
/// two and last two digits when at least seven digits are present (so at least three stay
/// hidden), otherwise hides every digit. Non-digit characters are dropped.
fn mask_phone_text(s: &str) -> String {
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    let plus = if s.trim_start().starts_with('+') {
        "+"
    } else {
        ""
    };
    if digits.len() < 7 {
        return format!("{plus}***");
    }
    let n = digits.len();
    let mut out = String::with_capacity(n + 1);
    out.push_str(plus);
    out.extend(&digits[..2]);
    out.extend(std::iter::repeat_n('*', n - 4));
    out.extend(&digits[n - 2..]);
    out
}

#[cfg(test)]
mod mask_text_tests {
    use super::mask_text;

    #[test]
    fn free_text_has_its_addresses_and_numbers_masked_and_the_rest_kept() {
        let masked = mask_text(
            "identifiers[0].id: \"jane.doe@example.com\" is invalid; phone +4915112345678 (row 12)",
        );
        assert!(!masked.contains("jane.doe"), "{masked}");
        assert!(!masked.contains("15112345678"), "{masked}");
        assert!(masked.contains("identifiers[0].id"), "{masked}");
        assert!(masked.contains("(row 12)"), "{masked}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cc(s: &str) -> CountryCode {
        CountryCode::parse(s).unwrap()
    }

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        let e = Email::parse("  Jane.Doe@Example.COM \n").unwrap();
        assert_eq!(e.as_str(), "jane.doe@example.com");
        assert_eq!(e.local_part(), "jane.doe");
        assert_eq!(e.domain(), "example.com");
    }

    #[test]
    fn case_variants_of_one_email_are_the_same_identifier() {
        assert_eq!(
            Email::parse("JANE@example.com").unwrap(),
            Email::parse("jane@EXAMPLE.com").unwrap()
        );
    }

    #[test]
    fn malformed_emails_are_refused_with_a_reason_and_never_echoed() {
        for raw in [
            "jane.doe.example.com",
            "jane@",
            "@example.com",
            "jane doe@example.com",
            "jane@localhost",
            "Jane <jane@example.com>",
            "jane@[127.0.0.1]",
            "jane@@example.com",
        ] {
            let err = Email::parse(raw).unwrap_err();
            assert_eq!(err.field(), IdentityField::Email, "{raw}");
            assert!(!err.reason().is_empty(), "{raw}");
            let text = err.to_string();
            assert!(text.starts_with("email: "), "{text}");
            // `@example.com` has no local part to hide; every other input must not appear.
            if !raw.starts_with('@') {
                assert!(
                    !text.contains(&raw.to_lowercase()),
                    "{raw} leaked in {text}"
                );
            }
            assert!(!text.contains("jane"), "{raw} leaked in {text}");
        }
    }

    #[test]
    fn an_empty_or_blank_email_is_refused_as_empty() {
        assert_eq!(
            Email::parse("  ").unwrap_err(),
            IdentityError::Empty {
                field: IdentityField::Email
            }
        );
    }

    #[test]
    fn an_email_longer_than_an_smtp_path_is_refused() {
        let raw = format!("{}@example.com", "a".repeat(250));
        let err = Email::parse(&raw).unwrap_err();
        assert!(err.reason().contains("254"), "{err}");
    }

    #[test]
    fn email_mask_shows_the_first_character_and_the_domain_only() {
        assert_eq!(
            Email::parse("jane@example.com").unwrap().mask(),
            "j***@example.com"
        );
        assert_eq!(
            Email::parse("j@example.com").unwrap().mask(),
            "***@example.com"
        );
        assert_eq!(
            Email::parse("jane@example.com").unwrap().to_string(),
            "j***@example.com"
        );
    }

    #[test]
    fn an_international_phone_needs_no_country() {
        let p = PhoneE164::parse("+49 151 1234 5678", &[]).unwrap();
        assert_eq!(p.as_str(), "+4915112345678");
    }

    #[test]
    fn a_national_phone_valid_in_several_countries_is_read_in_the_first() {
        // `07400 123456` is valid both in GB and in DE: the order of the fallbacks decides.
        let gb_first = PhoneE164::parse("07400 123456", &[cc("GB"), cc("DE")]).unwrap();
        let de_first = PhoneE164::parse("07400 123456", &[cc("DE"), cc("GB")]).unwrap();
        assert_eq!(gb_first.as_str(), "+447400123456");
        assert_eq!(de_first.as_str(), "+497400123456");
    }

    #[test]
    fn a_national_phone_falls_back_to_the_store_country() {
        // A Paris number is not valid in Germany (the address country), but is in France.
        let p = PhoneE164::parse("01 42 68 53 00", &[cc("DE"), cc("FR")]).unwrap();
        assert_eq!(p.as_str(), "+33142685300");
        let p = PhoneE164::parse("0151 12345678", &[cc("US"), cc("DE")]).unwrap();
        assert_eq!(p.as_str(), "+4915112345678");
    }

    #[test]
    fn an_international_dialling_prefix_is_understood_for_the_country() {
        let p = PhoneE164::parse("0049 30 1234567", &[cc("DE")]).unwrap();
        assert_eq!(p.as_str(), "+49301234567");
    }

    #[test]
    fn a_national_reading_that_does_not_read_back_as_itself_is_refused() {
        // libphonenumber reads this as `+37080800000` in LT, which is not valid on its own.
        // Found by the property test below.
        assert!(PhoneE164::parse("080800000", &[cc("LT")]).is_err());
    }

    #[test]
    fn a_national_phone_without_any_country_is_refused() {
        let err = PhoneE164::parse("030 1234567", &[]).unwrap_err();
        assert_eq!(err.field(), IdentityField::Phone);
        assert!(err.reason().contains("no country"), "{err}");
    }

    #[test]
    fn invalid_phones_are_refused_with_a_reason_and_never_echoed() {
        for raw in [
            "123",
            "+49 1",
            "+999 123456789",
            "0000000000",
            "call me",
            "+49 151 1234 5678 ext. 9",
        ] {
            let err = PhoneE164::parse(raw, &[cc("DE")]).unwrap_err();
            assert_eq!(err.field(), IdentityField::Phone, "{raw}");
            let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
            if digits.len() >= 7 {
                assert!(!err.to_string().contains(&digits), "{raw} leaked in {err}");
            }
        }
        assert!(
            PhoneE164::parse("  ", &[cc("DE")]).unwrap_err()
                == IdentityError::Empty {
                    field: IdentityField::Phone
                }
        );
    }

    #[test]
    fn phone_mask_keeps_two_leading_and_two_trailing_digits() {
        let p = PhoneE164::parse("+49 151 1234 5689", &[]).unwrap();
        assert_eq!(p.mask(), "+49*********89");
        assert_eq!(p.to_string(), p.mask());
        assert_eq!(mask_phone_text("12345"), "***");
    }

    fn email_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ \t]{0,2}[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,12}\\.[A-Za-z]{2,6}[ \t]{0,2}",
            "\\PC{0,40}",
            "[a-zA-Z@. ]{0,20}",
        ]
    }

    fn phone_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\+?[0-9 ()./-]{0,20}",
            "\\+(1|44|49|33|43|41)[ ]?[0-9]{6,12}",
            "0[1-9][0-9 ]{6,12}",
            "\\PC{0,20}",
        ]
    }

    fn countries() -> impl Strategy<Value = Vec<CountryCode>> {
        proptest::collection::vec(
            prop::sample::select(vec!["DE", "AT", "CH", "GB", "US", "FR", "LT", "ZZ"]),
            0..3,
        )
        .prop_map(|v| v.into_iter().map(cc).collect())
    }

    proptest! {
        #[test]
        fn email_parse_is_idempotent(raw in email_like()) {
            if let Ok(e) = Email::parse(&raw) {
                prop_assert_eq!(Email::parse(e.as_str()), Ok(e.clone()));
                prop_assert_eq!(e.as_str().trim(), e.as_str());
                prop_assert_eq!(e.as_str().to_lowercase(), e.as_str());
            }
        }

        #[test]
        fn email_mask_never_contains_the_full_local_part(raw in email_like()) {
            match Email::parse(&raw) {
                Ok(e) => {
                    let mask = e.mask();
                    let (masked_local, masked_domain) = mask.rsplit_once('@').unwrap();
                    // At most the first character of the local part is revealed, never its
                    // length; a local part of two or more characters never appears whole
                    // (unless it is made of the `*` the mask itself uses).
                    let first = e.local_part().chars().next().unwrap();
                    let shown = format!("{first}***");
                    prop_assert!(masked_local == "***" || masked_local == shown);
                    if e.local_part().chars().count() >= 2 && !e.local_part().contains('*') {
                        prop_assert!(!masked_local.contains(e.local_part()));
                    }
                    prop_assert_eq!(masked_domain, e.domain());
                    prop_assert!(!mask.contains(e.as_str()));
                }
                Err(err) => {
                    let text = err.to_string();
                    let lower = raw.trim().to_lowercase();
                    // An input with an empty local part has nothing to hide but its domain.
                    let hidden = !lower.starts_with('@') && !lower.contains('*') && lower.chars().count() >= 6;
                    prop_assert!(!hidden || !text.contains(&lower), "{} in {}", lower, text);
                }
            }
        }

        #[test]
        fn every_phone_produced_is_e164_and_reparses_to_itself(raw in phone_like(), cs in countries()) {
            if let Ok(p) = PhoneE164::parse(&raw, &cs) {
                prop_assert!(is_e164(p.as_str()), "{}", p.as_str());
                prop_assert_eq!(PhoneE164::parse(p.as_str(), &[]), Ok(p.clone()));
                prop_assert_eq!(PhoneE164::parse(p.as_str(), &cs), Ok(p.clone()));
            }
        }

        #[test]
        fn phone_mask_never_contains_the_full_number(raw in phone_like(), cs in countries()) {
            match PhoneE164::parse(&raw, &cs) {
                Ok(p) => {
                    let digits = &p.as_str()[1..];
                    prop_assert!(!p.mask().contains(digits));
                    prop_assert_eq!(p.mask().chars().filter(|c| *c == '*').count(), digits.len() - 4);
                }
                Err(err) => {
                    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
                    prop_assert!(digits.len() < 3 || !err.to_string().contains(&digits));
                }
            }
        }
    }
}
