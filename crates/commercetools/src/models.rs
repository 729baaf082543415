//! commercetools resource models used by the sync: only the fields ct-omnisend reads.
//! Unknown fields are ignored, optional fields default, so newer API payloads still parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::localized::LocalizedString;
use crate::money::TypedMoney;
use crate::paging::Keyed;

/// A reference to another resource (`{"typeId": "category", "id": "…"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// Resource type, e.g. `category`, `channel`, `product-type`.
    pub type_id: String,
    /// Resource id.
    pub id: String,
}

/// A key reference (stores are referenced by key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyReference {
    /// Resource type, e.g. `store`.
    pub type_id: String,
    /// Resource key.
    pub key: String,
}

/// `PagedQueryResponse`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PagedQueryResponse<T> {
    /// Requested page size.
    pub limit: u32,
    /// Requested offset.
    #[serde(default)]
    pub offset: u32,
    /// Number of results in this page.
    pub count: u32,
    /// Total, only when `withTotal=true`.
    #[serde(default)]
    pub total: Option<u64>,
    /// The page.
    pub results: Vec<T>,
}

/// A price of a variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// Price id.
    #[serde(default)]
    pub id: String,
    /// The money value.
    pub value: TypedMoney,
    /// ISO country the price is scoped to.
    #[serde(default)]
    pub country: Option<String>,
    /// Customer group the price is scoped to.
    #[serde(default)]
    pub customer_group: Option<Reference>,
    /// Distribution channel the price is scoped to.
    #[serde(default)]
    pub channel: Option<Reference>,
    /// Start of validity.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    /// End of validity.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    /// Set when a product discount applies.
    #[serde(default)]
    pub discounted: Option<DiscountedPrice>,
}

/// `DiscountedPrice`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountedPrice {
    /// The discounted money value.
    pub value: TypedMoney,
    /// The product discount that applies.
    pub discount: Reference,
}

/// A variant image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Absolute URL.
    pub url: String,
    /// Optional label.
    #[serde(default)]
    pub label: Option<String>,
}

/// A variant attribute; its value's shape depends on the product type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Raw value (text, LocalizedString, enum `{key,label}`, set, …).
    pub value: serde_json::Value,
}

/// Availability of one supply channel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelAvailability {
    /// Whether the SKU is on stock in this channel.
    #[serde(default)]
    pub is_on_stock: Option<bool>,
    /// Available quantity.
    #[serde(default)]
    pub available_quantity: Option<i64>,
}

/// `ProductVariantAvailability`: project-wide values plus a map keyed by supply channel id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantAvailability {
    /// Project-wide stock flag (inventory without channel).
    #[serde(default)]
    pub is_on_stock: Option<bool>,
    /// Project-wide available quantity.
    #[serde(default)]
    pub available_quantity: Option<i64>,
    /// Per supply channel id.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelAvailability>,
}

/// A product variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductVariant {
    /// Variant id within the product (master = 1).
    pub id: i64,
    /// SKU.
    #[serde(default)]
    pub sku: Option<String>,
    /// Variant key.
    #[serde(default)]
    pub key: Option<String>,
    /// All prices (price selection happens in [`crate::price`]).
    #[serde(default)]
    pub prices: Vec<Price>,
    /// Images.
    #[serde(default)]
    pub images: Vec<Image>,
    /// Attributes.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Inventory availability, when the SKU is tracked.
    #[serde(default)]
    pub availability: Option<VariantAvailability>,
}

impl ProductVariant {
    /// The attribute named `name`.
    pub fn attribute(&self, name: &str) -> Option<&serde_json::Value> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }
}

/// The current (or staged) projection of a product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductProjection {
    /// Product id.
    pub id: String,
    /// Product version.
    pub version: i64,
    /// Product key.
    #[serde(default)]
    pub key: Option<String>,
    /// Product type reference.
    pub product_type: Reference,
    /// Name.
    pub name: LocalizedString,
    /// Description (may contain HTML).
    #[serde(default)]
    pub description: Option<LocalizedString>,
    /// URL slug.
    #[serde(default)]
    pub slug: LocalizedString,
    /// Category references.
    #[serde(default)]
    pub categories: Vec<Reference>,
    /// Master variant.
    pub master_variant: ProductVariant,
    /// Other variants.
    #[serde(default)]
    pub variants: Vec<ProductVariant>,
    /// Whether the product is published.
    #[serde(default)]
    pub published: Option<bool>,
    /// Whether staged changes exist.
    #[serde(default)]
    pub has_staged_changes: Option<bool>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
}

impl ProductProjection {
    /// Master variant first, then the others.
    pub fn all_variants(&self) -> impl Iterator<Item = &ProductVariant> {
        std::iter::once(&self.master_variant).chain(self.variants.iter())
    }
}

/// `ProductData` (one side of `masterData`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductData {
    /// Name.
    pub name: LocalizedString,
    /// Description.
    #[serde(default)]
    pub description: Option<LocalizedString>,
    /// Slug.
    #[serde(default)]
    pub slug: LocalizedString,
    /// Categories.
    #[serde(default)]
    pub categories: Vec<Reference>,
    /// Master variant.
    pub master_variant: ProductVariant,
    /// Other variants.
    #[serde(default)]
    pub variants: Vec<ProductVariant>,
}

