//! Event mapping: commercetools orders, carts and products to Omnisend `POST /events` bodies
//! (API version 2026-03-15 `EventRequest`: `eventName`, `eventVersion`, `origin`, `eventID`,
//! `eventTime`, `contact`, `properties`).
//!
//! Pure: no I/O, no clock. The caller resolves the contact ([`EventContact`], under the
//! identity rules), says which facts were already sent (`already`), stores what comes back
//! ([`PlannedEvent`]: the body, its deterministic [`Uuid`] and the fact keys it covers) and the
//! [`CartSnapshot`] for the next cart diff.
//!
//! # Facts
//!
//! A fact is one thing that happened to one resource; an event covers one or more facts, and
//! a fact is never sent twice. Keys (see [`facts`]):
//!
//! | fact | event |
//! |---|---|
//! | `order:<id>:placed` | `placed order` |
//! | `order:<id>:ordered-product:<line item id>` | `ordered product` |
//! | `order:<id>:paid` | `paid for order` |
//! | `order:<id>:fulfilled` | `order fulfilled` (once, for `Shipped` or `Delivered`) |
//! | `order:<id>:canceled` | `order canceled` |
//! | `order:<id>:refund:<return item id>` | `order refunded` (one event per batch of newly refunded items) |
//! | `cart:<id>:line:<line item id>:qty:<quantity>` | `added product to cart` |
//! | `cart:<id>:checkout` | `started checkout` |
//! | `product:<id>:viewed:<discriminator>` | `viewed product` |
//!
//! # Event ids and times
//!
//! `eventID` is a UUIDv5 under [`EVENT_ID_NAMESPACE`] of
//! `<project key>/<resource type>/<resource id>/<event name>/<discriminator>` ([`event_id`]), so
//! re-planning the same fact yields the same id (Omnisend deduplicates historical events on
//! `eventID` + `eventTime`). `eventTime` is the order's `createdAt` for `placed order` and
//! `ordered product`; the newest `lastModifiedAt` of the refunded return items for `order
//! refunded`; the order's `lastModifiedAt` for the other order events (commercetools does not
//! record when a state changed; that is the closest stable instant); the line's
//! `lastModifiedAt` (else `addedAt`, else the cart's `lastModifiedAt`) for `added product to
//! cart`; the cart's `lastModifiedAt` for `started checkout`; the caller's instant for `viewed
//! product`.
//!
//! # Money
//!
//! All amounts are exact decimals ([`TypedMoney::amount`]) written as JSON floats through their
//! decimal text ([`money_json`]): `12.345` stays `12.345`, `19.99` stays `19.99`, JPY `1500`
//! is `1500.0`. Always a float, so Omnisend never infers an integer type for a money property
//! (a later `12.5` would then mismatch); the catalog writes prices the same way.
//!
//! * `totalPrice`: `taxedPrice.totalGross` when taxes are calculated, else `totalPrice` (what
//!   the customer pays, also when prices exclude taxes);
//! * `subTotalPrice`: Σ line item and custom line item totals (after line-level cart
//!   discounts, before total-price discounts and shipping), in the price mode of the cart
//!   (`subTotalTaxIncluded` says which: true when the lines' tax rates are `includedInPrice`);
//! * `totalDiscount`: line-level cart discounts (Σ `productDiscount`), plus
//!   `discountOnTotalPrice`, plus shipping discounts. Product (catalog) discounts are not counted: they show as
//!   `productStrikeThroughPrice`;
//! * `totalTax`: `taxedPrice.totalTax` (or gross − net), 0 when taxes are not calculated;
//! * `shippingPrice`: shipping price after shipping discounts, summed over all shippings;
//!   absent when the order has no shipping;
//! * line `productPrice`: the unit price the catalog charged (`price.discounted` when a product
//!   discount applies, else `price.value`), `productStrikeThroughPrice` the undiscounted one
//!   when higher, `productDiscount` = `productPrice` × quantity − line total (cart discounts on
//!   the line, ≥ 0).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use commercetools::models::{
    Address, Cart, CustomLineItem, DiscountCode, DiscountedLineItemPriceForQuantity, LineItem,
    Order, ProductProjection, ReturnItem, TaxedPrice,
};
use commercetools::money::default_fraction_digits;
use commercetools::price::{PriceSelector, select_price};
use commercetools::{LocalizedString, TypedMoney};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::Rejection;
use super::catalog::variant_id;
use crate::config::UrlTemplate;

/// `origin` of every event: Omnisend's value "for custom stores".
pub const ORIGIN: &str = "api";

/// Namespace of the UUIDv5 event ids: itself UUIDv5(`NAMESPACE_URL`,
/// `urn:ct-omnisend:omnisend-events`) = `61cc5e21-fe4c-5f74-a76f-1d5332d5804d`. Never change
/// it: ids of re-planned events would no longer match the ones sent.
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x61cc5e21_fe4c_5f74_a76f_1d5332d5804d);

/// `contact.firstName` / `lastName` maximum length (events spec).
const CONTACT_NAME_MAX: usize = 50;
/// `contact.phone` maximum length (events spec).
const CONTACT_PHONE_MAX: usize = 15;

/// The recommended Omnisend events this mapping produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventName {
    /// `placed order` (v2).
    #[serde(rename = "placed order")]
    PlacedOrder,
    /// `ordered product` (v2): one per line item of a placed order.
    #[serde(rename = "ordered product")]
    OrderedProduct,
    /// `paid for order` (v2).
    #[serde(rename = "paid for order")]
    PaidForOrder,
    /// `order fulfilled` (v2).
    #[serde(rename = "order fulfilled")]
    OrderFulfilled,
    /// `order canceled` (v2; one "l").
    #[serde(rename = "order canceled")]
    OrderCanceled,
    /// `order refunded` (v2).
    #[serde(rename = "order refunded")]
    OrderRefunded,
    /// `added product to cart` (empty version).
    #[serde(rename = "added product to cart")]
    AddedProductToCart,
    /// `started checkout` (empty version).
    #[serde(rename = "started checkout")]
    StartedCheckout,
    /// `viewed product` (v4).
    #[serde(rename = "viewed product")]
    ViewedProduct,
}

impl EventName {
    /// Every event name, in causal order within each family.
    pub const ALL: [EventName; 9] = [
        EventName::PlacedOrder,
        EventName::OrderedProduct,
        EventName::PaidForOrder,
        EventName::OrderFulfilled,
        EventName::OrderCanceled,
        EventName::OrderRefunded,
        EventName::AddedProductToCart,
        EventName::StartedCheckout,
        EventName::ViewedProduct,
    ];

    /// The exact `eventName`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::PlacedOrder => "placed order",
            EventName::OrderedProduct => "ordered product",
            EventName::PaidForOrder => "paid for order",
            EventName::OrderFulfilled => "order fulfilled",
            EventName::OrderCanceled => "order canceled",
            EventName::OrderRefunded => "order refunded",
            EventName::AddedProductToCart => "added product to cart",
            EventName::StartedCheckout => "started checkout",
            EventName::ViewedProduct => "viewed product",
        }
    }

    /// The `eventVersion`: `v2` for the order family (including `ordered product`), empty for
    /// the cart events, `v4` for `viewed product` — the only version Omnisend documents for it
    /// (JavaScript API; that the REST endpoint accepts it is not confirmed).
    pub fn version(self) -> &'static str {
        match self {
            EventName::PlacedOrder
            | EventName::OrderedProduct
            | EventName::PaidForOrder
            | EventName::OrderFulfilled
            | EventName::OrderCanceled
            | EventName::OrderRefunded => "v2",
            EventName::AddedProductToCart | EventName::StartedCheckout => "",
            EventName::ViewedProduct => "v4",
        }
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The contact an event is about, already resolved by the caller under the identity rules
/// (normalised email, E.164 phone). The mapping only renders it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventContact {
    /// Email address.
    pub email: Option<String>,
    /// Phone number (E.164).
    pub phone: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
}

impl EventContact {
    /// Whether Omnisend can tell who this is (a non-blank email or phone).
    pub fn is_identified(&self) -> bool {
        non_blank(&self.email).is_some() || self.phone_json().is_some()
    }

    /// `contact` of the event body: blank fields left out, names cut (without ellipsis) to the
    /// spec's 50 characters, a phone longer than the spec's 15 characters left out.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(email) = non_blank(&self.email) {
            m.insert("email".into(), email.into());
        }
        if let Some(phone) = self.phone_json() {
            m.insert("phone".into(), phone.into());
        }
        if let Some(name) = non_blank(&self.first_name) {
            m.insert("firstName".into(), cut_chars(name, CONTACT_NAME_MAX).into());
        }
        if let Some(name) = non_blank(&self.last_name) {
            m.insert("lastName".into(), cut_chars(name, CONTACT_NAME_MAX).into());
        }
        Value::Object(m)
    }

    fn phone_json(&self) -> Option<&str> {
        non_blank(&self.phone).filter(|p| p.chars().count() <= CONTACT_PHONE_MAX)
    }

    /// Lower-case email, else phone: who viewed a product (hashed into the event id only).
    fn key(&self) -> Option<String> {
        non_blank(&self.email)
            .map(str::to_lowercase)
            .or_else(|| self.phone_json().map(str::to_owned))
    }
}

/// Everything the event mapping of one store needs besides the resource and the contact.
#[derive(Clone, Copy, Debug)]
pub struct EventContext<'a> {
    /// commercetools project key (part of every event id).
    pub project_key: &'a str,
    /// The store's locale fallback chain (titles, slugs).
    pub locales: &'a [String],
    /// Product URL template (as in the catalog: `{slug}` `{locale}` `{key}` `{id}` `{sku}`).
    pub product_url: &'a UrlTemplate,
    /// Order status page template (`{id}` = order id, `{number}` = order number or id,
    /// `{locale}`); `orderStatusURL` is left out when `None`.
    pub order_status_url: Option<&'a UrlTemplate>,
    /// Discount codes by id, to name the order's codes and split their amounts. Codes
    /// expanded on the order (`expand=discountCodes[*].discountCode`) are used first.
    pub discount_codes: &'a HashMap<String, DiscountCode>,
    /// Also send one `ordered product` per line item with `placed order`.
    pub ordered_product_events: bool,
    /// Send `started checkout` when a street-level shipping address first appears on a cart.
    pub checkout_on_shipping_address: bool,
    /// The cart's recovery URL (`abandonedCheckoutURL`), already built with its token; left
    /// out when `None`.
    pub recovery_url: Option<&'a str>,
}

/// One event to send: its body, its id and the facts it covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedEvent {
    /// `eventID` (also inside `body`).
    pub event_id: Uuid,
    /// `eventName` (also inside `body`).
    pub name: EventName,
    /// Fact keys this event covers; record them as sent together with the event.
    pub facts: Vec<String>,
    /// The `EventRequest` body.
    pub body: Value,
}

/// What the previous cart diff saw; the caller stores it per cart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartSnapshot {
    /// Cart version seen (older notifications are ignored).
    pub version: i64,
    /// Line item id → quantity.
    pub lines: BTreeMap<String, i64>,
    /// Whether the cart had a street-level shipping address.
    pub had_shipping_address: bool,
}

