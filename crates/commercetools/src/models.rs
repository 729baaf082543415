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

/// A cart: its identity and address fields (line items and prices are not read yet).
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
}

/// An order: its identity and address fields (line items and prices are not read yet).
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
    Order
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
