//! commercetools money: `centAmount / 10^fractionDigits` as an exact decimal.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// `TypedMoney` (`centPrecision` or `highPrecision`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypedMoney {
    /// `centPrecision` or `highPrecision`; old payloads omit it.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub money_type: Option<String>,
    /// ISO 4217 code.
    pub currency_code: String,
    /// Amount in the currency's minor units (rounded, for high precision money).
    pub cent_amount: i64,
    /// Number of fraction digits; when absent, the currency's ISO 4217 minor units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction_digits: Option<u32>,
    /// High precision amount, in `fraction_digits` units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precise_amount: Option<i64>,
}

impl TypedMoney {
    /// Cent-precision money.
    pub fn cents(currency_code: &str, cent_amount: i64) -> Self {
        Self {
            money_type: Some("centPrecision".into()),
            currency_code: currency_code.to_owned(),
            cent_amount,
            fraction_digits: Some(default_fraction_digits(currency_code)),
            precise_amount: None,
        }
    }

    /// The exact amount in major units.
    pub fn amount(&self) -> Decimal {
        let digits = self
            .fraction_digits
            .unwrap_or_else(|| default_fraction_digits(&self.currency_code));
        match (self.money_type.as_deref(), self.precise_amount) {
            (Some("highPrecision"), Some(precise)) => Decimal::new(precise, digits),
            _ => {
                // For high precision money, centAmount is always in the currency's minor units.
                let minor = if self.money_type.as_deref() == Some("highPrecision") {
                    default_fraction_digits(&self.currency_code)
                } else {
                    digits
                };
                Decimal::new(self.cent_amount, minor)
            }
        }
        .normalize()
    }

    /// Upper-case currency code.
    pub fn currency(&self) -> String {
        self.currency_code.to_ascii_uppercase()
    }
}

/// ISO 4217 minor units for the currencies that do not use two.
pub fn default_fraction_digits(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn cent_precision_is_exact() {
        let m = TypedMoney::cents("usd", 1999);
        assert_eq!(m.amount(), Decimal::from_str("19.99").unwrap());
        assert_eq!(m.currency(), "USD");
    }

    #[test]
    fn missing_fraction_digits_use_the_currency_minor_units() {
        let m: TypedMoney =
            serde_json::from_str(r#"{"currencyCode":"JPY","centAmount":1500}"#).unwrap();
        assert_eq!(m.amount(), Decimal::from(1500));
    }

    #[test]
    fn high_precision_uses_the_precise_amount() {
        let m: TypedMoney = serde_json::from_str(
            r#"{"type":"highPrecision","currencyCode":"EUR","centAmount":1235,"fractionDigits":4,"preciseAmount":123456}"#,
        )
        .unwrap();
        assert_eq!(m.amount(), Decimal::from_str("12.3456").unwrap());
    }
}