impl CartSnapshot {
    /// The snapshot of `cart` as it is now.
    pub fn of(cart: &Cart) -> Self {
        Self {
            version: cart.version,
            lines: cart
                .line_items
                .iter()
                .map(|l| (l.id.clone(), l.quantity))
                .collect(),
            had_shipping_address: has_checkout_address(cart),
        }
    }
}

/// A product page view reported by the storefront.
#[derive(Clone, Debug)]
pub struct ProductView<'a> {
    /// The product (current projection).
    pub product: &'a ProductProjection,
    /// The variant viewed; `None` = master variant.
    pub variant_sku: Option<&'a str>,
    /// Price selection of the store (currency, country, channel).
    pub price: PriceSelector<'a>,
    /// When the view happened (`eventTime`, and the instant prices are selected at).
    pub at: OffsetDateTime,
    /// Distinguishes views (e.g. the storefront's request id): part of the event id and fact.
    pub discriminator: &'a str,
}

/// Fact key builders (formats in the module docs).
pub mod facts {
    /// `order:<id>:placed`.
    pub fn order_placed(order_id: &str) -> String {
        format!("order:{order_id}:placed")
    }
    /// `order:<id>:ordered-product:<line item id>`.
    pub fn ordered_product(order_id: &str, line_item_id: &str) -> String {
        format!("order:{order_id}:ordered-product:{line_item_id}")
    }
    /// `order:<id>:paid`.
    pub fn order_paid(order_id: &str) -> String {
        format!("order:{order_id}:paid")
    }
    /// `order:<id>:fulfilled`.
    pub fn order_fulfilled(order_id: &str) -> String {
        format!("order:{order_id}:fulfilled")
    }
    /// `order:<id>:canceled`.
    pub fn order_canceled(order_id: &str) -> String {
        format!("order:{order_id}:canceled")
    }
    /// `order:<id>:refund:<return item id>`.
    pub fn order_refund(order_id: &str, return_item_id: &str) -> String {
        format!("order:{order_id}:refund:{return_item_id}")
    }
    /// `cart:<id>:line:<line item id>:qty:<quantity>`.
    pub fn cart_line(cart_id: &str, line_item_id: &str, quantity: i64) -> String {
        format!("cart:{cart_id}:line:{line_item_id}:qty:{quantity}")
    }
    /// `cart:<id>:checkout`.
    pub fn cart_checkout(cart_id: &str) -> String {
        format!("cart:{cart_id}:checkout")
    }
    /// `product:<id>:viewed:<discriminator>`.
    pub fn product_viewed(product_id: &str, discriminator: &str) -> String {
        format!("product:{product_id}:viewed:{discriminator}")
    }
}

/// The event id: UUIDv5 under [`EVENT_ID_NAMESPACE`] of
/// `<project_key>/<resource_type>/<resource_id>/<event name>/<discriminator>`.
pub fn event_id(
    project_key: &str,
    resource_type: &str,
    resource_id: &str,
    name: EventName,
    discriminator: &str,
) -> Uuid {
    let text = format!(
        "{project_key}/{resource_type}/{resource_id}/{}/{discriminator}",
        name.as_str()
    );
    Uuid::new_v5(&EVENT_ID_NAMESPACE, text.as_bytes())
}