/// `ProductCatalogData`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductCatalogData {
    /// Whether the current data is published.
    pub published: bool,
    /// Whether staged differs from current.
    #[serde(default)]
    pub has_staged_changes: bool,
    /// Current (published) data.
    pub current: ProductData,
    /// Staged data.
    pub staged: ProductData,
}

/// A product as returned by `/products` (published or not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// Product id.
    pub id: String,
    /// Version.
    pub version: i64,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Product type.
    pub product_type: Reference,
    /// Current and staged data.
    pub master_data: ProductCatalogData,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
}

impl Product {
    /// The current projection, as `/product-projections` would return it.
    pub fn current_projection(&self) -> ProductProjection {
        let d = &self.master_data.current;
        ProductProjection {
            id: self.id.clone(),
            version: self.version,
            key: self.key.clone(),
            product_type: self.product_type.clone(),
            name: d.name.clone(),
            description: d.description.clone(),
            slug: d.slug.clone(),
            categories: d.categories.clone(),
            master_variant: d.master_variant.clone(),
            variants: d.variants.clone(),
            published: Some(self.master_data.published),
            has_staged_changes: Some(self.master_data.has_staged_changes),
            created_at: self.created_at,
            last_modified_at: self.last_modified_at,
        }
    }
}

/// A category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    /// Id.
    pub id: String,
    /// Version.
    pub version: i64,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Name.
    pub name: LocalizedString,
    /// Slug.
    #[serde(default)]
    pub slug: LocalizedString,
    /// Parent category.
    #[serde(default)]
    pub parent: Option<Reference>,
    /// Order hint.
    #[serde(default)]
    pub order_hint: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
}

/// A store country entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCountry {
    /// ISO 3166-1 alpha-2.
    pub code: String,
}

/// A store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Store {
    /// Id.
    pub id: String,
    /// Version.
    pub version: i64,
    /// Key.
    pub key: String,
    /// Name.
    #[serde(default)]
    pub name: Option<LocalizedString>,
    /// Languages (locale order of the store).
    #[serde(default)]
    pub languages: Vec<String>,
    /// Countries.
    #[serde(default)]
    pub countries: Vec<StoreCountry>,
    /// Price (distribution) channels.
    #[serde(default)]
    pub distribution_channels: Vec<Reference>,
    /// Inventory (supply) channels.
    #[serde(default)]
    pub supply_channels: Vec<Reference>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
}

/// A channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// Id.
    pub id: String,
    /// Version.
    #[serde(default)]
    pub version: i64,
    /// Key.
    pub key: String,
    /// Roles (`InventorySupply`, `ProductDistribution`, …).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<LocalizedString>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
}

/// A product type (only its name matters to the sync).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductType {
    /// Id.
    pub id: String,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Name.
    pub name: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
}

/// A postal address (`BaseAddress`/`Address`): only the fields the contact sync reads.
///
/// Every field but `country` is optional; `country` is required by commercetools but defaults
/// to `""` here so a malformed address never fails a whole page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Address id, unique within the customer (absent on cart and order addresses).
    #[serde(default)]
    pub id: Option<String>,
    /// User-defined key.
    #[serde(default)]
    pub key: Option<String>,
    /// Title, e.g. `Dr.`.
    #[serde(default)]
    pub title: Option<String>,
    /// Salutation, e.g. `Mr.`.
    #[serde(default)]
    pub salutation: Option<String>,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Street name.
    #[serde(default)]
    pub street_name: Option<String>,
    /// Street number.
    #[serde(default)]
    pub street_number: Option<String>,
    /// Further information on the street address.
    #[serde(default)]
    pub additional_street_info: Option<String>,
    /// Apartment or suite.
    #[serde(default)]
    pub apartment: Option<String>,
    /// Building.
    #[serde(default)]
    pub building: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Region.
    #[serde(default)]
    pub region: Option<String>,
    /// State (e.g. a US state).
    #[serde(default)]
    pub state: Option<String>,
    /// ISO 3166-1 alpha-2 country code (required by commercetools; `""` when missing).
    #[serde(default)]
    pub country: String,
    /// Company name.
    #[serde(default)]
    pub company: Option<String>,
    /// Phone number, as entered.
    #[serde(default)]
    pub phone: Option<String>,
    /// Mobile phone number, as entered.
    #[serde(default)]
    pub mobile: Option<String>,
    /// Email address, as entered.
    #[serde(default)]
    pub email: Option<String>,
}

/// `CustomFields`: the custom type of a resource and its field values, keyed by field name.
///
/// Values keep their JSON shape: Boolean → bool, String/DateTime/Date → string, Enum → the
/// enum key as a string, Number → number, Set → array, LocalizedString → object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomFields {
    /// Reference to the `Type` (`{"typeId": "type", "id": "…"}`).
    #[serde(rename = "type")]
    pub type_: Reference,
    /// Field values by field name (unset fields are absent).
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl CustomFields {
    /// The value of the custom field `name`, if set.
    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.fields.get(name)
    }
}

