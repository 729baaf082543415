//! The expected Omnisend catalog, computed straight from the generated commercetools JSON with
//! rules written independently of the connector's mapping code (so a mapping bug cannot hide
//! behind itself).

use rust_decimal::Decimal;
use serde_json::Value;

/// One expected store view.
pub struct StoreView<'a> {
    pub locales: &'a [&'a str],
    pub currency: &'a str,
    pub country: &'a str,
    pub price_channel_id: Option<&'a str>,
    pub supply_channel_id: &'a str,
    pub url_prefix: &'a str,
    /// Between locale and slug, e.g. `/p/`.
    pub url_path: &'a str,
}

#[derive(Debug, PartialEq)]
pub struct ExpectedVariant {
    pub id: String,
    pub price: Decimal,
    pub strike: Option<Decimal>,
    pub in_stock: bool,
}

#[derive(Debug, PartialEq)]
pub struct ExpectedProduct {
    pub id: String,
    pub title: String,
    pub url: String,
    pub status: &'static str,
    pub currency: String,
    pub category_ids: Vec<String>,
    pub variants: Vec<ExpectedVariant>,
}

fn first_in_chain(ls: &Value, locales: &[&str]) -> Option<String> {
    locales.iter().find_map(|l| {
        ls.get(*l)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_owned())
    })
}

fn money(m: &Value) -> Decimal {
    Decimal::new(
        m["centAmount"].as_i64().unwrap(),
        m["fractionDigits"].as_u64().unwrap_or(2) as u32,
    )
    .normalize()
}

/// The price the store should show, by the documented precedence (channel, then country, then
/// base), ignoring prices outside their validity window (the generator only uses 2020 and 2099).
fn price_for(prices: &[Value], v: &StoreView<'_>) -> Option<(Decimal, Option<Decimal>)> {
    let valid = |p: &&Value| {
        let from_ok = p["validFrom"].as_str().is_none_or(|f| f < "2026-06-01");
        let until_ok = p["validUntil"].as_str().is_none_or(|u| u > "2026-06-01");
        from_ok && until_ok
    };
    let candidates: Vec<&Value> = prices
        .iter()
        .filter(|p| p["value"]["currencyCode"] == v.currency)
        .filter(valid)
        .filter(|p| p["country"].is_null() || p["country"] == v.country)
        .filter(|p| {
            p["channel"].is_null()
                || Some(p["channel"]["id"].as_str().unwrap()) == v.price_channel_id
        })
        .collect();
    let pick = candidates
        .iter()
        .find(|p| !p["channel"].is_null())
        .or_else(|| candidates.iter().find(|p| !p["country"].is_null()))
        .or_else(|| {
            candidates
                .iter()
                .find(|p| p["country"].is_null() && p["channel"].is_null())
        })?;
    let value = money(&pick["value"]);
    Some(match pick.get("discounted").filter(|d| !d.is_null()) {
        Some(d) => (money(&d["value"]), Some(value)),
        None => (value, None),
    })
}

/// The expected Omnisend product, or `None` when the product must be rejected for this store.
pub fn expected_product(product: &Value, v: &StoreView<'_>) -> Option<ExpectedProduct> {
    let id = product["id"].as_str().unwrap().to_owned();
    let data = &product["masterData"]["current"];
    let title = first_in_chain(&data["name"], v.locales)?;
    let slug = first_in_chain(&data["slug"], v.locales)?;
    let mut variants = Vec::new();
    let all =
        std::iter::once(&data["masterVariant"]).chain(data["variants"].as_array().unwrap().iter());
    for variant in all {
        let Some((price, strike)) = price_for(variant["prices"].as_array().unwrap(), v) else {
            continue;
        };
        let in_stock = variant["availability"]["channels"][v.supply_channel_id]["isOnStock"]
            .as_bool()
            .unwrap_or(false);
        variants.push(ExpectedVariant {
            id: format!("{id}-{}", variant["id"]),
            price,
            strike,
            in_stock,
        });
    }
    if variants.is_empty() {
        return None;
    }
    let status = if variants.iter().any(|v| v.in_stock) {
        "inStock"
    } else {
        "outOfStock"
    };
    Some(ExpectedProduct {
        url: format!("{}{}{}{}", v.url_prefix, v.locales[0], v.url_path, slug),
        title,
        status,
        currency: v.currency.to_owned(),
        category_ids: data["categories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect(),
        variants,
        id,
    })
}

/// Reads an Omnisend product back into the same shape.
pub fn actual_product(p: &Value) -> ExpectedProduct {
    let dec = |v: &Value| -> Decimal { v.to_string().parse::<Decimal>().unwrap().normalize() };
    ExpectedProduct {
        id: p["id"].as_str().unwrap().to_owned(),
        title: p["title"].as_str().unwrap().to_owned(),
        url: p["url"].as_str().unwrap().to_owned(),
        status: match p["status"].as_str().unwrap() {
            "inStock" => "inStock",
            "outOfStock" => "outOfStock",
            _ => "notAvailable",
        },
        currency: p["currency"].as_str().unwrap().to_owned(),
        category_ids: p["categoryIDs"]
            .as_array()
            .map(|a| a.iter().map(|c| c.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default(),
        variants: p["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| ExpectedVariant {
                id: v["id"].as_str().unwrap().to_owned(),
                price: dec(&v["price"]),
                strike: v
                    .get("strikeThroughPrice")
                    .filter(|s| !s.is_null())
                    .map(dec),
                in_stock: v["status"] == "inStock",
            })
            .collect(),
    }
}