/// An exact decimal as a JSON float, through its decimal text (no binary-float artefacts:
/// `12.345` → `12.345`, `1500` → `1500.0`).
pub fn money_json(amount: Decimal) -> Value {
    amount
        .normalize()
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// The events an order's current state calls for that were not sent yet (`already(fact)` is
/// false), in causal order: `placed order` (then, with `ordered_product_events`, one
/// `ordered product` per line — only together with `placed order`, so switching the option
/// on never back-fills old orders), `paid for order` (`paymentState` `Paid`, or `CreditOwed`:
/// paid more than due), `order
/// fulfilled` (`shipmentState` `Shipped` or `Delivered`; once), `order canceled`
/// (`orderState` `Cancelled`), `order refunded` (one event for all return items newly in
/// `paymentState` `Refunded`).
///
/// `orderNumber` is sent as a JSON number when the commercetools order number is 1 to 15
/// digits (leading zeros drop, as in any number); otherwise it is left out — Omnisend types
/// it as a number, and a string could make the whole event fail validation silently.
/// `paymentMethod` comes from the first expanded payment (`expand=paymentInfo.payments[*]`:
/// method, else localized name, else payment interface) and is left out when unknown.
///
/// Rejected (nothing sent) when the contact has no email or phone (`customerEmail`), the
/// order has no line items (`lineItems`) or no total (`totalPrice`).
pub fn order_events(
    order: &Order,
    contact: &EventContact,
    ctx: &EventContext<'_>,
    already: &dyn Fn(&str) -> bool,
) -> Result<Vec<PlannedEvent>, Rejection> {
    let reject = |field: &str, reason: &str| Rejection::new("order", &order.id, field, reason);
    if !contact.is_identified() {
        return Err(reject(
            "customerEmail",
            "no email or phone identifies the contact",
        ));
    }
    if order.line_items.is_empty() {
        return Err(reject("lineItems", "no line items"));
    }
    let Some(total_price) = &order.total_price else {
        return Err(reject("totalPrice", "missing"));
    };

    let common = order_properties(order, total_price, ctx);
    let id = |name: EventName, discriminator: &str| {
        event_id(ctx.project_key, "order", &order.id, name, discriminator)
    };
    let mut out = Vec::new();

    let placed = facts::order_placed(&order.id);
    if !already(&placed) {
        let name = EventName::PlacedOrder;
        out.push(planned(
            name,
            id(name, ""),
            vec![placed],
            order.created_at,
            contact,
            common.clone(),
        ));
        if ctx.ordered_product_events {
            for line in &order.line_items {
                let fact = facts::ordered_product(&order.id, &line.id);
                if already(&fact) {
                    continue;
                }
                let name = EventName::OrderedProduct;
                let mut props = Map::new();
                props.insert("orderID".into(), order.id.clone().into());
                props.insert(
                    "product".into(),
                    line_json(line, line.quantity, line_discount(line), ctx),
                );
                out.push(planned(
                    name,
                    id(name, &line.id),
                    vec![fact],
                    order.created_at,
                    contact,
                    props,
                ));
            }
        }
    }

    let paid = facts::order_paid(&order.id);
    if matches!(order.payment_state.as_deref(), Some("Paid" | "CreditOwed")) && !already(&paid) {
        let name = EventName::PaidForOrder;
        out.push(planned(
            name,
            id(name, ""),
            vec![paid],
            order.last_modified_at,
            contact,
            common.clone(),
        ));
    }

    let fulfilled = facts::order_fulfilled(&order.id);
    if matches!(
        order.shipment_state.as_deref(),
        Some("Shipped" | "Delivered")
    ) && !already(&fulfilled)
    {
        let name = EventName::OrderFulfilled;
        let mut props = common.clone();
        if let Some(tracking) = tracking_json(order) {
            props.insert("tracking".into(), tracking);
        }
        out.push(planned(
            name,
            id(name, ""),
            vec![fulfilled],
            order.last_modified_at,
            contact,
            props,
        ));
    }

    let canceled = facts::order_canceled(&order.id);
    if order.order_state.as_deref() == Some("Cancelled") && !already(&canceled) {
        let name = EventName::OrderCanceled;
        out.push(planned(
            name,
            id(name, ""),
            vec![canceled],
            order.last_modified_at,
            contact,
            common.clone(),
        ));
    }

    let mut refunded: Vec<&ReturnItem> = order
        .return_items()
        .filter(|r| r.payment_state == "Refunded")
        .filter(|r| !already(&facts::order_refund(&order.id, &r.id)))
        .collect();
    if !refunded.is_empty() {
        refunded.sort_by(|a, b| a.id.cmp(&b.id));
        refunded.dedup_by(|a, b| a.id == b.id);
        let name = EventName::OrderRefunded;
        let discriminator = refunded
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mut props = common;
        add_refund_properties(&mut props, order, &refunded, ctx);
        let time = refunded
            .iter()
            .filter_map(|r| r.last_modified_at)
            .max()
            .unwrap_or(order.last_modified_at);
        out.push(planned(
            name,
            id(name, &discriminator),
            refunded
                .iter()
                .map(|r| facts::order_refund(&order.id, &r.id))
                .collect(),
            time,
            contact,
            props,
        ));
    }
    Ok(out)
}

/// Diffs `cart` against the `previous` snapshot and returns the events not sent yet, with the
/// snapshot to store:
///
/// * `added product to cart` for each line that is new or whose quantity rose (no previous
///   snapshot = every line is new), `addedItem` carrying the increase as `productQuantity`,
///   fact `cart:<id>:line:<line id>:qty:<new quantity>` (so a quantity that falls and rises
///   back to a value already reported is not reported again). Gift lines added by a cart
///   discount (`lineItemMode` `GiftLineItem`) are listed in `lineItems` but never "added";
/// * then `started checkout` once per cart (`cart:<id>:checkout`) when
///   `ctx.checkout_on_shipping_address` and the cart now has a street-level shipping address
///   (street, postal code, city or name — a country alone, as storefronts set for tax
///   estimates, does not count) that the previous snapshot did not have.
///
/// A cart whose version is not newer than the snapshot's (an out-of-order notification)
/// yields nothing and the previous snapshot. Merged and ordered carts yield nothing (the
/// order sends `placed order`). Rejected — store nothing, keep the previous snapshot, and the
/// additions are planned again once the cart has a contact — when there is something to send
/// but no email or phone (`customerEmail`), or no `totalPrice`.
pub fn cart_events(
    cart: &Cart,
    previous: Option<&CartSnapshot>,
    contact: &EventContact,
    ctx: &EventContext<'_>,
    already: &dyn Fn(&str) -> bool,
) -> Result<(Vec<PlannedEvent>, CartSnapshot), Rejection> {
    if let Some(p) = previous
        && cart.version <= p.version
    {
        return Ok((Vec::new(), p.clone()));
    }
    let snapshot = CartSnapshot::of(cart);
    if matches!(cart.cart_state.as_deref(), Some("Merged" | "Ordered")) {
        return Ok((Vec::new(), snapshot));
    }

    let mut additions = Vec::new();
    for line in &cart.line_items {
        if line.line_item_mode.as_deref() == Some("GiftLineItem") {
            continue;
        }
        let before = previous
            .and_then(|p| p.lines.get(&line.id).copied())
            .unwrap_or(0);
        if line.quantity <= before {
            continue;
        }
        let fact = facts::cart_line(&cart.id, &line.id, line.quantity);
        if !already(&fact) {
            additions.push((line, line.quantity - before, fact));
        }
    }
    let checkout_fact = facts::cart_checkout(&cart.id);
    let checkout = ctx.checkout_on_shipping_address
        && snapshot.had_shipping_address
        && !previous.is_some_and(|p| p.had_shipping_address)
        && !already(&checkout_fact);
    if additions.is_empty() && !checkout {
        return Ok((Vec::new(), snapshot));
    }

    let common = cart_properties(cart, contact, ctx)?;
    let mut out = Vec::new();
    for (line, increase, fact) in additions {
        let name = EventName::AddedProductToCart;
        let discriminator = format!("line:{}:qty:{}", line.id, line.quantity);
        let mut props = common.clone();
        let discount = share(
            line_discount(line),
            increase,
            line.quantity,
            digits(&line.total_price),
        );
        props.insert("addedItem".into(), line_json(line, increase, discount, ctx));
        out.push(planned(
            name,
            event_id(ctx.project_key, "cart", &cart.id, name, &discriminator),
            vec![fact],
            line.last_modified_at
                .or(line.added_at)
                .unwrap_or(cart.last_modified_at),
            contact,
            props,
        ));
    }
    if checkout {
        out.push(checkout_event(cart, contact, ctx, common));
    }
    Ok((out, snapshot))
}

/// `started checkout` for `cart`, as the storefront reports it (fact `cart:<id>:checkout`,
/// the same event id as the one [`cart_events`] would plan). Rejected when the contact has no
/// email or phone (`customerEmail`) or the cart no `totalPrice`.
pub fn started_checkout(
    cart: &Cart,
    contact: &EventContact,
    ctx: &EventContext<'_>,
) -> Result<PlannedEvent, Rejection> {
    let common = cart_properties(cart, contact, ctx)?;
    Ok(checkout_event(cart, contact, ctx, common))
}

/// `viewed product` (v4) for a storefront product view. Properties follow Omnisend's v4
/// example: `{product: {id, variantID, sku, title, currency, price, oldPrice, url,
/// imageUrl}}` — `price` is the price selected for the store (major units, like every v5+
/// amount; left out with `oldPrice` when the variant has none), `oldPrice` the undiscounted
/// price when a product discount applies. Event id: the product id, the contact (hashed into
/// the UUID, not kept in the fact) and `view.discriminator`.
///
/// Rejected when the contact has no email or phone (`contact`), `variant_sku` names no
/// variant (`sku`), the product has no name in the locale chain (`name`) or no slug while the
/// URL template needs one (`slug`).
pub fn viewed_product(
    view: &ProductView<'_>,
    contact: &EventContact,
    ctx: &EventContext<'_>,
) -> Result<PlannedEvent, Rejection> {
    let p = view.product;
    let reject = |field: &str, reason: String| Rejection::new("product", &p.id, field, reason);
    let viewer = contact
        .key()
        .ok_or_else(|| reject("contact", "no email or phone identifies the viewer".into()))?;
    let variant = match view.variant_sku {
        Some(sku) => p
            .all_variants()
            .find(|v| v.sku.as_deref() == Some(sku))
            .ok_or_else(|| reject("sku", format!("no variant with SKU {sku:?}")))?,
        None => &p.master_variant,
    };
    let title = p.name.get(ctx.locales).map(str::trim).ok_or_else(|| {
        reject(
            "name",
            format!("no name in any of the locales {:?}", ctx.locales),
        )
    })?;
    let slug = p.slug.get(ctx.locales);
    if ctx.product_url.uses("slug") && slug.is_none() {
        return Err(reject(
            "slug",
            format!(
                "no slug in any of the locales {:?} for the product URL",
                ctx.locales
            ),
        ));
    }
    let sku = variant.sku.as_deref().unwrap_or("");
    let url = ctx.product_url.render(&[
        ("slug", slug.unwrap_or("")),
        ("locale", first_locale(ctx)),
        ("key", p.key.as_deref().unwrap_or(&p.id)),
        ("id", &p.id),
        ("sku", sku),
    ]);

    let mut product = Map::new();
    product.insert("id".into(), p.id.clone().into());
    product.insert("variantID".into(), variant_id(&p.id, variant.id).into());
    if !sku.is_empty() {
        product.insert("sku".into(), sku.into());
    }
    product.insert("title".into(), title.into());
    product.insert(
        "currency".into(),
        view.price.currency.to_ascii_uppercase().into(),
    );
    if let Some(price) = select_price(&variant.prices, &view.price, view.at) {
        let original = price.value.amount();
        let current = price
            .discounted
            .as_ref()
            .map(|d| d.value.amount())
            .unwrap_or(original);
        product.insert("price".into(), money_json(current));
        if current < original {
            product.insert("oldPrice".into(), money_json(original));
        }
    }
    product.insert("url".into(), url.into());
    if let Some(image) = first_image(&variant.images) {
        product.insert("imageUrl".into(), image.into());
    }
    let mut props = Map::new();
    props.insert("product".into(), Value::Object(product));

    let name = EventName::ViewedProduct;
    let discriminator = format!("{viewer}/{}", view.discriminator);
    Ok(planned(
        name,
        event_id(ctx.project_key, "product", &p.id, name, &discriminator),
        vec![facts::product_viewed(&p.id, view.discriminator)],
        view.at,
        contact,
        props,
    ))
}

// ---------------------------------------------------------------------------------------------
// Bodies

fn planned(
    name: EventName,
    event_id: Uuid,
    facts: Vec<String>,
    time: OffsetDateTime,
    contact: &EventContact,
    properties: Map<String, Value>,
) -> PlannedEvent {
    let body = json!({
        "eventName": name.as_str(),
        "eventVersion": name.version(),
        "origin": ORIGIN,
        "eventID": event_id.to_string(),
        "eventTime": timestamp(time),
        "contact": contact.to_json(),
        "properties": Value::Object(properties),
    });
    PlannedEvent {
        event_id,
        name,
        facts,
        body,
    }
}

fn checkout_event(
    cart: &Cart,
    contact: &EventContact,
    ctx: &EventContext<'_>,
    properties: Map<String, Value>,
) -> PlannedEvent {
    let name = EventName::StartedCheckout;
    planned(
        name,
        event_id(ctx.project_key, "cart", &cart.id, name, "checkout"),
        vec![facts::cart_checkout(&cart.id)],
        cart.last_modified_at,
        contact,
        properties,
    )
}

/// `cartID`, `currency`, `value`, `abandonedCheckoutURL`, `lineItems` (all lines).
fn cart_properties(
    cart: &Cart,
    contact: &EventContact,
    ctx: &EventContext<'_>,
) -> Result<Map<String, Value>, Rejection> {
    let reject = |field: &str, reason: &str| Rejection::new("cart", &cart.id, field, reason);
    if !contact.is_identified() {
        return Err(reject(
            "customerEmail",
            "no email or phone identifies the contact",
        ));
    }
    let Some(total) = &cart.total_price else {
        return Err(reject("totalPrice", "missing"));
    };
    let mut m = Map::new();
    m.insert("cartID".into(), cart.id.clone().into());
    m.insert("currency".into(), total.currency().into());
    m.insert(
        "value".into(),
        money_json(gross_total(total, cart.taxed_price.as_ref())),
    );
    if let Some(url) = ctx.recovery_url {
        m.insert("abandonedCheckoutURL".into(), url.into());
    }
    m.insert(
        "lineItems".into(),
        cart.line_items
            .iter()
            .map(|l| line_json(l, l.quantity, line_discount(l), ctx))
            .collect(),
    );
    Ok(m)
}

/// The properties every order event carries.
fn order_properties(
    order: &Order,
    total_price: &TypedMoney,
    ctx: &EventContext<'_>,
) -> Map<String, Value> {
    let sub_total: Decimal = order
        .line_items
        .iter()
        .map(|l| l.total_price.amount())
        .chain(
            order
                .custom_line_items
                .iter()
                .map(|c| c.total_price.amount()),
        )
        .sum();
    let rates: Vec<bool> = order
        .line_items
        .iter()
        .filter_map(|l| l.tax_rate.as_ref().map(|r| r.included_in_price))
        .collect();
    let tax_included = !rates.is_empty() && rates.iter().all(|&included| included);
    let shippings: Vec<_> = order.shipping_infos().collect();
    let shipping_price = (!shippings.is_empty()).then(|| {
        shippings
            .iter()
            .map(|s| {
                s.discounted_price
                    .as_ref()
                    .map(|d| d.value.amount())
                    .unwrap_or_else(|| s.price.amount())
            })
            .sum::<Decimal>()
    });
    let shipping_discount: Decimal = shippings
        .iter()
        .filter_map(|s| {
            s.discounted_price
                .as_ref()
                .map(|d| (s.price.amount() - d.value.amount()).max(Decimal::ZERO))
        })
        .sum();
    let total_discount = order.line_items.iter().map(line_discount).sum::<Decimal>()
        + order
            .custom_line_items
            .iter()
            .map(custom_line_discount)
            .sum::<Decimal>()
        + order
            .discount_on_total_price
            .as_ref()
            .map(|d| d.discounted_amount.amount())
            .unwrap_or_default()
        + shipping_discount;
    let total_tax = order.taxed_price.as_ref().map(tax_of).unwrap_or_default();

    let mut m = Map::new();
    m.insert("orderID".into(), order.id.clone().into());
    if let Some(number) = order_number_json(order.order_number.as_deref()) {
        m.insert("orderNumber".into(), number);
    }
    m.insert("createdAt".into(), timestamp(order.created_at).into());
    m.insert("currency".into(), total_price.currency().into());
    m.insert(
        "totalPrice".into(),
        money_json(gross_total(total_price, order.taxed_price.as_ref())),
    );
    m.insert("subTotalPrice".into(), money_json(sub_total));
    m.insert("subTotalTaxIncluded".into(), tax_included.into());
    m.insert("totalDiscount".into(), money_json(total_discount));
    m.insert("totalTax".into(), money_json(total_tax));
    if let Some(price) = shipping_price {
        m.insert("shippingPrice".into(), money_json(price));
    }
    if let Some(method) = shippings
        .iter()
        .map(|s| s.shipping_method_name.trim())
        .find(|n| !n.is_empty())
    {
        m.insert("shippingMethod".into(), method.into());
    }
    if let Some(method) = payment_method(order, ctx.locales) {
        m.insert("paymentMethod".into(), method.into());
    }
    m.insert("paymentStatus".into(), payment_status(order).into());
    m.insert("fulfillmentStatus".into(), fulfillment_status(order).into());
    if let Some(template) = ctx.order_status_url {
        let number = order.order_number.as_deref().unwrap_or(&order.id);
        m.insert(
            "orderStatusURL".into(),
            template
                .render(&[
                    ("id", &order.id),
                    ("number", number),
                    ("locale", first_locale(ctx)),
                ])
                .into(),
        );
    }
    let discounts = discounts_json(order, ctx);
    if !discounts.is_empty() {
        m.insert("discounts".into(), Value::Array(discounts));
    }
    m.insert(
        "lineItems".into(),
        order
            .line_items
            .iter()
            .map(|l| line_json(l, l.quantity, line_discount(l), ctx))
            .collect(),
    );
    if let Some(a) = order.billing_address.as_ref().and_then(address_json) {
        m.insert("billingAddress".into(), a);
    }
    if let Some(a) = order.shipping_address.as_ref().and_then(address_json) {
        m.insert("shippingAddress".into(), a);
    }
    m
}

/// `refundedLineItems` (the order's line items with the returned quantities),
/// `totalRefundedAmount` and `totalRefundedTaxAmount`.
///
/// commercetools keeps refunded money in payment transactions, not on the order, so the
/// amounts are the returned share of each line's total — gross when taxes are calculated —
/// rounded half-even to the currency's digits (exact when whole lines are returned);
/// total-price discounts are not apportioned.
fn add_refund_properties(
    props: &mut Map<String, Value>,
    order: &Order,
    refunded: &[&ReturnItem],
    ctx: &EventContext<'_>,
) {
    let mut items = Vec::new();
    let mut amount = Decimal::ZERO;
    let mut tax = Decimal::ZERO;
    let mut taxed = false;
    for r in refunded {
        if let Some(line) = r
            .line_item_id
            .as_deref()
            .and_then(|id| order.line_items.iter().find(|l| l.id == id))
        {
            let dp = digits(&line.total_price);
            let discount = share(line_discount(line), r.quantity, line.quantity, dp);
            items.push(line_json(line, r.quantity, discount, ctx));
            amount += share(
                gross_total(&line.total_price, line.taxed_price.as_ref()),
                r.quantity,
                line.quantity,
                dp,
            );
            if let Some(t) = &line.taxed_price {
                taxed = true;
                tax += share(tax_of(t), r.quantity, line.quantity, dp);
            }
        } else if let Some(custom) = r
            .custom_line_item_id
            .as_deref()
            .and_then(|id| order.custom_line_items.iter().find(|c| c.id == id))
        {
            let dp = digits(&custom.total_price);
            amount += share(
                gross_total(&custom.total_price, custom.taxed_price.as_ref()),
                r.quantity,
                custom.quantity,
                dp,
            );
            if let Some(t) = &custom.taxed_price {
                taxed = true;
                tax += share(tax_of(t), r.quantity, custom.quantity, dp);
            }
        }
    }
    props.insert("refundedLineItems".into(), Value::Array(items));
    props.insert("totalRefundedAmount".into(), money_json(amount));
    if taxed {
        props.insert("totalRefundedTaxAmount".into(), money_json(tax));
    }
}

/// The line item object (research §3.5) for `quantity` units carrying `discount`.
fn line_json(line: &LineItem, quantity: i64, discount: Decimal, ctx: &EventContext<'_>) -> Value {
    let (unit, strike) = unit_price(line);
    let sku = line.variant.sku.as_deref().filter(|s| !s.trim().is_empty());
    let mut m = Map::new();
    m.insert("productID".into(), line.product_id.clone().into());
    m.insert(
        "productVariantID".into(),
        variant_id(&line.product_id, line.variant.id).into(),
    );
    if let Some(sku) = sku {
        m.insert("productSKU".into(), sku.into());
    }
    m.insert(
        "productTitle".into(),
        localized_title(&line.name, ctx.locales)
            .unwrap_or_else(|| sku.unwrap_or(&line.product_id).to_owned())
            .into(),
    );
    m.insert("productPrice".into(), money_json(unit));
    if let Some(strike) = strike {
        m.insert("productStrikeThroughPrice".into(), money_json(strike));
    }
    m.insert("productDiscount".into(), money_json(discount));
    m.insert("productQuantity".into(), quantity.into());
    if let Some(url) = line_url(line, ctx) {
        m.insert("productURL".into(), url.into());
    }
    if let Some(image) = first_image(&line.variant.images) {
        m.insert("productImageURL".into(), image.into());
    }
    Value::Object(m)
}

/// The product URL of a line, like the catalog renders it; `None` when the template needs a
/// slug the line does not have in the locale chain.
fn line_url(line: &LineItem, ctx: &EventContext<'_>) -> Option<String> {
    let slug = line.product_slug.as_ref().and_then(|s| s.get(ctx.locales));
    if ctx.product_url.uses("slug") && slug.is_none() {
        return None;
    }
    Some(ctx.product_url.render(&[
        ("slug", slug.unwrap_or("")),
        ("locale", first_locale(ctx)),
        (
            "key",
            line.product_key.as_deref().unwrap_or(&line.product_id),
        ),
        ("id", &line.product_id),
        ("sku", line.variant.sku.as_deref().unwrap_or("")),
    ]))
}

/// The name in the locale chain, else any non-blank name (an order line must never lose its
/// title because the store's locales changed since).
fn localized_title(name: &LocalizedString, locales: &[String]) -> Option<String> {
    name.get(locales)
        .or_else(|| {
            name.0
                .values()
                .map(|v| v.as_str())
                .find(|v| !v.trim().is_empty())
        })
        .map(|v| v.trim().to_owned())
}

fn first_image(images: &[commercetools::models::Image]) -> Option<&str> {
    images.iter().map(|i| i.url.trim()).find(|u| !u.is_empty())
}

fn first_locale<'a>(ctx: &EventContext<'a>) -> &'a str {
    ctx.locales.first().map(String::as_str).unwrap_or("")
}