/// A customer (`/customers`, `/in-store/key={storeKey}/customers`): the fields a contact sync
/// reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Id.
    pub id: String,
    /// Version.
    pub version: i64,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
    /// Email address, as stored (commercetools compares it case-insensitively but keeps the
    /// original spelling).
    pub email: String,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Middle name.
    #[serde(default)]
    pub middle_name: Option<String>,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Salutation.
    #[serde(default)]
    pub salutation: Option<String>,
    /// Date of birth as sent (`YYYY-MM-DD`).
    #[serde(default)]
    pub date_of_birth: Option<String>,
    /// Company name.
    #[serde(default)]
    pub company_name: Option<String>,
    /// Shop-assigned customer number.
    #[serde(default)]
    pub customer_number: Option<String>,
    /// Id in an external system.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Addresses (each with an `id`).
    #[serde(default)]
    pub addresses: Vec<Address>,
    /// Id of the default shipping address in `addresses`.
    #[serde(default)]
    pub default_shipping_address_id: Option<String>,
    /// Id of the default billing address in `addresses`.
    #[serde(default)]
    pub default_billing_address_id: Option<String>,
    /// Ids of the shipping addresses in `addresses`.
    #[serde(default)]
    pub shipping_address_ids: Vec<String>,
    /// Ids of the billing addresses in `addresses`.
    #[serde(default)]
    pub billing_address_ids: Vec<String>,
    /// Whether the email address is verified.
    #[serde(default)]
    pub is_email_verified: bool,
    /// The customer group.
    #[serde(default)]
    pub customer_group: Option<Reference>,
    /// Custom fields (e.g. marketing consent; commercetools has no native consent field).
    #[serde(default)]
    pub custom: Option<CustomFields>,
    /// Preferred locale (IETF tag).
    #[serde(default)]
    pub locale: Option<String>,
    /// Stores the customer belongs to; empty for a global customer.
    #[serde(default)]
    pub stores: Vec<KeyReference>,
}

impl Customer {
    /// The address in `addresses` whose id is `id`.
    pub fn address(&self, id: &str) -> Option<&Address> {
        self.addresses.iter().find(|a| a.id.as_deref() == Some(id))
    }

    /// The default shipping address, looked up by `defaultShippingAddressId`.
    pub fn default_shipping_address(&self) -> Option<&Address> {
        self.default_shipping_address_id
            .as_deref()
            .and_then(|id| self.address(id))
    }

    /// The default billing address, looked up by `defaultBillingAddressId`.
    pub fn default_billing_address(&self) -> Option<&Address> {
        self.default_billing_address_id
            .as_deref()
            .and_then(|id| self.address(id))
    }
}

/// A customer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerGroup {
    /// Id.
    pub id: String,
    /// Version.
    pub version: i64,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// Name.
    pub name: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
}

/// `TaxRate` of a line item (only what the event mapping reads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxRate {
    /// Name of the tax rate.
    #[serde(default)]
    pub name: String,
    /// Rate, e.g. `0.19`.
    #[serde(default)]
    pub amount: f64,
    /// Whether the prices of the line already include this tax.
    #[serde(default)]
    pub included_in_price: bool,
    /// ISO 3166-1 alpha-2 country the rate applies to.
    #[serde(default)]
    pub country: Option<String>,
}

/// One tax portion of a taxed price.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxPortion {
    /// Name of the tax.
    #[serde(default)]
    pub name: Option<String>,
    /// Rate, e.g. `0.19`.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Tax amount.
    pub amount: TypedMoney,
}

/// `TaxedPrice` (cart/order totals) and `TaxedItemPrice` (line items, shipping): net, gross
/// and tax amounts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaxedPrice {
    /// Total without taxes.
    pub total_net: TypedMoney,
    /// Total with taxes.
    pub total_gross: TypedMoney,
    /// Total tax (`totalGross - totalNet`); absent on older payloads.
    #[serde(default)]
    pub total_tax: Option<TypedMoney>,
    /// Tax portions.
    #[serde(default)]
    pub tax_portions: Vec<TaxPortion>,
}

/// `DiscountedLineItemPortion`: the part of a unit's discount that one cart discount gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountedLineItemPortion {
    /// The cart discount.
    pub discount: Reference,
    /// Amount the discount took off (per unit on line items).
    pub discounted_amount: TypedMoney,
}

/// `DiscountedLineItemPrice`: a discounted unit price and the cart discounts behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountedLineItemPrice {
    /// The discounted money value.
    pub value: TypedMoney,
    /// The cart discounts that apply, with their amounts.
    #[serde(default)]
    pub included_discounts: Vec<DiscountedLineItemPortion>,
}

/// `DiscountedLineItemPriceForQuantity`: `quantity` units of a line cost
/// `discountedPrice.value` each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountedLineItemPriceForQuantity {
    /// Number of units with this price.
    pub quantity: i64,
    /// The discounted unit price.
    pub discounted_price: DiscountedLineItemPrice,
}

