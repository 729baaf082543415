//! `LocalizedString`: commercetools' `{ "<IETF locale>": "text" }` map, with fallback-chain lookup.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A commercetools LocalizedString.
///
/// Lookup follows a store's fallback chain: the first locale in the chain that has a
/// non-blank value wins. A missing or blank value never becomes an empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LocalizedString(pub BTreeMap<String, String>);

impl LocalizedString {
    /// The value for the first locale of `chain` that has a non-blank value, with the
    /// locale it came from.
    pub fn get_with_locale<'a, 'c, S: AsRef<str>>(
        &'a self,
        chain: &'c [S],
    ) -> Option<(&'c str, &'a str)> {
        chain.iter().find_map(|locale| {
            let locale = locale.as_ref();
            self.0
                .get(locale)
                .map(|v| v.as_str())
                .filter(|v| !v.trim().is_empty())
                .map(|v| (locale, v))
        })
    }

    /// The value for the first locale of `chain` that has a non-blank value.
    pub fn get<'a, S: AsRef<str>>(&'a self, chain: &[S]) -> Option<&'a str> {
        self.get_with_locale(chain).map(|(_, v)| v)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for LocalizedString {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(pairs: &[(&str, &str)]) -> LocalizedString {
        pairs.iter().copied().collect()
    }

    #[test]
    fn first_locale_of_the_chain_with_a_value_wins() {
        let s = ls(&[("en", "Shirt"), ("de", "Hemd")]);
        assert_eq!(s.get(&["de-DE", "de", "en"]), Some("Hemd"));
        assert_eq!(s.get(&["en-US", "en"]), Some("Shirt"));
    }

    #[test]
    fn blank_values_fall_through_to_the_next_locale() {
        let s = ls(&[("de", "  "), ("en", "Shirt")]);
        assert_eq!(s.get_with_locale(&["de", "en"]), Some(("en", "Shirt")));
    }

    #[test]
    fn no_value_in_the_chain_is_none_not_empty() {
        let s = ls(&[("fr", "Chemise")]);
        assert_eq!(s.get(&["en-US", "en"]), None);
    }
}