/// `{firstName, lastName, company, address1, address2, city, state, countryCode, zip,
/// phone}`, blanks left out; `country` (the full name) is not known and left out.
fn address_json(a: &Address) -> Option<Value> {
    fn join(parts: &[Option<&String>], sep: &str) -> Option<String> {
        let parts: Vec<&str> = parts
            .iter()
            .flatten()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(sep))
    }
    let mut m = Map::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            m.insert(key.into(), v.into());
        }
    };
    put("firstName", a.first_name.clone());
    put("lastName", a.last_name.clone());
    put("company", a.company.clone());
    put(
        "address1",
        join(&[a.street_name.as_ref(), a.street_number.as_ref()], " "),
    );
    put(
        "address2",
        join(
            &[
                a.apartment.as_ref(),
                a.building.as_ref(),
                a.additional_street_info.as_ref(),
            ],
            ", ",
        ),
    );
    put("city", a.city.clone());
    put("state", a.state.clone().or_else(|| a.region.clone()));
    put("countryCode", Some(a.country.to_ascii_uppercase()));
    put("zip", a.postal_code.clone());
    put("phone", a.phone.clone().or_else(|| a.mobile.clone()));
    (!m.is_empty()).then_some(Value::Object(m))
}

/// `discounts[]`: one entry per discount code that applies (`state` `MatchesCart`): `code` is
/// the code customers entered (from the expanded reference or `ctx.discount_codes`; the code
/// id when unknown), `amount` the exact sum of what its cart discounts took off lines, the
/// total price and shipping (0 when the code is unknown: its cart discounts cannot be told
/// apart), `type` `fixedAmount` (the amount is absolute).
fn discounts_json(order: &Order, ctx: &EventContext<'_>) -> Vec<Value> {
    order
        .discount_codes
        .iter()
        .filter(|info| matches!(info.state.as_deref(), None | Some("MatchesCart")))
        .map(|info| {
            let reference = &info.discount_code;
            let code = reference
                .obj
                .as_deref()
                .or_else(|| ctx.discount_codes.get(&reference.id));
            let (text, amount) = match code {
                Some(code) => {
                    let ids: Vec<&str> =
                        code.cart_discounts.iter().map(|r| r.id.as_str()).collect();
                    (code.code.clone(), code_amount(order, &ids))
                }
                None => (reference.id.clone(), Decimal::ZERO),
            };
            json!({"amount": money_json(amount), "code": text, "type": "fixedAmount"})
        })
        .collect()
}

/// What the cart discounts `ids` took off the order.
fn code_amount(order: &Order, ids: &[&str]) -> Decimal {
    let per_quantity = |groups: &[DiscountedLineItemPriceForQuantity]| -> Decimal {
        groups
            .iter()
            .map(|g| {
                Decimal::from(g.quantity)
                    * g.discounted_price
                        .included_discounts
                        .iter()
                        .filter(|p| ids.contains(&p.discount.id.as_str()))
                        .map(|p| p.discounted_amount.amount())
                        .sum::<Decimal>()
            })
            .sum()
    };
    let lines: Decimal = order
        .line_items
        .iter()
        .map(|l| per_quantity(&l.discounted_price_per_quantity))
        .chain(
            order
                .custom_line_items
                .iter()
                .map(|c| per_quantity(&c.discounted_price_per_quantity)),
        )
        .sum();
    let total: Decimal = order
        .discount_on_total_price
        .iter()
        .flat_map(|d| d.included_discounts.iter())
        .filter(|p| ids.contains(&p.discount.id.as_str()))
        .map(|p| p.discounted_amount.amount())
        .sum();
    let shipping: Decimal = order
        .shipping_infos()
        .filter_map(|s| s.discounted_price.as_ref())
        .flat_map(|d| d.included_discounts.iter())
        .filter(|p| ids.contains(&p.discount.id.as_str()))
        .map(|p| p.discounted_amount.amount())
        .sum();
    lines + total + shipping
}

/// `{code, courierTitle}` from the first outgoing parcel with a tracking id.
fn tracking_json(order: &Order) -> Option<Value> {
    let data = order
        .shipping_infos()
        .flat_map(|s| s.deliveries.iter())
        .flat_map(|d| d.parcels.iter())
        .filter_map(|p| p.tracking_data.as_ref())
        .find(|t| !t.is_return && non_blank(&t.tracking_id).is_some())?;
    let mut m = Map::new();
    m.insert("code".into(), non_blank(&data.tracking_id)?.into());
    if let Some(courier) = non_blank(&data.carrier).or_else(|| non_blank(&data.provider)) {
        m.insert("courierTitle".into(), courier.into());
    }
    Some(Value::Object(m))
}

// ---------------------------------------------------------------------------------------------
// Figures

/// The unit price the catalog charged and, when a product discount lowered it, the original.
fn unit_price(line: &LineItem) -> (Decimal, Option<Decimal>) {
    let original = line.price.value.amount();
    let unit = line
        .price
        .discounted
        .as_ref()
        .map(|d| d.value.amount())
        .unwrap_or(original);
    (unit, (unit < original).then_some(original))
}

/// Cart discounts on a line: unit price × quantity − line total (≥ 0).
fn line_discount(line: &LineItem) -> Decimal {
    let (unit, _) = unit_price(line);
    (unit * Decimal::from(line.quantity) - line.total_price.amount()).max(Decimal::ZERO)
}

fn custom_line_discount(c: &CustomLineItem) -> Decimal {
    (c.money.amount() * Decimal::from(c.quantity) - c.total_price.amount()).max(Decimal::ZERO)
}

/// Gross total when taxes are calculated, else the total as is.
fn gross_total(total: &TypedMoney, taxed: Option<&TaxedPrice>) -> Decimal {
    taxed
        .map(|t| t.total_gross.amount())
        .unwrap_or_else(|| total.amount())
}

fn tax_of(taxed: &TaxedPrice) -> Decimal {
    taxed
        .total_tax
        .as_ref()
        .map(TypedMoney::amount)
        .unwrap_or_else(|| taxed.total_gross.amount() - taxed.total_net.amount())
}

/// `part / whole` of `amount`, rounded half-even to `dp` digits; exact when `part == whole`.
fn share(amount: Decimal, part: i64, whole: i64, dp: u32) -> Decimal {
    if part == whole {
        return amount;
    }
    if whole <= 0 {
        return Decimal::ZERO;
    }
    (amount * Decimal::from(part) / Decimal::from(whole))
        .round_dp_with_strategy(dp, RoundingStrategy::MidpointNearestEven)
}

fn digits(money: &TypedMoney) -> u32 {
    money
        .fraction_digits
        .unwrap_or_else(|| default_fraction_digits(&money.currency_code))
}