/// A line item of a cart or order: a product variant snapshot with its price and quantity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    /// Line item id (unique within the cart; kept by the order made from it).
    pub id: String,
    /// User-defined key.
    #[serde(default)]
    pub key: Option<String>,
    /// Product id.
    pub product_id: String,
    /// Product key, when the product has one.
    #[serde(default)]
    pub product_key: Option<String>,
    /// Product name at the time the line was added.
    #[serde(default)]
    pub name: LocalizedString,
    /// Product slug.
    #[serde(default)]
    pub product_slug: Option<LocalizedString>,
    /// Product type.
    #[serde(default)]
    pub product_type: Option<Reference>,
    /// Variant snapshot (sku, images, attributes, prices).
    pub variant: ProductVariant,
    /// The price used: `value` is the catalog price, `discounted` a product discount.
    pub price: Price,
    /// Quantity.
    pub quantity: i64,
    /// Line total: unit price (after cart discounts) × quantity; taxes included only when
    /// the tax rate is `includedInPrice`.
    pub total_price: TypedMoney,
    /// Cart discounts on this line, per group of units.
    #[serde(default)]
    pub discounted_price_per_quantity: Vec<DiscountedLineItemPriceForQuantity>,
    /// Net, gross and tax of the line, once taxes are calculated.
    #[serde(default)]
    pub taxed_price: Option<TaxedPrice>,
    /// The tax rate applied.
    #[serde(default)]
    pub tax_rate: Option<TaxRate>,
    /// `Platform`, `ExternalPrice` or `ExternalTotal`.
    #[serde(default)]
    pub price_mode: Option<String>,
    /// `Standard` or `GiftLineItem` (added by a cart discount).
    #[serde(default)]
    pub line_item_mode: Option<String>,
    /// When the line was added to the cart.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub added_at: Option<OffsetDateTime>,
    /// Last change of the line (e.g. its quantity).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_modified_at: Option<OffsetDateTime>,
}

/// A custom line item: a priced line that is not a product (fees, gift wrapping, …).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomLineItem {
    /// Custom line item id.
    pub id: String,
    /// User-defined key.
    #[serde(default)]
    pub key: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: LocalizedString,
    /// Unit price.
    pub money: TypedMoney,
    /// Quantity.
    #[serde(default)]
    pub quantity: i64,
    /// Line total after cart discounts.
    pub total_price: TypedMoney,
    /// Identifier within the cart.
    #[serde(default)]
    pub slug: String,
    /// Cart discounts on this line, per group of units.
    #[serde(default)]
    pub discounted_price_per_quantity: Vec<DiscountedLineItemPriceForQuantity>,
    /// Net, gross and tax, once taxes are calculated.
    #[serde(default)]
    pub taxed_price: Option<TaxedPrice>,
}

/// Tracking data of a parcel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingData {
    /// Tracking number of the carrier.
    #[serde(default)]
    pub tracking_id: Option<String>,
    /// Carrier name.
    #[serde(default)]
    pub carrier: Option<String>,
    /// Shipping provider (e.g. a logistics platform).
    #[serde(default)]
    pub provider: Option<String>,
    /// Transaction id at the provider.
    #[serde(default)]
    pub provider_transaction: Option<String>,
    /// Whether this is a return parcel.
    #[serde(default)]
    pub is_return: bool,
}

/// An item of a delivery or parcel: a (custom) line item id and a quantity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryItem {
    /// Line item or custom line item id.
    pub id: String,
    /// Quantity.
    pub quantity: i64,
}

/// A parcel of a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parcel {
    /// Parcel id.
    pub id: String,
    /// User-defined key.
    #[serde(default)]
    pub key: Option<String>,
    /// Creation time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    /// Tracking data.
    #[serde(default)]
    pub tracking_data: Option<TrackingData>,
    /// Items in the parcel.
    #[serde(default)]
    pub items: Vec<DeliveryItem>,
}

/// A delivery (shipment) of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Delivery id.
    pub id: String,
    /// User-defined key.
    #[serde(default)]
    pub key: Option<String>,
    /// Creation time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    /// Items delivered.
    #[serde(default)]
    pub items: Vec<DeliveryItem>,
    /// Parcels.
    #[serde(default)]
    pub parcels: Vec<Parcel>,
}

/// `ShippingInfo`: the shipping method and price of a cart or order (single shipping mode),
/// with the deliveries of an order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingInfo {
    /// Name of the shipping method.
    #[serde(default)]
    pub shipping_method_name: String,
    /// Shipping price before shipping discounts (tax included only when the rate says so).
    pub price: TypedMoney,
    /// Set when a cart discount applies to shipping.
    #[serde(default)]
    pub discounted_price: Option<DiscountedLineItemPrice>,
    /// The shipping method.
    #[serde(default)]
    pub shipping_method: Option<Reference>,
    /// Net, gross and tax of the shipping price.
    #[serde(default)]
    pub taxed_price: Option<TaxedPrice>,
    /// `MatchesCart` or `DoesNotMatchCart`.
    #[serde(default)]
    pub shipping_method_state: Option<String>,
    /// Deliveries (orders only).
    #[serde(default)]
    pub deliveries: Vec<Delivery>,
}

/// One shipping of a cart or order in `Multiple` shipping mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipping {
    /// Key of the shipping within the cart.
    #[serde(default)]
    pub shipping_key: String,
    /// Its shipping method, price and deliveries.
    pub shipping_info: ShippingInfo,
    /// Its address.
    #[serde(default)]
    pub shipping_address: Option<Address>,
}

/// A discount code reference; `obj` is set when requested with
/// `expand=discountCodes[*].discountCode`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountCodeReference {
    /// `discount-code`.
    #[serde(default)]
    pub type_id: String,
    /// Discount code id.
    pub id: String,
    /// The discount code, when expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obj: Option<Box<DiscountCode>>,
}

/// `DiscountCodeInfo`: a discount code added to a cart and whether it applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountCodeInfo {
    /// The discount code (expanded or not).
    pub discount_code: DiscountCodeReference,
    /// `MatchesCart` when it applies; `NotActive`, `NotValid`, `DoesNotMatchCart`,
    /// `MaxApplicationReached`, `ApplicationStoppedByPreviousDiscount` otherwise.
    #[serde(default)]
    pub state: Option<String>,
}

