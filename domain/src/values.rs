//! Validated value types ("parse, don't validate").
//!
//! Every type here can only hold a valid value: build one with `TryFrom` (or `parse`) and
//! get a [`ValueError`] naming the field and what is wrong with it, worded for a client.
//! All of them (de)serialize as their plain inner value (a string, an integer, a UUID
//! string, or an array of line objects), and deserializing validates.
//!
//! String lengths are counted in Unicode scalar values (`char`s), as JSON Schema's
//! `minLength`/`maxLength` count them.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// A value that failed validation: which field, and why.
///
/// `field` is the JSON field name used by the API and the events (`sku`, `price_cents`,
/// `lines`, ...); the `Display` form is `"<field>: <reason>"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValueError {
    /// The JSON field name of the offending value.
    pub field: &'static str,
    /// What is wrong with it, for a human.
    pub reason: String,
}

impl ValueError {
    /// A validation failure of `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Checks that `value` has no control character (U+0000–U+001F, U+007F–U+009F): they
/// have no place in names, references or reasons, and PostgreSQL refuses NUL in text and
/// jsonb, so they are turned away at the edge with the field they were found in.
fn check_no_control(field: &'static str, value: &str) -> Result<(), ValueError> {
    match value.chars().position(char::is_control) {
        None => Ok(()),
        Some(index) => Err(ValueError::new(
            field,
            format!(
                "must not contain control characters (U+{:04X} at character {})",
                u32::from(value.chars().nth(index).unwrap_or_default()),
                index + 1
            ),
        )),
    }
}

/// Checks that `value` has between `min` and `max` characters.
fn check_len(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), ValueError> {
    let len = value.chars().count();
    if (min..=max).contains(&len) {
        Ok(())
    } else if min == 0 {
        Err(ValueError::new(
            field,
            format!("must be at most {max} characters long (got {len})"),
        ))
    } else if min == max {
        Err(ValueError::new(
            field,
            format!("must be exactly {min} characters long (got {len})"),
        ))
    } else {
        Err(ValueError::new(
            field,
            format!("must be {min} to {max} characters long (got {len})"),
        ))
    }
}

/// Defines a string newtype whose constructor runs `$check` on the candidate string.
macro_rules! string_value {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, check = $check:expr
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The JSON field name this value is validated as.
            pub const FIELD: &'static str = $field;

            /// Validates `value`.
            pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
                let value = value.into();
                let check: fn(&'static str, &str) -> Result<(), ValueError> = $check;
                check_no_control($field, &value)?;
                check($field, &value)?;
                Ok(Self(value))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The owned inner string.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(value: String) -> Result<Self, ValueError> {
                Self::parse(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValueError;
            fn try_from(value: &str) -> Result<Self, ValueError> {
                Self::parse(value)
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(value: &str) -> Result<Self, ValueError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Defines an `i64` newtype restricted to `$min..=$max`.
macro_rules! int_value {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, min = $min:expr, max = $max:expr
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            /// The JSON field name this value is validated as.
            pub const FIELD: &'static str = $field;
            /// The smallest valid value.
            pub const MIN: i64 = $min;
            /// The largest valid value.
            pub const MAX: i64 = $max;

            /// Validates `value`.
            pub fn parse(value: i64) -> Result<Self, ValueError> {
                if (Self::MIN..=Self::MAX).contains(&value) {
                    Ok(Self(value))
                } else {
                    Err(ValueError::new(
                        $field,
                        format!(
                            "must be an integer from {} to {} (got {value})",
                            Self::MIN,
                            Self::MAX
                        ),
                    ))
                }
            }

            /// The inner integer.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = ValueError;
            fn try_from(value: i64) -> Result<Self, ValueError> {
                Self::parse(value)
            }
        }

        impl From<$name> for i64 {
            fn from(value: $name) -> i64 {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

string_value!(
    /// A stock keeping unit: 1 to 64 characters of `A-Z a-z 0-9 - _`.
    Sku,
    field = "sku",
    check = |field, value| {
        check_len(field, value, 1, 64)?;
        if value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            Ok(())
        } else {
            Err(ValueError::new(
                field,
                "may only contain the characters A-Z a-z 0-9 - _",
            ))
        }
    }
);

string_value!(
    /// A product's display name: 1 to 200 characters.
    ProductName,
    field = "name",
    check = |field, value| check_len(field, value, 1, 200)
);

string_value!(
    /// An ISO 4217-style currency code: exactly three ASCII capital letters (`EUR`).
    ///
    /// The code is not checked against the ISO list.
    Currency,
    field = "currency",
    check = |field, value| {
        if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err(ValueError::new(
                field,
                "must be exactly three capital letters A-Z, like EUR",
            ))
        }
    }
);

string_value!(
    /// The customer an order belongs to (the customer's token `sub`): 1 to 255 characters.
    CustomerId,
    field = "customer_id",
    check = |field, value| check_len(field, value, 1, 255)
);

string_value!(
    /// Who did something (a token `sub`: a customer, an admin, ...): 1 to 255 characters,
    /// the bounds of [`CustomerId`]. Recorded as `placed_by` in `OrderPlaced`.
    ActorId,
    field = "placed_by",
    check = |field, value| check_len(field, value, 1, 255)
);

impl From<CustomerId> for ActorId {
    /// The customer as the actor: a customer acting for themself.
    fn from(customer: CustomerId) -> Self {
        Self(customer.into_inner())
    }
}

string_value!(
    /// The payment service provider's reference of a payment: 1 to 200 characters.
    PaymentRef,
    field = "payment_ref",
    check = |field, value| check_len(field, value, 1, 200)
);

string_value!(
    /// The payment provider that handles a payment: 1 to 32 characters of `a-z 0-9 _`
    /// (`stripe`, `manual`, `offline`).
    ProviderName,
    field = "provider",
    check = |field, value| {
        check_len(field, value, 1, 32)?;
        if value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            Ok(())
        } else {
            Err(ValueError::new(field, "may only contain a-z 0-9 _"))
        }
    }
);

string_value!(
    /// The provider's id of one of its events (a webhook's `id`, `evt_...` at Stripe):
    /// 1 to 255 characters. Each applies to the log at most once.
    ProviderEventId,
    field = "provider_event",
    check = |field, value| check_len(field, value, 1, 255)
);

string_value!(
    /// The provider's id of a refund (`re_...` at Stripe): 1 to 200 characters.
    RefundId,
    field = "refund_id",
    check = |field, value| check_len(field, value, 1, 200)
);

string_value!(
    /// Why a person did something that needs a why (an offline payment, a refund): 1 to
    /// 500 characters.
    Reason,
    field = "reason",
    check = |field, value| {
        check_len(field, value, 1, 500)?;
        if value.trim().is_empty() {
            Err(ValueError::new(field, "must not be blank"))
        } else {
            Ok(())
        }
    }
);

string_value!(
    /// The carrier shipping an order: 1 to 100 characters.
    Carrier,
    field = "carrier",
    check = |field, value| check_len(field, value, 1, 100)
);

string_value!(
    /// The carrier's tracking number of a shipment: 1 to 100 characters.
    TrackingNumber,
    field = "tracking_number",
    check = |field, value| check_len(field, value, 1, 100)
);

string_value!(
    /// Why an order was cancelled: 0 to 500 characters (may be empty).
    CancelReason,
    field = "reason",
    check = |field, value| check_len(field, value, 0, 500)
);

impl Default for CancelReason {
    /// The empty reason.
    fn default() -> Self {
        Self(String::new())
    }
}

impl CancelReason {
    /// The reason recorded when the system cancels an order that was not paid in time.
    pub const PAYMENT_TIMEOUT: &'static str = "payment_timeout";

    /// [`CancelReason::PAYMENT_TIMEOUT`].
    pub fn payment_timeout() -> Self {
        Self(Self::PAYMENT_TIMEOUT.to_owned())
    }
}

int_value!(
    /// A price in minor units (cents): 1 to 1,000,000,000,000.
    ///
    /// The upper bound keeps every order total (at most 100 lines of 1,000 units) far
    /// inside `i64`.
    PriceCents,
    field = "price_cents",
    min = 1,
    max = 1_000_000_000
);

int_value!(
    /// A product's initial stock: 0 to 1,000,000,000 units.
    ///
    /// [`StockQuantity::MAX`] is also the most stock a product may have on hand.
    StockQuantity,
    field = "initial_stock",
    min = 0,
    max = 1_000_000_000
);

impl Default for StockQuantity {
    /// No stock.
    fn default() -> Self {
        Self(0)
    }
}

int_value!(
    /// The number of units added by a restock: 1 to 1,000,000.
    RestockQuantity,
    field = "quantity",
    min = 1,
    max = 1_000_000
);

int_value!(
    /// The number of units of one product in an order line: 1 to 1,000.
    LineQuantity,
    field = "quantity",
    min = 1,
    max = 1_000
);

/// Defines a UUID newtype for an entity id.
macro_rules! id_value {
    ($(#[$meta:meta])* $name:ident, field = $field:literal) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// The JSON field name this value is validated as.
            pub const FIELD: &'static str = $field;

            /// Wraps a UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The inner UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses a UUID string.
            pub fn parse(value: &str) -> Result<Self, ValueError> {
                Uuid::parse_str(value)
                    .map(Self)
                    .map_err(|_| ValueError::new($field, "must be a UUID"))
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(value: &str) -> Result<Self, ValueError> {
                Self::parse(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Hyphenated lowercase, as in the events.
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_value!(
    /// The id of a product (its stream id).
    ProductId,
    field = "product_id"
);

id_value!(
    /// The id of an order (its stream id).
    OrderId,
    field = "order_id"
);

/// Deserializes `T` from a map (a JSON object) only. Derived struct deserializers also
/// accept a sequence of the fields in order (`["<uuid>", 2]`), which we do not want.
fn deserialize_map_only<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct MapOnly<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for MapOnly<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_map(MapOnly(PhantomData))
}

/// One requested order line: a product and how many units of it.
///
/// Deserializes from an object `{"product_id", "quantity"}` only, with no other fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LineItem {
    /// The product ordered.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: LineQuantity,
}

impl LineItem {
    /// This line at a unit price.
    pub fn priced(&self, unit_price_cents: PriceCents) -> PricedLine {
        PricedLine {
            product_id: self.product_id,
            quantity: self.quantity,
            unit_price_cents,
        }
    }
}

impl<'de> Deserialize<'de> for LineItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            product_id: ProductId,
            quantity: LineQuantity,
        }
        let Fields {
            product_id,
            quantity,
        } = deserialize_map_only(deserializer)?;
        Ok(Self {
            product_id,
            quantity,
        })
    }
}

/// One order line with the unit price taken when the order was placed.
///
/// Deserializes from an object `{"product_id", "quantity", "unit_price_cents"}` only, with
/// no other fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PricedLine {
    /// The product ordered.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: LineQuantity,
    /// The product's price per unit when the order was placed.
    pub unit_price_cents: PriceCents,
}

impl<'de> Deserialize<'de> for PricedLine {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            product_id: ProductId,
            quantity: LineQuantity,
            unit_price_cents: PriceCents,
        }
        let Fields {
            product_id,
            quantity,
            unit_price_cents,
        } = deserialize_map_only(deserializer)?;
        Ok(Self {
            product_id,
            quantity,
            unit_price_cents,
        })
    }
}

impl PricedLine {
    /// `quantity * unit_price_cents`. Cannot overflow: at most 1,000 × 10^9.
    pub fn subtotal_cents(&self) -> i64 {
        self.quantity.get() * self.unit_price_cents.get()
    }
}

/// Something an order line list is made of: each line names one product.
trait Line {
    fn product_id(&self) -> ProductId;
}

impl Line for LineItem {
    fn product_id(&self) -> ProductId {
        self.product_id
    }
}

impl Line for PricedLine {
    fn product_id(&self) -> ProductId {
        self.product_id
    }
}

/// The most lines one order may have.
pub const MAX_ORDER_LINES: usize = 100;

/// Checks the rules shared by every line list: 1 to 100 lines, each product at most once.
fn check_lines<L: Line>(lines: &[L]) -> Result<(), ValueError> {
    if lines.is_empty() || lines.len() > MAX_ORDER_LINES {
        return Err(ValueError::new(
            "lines",
            format!(
                "an order must have 1 to {MAX_ORDER_LINES} lines (got {})",
                lines.len()
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(lines.len());
    for line in lines {
        let product_id = line.product_id();
        if !seen.insert(product_id) {
            return Err(ValueError::new(
                "lines",
                format!("product {product_id} appears in more than one line"),
            ));
        }
    }
    Ok(())
}

/// The lines of an order to place: 1 to 100 [`LineItem`]s, each product at most once.
/// Order is preserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<LineItem>", into = "Vec<LineItem>")]
pub struct OrderLines(Vec<LineItem>);

impl OrderLines {
    /// Validates a list of lines.
    pub fn parse(lines: Vec<LineItem>) -> Result<Self, ValueError> {
        check_lines(&lines)?;
        Ok(Self(lines))
    }

    /// The lines, in request order.
    pub fn lines(&self) -> &[LineItem] {
        &self.0
    }

    /// Iterates over the lines in request order.
    pub fn iter(&self) -> std::slice::Iter<'_, LineItem> {
        self.0.iter()
    }

    /// Always at least 1.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: an [`OrderLines`] has at least one line. (Here for clippy's sake.)
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Prices each line with `unit_price(product_id)`, keeping the line order.
    pub fn priced(&self, mut unit_price: impl FnMut(ProductId) -> PriceCents) -> PricedLines {
        PricedLines(
            self.0
                .iter()
                .map(|line| line.priced(unit_price(line.product_id)))
                .collect(),
        )
    }

    /// Prices each line with `unit_price(line)`, keeping the line order; stops at the
    /// first error.
    pub fn try_priced<E>(
        &self,
        mut unit_price: impl FnMut(&LineItem) -> Result<PriceCents, E>,
    ) -> Result<PricedLines, E> {
        self.0
            .iter()
            .map(|line| Ok(line.priced(unit_price(line)?)))
            .collect::<Result<_, E>>()
            .map(PricedLines)
    }
}

impl TryFrom<Vec<LineItem>> for OrderLines {
    type Error = ValueError;
    fn try_from(lines: Vec<LineItem>) -> Result<Self, ValueError> {
        Self::parse(lines)
    }
}

impl From<OrderLines> for Vec<LineItem> {
    fn from(lines: OrderLines) -> Self {
        lines.0
    }
}

impl<'a> IntoIterator for &'a OrderLines {
    type Item = &'a LineItem;
    type IntoIter = std::slice::Iter<'a, LineItem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The priced lines of a placed order: 1 to 100 [`PricedLine`]s, each product at most once.
/// Order is preserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<PricedLine>", into = "Vec<PricedLine>")]
pub struct PricedLines(Vec<PricedLine>);

impl PricedLines {
    /// Validates a list of priced lines.
    pub fn parse(lines: Vec<PricedLine>) -> Result<Self, ValueError> {
        check_lines(&lines)?;
        Ok(Self(lines))
    }

    /// The lines, in order.
    pub fn lines(&self) -> &[PricedLine] {
        &self.0
    }

    /// Iterates over the lines in order.
    pub fn iter(&self) -> std::slice::Iter<'_, PricedLine> {
        self.0.iter()
    }

    /// Always at least 1.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a [`PricedLines`] has at least one line. (Here for clippy's sake.)
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sum of the lines' subtotals. Cannot overflow: at most 100 × 1,000 × 10^9 = 10^14, below 2^53 so JCS hashes it exactly.
    pub fn total_cents(&self) -> i64 {
        self.0.iter().map(PricedLine::subtotal_cents).sum()
    }
}

impl TryFrom<Vec<PricedLine>> for PricedLines {
    type Error = ValueError;
    fn try_from(lines: Vec<PricedLine>) -> Result<Self, ValueError> {
        Self::parse(lines)
    }
}

impl From<PricedLines> for Vec<PricedLine> {
    fn from(lines: PricedLines) -> Self {
        lines.0
    }
}

impl<'a> IntoIterator for &'a PricedLines {
    type Item = &'a PricedLine;
    type IntoIter = std::slice::Iter<'a, PricedLine>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The largest possible order total: 100 lines of 1,000 units at the highest price.
pub const MAX_TOTAL_CENTS: i64 = MAX_ORDER_LINES as i64 * LineQuantity::MAX * PriceCents::MAX;

// Personal data (a customer's profile and addresses). Parsed here at the edge, then sealed
// with the customer's data key before it reaches an event: events hold only [`Sealed`].

string_value!(
    /// An email address: 3 to 254 characters, one `@` with something on both sides, a dot
    /// in the domain, no spaces.
    Email,
    field = "email",
    check = |field, value| {
        check_len(field, value, 3, 254)?;
        let shaped = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
        if shaped && !value.chars().any(char::is_whitespace) {
            Ok(())
        } else {
            Err(ValueError::new(field, "must be an email address like ana@example.com"))
        }
    }
);

string_value!(
    /// A person's name as they give it: 1 to 200 characters.
    PersonName,
    field = "name",
    check = |field, value| check_not_blank(field, value, 200)
);

string_value!(
    /// One line of a postal address: 1 to 200 characters.
    AddressLine,
    field = "address_line",
    check = |field, value| check_not_blank(field, value, 200)
);

string_value!(
    /// A postal code: 1 to 20 characters.
    PostalCode,
    field = "postal_code",
    check = |field, value| check_not_blank(field, value, 20)
);

string_value!(
    /// A city: 1 to 100 characters.
    City,
    field = "city",
    check = |field, value| check_not_blank(field, value, 100)
);

string_value!(
    /// A country as ISO 3166-1 alpha-2: two capital letters (`DE`, `FR`).
    CountryCode,
    field = "country",
    check = |field, value| {
        if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err(ValueError::new(field, "must be two capital letters A-Z, like DE"))
        }
    }
);

/// Checks that `value` has 1 to `max` characters and is not only spaces.
fn check_not_blank(field: &'static str, value: &str, max: usize) -> Result<(), ValueError> {
    check_len(field, value, 1, max)?;
    if value.trim().is_empty() {
        return Err(ValueError::new(field, "must not be blank"));
    }
    Ok(())
}

/// A postal address (shipping address or a customer's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostalAddress {
    pub line1: AddressLine,
    #[serde(default)]
    pub line2: Option<AddressLine>,
    pub postal_code: PostalCode,
    pub city: City,
    pub country: CountryCode,
}

string_value!(
    /// Personal data sealed with its customer's data key: `pii1.` and the base64url (no
    /// padding) of the nonce and the AEAD ciphertext. Opaque to the domain; opened only by
    /// whoever holds the key (`platform::pii`), and by nobody once the customer is erased.
    Sealed,
    field = "sealed",
    check = |field, value| {
        let shaped = value.len() <= 4096
            && value.strip_prefix(Sealed::PREFIX).is_some_and(|body| {
                !body.is_empty()
                    && body
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if shaped {
            Ok(())
        } else {
            Err(ValueError::new(field, "must be sealed personal data (pii1.<base64url>)"))
        }
    }
);

impl Sealed {
    /// What every sealed value starts with (the format's version).
    pub const PREFIX: &'static str = "pii1.";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pid(n: u128) -> ProductId {
        ProductId::from_uuid(Uuid::from_u128(n))
    }

    #[test]
    fn sku_accepts_allowed_characters_and_lengths() {
        for ok in ["A", "a-1_Z", &"x".repeat(64), "0123456789", "-_-"] {
            assert_eq!(Sku::parse(ok).map(|s| s.into_inner()), Ok(ok.to_string()));
        }
    }

    #[test]
    fn sku_rejects_bad_values() {
        for bad in ["", &"x".repeat(65), "a b", "ä", "a/b", "a.b", "A-1\n"] {
            let err = Sku::parse(bad).unwrap_err();
            assert_eq!(err.field, "sku", "{bad:?}");
        }
        assert_eq!(
            Sku::parse("a b").unwrap_err().to_string(),
            "sku: may only contain the characters A-Z a-z 0-9 - _"
        );
        assert_eq!(
            Sku::parse("").unwrap_err().to_string(),
            "sku: must be 1 to 64 characters long (got 0)"
        );
    }

    #[test]
    fn name_counts_characters_not_bytes() {
        assert!(ProductName::parse("é".repeat(200)).is_ok());
        assert!(ProductName::parse("é".repeat(201)).is_err());
        assert!(ProductName::parse("").is_err());
        assert!(ProductName::parse("Mug").is_ok());
    }

    #[test]
    fn currency_is_three_capital_letters() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "", "E1R", "ÉUR"] {
            assert_eq!(Currency::parse(bad).unwrap_err().field, "currency");
        }
    }

    #[test]
    fn string_bounds() {
        type Parse = fn(String) -> Result<(), ValueError>;
        let cases: [(Parse, usize, usize); 7] = [
            (|s| CustomerId::parse(s).map(drop), 1, 255),
            (|s| ActorId::parse(s).map(drop), 1, 255),
            (|s| PaymentRef::parse(s).map(drop), 1, 200),
            (|s| Carrier::parse(s).map(drop), 1, 100),
            (|s| TrackingNumber::parse(s).map(drop), 1, 100),
            (|s| CancelReason::parse(s).map(drop), 0, 500),
            (|s| ProductName::parse(s).map(drop), 1, 200),
        ];
        for (parse, min, max) in cases {
            assert!(parse("y".repeat(min)).is_ok());
            assert!(parse("y".repeat(max)).is_ok());
            assert!(parse("y".repeat(max + 1)).is_err());
            if min > 0 {
                assert!(parse("y".repeat(min - 1)).is_err());
            }
        }
        assert_eq!(
            CancelReason::parse("y".repeat(501))
                .unwrap_err()
                .to_string(),
            "reason: must be at most 500 characters long (got 501)"
        );
    }

    #[test]
    fn every_string_value_refuses_control_characters() {
        type Parse = fn(String) -> Result<(), ValueError>;
        let parsers: [Parse; 8] = [
            |s| CustomerId::parse(s).map(drop),
            |s| ActorId::parse(s).map(drop),
            |s| PaymentRef::parse(s).map(drop),
            |s| Carrier::parse(s).map(drop),
            |s| TrackingNumber::parse(s).map(drop),
            |s| CancelReason::parse(s).map(drop),
            |s| ProductName::parse(s).map(drop),
            |s| Sku::parse(s).map(drop),
        ];
        for parse in parsers {
            for bad in [
                "a\u{0}b",
                "\u{1}",
                "a\tb",
                "line\nbreak",
                "\u{7f}",
                "x\u{9f}",
            ] {
                let error = parse(bad.to_string()).unwrap_err();
                assert!(
                    error.reason.contains("control characters"),
                    "{bad:?}: {error}"
                );
            }
        }
        assert_eq!(
            CancelReason::parse("no\u{0}").unwrap_err().to_string(),
            "reason: must not contain control characters (U+0000 at character 3)"
        );
        assert!(ProductName::parse("Tasse – 0,5 l ☕").is_ok());
    }

    #[test]
    fn actor_id_is_a_token_sub() {
        assert_eq!(
            ActorId::parse("").unwrap_err().to_string(),
            "placed_by: must be 1 to 255 characters long (got 0)"
        );
        assert!(ActorId::parse("é".repeat(255)).is_ok());
        let alice = CustomerId::parse("alice").unwrap();
        assert_eq!(ActorId::from(alice).as_str(), "alice");
        assert_eq!(
            serde_json::to_value(ActorId::parse("root").unwrap()).unwrap(),
            json!("root")
        );
        assert!(serde_json::from_value::<ActorId>(json!("")).is_err());
    }

    #[test]
    fn integer_bounds() {
        assert!(PriceCents::parse(0).is_err());
        assert!(PriceCents::parse(-1).is_err());
        assert!(PriceCents::parse(1).is_ok());
        assert!(PriceCents::parse(PriceCents::MAX).is_ok());
        assert!(PriceCents::parse(PriceCents::MAX + 1).is_err());
        assert!(StockQuantity::parse(-1).is_err());
        assert!(StockQuantity::parse(0).is_ok());
        assert!(StockQuantity::parse(1_000_000_000).is_ok());
        assert!(StockQuantity::parse(1_000_000_001).is_err());
        assert!(RestockQuantity::parse(0).is_err());
        assert!(RestockQuantity::parse(1_000_000).is_ok());
        assert!(RestockQuantity::parse(1_000_001).is_err());
        assert!(LineQuantity::parse(0).is_err());
        assert!(LineQuantity::parse(1000).is_ok());
        assert!(LineQuantity::parse(1001).is_err());
        assert_eq!(
            LineQuantity::parse(0).unwrap_err().to_string(),
            "quantity: must be an integer from 1 to 1000 (got 0)"
        );
        assert_eq!(StockQuantity::default().get(), 0);
    }

    #[test]
    fn values_serialize_as_plain_inner_values_and_validate_on_deserialize() {
        assert_eq!(
            serde_json::to_value(Sku::parse("A-1").unwrap()).unwrap(),
            json!("A-1")
        );
        assert_eq!(
            serde_json::to_value(PriceCents::parse(1299).unwrap()).unwrap(),
            json!(1299)
        );
        let id = pid(7);
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            json!("00000000-0000-0000-0000-000000000007")
        );
        assert_eq!(
            serde_json::from_value::<ProductId>(json!("00000000-0000-0000-0000-000000000007"))
                .unwrap(),
            id
        );
        assert!(serde_json::from_value::<Sku>(json!("a b")).is_err());
        assert!(serde_json::from_value::<PriceCents>(json!(0)).is_err());
        assert!(serde_json::from_value::<PriceCents>(json!(1.5)).is_err());
        assert!(serde_json::from_value::<PriceCents>(json!("12")).is_err());
        assert!(serde_json::from_value::<ProductId>(json!("nope")).is_err());
        let err = serde_json::from_value::<LineQuantity>(json!(0)).unwrap_err();
        assert!(err.to_string().contains("quantity: must be"), "{err}");
    }

    #[test]
    fn ids_parse_from_strings() {
        assert_eq!(
            "00000000-0000-0000-0000-000000000007".parse::<OrderId>(),
            Ok(OrderId::from_uuid(Uuid::from_u128(7)))
        );
        assert_eq!(
            ProductId::parse("x").unwrap_err().to_string(),
            "product_id: must be a UUID"
        );
    }

    fn item(n: u128, q: i64) -> LineItem {
        LineItem {
            product_id: pid(n),
            quantity: LineQuantity::parse(q).unwrap(),
        }
    }

    #[test]
    fn order_lines_bounds_and_uniqueness() {
        assert!(OrderLines::parse(vec![]).is_err());
        assert!(OrderLines::parse(vec![item(1, 1)]).is_ok());
        assert!(OrderLines::parse((0..100).map(|n| item(n, 1)).collect()).is_ok());
        let too_many = OrderLines::parse((0..101).map(|n| item(n, 1)).collect()).unwrap_err();
        assert_eq!(
            too_many.to_string(),
            "lines: an order must have 1 to 100 lines (got 101)"
        );
        let dup = OrderLines::parse(vec![item(1, 1), item(2, 1), item(1, 3)]).unwrap_err();
        assert_eq!(
            dup.to_string(),
            "lines: product 00000000-0000-0000-0000-000000000001 appears in more than one line"
        );
    }

    #[test]
    fn order_lines_deserialize_strictly() {
        let ok = json!([{"product_id": pid(1), "quantity": 2}]);
        let lines: OrderLines = serde_json::from_value(ok.clone()).unwrap();
        assert_eq!(lines.lines(), &[item(1, 2)]);
        assert_eq!(serde_json::to_value(&lines).unwrap(), ok);
        let extra = json!([{"product_id": pid(1), "quantity": 2, "x": 1}]);
        assert!(serde_json::from_value::<OrderLines>(extra).is_err());
        let missing = json!([{"product_id": pid(1)}]);
        assert!(serde_json::from_value::<OrderLines>(missing).is_err());
        let as_array = json!([[pid(1), 2]]);
        let err = serde_json::from_value::<OrderLines>(as_array).unwrap_err();
        assert!(err.to_string().contains("expected an object"), "{err}");
        let text = r#"[{"product_id": "00000000-0000-0000-0000-000000000001", "quantity": 2}]"#;
        assert_eq!(
            serde_json::from_str::<OrderLines>(text).unwrap().lines(),
            &[item(1, 2)]
        );
        let priced_as_array = json!([[pid(1), 2, 100]]);
        assert!(serde_json::from_value::<PricedLines>(priced_as_array).is_err());
        let dup =
            json!([{"product_id": pid(1), "quantity": 2}, {"product_id": pid(1), "quantity": 1}]);
        assert!(serde_json::from_value::<OrderLines>(dup).is_err());
        assert!(serde_json::from_value::<OrderLines>(json!([])).is_err());
    }

    #[test]
    fn priced_lines_keep_order_and_total() {
        let lines = OrderLines::parse(vec![item(2, 3), item(1, 1)]).unwrap();
        let priced =
            lines.priced(|id| PriceCents::parse(if id == pid(1) { 100 } else { 7 }).unwrap());
        assert_eq!(priced.lines()[0].product_id, pid(2));
        assert_eq!(priced.lines()[0].unit_price_cents.get(), 7);
        assert_eq!(priced.total_cents(), 3 * 7 + 100);
    }

    #[test]
    fn max_total_is_exact_in_an_ieee_double() {
        let lines = OrderLines::parse((0..100).map(|n| item(n, 1000)).collect()).unwrap();
        let priced = lines.priced(|_| PriceCents::parse(PriceCents::MAX).unwrap());
        assert_eq!(priced.total_cents(), MAX_TOTAL_CENTS);
        assert_eq!(MAX_TOTAL_CENTS, 100_000_000_000_000);
        // RFC 8785 serializes numbers as IEEE doubles: every amount must be exact in one.
        const { assert!(MAX_TOTAL_CENTS < 1 << 53) };
    }
}