/// commercetools `paymentState` (and returns) → Omnisend `paymentStatus`: any refunded return
/// item → `partiallyRefunded`, every line fully refunded → `refunded`; else `Paid` and
/// `CreditOwed` → `paid`; a cancelled unpaid order → `voided`; `Pending`, `BalanceDue`,
/// `Failed` or none → `awaitingPayment`.
fn payment_status(order: &Order) -> &'static str {
    let mut refunded: HashMap<&str, i64> = HashMap::new();
    for r in order
        .return_items()
        .filter(|r| r.payment_state == "Refunded")
    {
        if let Some(id) = r
            .line_item_id
            .as_deref()
            .or(r.custom_line_item_id.as_deref())
        {
            *refunded.entry(id).or_default() += r.quantity;
        }
    }
    if !refunded.is_empty() {
        let full = |id: &str, quantity: i64| refunded.get(id).copied().unwrap_or(0) >= quantity;
        let all = order.line_items.iter().all(|l| full(&l.id, l.quantity))
            && order
                .custom_line_items
                .iter()
                .all(|c| full(&c.id, c.quantity));
        return if all { "refunded" } else { "partiallyRefunded" };
    }
    match order.payment_state.as_deref() {
        Some("Paid" | "CreditOwed") => "paid",
        _ if order.order_state.as_deref() == Some("Cancelled") => "voided",
        _ => "awaitingPayment",
    }
}

/// commercetools `shipmentState` → Omnisend `fulfillmentStatus`: `Delivered` → `delivered`,
/// `Shipped` → `fulfilled`, `Ready` and `Partial` → `inProgress`, `Pending`, `Backorder`,
/// `Delayed`, `Canceled` or none → `unfulfilled`.
fn fulfillment_status(order: &Order) -> &'static str {
    match order.shipment_state.as_deref() {
        Some("Delivered") => "delivered",
        Some("Shipped") => "fulfilled",
        Some("Ready" | "Partial") => "inProgress",
        _ => "unfulfilled",
    }
}

/// The order number as a JSON number when it is 1 to 15 ASCII digits.
fn order_number_json(number: Option<&str>) -> Option<Value> {
    let n = number?.trim();
    if n.is_empty() || n.len() > 15 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse::<u64>().ok().map(Value::from)
}

/// First expanded payment's method, else its localized name, else its payment interface.
fn payment_method(order: &Order, locales: &[String]) -> Option<String> {
    order
        .payment_info
        .iter()
        .flat_map(|p| p.payments.iter())
        .filter_map(|p| p.obj.as_ref())
        .find_map(|payment| {
            let info = &payment.payment_method_info;
            non_blank(&info.method)
                .map(str::to_owned)
                .or_else(|| {
                    info.name
                        .as_ref()
                        .and_then(|n| n.get(locales))
                        .map(|n| n.trim().to_owned())
                })
                .or_else(|| non_blank(&info.payment_interface).map(str::to_owned))
        })
}

/// A shipping address with more than a country (storefronts often set only the country for
/// tax estimates long before checkout).
fn has_checkout_address(cart: &Cart) -> bool {
    cart.shipping_address.as_ref().is_some_and(|a| {
        [
            &a.street_name,
            &a.postal_code,
            &a.city,
            &a.first_name,
            &a.last_name,
        ]
        .into_iter()
        .any(|f| non_blank(f).is_some())
    })
}