/// `DiscountedTotalPricePortion`: the part of a total-price discount one cart discount gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountedTotalPricePortion {
    /// The cart discount.
    pub discount: Reference,
    /// Amount it took off.
    pub discounted_amount: TypedMoney,
}

/// `DiscountOnTotalPrice`: cart discounts on the cart's total price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountOnTotalPrice {
    /// Amount taken off the total (in the cart's price mode: gross when prices include taxes).
    pub discounted_amount: TypedMoney,
    /// The cart discounts behind it.
    #[serde(default)]
    pub included_discounts: Vec<DiscountedTotalPricePortion>,
    /// Net amount taken off, once taxes are calculated.
    #[serde(default)]
    pub discounted_net_amount: Option<TypedMoney>,
    /// Gross amount taken off, once taxes are calculated.
    #[serde(default)]
    pub discounted_gross_amount: Option<TypedMoney>,
}

/// `PaymentMethodInfo` of a payment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethodInfo {
    /// Payment service provider, e.g. `stripe`.
    #[serde(default)]
    pub payment_interface: Option<String>,
    /// Payment method, e.g. `CreditCard`.
    #[serde(default)]
    pub method: Option<String>,
    /// Localized display name of the method.
    #[serde(default)]
    pub name: Option<LocalizedString>,
}

/// A payment (only when expanded in `paymentInfo.payments[*]`): its method.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Payment id.
    pub id: String,
    /// Method of the payment.
    #[serde(default)]
    pub payment_method_info: PaymentMethodInfo,
}

/// A payment reference; `obj` is set when requested with `expand=paymentInfo.payments[*]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentReference {
    /// `payment`.
    #[serde(default)]
    pub type_id: String,
    /// Payment id.
    pub id: String,
    /// The payment, when expanded.
    #[serde(default)]
    pub obj: Option<Payment>,
}

/// `PaymentInfo` of a cart or order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentInfo {
    /// Payments.
    #[serde(default)]
    pub payments: Vec<PaymentReference>,
}

/// A returned (custom) line item of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnItem {
    /// Return item id.
    pub id: String,
    /// User-defined key.
    #[serde(default)]
    pub key: Option<String>,
    /// Quantity returned.
    pub quantity: i64,
    /// `LineItemReturnItem` or `CustomLineItemReturnItem`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The returned line item (`LineItemReturnItem`).
    #[serde(default)]
    pub line_item_id: Option<String>,
    /// The returned custom line item (`CustomLineItemReturnItem`).
    #[serde(default)]
    pub custom_line_item_id: Option<String>,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// `Advised`, `Returned`, `BackInStock` or `Unusable`.
    #[serde(default)]
    pub shipment_state: String,
    /// `NonRefundable`, `Initial`, `Refunded` or `NotRefunded`.
    #[serde(default)]
    pub payment_state: String,
    /// Creation time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    /// Last change (e.g. of the payment state).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_modified_at: Option<OffsetDateTime>,
}

/// `ReturnInfo`: one return of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnInfo {
    /// Returned items.
    #[serde(default)]
    pub items: Vec<ReturnItem>,
    /// Tracking id of the return shipment.
    #[serde(default)]
    pub return_tracking_id: Option<String>,
    /// Date of the return.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub return_date: Option<OffsetDateTime>,
}

/// A discount code (`/discount-codes`): the text customers enter and the cart discounts it
/// unlocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscountCode {
    /// Id.
    pub id: String,
    /// Version.
    pub version: i64,
    /// Key.
    #[serde(default)]
    pub key: Option<String>,
    /// The code customers enter, e.g. `SUMMER20`.
    pub code: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<LocalizedString>,
    /// Description.
    #[serde(default)]
    pub description: Option<LocalizedString>,
    /// Cart discounts the code unlocks.
    #[serde(default)]
    pub cart_discounts: Vec<Reference>,
    /// Whether the code can be applied.
    #[serde(default)]
    pub is_active: bool,
    /// Groups the code belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Start of validity.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    /// End of validity.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
}

