//! Tests of the deterministic catalog generator.

use std::time::Instant;

use emulators::seed::{
    CatalogGenerator, CatalogSpec, generate_catalog, is_french_slug_only, is_missing_eur_price,
};

#[test]
fn generator_is_deterministic_for_a_seed() {
    let spec = CatalogSpec {
        products: 200,
        categories: 30,
        seed: 42,
    };
    let a = generate_catalog(&spec);
    let b = generate_catalog(&spec);
    assert_eq!(
        serde_json::to_string(&a.products).unwrap(),
        serde_json::to_string(&b.products).unwrap()
    );
    assert_eq!(a.categories, b.categories);
    let c = generate_catalog(&CatalogSpec { seed: 43, ..spec });
    assert_ne!(a.products[0]["id"], c.products[0]["id"]);
}

#[test]
fn generated_catalog_has_the_documented_shape() {
    let data = generate_catalog(&CatalogSpec {
        products: 300,
        categories: 30,
        seed: 1,
    });
    assert_eq!(data.channels.len(), 3);
    assert_eq!(data.stores.len(), 2);
    assert_eq!(data.product_types.len(), 2);
    assert_eq!(data.categories.len(), 30);
    assert!(data.categories.iter().any(|c| c.get("parent").is_some()));
    let missing_de = data
        .products
        .iter()
        .filter(|p| p["masterData"]["current"]["name"].get("de").is_none())
        .count();
    assert!(missing_de > 30 && missing_de < 150, "{missing_de}");
    for (i, p) in data.products.iter().enumerate() {
        let n = i + 1;
        assert_eq!(p["key"], format!("product-{n}"));
        assert_eq!(p["masterData"]["current"], p["masterData"]["staged"]);
        let slug = &p["masterData"]["current"]["slug"];
        assert_eq!(slug.get("en").is_none(), is_french_slug_only(n));
        let master = &p["masterData"]["current"]["masterVariant"];
        let has_eur = master["prices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|pr| pr["value"]["currencyCode"] == "EUR");
        assert_eq!(has_eur, !is_missing_eur_price(n));
        assert_eq!(master["sku"], format!("SKU-{n}-1"));
        assert_eq!(p["lastModifiedAt"].as_str().unwrap().len(), 24);
    }
}

#[test]
fn large_catalogs_stream_quickly() {
    let g = CatalogGenerator::new(&CatalogSpec {
        products: 20_000,
        categories: 30,
        seed: 9,
    });
    let start = Instant::now();
    let count = g
        .products()
        .filter(|p| p["masterData"]["published"] == true)
        .count();
    assert_eq!(count, 20_000);
    // Generous bound: debug builds of the test are much slower than release.
    assert!(start.elapsed().as_secs() < 15, "{:?}", start.elapsed());
}