/// The first `max` characters, trimmed (a name is cut, not ellipsised: it is shown as is).
fn cut_chars(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

fn non_blank(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn timestamp(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::URL_PLACEHOLDERS;
    use std::cell::RefCell;
    use std::collections::HashSet;
    use time::macros::datetime;

    // ---- fixtures -------------------------------------------------------------------------

    fn m(currency: &str, cents: i64, digits: u32) -> Value {
        json!({"type": "centPrecision", "currencyCode": currency, "centAmount": cents, "fractionDigits": digits})
    }
    fn eur(cents: i64) -> Value {
        m("EUR", cents, 2)
    }
    fn cd(id: &str) -> Value {
        json!({"typeId": "cart-discount", "id": id})
    }

    struct Fixture {
        locales: Vec<String>,
        url: UrlTemplate,
        status_url: UrlTemplate,
        codes: HashMap<String, DiscountCode>,
    }

    impl Fixture {
        fn new() -> Self {
            let code = |id: &str, code: &str, discounts: &[&str]| -> (String, DiscountCode) {
                let c: DiscountCode = serde_json::from_value(json!({
                    "id": id, "version": 1, "code": code,
                    "cartDiscounts": discounts.iter().map(|d| cd(d)).collect::<Vec<_>>(),
                    "isActive": true,
                    "createdAt": "2026-01-01T00:00:00Z", "lastModifiedAt": "2026-01-01T00:00:00Z"
                }))
                .unwrap();
                (id.to_owned(), c)
            };
            Self {
                locales: vec!["de-DE".into(), "en".into()],
                url: UrlTemplate::parse(
                    "https://shop.example.com/{locale}/p/{slug}",
                    URL_PLACEHOLDERS,
                )
                .unwrap(),
                status_url: UrlTemplate::parse(
                    "https://shop.example.com/orders/{number}",
                    &["id", "number", "locale"],
                )
                .unwrap(),
                codes: HashMap::from([
                    code("dc-1", "SUMMER20", &["cd-summer"]),
                    code("dc-ship", "FREESHIP", &["cd-ship"]),
                    code("dc-kw", "KUWAIT2", &["cd-kw"]),
                ]),
            }
        }
        fn ctx(&self) -> EventContext<'_> {
            EventContext {
                project_key: "shop",
                locales: &self.locales,
                product_url: &self.url,
                order_status_url: Some(&self.status_url),
                discount_codes: &self.codes,
                ordered_product_events: true,
                checkout_on_shipping_address: true,
                recovery_url: Some("https://shop.example.com/cart/recover?token=v1.x.y.1.mac"),
            }
        }
    }

    fn jane() -> EventContact {
        EventContact {
            email: Some("jane@example.com".into()),
            phone: None,
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
        }
    }

    fn never(_: &str) -> bool {
        false
    }

    /// EUR, prices include 19 % VAT. Line 1: 2 × 19.99 with an automatic cart discount of
    /// 2.00 per unit → 35.98. Line 2: catalog price 10.00 on sale at 8.00, 1 unit → 8.00.
    /// Code SUMMER20 takes 5.00 off the total; shipping 4.90.
    /// Total 35.98 + 8.00 − 5.00 + 4.90 = 43.88.
    fn eur_order() -> Value {
        json!({
            "id": "o-1", "version": 9, "orderNumber": "10023",
            "createdAt": "2026-01-05T12:00:00.000Z", "lastModifiedAt": "2026-01-07T08:00:00.000Z",
            "customerEmail": "Jane@Example.com", "orderState": "Open",
            "lineItems": [
                {
                    "id": "li-1", "productId": "p-1", "productKey": "shoe",
                    "name": {"en": "Shoe", "de-DE": "Schuh"},
                    "productSlug": {"en": "shoe", "de-DE": "schuh"},
                    "variant": {"id": 2, "sku": "SHOE-42", "images": [{"url": "https://img.example/shoe.jpg"}]},
                    "price": {"id": "pr-1", "value": eur(1999)},
                    "quantity": 2,
                    "discountedPricePerQuantity": [{"quantity": 2, "discountedPrice": {
                        "value": eur(1799),
                        "includedDiscounts": [{"discount": cd("cd-auto"), "discountedAmount": eur(200)}]}}],
                    "totalPrice": eur(3598),
                    "taxedPrice": {"totalNet": eur(3024), "totalGross": eur(3598), "totalTax": eur(574)},
                    "taxRate": {"name": "VAT", "amount": 0.19, "includedInPrice": true, "country": "DE"}
                },
                {
                    "id": "li-2", "productId": "p-2",
                    "name": {"fr": "Chaussette"}, "productSlug": {"fr": "chaussette"},
                    "variant": {"id": 1, "sku": "SOCK"},
                    "price": {"id": "pr-2", "value": eur(1000),
                              "discounted": {"value": eur(800), "discount": {"typeId": "product-discount", "id": "pd-1"}}},
                    "quantity": 1, "totalPrice": eur(800),
                    "taxRate": {"name": "VAT", "amount": 0.19, "includedInPrice": true, "country": "DE"}
                }
            ],
            "discountCodes": [{"discountCode": {"typeId": "discount-code", "id": "dc-1"}, "state": "MatchesCart"},
                              {"discountCode": {"typeId": "discount-code", "id": "dc-unused"}, "state": "DoesNotMatchCart"}],
            "discountOnTotalPrice": {"discountedAmount": eur(500),
                "includedDiscounts": [{"discount": cd("cd-summer"), "discountedAmount": eur(500)}]},
            "shippingInfo": {"shippingMethodName": "DHL Express", "price": eur(490)},
            "totalPrice": eur(4388),
            "taxedPrice": {"totalNet": eur(3687), "totalGross": eur(4388), "totalTax": eur(701)},
            "billingAddress": {"firstName": "Jane", "lastName": "Doe", "streetName": "Main St", "streetNumber": "1",
                               "apartment": "4B", "postalCode": "01100", "city": "Vilnius", "country": "lt",
                               "phone": "+37060000000", "company": " "},
            "shippingAddress": {"firstName": "Jane", "lastName": "Doe", "streetName": "Main St", "streetNumber": "1",
                                "postalCode": "01100", "city": "Vilnius", "country": "LT"}
        })
    }

    fn order(v: Value) -> Order {
        serde_json::from_value(v).unwrap()
    }

    /// Paid, delivered with a tracked parcel, cancelled afterwards, one of two shoes refunded.
    fn busy_order() -> Order {
        let mut v = eur_order();
        v["paymentState"] = json!("Paid");
        v["shipmentState"] = json!("Delivered");
        v["orderState"] = json!("Cancelled");
        v["shippingInfo"]["deliveries"] = json!([{"id": "d-1", "parcels": [
            {"id": "par-0", "trackingData": {"trackingId": "RET-9", "carrier": "DHL", "isReturn": true}},
            {"id": "par-1", "trackingData": {"trackingId": "TRK1", "carrier": "DHL"}}
        ]}]);
        v["returnInfo"] = json!([{"items": [
            {"id": "r-1", "quantity": 1, "type": "LineItemReturnItem", "lineItemId": "li-1",
             "shipmentState": "Returned", "paymentState": "Refunded",
             "createdAt": "2026-01-06T08:00:00Z", "lastModifiedAt": "2026-01-06T09:00:00Z"},
            {"id": "r-2", "quantity": 1, "type": "LineItemReturnItem", "lineItemId": "li-2",
             "shipmentState": "Advised", "paymentState": "Initial"}
        ]}]);
        order(v)
    }

    fn names(events: &[PlannedEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.name.as_str()).collect()
    }

    fn props(e: &PlannedEvent) -> &Value {
        &e.body["properties"]
    }

    /// Every body validates against the official `EventRequest` schema (strict: no unknown
    /// top-level or contact fields), when the spec folder is present.
    fn assert_valid(events: &[PlannedEvent]) {
        let Some(validator) =
            omnisend::contract::validator_for("omnisend-events-api-openapi.yml", "EventRequest")
        else {
            println!("skipped: Omnisend specs not found (contract check)");
            return;
        };
        for e in events {
            let errors = omnisend::contract::errors(&validator, &e.body);
            assert!(errors.is_empty(), "{}: {errors:?}", e.name);
        }
    }

    // ---- orders ---------------------------------------------------------------------------

    #[test]
    fn order_events_come_in_causal_order_each_with_its_facts() {
        let f = Fixture::new();
        let events = order_events(&busy_order(), &jane(), &f.ctx(), &never).unwrap();
        assert_eq!(
            names(&events),
            [
                "placed order",
                "ordered product",
                "ordered product",
                "paid for order",
                "order fulfilled",
                "order canceled",
                "order refunded"
            ]
        );
        let facts: Vec<Vec<&str>> = events
            .iter()
            .map(|e| e.facts.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            facts,
            [
                vec!["order:o-1:placed"],
                vec!["order:o-1:ordered-product:li-1"],
                vec!["order:o-1:ordered-product:li-2"],
                vec!["order:o-1:paid"],
                vec!["order:o-1:fulfilled"],
                vec!["order:o-1:canceled"],
                vec!["order:o-1:refund:r-1"],
            ]
        );
        for e in &events {
            assert_eq!(e.body["eventName"], e.name.as_str());
            assert_eq!(e.body["eventVersion"], "v2");
            assert_eq!(e.body["origin"], "api");
            assert_eq!(e.body["eventID"], e.event_id.to_string());
        }
        assert_eq!(events[0].body["eventTime"], "2026-01-05T12:00:00Z");
        assert_eq!(events[1].body["eventTime"], "2026-01-05T12:00:00Z");
        assert_eq!(events[3].body["eventTime"], "2026-01-07T08:00:00Z");
        assert_eq!(events[6].body["eventTime"], "2026-01-06T09:00:00Z");
        assert_eq!(
            props(&events[1]),
            &json!({"orderID": "o-1", "product": props(&events[0])["lineItems"][0]})
        );
        // Delivered: one `order fulfilled`, status delivered, the outgoing parcel's tracking.
        assert_eq!(props(&events[4])["fulfillmentStatus"], "delivered");
        assert_eq!(
            props(&events[4])["tracking"],
            json!({"code": "TRK1", "courierTitle": "DHL"})
        );
        assert!(props(&events[0]).get("tracking").is_none());
        for e in &events[..6] {
            if e.name != EventName::OrderedProduct {
                assert_eq!(props(e)["paymentStatus"], "partiallyRefunded");
            }
        }
        assert_valid(&events);
    }

    #[test]
    fn already_sent_facts_are_not_planned_again() {
        let f = Fixture::new();
        let sent: HashSet<&str> = [
            "order:o-1:placed",
            "order:o-1:ordered-product:li-1",
            "order:o-1:paid",
            "order:o-1:refund:r-1",
        ]
        .into();
        let events = order_events(&busy_order(), &jane(), &f.ctx(), &|fact| {
            sent.contains(fact)
        })
        .unwrap();
        // li-2's `ordered product` only ever goes out together with `placed order`.
        assert_eq!(names(&events), ["order fulfilled", "order canceled"]);

        let everything: HashSet<String> = order_events(&busy_order(), &jane(), &f.ctx(), &never)
            .unwrap()
            .into_iter()
            .flat_map(|e| e.facts)
            .collect();
        let none = order_events(&busy_order(), &jane(), &f.ctx(), &|fact| {
            everything.contains(fact)
        })
        .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn ordered_product_events_are_optional_and_an_overpaid_order_counts_as_paid() {
        let f = Fixture::new();
        let ctx = EventContext {
            ordered_product_events: false,
            ..f.ctx()
        };
        let events = order_events(&order(eur_order()), &jane(), &ctx, &never).unwrap();
        assert_eq!(names(&events), ["placed order"]);
        let mut v = eur_order();
        v["paymentState"] = json!("CreditOwed");
        let events = order_events(&order(v), &jane(), &ctx, &never).unwrap();
        assert_eq!(names(&events), ["placed order", "paid for order"]);
    }

    #[test]
    fn a_refund_event_covers_only_the_newly_refunded_items() {
        let f = Fixture::new();
        let mut v = eur_order();
        v["returnInfo"] = json!([
            {"items": [{"id": "r-1", "quantity": 1, "type": "LineItemReturnItem", "lineItemId": "li-1",
                        "shipmentState": "Returned", "paymentState": "Refunded"}]},
            {"items": [
                {"id": "r-3", "quantity": 1, "type": "LineItemReturnItem", "lineItemId": "li-2",
                 "shipmentState": "Returned", "paymentState": "Refunded",
                 "lastModifiedAt": "2026-01-09T10:00:00Z"},
                {"id": "r-2", "quantity": 1, "type": "LineItemReturnItem", "lineItemId": "li-1",
                 "shipmentState": "Advised", "paymentState": "Initial"}
            ]}
        ]);
        let o = order(v);
        let sent: HashSet<&str> = ["order:o-1:placed", "order:o-1:refund:r-1"].into();
        let events = order_events(&o, &jane(), &f.ctx(), &|fact| sent.contains(fact)).unwrap();
        assert_eq!(names(&events), ["order refunded"]);
        let e = &events[0];
        assert_eq!(e.facts, ["order:o-1:refund:r-3"]);
        assert_eq!(e.body["eventTime"], "2026-01-09T10:00:00Z");
        let p = props(e);
        let refunded = p["refundedLineItems"].as_array().unwrap();
        assert_eq!(refunded.len(), 1);
        assert_eq!(refunded[0]["productID"], "p-2");
        assert_eq!(refunded[0]["productQuantity"], 1);
        // li-2 has no taxed price: its total, 8.00, is what was refunded.
        assert_eq!(p["totalRefundedAmount"], json!(8.0));
        assert!(p.get("totalRefundedTaxAmount").is_none());
        // All of li-2 and one of two li-1 refunded: partially.
        assert_eq!(p["paymentStatus"], "partiallyRefunded");
        assert_eq!(
            e.event_id,
            event_id("shop", "order", "o-1", EventName::OrderRefunded, "r-3")
        );

        // Both new at once: one event, sorted ids, both facts; half of li-1 (gross 35.98,
        // tax 5.74) is 17.99 with 2.87 tax.
        let events =
            order_events(&o, &jane(), &f.ctx(), &|fact| fact == "order:o-1:placed").unwrap();
        assert_eq!(names(&events), ["order refunded"]);
        assert_eq!(
            events[0].facts,
            ["order:o-1:refund:r-1", "order:o-1:refund:r-3"]
        );
        assert_eq!(
            events[0].event_id,
            event_id("shop", "order", "o-1", EventName::OrderRefunded, "r-1,r-3")
        );
        let text = serde_json::to_string(props(&events[0])).unwrap();
        assert!(text.contains(r#""totalRefundedAmount":25.99"#), "{text}");
        assert!(text.contains(r#""totalRefundedTaxAmount":2.87"#), "{text}");
        // The returned shoe's line discount is half of 4.00.
        assert_eq!(
            props(&events[0])["refundedLineItems"][0]["productDiscount"],
            json!(2.0)
        );
    }

    #[test]
    fn money_is_exact_in_eur_with_line_and_order_discounts() {
        let f = Fixture::new();
        let events = order_events(&order(eur_order()), &jane(), &f.ctx(), &never).unwrap();
        let p = props(&events[0]);
        let text = serde_json::to_string(p).unwrap();
        // Hand-computed: see `eur_order`.
        for expected in [
            r#""currency":"EUR""#,
            r#""totalPrice":43.88"#,
            r#""subTotalPrice":43.98"#, // 35.98 + 8.00
            r#""subTotalTaxIncluded":true"#,
            r#""totalDiscount":9.0"#, // 2 × 2.00 on the shoes + 5.00 on the total
            r#""totalTax":7.01"#,
            r#""shippingPrice":4.9"#,
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
        assert_eq!(
            p["discounts"],
            json!([{"amount": 5.0, "code": "SUMMER20", "type": "fixedAmount"}])
        );
        let shoe = &p["lineItems"][0];
        assert_eq!(shoe["productPrice"], json!(19.99));
        assert_eq!(shoe["productDiscount"], json!(4.0));
        assert!(shoe.get("productStrikeThroughPrice").is_none());
        let sock = &p["lineItems"][1];
        assert_eq!(sock["productPrice"], json!(8.0));
        assert_eq!(sock["productStrikeThroughPrice"], json!(10.0));
        assert_eq!(sock["productDiscount"], json!(0.0));
    }

    #[test]
    fn money_is_exact_in_jpy_with_a_free_shipping_code() {
        // JPY has no minor unit. 3 × 1500 with 150 off each → 4050; 500 off the total; the
        // 800 shipping is made free by FREESHIP. Total 4050 − 500 + 0 = 3550, tax included.
        let jpy = |n: i64| m("JPY", n, 0);
        let o = order(json!({
            "id": "o-jpy", "version": 1, "orderNumber": "A-77",
            "createdAt": "2026-02-01T00:00:00Z", "lastModifiedAt": "2026-02-01T00:00:00Z",
            "lineItems": [{
                "id": "li-1", "productId": "p-tea", "name": {"en": "Tea"}, "productSlug": {"en": "tea"},
                "variant": {"id": 1, "sku": "TEA"}, "price": {"value": jpy(1500)}, "quantity": 3,
                "discountedPricePerQuantity": [{"quantity": 3, "discountedPrice": {
                    "value": jpy(1350), "includedDiscounts": [{"discount": cd("cd-auto"), "discountedAmount": jpy(150)}]}}],
                "totalPrice": jpy(4050),
                "taxRate": {"name": "JCT", "amount": 0.1, "includedInPrice": true, "country": "JP"}
            }],
            "discountCodes": [{"discountCode": {"typeId": "discount-code", "id": "dc-ship"}, "state": "MatchesCart"}],
            "discountOnTotalPrice": {"discountedAmount": jpy(500), "includedDiscounts": [{"discount": cd("cd-other"), "discountedAmount": jpy(500)}]},
            "shippingInfo": {"shippingMethodName": "Yamato", "price": jpy(800),
                "discountedPrice": {"value": jpy(0), "includedDiscounts": [{"discount": cd("cd-ship"), "discountedAmount": jpy(800)}]}},
            "totalPrice": jpy(3550),
            "taxedPrice": {"totalNet": jpy(3227), "totalGross": jpy(3550), "totalTax": jpy(323)}
        }));
        let f = Fixture::new();
        let events = order_events(&o, &jane(), &f.ctx(), &never).unwrap();
        let p = props(&events[0]);
        let text = serde_json::to_string(p).unwrap();
        for expected in [
            r#""currency":"JPY""#,
            r#""totalPrice":3550.0"#,
            r#""subTotalPrice":4050.0"#,
            r#""totalDiscount":1750.0"#, // 3 × 150 + 500 + 800 shipping
            r#""totalTax":323.0"#,
            r#""shippingPrice":0.0"#,
            r#""productPrice":1500.0"#,
            r#""productDiscount":450.0"#,
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
        assert_eq!(
            p["discounts"],
            json!([{"amount": 800.0, "code": "FREESHIP", "type": "fixedAmount"}])
        );
        // Not all digits: no orderNumber.
        assert!(p.get("orderNumber").is_none());
    }

    #[test]
    fn money_is_exact_in_kwd_with_tax_on_top() {
        // KWD has three decimals; prices exclude 5 % tax. 2 × 12.345, one unit 1.234 off →
        // 11.111 + 12.345 = 23.456. KUWAIT2 takes 2.000 off the total; shipping 1.500.
        // Net 23.456 − 2.000 + 1.500 = 22.956, tax 1.148, gross 24.104.
        let kwd = |n: i64| m("KWD", n, 3);
        let o = order(json!({
            "id": "o-kwd", "version": 1, "orderNumber": "0042",
            "createdAt": "2026-02-01T00:00:00Z", "lastModifiedAt": "2026-02-01T00:00:00Z",
            "lineItems": [{
                "id": "li-1", "productId": "p-dates", "name": {"en": "Dates"}, "productSlug": {"en": "dates"},
                "variant": {"id": 1, "sku": "DATES"}, "price": {"value": kwd(12345)}, "quantity": 2,
                "discountedPricePerQuantity": [{"quantity": 1, "discountedPrice": {
                    "value": kwd(11111), "includedDiscounts": [{"discount": cd("cd-auto"), "discountedAmount": kwd(1234)}]}}],
                "totalPrice": kwd(23456),
                "taxRate": {"name": "Tax", "amount": 0.05, "includedInPrice": false, "country": "KW"}
            }],
            "discountCodes": [{"discountCode": {"typeId": "discount-code", "id": "dc-kw"}}],
            "discountOnTotalPrice": {"discountedAmount": kwd(2000), "includedDiscounts": [{"discount": cd("cd-kw"), "discountedAmount": kwd(2000)}]},
            "shippingInfo": {"shippingMethodName": "Aramex", "price": kwd(1500)},
            "totalPrice": kwd(22956),
            "taxedPrice": {"totalNet": kwd(22956), "totalGross": kwd(24104), "totalTax": kwd(1148)}
        }));
        let f = Fixture::new();
        let events = order_events(&o, &jane(), &f.ctx(), &never).unwrap();
        let p = props(&events[0]);
        let text = serde_json::to_string(p).unwrap();
        for expected in [
            r#""orderNumber":42"#,
            r#""currency":"KWD""#,
            r#""totalPrice":24.104"#,
            r#""subTotalPrice":23.456"#,
            r#""subTotalTaxIncluded":false"#,
            r#""totalDiscount":3.234"#, // 1.234 + 2.000
            r#""totalTax":1.148"#,
            r#""shippingPrice":1.5"#,
            r#""productPrice":12.345"#,
            r#""productDiscount":1.234"#,
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
        assert_eq!(
            p["discounts"],
            json!([{"amount": 2.0, "code": "KUWAIT2", "type": "fixedAmount"}])
        );
    }

    #[test]
    fn common_order_properties_render_addresses_urls_and_statuses() {
        let f = Fixture::new();
        let mut v = eur_order();
        v["paymentInfo"] = json!({"payments": [
            {"typeId": "payment", "id": "pay-0"},
            {"typeId": "payment", "id": "pay-1", "obj": {"id": "pay-1",
                "paymentMethodInfo": {"paymentInterface": "stripe", "method": "card"}}}
        ]});
        v["shipmentState"] = json!("Ready");
        let events = order_events(&order(v), &jane(), &f.ctx(), &never).unwrap();
        let p = props(&events[0]);
        assert_eq!(p["orderID"], "o-1");
        assert_eq!(p["orderNumber"], json!(10023));
        assert_eq!(p["createdAt"], "2026-01-05T12:00:00Z");
        assert_eq!(p["paymentMethod"], "card");
        assert_eq!(p["paymentStatus"], "awaitingPayment");
        assert_eq!(p["fulfillmentStatus"], "inProgress");
        assert_eq!(p["shippingMethod"], "DHL Express");
        assert_eq!(p["orderStatusURL"], "https://shop.example.com/orders/10023");
        assert_eq!(
            p["billingAddress"],
            json!({"firstName": "Jane", "lastName": "Doe", "address1": "Main St 1", "address2": "4B",
                   "city": "Vilnius", "countryCode": "LT", "zip": "01100", "phone": "+37060000000"})
        );
        let shoe = &p["lineItems"][0];
        assert_eq!(
            shoe,
            &json!({"productID": "p-1", "productVariantID": "p-1-2", "productSKU": "SHOE-42",
                    "productTitle": "Schuh", "productPrice": 19.99, "productDiscount": 4.0,
                    "productQuantity": 2, "productURL": "https://shop.example.com/de-DE/p/schuh",
                    "productImageURL": "https://img.example/shoe.jpg"})
        );
        // The sock only has a French name and slug: the title falls back to it, the URL is
        // left out rather than broken.
        let sock = &p["lineItems"][1];
        assert!(sock.get("productURL").is_none());
        assert_eq!(sock["productTitle"], "Chaussette");
        assert_eq!(
            events[0].body["contact"],
            json!({"email": "jane@example.com", "firstName": "Jane", "lastName": "Doe"})
        );
    }

    #[test]
    fn statuses_map_from_commercetools_states() {
        let status = |payment: Option<&str>, order_state: &str, shipment: Option<&str>| {
            let mut v = eur_order();
            v["paymentState"] = json!(payment);
            v["orderState"] = json!(order_state);
            v["shipmentState"] = json!(shipment);
            let o = order(v);
            (payment_status(&o), fulfillment_status(&o))
        };
        assert_eq!(
            status(None, "Open", None),
            ("awaitingPayment", "unfulfilled")
        );
        assert_eq!(
            status(Some("BalanceDue"), "Open", Some("Backorder")),
            ("awaitingPayment", "unfulfilled")
        );
        assert_eq!(
            status(Some("Failed"), "Open", Some("Delayed")),
            ("awaitingPayment", "unfulfilled")
        );
        assert_eq!(
            status(Some("Paid"), "Confirmed", Some("Partial")),
            ("paid", "inProgress")
        );
        assert_eq!(
            status(Some("CreditOwed"), "Complete", Some("Shipped")),
            ("paid", "fulfilled")
        );
        assert_eq!(
            status(Some("Pending"), "Cancelled", Some("Canceled")),
            ("voided", "unfulfilled")
        );
        let mut v = eur_order();
        v["returnInfo"] = json!([{"items": [
            {"id": "r-1", "quantity": 2, "type": "LineItemReturnItem", "lineItemId": "li-1", "paymentState": "Refunded"},
            {"id": "r-2", "quantity": 1, "type": "LineItemReturnItem", "lineItemId": "li-2", "paymentState": "Refunded"}
        ]}]);
        assert_eq!(payment_status(&order(v)), "refunded");
    }

    #[test]
    fn order_numbers_are_sent_only_as_numbers() {
        assert_eq!(order_number_json(Some("10023")), Some(json!(10023)));
        assert_eq!(order_number_json(Some("0042")), Some(json!(42)));
        assert_eq!(order_number_json(Some("A-100")), None);
        assert_eq!(order_number_json(Some("1234567890123456")), None);
        assert_eq!(order_number_json(Some("")), None);
        assert_eq!(order_number_json(None), None);
    }

    #[test]
    fn a_discount_code_expanded_on_the_order_needs_no_lookup_and_an_unknown_one_keeps_its_id() {
        let f = Fixture::new();
        let empty = HashMap::new();
        let ctx = EventContext {
            discount_codes: &empty,
            ..f.ctx()
        };
        let mut v = eur_order();
        v["discountCodes"][0]["discountCode"]["obj"] = json!({
            "id": "dc-1", "version": 1, "code": "SUMMER20", "cartDiscounts": [cd("cd-summer")],
            "createdAt": "2026-01-01T00:00:00Z", "lastModifiedAt": "2026-01-01T00:00:00Z"});
        let events = order_events(&order(v), &jane(), &ctx, &never).unwrap();
        assert_eq!(
            props(&events[0])["discounts"],
            json!([{"amount": 5.0, "code": "SUMMER20", "type": "fixedAmount"}])
        );
        let events = order_events(&order(eur_order()), &jane(), &ctx, &never).unwrap();
        assert_eq!(
            props(&events[0])["discounts"],
            json!([{"amount": 0.0, "code": "dc-1", "type": "fixedAmount"}])
        );
    }

    #[test]
    fn unmappable_orders_are_rejected_with_entity_id_and_field() {
        let f = Fixture::new();
        let err = order_events(
            &order(eur_order()),
            &EventContact::default(),
            &f.ctx(),
            &never,
        )
        .unwrap_err();
        assert_eq!(
            (err.entity, err.id.as_str(), err.field.as_str()),
            ("order", "o-1", "customerEmail")
        );
        let mut v = eur_order();
        v["lineItems"] = json!([]);
        let err = order_events(&order(v), &jane(), &f.ctx(), &never).unwrap_err();
        assert_eq!((err.entity, err.field.as_str()), ("order", "lineItems"));
        let mut v = eur_order();
        v.as_object_mut().unwrap().remove("totalPrice");
        let err = order_events(&order(v), &jane(), &f.ctx(), &never).unwrap_err();
        assert_eq!((err.entity, err.field.as_str()), ("order", "totalPrice"));
    }

    // ---- ids and contacts -----------------------------------------------------------------

    #[test]
    fn the_event_id_namespace_is_derived_as_documented() {
        assert_eq!(
            Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:ct-omnisend:omnisend-events"),
            EVENT_ID_NAMESPACE
        );
        // Computed independently (Python's uuid.uuid5).
        assert_eq!(
            event_id("shop", "order", "o-1", EventName::PlacedOrder, "").to_string(),
            "a81f18c9-0955-5e46-b051-9d80e138a8cf"
        );
    }

    #[test]
    fn event_ids_are_deterministic_and_distinct_per_fact() {
        let f = Fixture::new();
        let first = order_events(&busy_order(), &jane(), &f.ctx(), &never).unwrap();
        let again = order_events(&busy_order(), &jane(), &f.ctx(), &never).unwrap();
        assert_eq!(first, again);
        let mut ids: Vec<Uuid> = first.iter().map(|e| e.event_id).collect();
        ids.push(event_id("shop", "cart", "o-1", EventName::PlacedOrder, ""));
        ids.push(event_id(
            "other",
            "order",
            "o-1",
            EventName::PlacedOrder,
            "",
        ));
        ids.push(event_id(
            "shop",
            "cart",
            "c-1",
            EventName::AddedProductToCart,
            "line:l:qty:1",
        ));
        ids.push(event_id(
            "shop",
            "cart",
            "c-1",
            EventName::AddedProductToCart,
            "line:l:qty:2",
        ));
        let distinct: HashSet<Uuid> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in ids {
            assert_eq!(id.get_version_num(), 5);
        }
    }

    #[test]
    fn contact_rendering_leaves_out_empty_and_invalid_fields() {
        let c = EventContact {
            email: Some("  ".into()),
            phone: Some("+37060000000".into()),
            first_name: Some(String::new()),
            last_name: None,
        };
        assert!(c.is_identified());
        assert_eq!(c.to_json(), json!({"phone": "+37060000000"}));
        let long = EventContact {
            email: Some("a@example.com".into()),
            phone: Some("+1234567890123456".into()),
            first_name: Some("x".repeat(60)),
            last_name: Some(" Doe ".into()),
        };
        assert_eq!(
            long.to_json(),
            json!({"email": "a@example.com", "firstName": "x".repeat(50), "lastName": "Doe"})
        );
        assert!(!EventContact::default().is_identified());
        assert_eq!(EventContact::default().to_json(), json!({}));
        let only_long_phone = EventContact {
            phone: Some("+1234567890123456".into()),
            ..EventContact::default()
        };
        assert!(!only_long_phone.is_identified());
    }

    #[test]
    fn event_names_and_versions_are_exact() {
        let all: Vec<(&str, &str)> = EventName::ALL
            .iter()
            .map(|n| (n.as_str(), n.version()))
            .collect();
        assert_eq!(
            all,
            [
                ("placed order", "v2"),
                ("ordered product", "v2"),
                ("paid for order", "v2"),
                ("order fulfilled", "v2"),
                ("order canceled", "v2"),
                ("order refunded", "v2"),
                ("added product to cart", ""),
                ("started checkout", ""),
                ("viewed product", "v4"),
            ]
        );
        for n in EventName::ALL {
            assert_eq!(serde_json::to_value(n).unwrap(), n.as_str());
        }
    }

    // ---- carts ----------------------------------------------------------------------------

    fn line(id: &str, product: &str, quantity: i64, unit_cents: i64) -> Value {
        json!({
            "id": id, "productId": product, "name": {"en": product}, "productSlug": {"en": product},
            "variant": {"id": 1, "sku": format!("{product}-sku")},
            "price": {"value": eur(unit_cents)}, "quantity": quantity,
            "totalPrice": eur(unit_cents * quantity),
            "addedAt": "2026-03-01T10:00:00Z", "lastModifiedAt": format!("2026-03-01T10:{quantity:02}:00Z")
        })
    }

    fn cart(version: i64, lines: Vec<Value>, address: Option<Value>) -> Cart {
        let total: i64 = lines
            .iter()
            .map(|l| l["totalPrice"]["centAmount"].as_i64().unwrap())
            .sum();
        serde_json::from_value(json!({
            "id": "c-1", "version": version, "cartState": "Active",
            "createdAt": "2026-03-01T09:00:00Z", "lastModifiedAt": format!("2026-03-01T11:{version:02}:00Z"),
            "customerEmail": "jane@example.com",
            "lineItems": lines, "totalPrice": eur(total), "shippingAddress": address
        }))
        .unwrap()
    }

    /// Runs `carts` through [`cart_events`] like the caller would: snapshot and sent facts
    /// carried from one update to the next.
    fn replay(ctx: &EventContext<'_>, carts: &[Cart]) -> Vec<PlannedEvent> {
        let sent = RefCell::new(HashSet::<String>::new());
        let mut snapshot: Option<CartSnapshot> = None;
        let mut all = Vec::new();
        for c in carts {
            let (events, next) = cart_events(c, snapshot.as_ref(), &jane(), ctx, &|fact| {
                sent.borrow().contains(fact)
            })
            .unwrap();
            for e in &events {
                sent.borrow_mut().extend(e.facts.iter().cloned());
            }
            all.extend(events);
            snapshot = Some(next);
        }
        all
    }

    #[test]
    fn five_cart_updates_with_two_additions_send_exactly_two_added_events() {
        let f = Fixture::new();
        let country_only = json!({"country": "DE"});
        let gift = {
            let mut g = line("gift", "p-gift", 1, 0);
            g["lineItemMode"] = json!("GiftLineItem");
            g
        };
        let carts = [
            cart(2, vec![line("a", "p-a", 1, 1000)], None),
            cart(
                3,
                vec![line("a", "p-a", 1, 1000)],
                Some(country_only.clone()),
            ),
            cart(
                4,
                vec![line("a", "p-a", 1, 1000), gift.clone()],
                Some(country_only.clone()),
            ),
            cart(
                5,
                vec![line("a", "p-a", 3, 1000), gift.clone()],
                Some(country_only.clone()),
            ),
            cart(6, vec![line("a", "p-a", 2, 1000), gift], Some(country_only)),
        ];
        let events = replay(&f.ctx(), &carts);
        assert_eq!(
            names(&events),
            ["added product to cart", "added product to cart"]
        );
        assert_eq!(events[0].facts, ["cart:c-1:line:a:qty:1"]);
        assert_eq!(events[1].facts, ["cart:c-1:line:a:qty:3"]);
        assert_eq!(props(&events[0])["addedItem"]["productQuantity"], 1);
        assert_eq!(props(&events[1])["addedItem"]["productQuantity"], 2);
        assert_eq!(props(&events[1])["addedItem"]["productID"], "p-a");
        assert_eq!(events[1].body["eventTime"], "2026-03-01T10:03:00Z");
        let p = props(&events[1]);
        assert_eq!(p["cartID"], "c-1");
        assert_eq!(p["currency"], "EUR");
        assert_eq!(p["value"], json!(30.0));
        assert_eq!(p["lineItems"].as_array().unwrap().len(), 2);
        assert_eq!(
            p["abandonedCheckoutURL"],
            "https://shop.example.com/cart/recover?token=v1.x.y.1.mac"
        );
        for e in &events {
            assert_eq!(e.body["eventVersion"], "");
        }
        assert_ne!(events[0].event_id, events[1].event_id);
        assert_valid(&events);
    }

    #[test]
    fn a_stale_cart_version_changes_nothing() {
        let f = Fixture::new();
        let newer = CartSnapshot {
            version: 5,
            lines: BTreeMap::from([("a".to_string(), 1)]),
            had_shipping_address: false,
        };
        let old = cart(
            4,
            vec![line("a", "p-a", 1, 1000), line("b", "p-b", 1, 500)],
            None,
        );
        let (events, snapshot) =
            cart_events(&old, Some(&newer), &jane(), &f.ctx(), &never).unwrap();
        assert!(events.is_empty());
        assert_eq!(snapshot, newer);
    }

    #[test]
    fn started_checkout_is_sent_once_per_cart() {
        let f = Fixture::new();
        let street = json!({"country": "DE", "streetName": "Hauptstr.", "postalCode": "10115"});
        let carts = [
            cart(2, vec![line("a", "p-a", 1, 1000)], None),
            cart(3, vec![line("a", "p-a", 1, 1000)], Some(street.clone())),
            cart(4, vec![line("a", "p-a", 1, 1000)], Some(street.clone())),
            cart(5, vec![line("a", "p-a", 1, 1000)], None),
            cart(6, vec![line("a", "p-a", 1, 1000)], Some(street.clone())),
        ];
        let events = replay(&f.ctx(), &carts);
        assert_eq!(
            names(&events),
            ["added product to cart", "started checkout"]
        );
        let checkout = &events[1];
        assert_eq!(checkout.facts, ["cart:c-1:checkout"]);
        assert_eq!(checkout.body["eventTime"], "2026-03-01T11:03:00Z");
        assert!(props(checkout).get("addedItem").is_none());
        assert_eq!(props(checkout)["value"], json!(10.0));

        // The storefront's own report plans the very same event.
        let direct = started_checkout(&carts[1], &jane(), &f.ctx()).unwrap();
        assert_eq!(direct, *checkout);

        // Off unless configured.
        let ctx = EventContext {
            checkout_on_shipping_address: false,
            ..f.ctx()
        };
        assert_eq!(names(&replay(&ctx, &carts)), ["added product to cart"]);
        assert_valid(&events);
    }

    #[test]
    fn unidentified_carts_are_rejected_only_when_something_is_to_be_sent() {
        let f = Fixture::new();
        let c = cart(2, vec![line("a", "p-a", 1, 1000)], None);
        let err = cart_events(&c, None, &EventContact::default(), &f.ctx(), &never).unwrap_err();
        assert_eq!(
            (err.entity, err.id.as_str(), err.field.as_str()),
            ("cart", "c-1", "customerEmail")
        );
        let empty = cart(3, vec![], None);
        let (events, snapshot) =
            cart_events(&empty, None, &EventContact::default(), &f.ctx(), &never).unwrap();
        assert!(events.is_empty());
        assert_eq!(snapshot.version, 3);
        let mut ordered = c.clone();
        ordered.cart_state = Some("Ordered".into());
        let (events, _) = cart_events(&ordered, None, &jane(), &f.ctx(), &never).unwrap();
        assert!(events.is_empty());
    }

    // ---- viewed product -------------------------------------------------------------------

    fn product() -> ProductProjection {
        serde_json::from_value(json!({
            "id": "p-1", "version": 3, "key": "shoe",
            "productType": {"typeId": "product-type", "id": "pt-1"},
            "name": {"en": "Shoe", "de-DE": "Schuh"}, "slug": {"en": "shoe", "de-DE": "schuh"},
            "masterVariant": {"id": 1, "sku": "SHOE-41",
                "prices": [{"id": "a", "value": eur(2999),
                            "discounted": {"value": eur(2499), "discount": {"typeId": "product-discount", "id": "pd"}}}],
                "images": [{"url": "https://img.example/41.jpg"}]},
            "variants": [{"id": 2, "sku": "SHOE-42", "prices": [{"id": "b", "value": m("USD", 3500, 2)}]}],
            "createdAt": "2026-01-01T00:00:00Z", "lastModifiedAt": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_viewed_product_carries_the_selected_price_and_a_per_view_id() {
        let f = Fixture::new();
        let p = product();
        let view = ProductView {
            product: &p,
            variant_sku: None,
            price: PriceSelector {
                currency: "eur",
                country: None,
                channel_id: None,
                customer_group_id: None,
            },
            at: datetime!(2026-03-01 12:00 UTC),
            discriminator: "req-1",
        };
        let e = viewed_product(&view, &jane(), &f.ctx()).unwrap();
        assert_eq!(e.body["eventName"], "viewed product");
        assert_eq!(e.body["eventVersion"], "v4");
        assert_eq!(e.body["eventTime"], "2026-03-01T12:00:00Z");
        assert_eq!(e.facts, ["product:p-1:viewed:req-1"]);
        assert_eq!(
            props(&e),
            &json!({"product": {"id": "p-1", "variantID": "p-1-1", "sku": "SHOE-41", "title": "Schuh",
                    "currency": "EUR", "price": 24.99, "oldPrice": 29.99,
                    "url": "https://shop.example.com/de-DE/p/schuh", "imageUrl": "https://img.example/41.jpg"}})
        );
        let again = viewed_product(&view, &jane(), &f.ctx()).unwrap();
        assert_eq!(again.event_id, e.event_id);
        let other = viewed_product(
            &ProductView {
                discriminator: "req-2",
                ..view.clone()
            },
            &jane(),
            &f.ctx(),
        )
        .unwrap();
        assert_ne!(other.event_id, e.event_id);

        // The 42 has no EUR price: no price, still an event.
        let e42 = viewed_product(
            &ProductView {
                variant_sku: Some("SHOE-42"),
                ..view.clone()
            },
            &jane(),
            &f.ctx(),
        )
        .unwrap();
        assert_eq!(props(&e42)["product"]["variantID"], "p-1-2");
        assert!(props(&e42)["product"].get("price").is_none());

        let err = viewed_product(
            &ProductView {
                variant_sku: Some("NOPE"),
                ..view.clone()
            },
            &jane(),
            &f.ctx(),
        )
        .unwrap_err();
        assert_eq!(
            (err.entity, err.id.as_str(), err.field.as_str()),
            ("product", "p-1", "sku")
        );
        let err = viewed_product(&view, &EventContact::default(), &f.ctx()).unwrap_err();
        assert_eq!(err.field, "contact");
        assert_valid(&[e]);
    }

    #[test]
    fn money_json_writes_the_decimal_text_as_a_float() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let text = |s: &str| serde_json::to_string(&money_json(d(s))).unwrap();
        assert_eq!(text("12.345"), "12.345");
        assert_eq!(text("19.99"), "19.99");
        assert_eq!(text("0.1"), "0.1");
        assert_eq!(text("1500"), "1500.0");
        assert_eq!(text("1500.000"), "1500.0");
        assert_eq!(text("0.00"), "0.0");
        assert_eq!(text("123456789.123"), "123456789.123");
    }
}