/// A cart: identity, addresses, line items, prices, discounts and shipping.
///
/// Everything past the identity fields defaults, so payloads without them (older emulators,
/// trimmed fixtures) still parse.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cart {
    /// Id.
    pub id: String,
    /// Version.
    pub version: i64,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
    /// User-defined key.
    #[serde(default)]
    pub key: Option<String>,
    /// Id of the registered customer the cart belongs to.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Email address of the buyer, as entered.
    #[serde(default)]
    pub customer_email: Option<String>,
    /// Id of an anonymous session.
    #[serde(default)]
    pub anonymous_id: Option<String>,
    /// The store the cart belongs to.
    #[serde(default)]
    pub store: Option<KeyReference>,
    /// Shipping address.
    #[serde(default)]
    pub shipping_address: Option<Address>,
    /// Billing address.
    #[serde(default)]
    pub billing_address: Option<Address>,
    /// ISO country used for price selection.
    #[serde(default)]
    pub country: Option<String>,
    /// Locale.
    #[serde(default)]
    pub locale: Option<String>,
    /// `Active`, `Merged`, `Ordered` or `Frozen`.
    #[serde(default)]
    pub cart_state: Option<String>,
    /// Custom fields.
    #[serde(default)]
    pub custom: Option<CustomFields>,
    /// Product line items.
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    /// Custom line items.
    #[serde(default)]
    pub custom_line_items: Vec<CustomLineItem>,
    /// Sum of the line totals and the shipping price, after discounts (tax included only
    /// when the prices include it; see `taxed_price`).
    #[serde(default)]
    pub total_price: Option<TypedMoney>,
    /// Net, gross and tax totals, once taxes are calculated.
    #[serde(default)]
    pub taxed_price: Option<TaxedPrice>,
    /// Net, gross and tax of the shipping price.
    #[serde(default)]
    pub taxed_shipping_price: Option<TaxedPrice>,
    /// `Platform`, `External`, `ExternalAmount` or `Disabled`.
    #[serde(default)]
    pub tax_mode: Option<String>,
    /// `Single` or `Multiple`.
    #[serde(default)]
    pub shipping_mode: Option<String>,
    /// Shipping method and price (`Single` shipping mode).
    #[serde(default)]
    pub shipping_info: Option<ShippingInfo>,
    /// Shippings (`Multiple` shipping mode).
    #[serde(default)]
    pub shipping: Vec<Shipping>,
    /// Discount codes added to the cart.
    #[serde(default)]
    pub discount_codes: Vec<DiscountCodeInfo>,
    /// Cart discounts on the total price.
    #[serde(default)]
    pub discount_on_total_price: Option<DiscountOnTotalPrice>,
    /// Payments.
    #[serde(default)]
    pub payment_info: Option<PaymentInfo>,
}

/// An order: a cart snapshot plus order, payment and shipment states, returns and
/// deliveries.
///
/// Everything past the identity fields defaults, so payloads without them still parse.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Id.
    pub id: String,
    /// Version.
    pub version: i64,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
    /// Id of the registered customer who ordered; absent for a guest order.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Email address of the buyer, as entered.
    #[serde(default)]
    pub customer_email: Option<String>,
    /// Id of the anonymous session the order came from.
    #[serde(default)]
    pub anonymous_id: Option<String>,
    /// The store the order belongs to.
    #[serde(default)]
    pub store: Option<KeyReference>,
    /// Shipping address.
    #[serde(default)]
    pub shipping_address: Option<Address>,
    /// Billing address.
    #[serde(default)]
    pub billing_address: Option<Address>,
    /// ISO country used for price selection.
    #[serde(default)]
    pub country: Option<String>,
    /// Locale.
    #[serde(default)]
    pub locale: Option<String>,
    /// Custom fields.
    #[serde(default)]
    pub custom: Option<CustomFields>,
    /// Shop-assigned order number.
    #[serde(default)]
    pub order_number: Option<String>,
    /// `Open`, `Confirmed`, `Complete` or `Cancelled`.
    #[serde(default)]
    pub order_state: Option<String>,
    /// `BalanceDue`, `Failed`, `Pending`, `CreditOwed` or `Paid`.
    #[serde(default)]
    pub payment_state: Option<String>,
    /// `Shipped`, `Delivered`, `Ready`, `Pending`, `Delayed`, `Partial`, `Backorder` or
    /// `Canceled`.
    #[serde(default)]
    pub shipment_state: Option<String>,
    /// When the order was completed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// The cart the order was created from.
    #[serde(default)]
    pub cart: Option<Reference>,
    /// Product line items.
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    /// Custom line items.
    #[serde(default)]
    pub custom_line_items: Vec<CustomLineItem>,
    /// Sum of the line totals and the shipping price, after discounts (tax included only
    /// when the prices include it; see `taxed_price`).
    #[serde(default)]
    pub total_price: Option<TypedMoney>,
    /// Net, gross and tax totals, once taxes are calculated.
    #[serde(default)]
    pub taxed_price: Option<TaxedPrice>,
    /// Net, gross and tax of the shipping price.
    #[serde(default)]
    pub taxed_shipping_price: Option<TaxedPrice>,
    /// `Platform`, `External`, `ExternalAmount` or `Disabled`.
    #[serde(default)]
    pub tax_mode: Option<String>,
    /// `Single` or `Multiple`.
    #[serde(default)]
    pub shipping_mode: Option<String>,
    /// Shipping method, price and deliveries (`Single` shipping mode).
    #[serde(default)]
    pub shipping_info: Option<ShippingInfo>,
    /// Shippings with their deliveries (`Multiple` shipping mode).
    #[serde(default)]
    pub shipping: Vec<Shipping>,
    /// Discount codes of the order.
    #[serde(default)]
    pub discount_codes: Vec<DiscountCodeInfo>,
    /// Cart discounts on the total price.
    #[serde(default)]
    pub discount_on_total_price: Option<DiscountOnTotalPrice>,
    /// Payments.
    #[serde(default)]
    pub payment_info: Option<PaymentInfo>,
    /// Returns.
    #[serde(default)]
    pub return_info: Vec<ReturnInfo>,
}

impl Order {
    /// The shipping infos of the order: the single one, then those of `Multiple` mode.
    pub fn shipping_infos(&self) -> impl Iterator<Item = &ShippingInfo> {
        self.shipping_info
            .iter()
            .chain(self.shipping.iter().map(|s| &s.shipping_info))
    }

    /// All return items, in return order.
    pub fn return_items(&self) -> impl Iterator<Item = &ReturnItem> {
        self.return_info.iter().flat_map(|r| r.items.iter())
    }
}

impl Cart {
    /// The shipping infos of the cart: the single one, then those of `Multiple` mode.
    pub fn shipping_infos(&self) -> impl Iterator<Item = &ShippingInfo> {
        self.shipping_info
            .iter()
            .chain(self.shipping.iter().map(|s| &s.shipping_info))
    }
}

macro_rules! keyed {
    ($($t:ty),*) => {$(
        impl Keyed for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn last_modified_at(&self) -> OffsetDateTime {
                self.last_modified_at
            }
        }
    )*};
}
keyed!(
    ProductProjection,
    Product,
    Category,
    Store,
    Channel,
    ProductType,
    Customer,
    CustomerGroup,
    Cart,
    Order,
    DiscountCode
);

/// A message (`GET /messages`): one change of one resource. Only the envelope fields are
/// modelled; the type-specific payload stays in `rest`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Message id.
    pub id: String,
    /// Message version.
    #[serde(default)]
    pub version: i64,
    /// When the change happened.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification of the message.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
    /// `CustomerDeleted`, `OrderCreated`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The changed resource.
    pub resource: Reference,
    /// The resource's version after the change.
    #[serde(default)]
    pub resource_version: i64,
    /// Per-resource sequence number (ordering).
    #[serde(default)]
    pub sequence_number: i64,
    /// Type-specific fields.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

keyed!(Message);

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::path::PathBuf;
    use std::str::FromStr;

    /// The official example `name` from `shared/examples/commercetools/`, or `None` (with one
    /// printed line) when that folder is not next to the repository.
    fn official_example(name: &str) -> Option<String> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/examples/commercetools")
            .join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(_) => {
                println!("skipped: {} not found", path.display());
                None
            }
        }
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn the_official_order_example_parses_with_its_line_items_and_taxes() {
        let Some(text) = official_example("order.api-reference.json") else {
            return;
        };
        let order: Order = serde_json::from_str(&text).unwrap();
        assert_eq!(order.id, "92f5a867-bf19-47ab-982c-6720a03a3921");
        assert_eq!(order.order_state.as_deref(), Some("Open"));
        assert_eq!(order.tax_mode.as_deref(), Some("External"));
        assert_eq!(order.total_price.as_ref().unwrap().amount(), dec("10"));
        assert!(order.return_info.is_empty());
        assert!(order.discount_codes.is_empty());
        let line = &order.line_items[0];
        assert_eq!(line.product_id, "c5c75935-595a-4cc3-a80e-24e9a9c55094");
        assert_eq!(line.name.get(&["en"]), Some("MyProduct"));
        assert_eq!(
            line.product_slug.as_ref().unwrap().get(&["en"]),
            Some("new-product-slug-12345678")
        );
        assert_eq!(line.variant.sku.as_deref(), Some("some-sku-123"));
        assert_eq!(line.quantity, 1);
        assert_eq!(line.total_price.amount(), dec("10"));
        let taxed = line.taxed_price.as_ref().unwrap();
        assert_eq!(taxed.total_gross.amount(), dec("11"));
        assert_eq!(taxed.total_tax, None);
        let rate = line.tax_rate.as_ref().unwrap();
        assert!(!rate.included_in_price);
        assert_eq!(line.line_item_mode.as_deref(), Some("Standard"));
    }

    #[test]
    fn the_official_cart_example_parses_with_its_line_items() {
        let Some(text) = official_example("cart-with-line-items.api-reference.json") else {
            return;
        };
        let cart: Cart = serde_json::from_str(&text).unwrap();
        assert_eq!(cart.id, "2a3baa00-44fa-4ab8-bec7-933c31e18dcc");
        assert_eq!(cart.key.as_deref(), Some("test-key"));
        assert_eq!(cart.cart_state.as_deref(), Some("Active"));
        assert_eq!(cart.store.as_ref().unwrap().key, "test-key");
        assert_eq!(cart.total_price.as_ref().unwrap().amount(), dec("56"));
        let line = &cart.line_items[0];
        assert_eq!(line.quantity, 2);
        assert_eq!(line.price.value.amount(), dec("28"));
        assert_eq!(
            line.variant.images[0].url,
            "https://www.commercetools.com/cli/data/252542005_1.jpg"
        );
        assert_eq!(cart.tax_mode.as_deref(), Some("Platform"));
    }

    #[test]
    fn the_official_empty_cart_example_parses() {
        let Some(text) = official_example("cart.api-reference.json") else {
            return;
        };
        let cart: Cart = serde_json::from_str(&text).unwrap();
        assert!(cart.line_items.is_empty());
    }

    #[test]
    fn an_identity_only_order_still_parses_with_empty_defaults() {
        let order: Order = serde_json::from_str(
            r#"{"id":"o-1","version":1,"createdAt":"2026-01-01T00:00:00Z",
                "lastModifiedAt":"2026-01-01T00:00:00Z","customerEmail":"a@example.com"}"#,
        )
        .unwrap();
        assert!(order.line_items.is_empty());
        assert_eq!(order.total_price, None);
        assert_eq!(order.payment_state, None);
        assert!(order.return_info.is_empty());
        let cart: Cart = serde_json::from_str(
            r#"{"id":"c-1","version":1,"createdAt":"2026-01-01T00:00:00Z",
                "lastModifiedAt":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert!(cart.line_items.is_empty());
        assert_eq!(cart.shipping_infos().count(), 0);
    }

    #[test]
    fn shipping_discounts_deliveries_returns_and_payments_parse() {
        let money = |cents: i64| serde_json::json!({"type":"centPrecision","currencyCode":"EUR","centAmount":cents,"fractionDigits":2});
        let order: Order = serde_json::from_value(serde_json::json!({
            "id": "o-2", "version": 7,
            "createdAt": "2026-01-01T10:00:00.000Z", "lastModifiedAt": "2026-01-03T10:00:00.000Z",
            "orderNumber": "10023", "orderState": "Complete",
            "paymentState": "Paid", "shipmentState": "Shipped",
            "completedAt": "2026-01-04T00:00:00Z",
            "totalPrice": money(4388),
            "taxedPrice": {"totalNet": money(3687), "totalGross": money(4388), "totalTax": money(701),
                           "taxPortions": [{"rate": 0.19, "amount": money(701), "name": "VAT"}]},
            "discountCodes": [{"discountCode": {"typeId": "discount-code", "id": "dc-1"}, "state": "MatchesCart"}],
            "discountOnTotalPrice": {"discountedAmount": money(500),
                "includedDiscounts": [{"discount": {"typeId": "cart-discount", "id": "cd-1"}, "discountedAmount": money(500)}]},
            "shippingInfo": {
                "shippingMethodName": "DHL", "price": money(490),
                "discountedPrice": {"value": money(0), "includedDiscounts": []},
                "shippingMethod": {"typeId": "shipping-method", "id": "sm-1"},
                "deliveries": [{"id": "d-1", "createdAt": "2026-01-02T00:00:00Z",
                    "items": [{"id": "li-1", "quantity": 1}],
                    "parcels": [{"id": "p-1", "trackingData": {"trackingId": "TRK1", "carrier": "DHL", "isReturn": false}}]}]
            },
            "paymentInfo": {"payments": [{"typeId": "payment", "id": "pay-1",
                "obj": {"id": "pay-1", "paymentMethodInfo": {"paymentInterface": "stripe", "method": "card"}}}]},
            "returnInfo": [{"returnTrackingId": "RET-1", "returnDate": "2026-01-05T00:00:00Z",
                "items": [{"id": "ri-1", "quantity": 1, "type": "LineItemReturnItem", "lineItemId": "li-1",
                           "shipmentState": "Returned", "paymentState": "Refunded",
                           "createdAt": "2026-01-05T00:00:00Z", "lastModifiedAt": "2026-01-06T00:00:00Z"}]}]
        }))
        .unwrap();
        let shipping = order.shipping_infos().next().unwrap();
        assert_eq!(shipping.shipping_method_name, "DHL");
        let tracking = shipping.deliveries[0].parcels[0]
            .tracking_data
            .as_ref()
            .unwrap();
        assert_eq!(tracking.tracking_id.as_deref(), Some("TRK1"));
        assert_eq!(
            order
                .taxed_price
                .as_ref()
                .unwrap()
                .total_tax
                .as_ref()
                .unwrap()
                .amount(),
            dec("7.01")
        );
        let item = order.return_items().next().unwrap();
        assert_eq!(item.kind, "LineItemReturnItem");
        assert_eq!(item.payment_state, "Refunded");
        assert_eq!(item.line_item_id.as_deref(), Some("li-1"));
        let payment = order.payment_info.as_ref().unwrap().payments[0]
            .obj
            .as_ref()
            .unwrap();
        assert_eq!(payment.payment_method_info.method.as_deref(), Some("card"));
        assert_eq!(order.discount_codes[0].discount_code.id, "dc-1");
        assert_eq!(
            order
                .discount_on_total_price
                .as_ref()
                .unwrap()
                .included_discounts[0]
                .discount
                .id,
            "cd-1"
        );
    }

    #[test]
    fn an_expanded_discount_code_reference_keeps_the_code() {
        let info: DiscountCodeInfo = serde_json::from_str(
            r#"{"discountCode":{"typeId":"discount-code","id":"dc-1","obj":{"id":"dc-1","version":1,
                "code":"SUMMER20","createdAt":"2026-01-01T00:00:00Z","lastModifiedAt":"2026-01-01T00:00:00Z"}},
                "state":"MatchesCart"}"#,
        )
        .unwrap();
        assert_eq!(info.discount_code.obj.unwrap().code, "SUMMER20");
        let plain: DiscountCodeInfo =
            serde_json::from_str(r#"{"discountCode":{"typeId":"discount-code","id":"dc-2"}}"#)
                .unwrap();
        assert_eq!(plain.discount_code.id, "dc-2");
        assert_eq!(plain.discount_code.obj, None);
        assert_eq!(plain.state, None);
    }

    #[test]
    fn a_discount_code_parses() {
        let code: DiscountCode = serde_json::from_str(
            r#"{"id":"dc-1","version":2,"code":"SUMMER20","name":{"en":"Summer"},
                "cartDiscounts":[{"typeId":"cart-discount","id":"cd-1"}],"isActive":true,
                "createdAt":"2026-01-01T00:00:00Z","lastModifiedAt":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(code.code, "SUMMER20");
        assert_eq!(code.cart_discounts[0].id, "cd-1");
        assert_eq!(code.name.unwrap().get(&["en"]), Some("Summer"));
    }
}
