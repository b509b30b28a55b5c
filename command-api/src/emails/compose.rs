//! One email, composed at send time: the order as the log has it now, the customer's name,
//! address and email opened with their data key only now (nothing personal is stored for
//! email), rendered from the templates in `command-api/templates/emails` (plain text and
//! HTML; HTML escaped), with a `Message-ID` derived from the template and the event.
//!
//! Nothing is composed for an erased customer, a customer without an email address, or one
//! who switched off the emails beyond receipts (for those).

use std::collections::HashMap;
use std::sync::OnceLock;

use domain::customer::{field, stream_id};
use domain::{CustomerId, Order, OrderEvent, Product, ProductId, Sealed};
use eventstore::{EventStore, ShopEvent};
use lettre::message::{header, Mailbox, MultiPart};
use lettre::Message;
use minijinja::{context, Environment};
use platform::pii::{DataKey, Vault};
use serde::Serialize;
use uuid::Uuid;

use super::ledger::{message_id, Due};
use super::EmailSettings;

/// The templates: (name, subject).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("order_placed", "Your order at {shop}"),
    ("order_paid", "Payment received: your receipt from {shop}"),
    ("order_shipped", "Your order from {shop} is on its way"),
    ("refunded", "Your refund from {shop}"),
    ("order_expired", "Your order at {shop} was cancelled"),
];

/// Templates that are not receipts: a customer may switch them off (`email_updates`).
pub const OPTIONAL: &[&str] = &["order_shipped", "order_expired"];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        macro_rules! add {
            ($($name:literal),+ $(,)?) => {$(
                if let Err(error) = env.add_template(
                    $name,
                    include_str!(concat!("../../templates/emails/", $name)),
                ) {
                    tracing::error!(template = $name, %error, "an email template does not parse");
                }
            )+};
        }
        add!(
            "_layout.html",
            "_lines.html",
            "_lines.txt",
            "order_placed.txt",
            "order_placed.html",
            "order_paid.txt",
            "order_paid.html",
            "order_shipped.txt",
            "order_shipped.html",
            "refunded.txt",
            "refunded.html",
            "order_expired.txt",
            "order_expired.html",
        );
        env
    })
}

/// Why nothing is sent for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Erased,
    NoAddress,
    OptedOut,
    UnknownTemplate,
}

impl Skip {
    pub fn reason(self) -> &'static str {
        match self {
            Skip::Erased => "erased",
            Skip::NoAddress => "no_address",
            Skip::OptedOut => "opted_out",
            Skip::UnknownTemplate => "unknown_template",
        }
    }
}

#[derive(Debug, Serialize)]
struct Line {
    name: String,
    quantity: i64,
    unit_price: String,
    line_total: String,
}

#[derive(Debug, serde::Deserialize, Serialize)]
struct Address {
    line1: String,
    line2: Option<String>,
    postal_code: String,
    city: String,
    country: String,
}

/// `1299` and `EUR` as `12.99 EUR`.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", cents / 100, cents % 100)
}

fn open_text(key: &DataKey, customer: &CustomerId, field: &str, sealed: &Sealed) -> Option<String> {
    String::from_utf8(key.open(stream_id(customer), field, sealed).ok()?).ok()
}

/// The message for `due`, or why none is sent; `Err` for trouble worth a retry (the store
/// or the key table unreachable).
pub async fn compose(
    store: &EventStore,
    vault: &Vault,
    settings: &EmailSettings,
    due: &Due,
) -> Result<Result<Message, Skip>, String> {
    let Some((_, subject)) = TEMPLATES.iter().find(|(name, _)| *name == due.template) else {
        return Ok(Err(Skip::UnknownTemplate));
    };
    let Ok(customer) = CustomerId::parse(due.customer_id.clone()) else {
        return Ok(Err(Skip::NoAddress));
    };
    // The customer: erased, no profile, or these emails switched off: nothing to send.
    let states = store
        .load_states(&[stream_id(&customer)])
        .await
        .map_err(|e| e.to_string())?;
    let profile_state = states
        .get(&stream_id(&customer))
        .map(|s| s.customer())
        .unwrap_or_default();
    if profile_state.is_erased() {
        return Ok(Err(Skip::Erased));
    }
    let Some(profile) = profile_state.profile() else {
        return Ok(Err(Skip::NoAddress));
    };
    if OPTIONAL.contains(&due.template.as_str()) && !profile.email_updates {
        return Ok(Err(Skip::OptedOut));
    }
    let Some(key) = vault
        .key_for_reading(customer.as_str())
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Err(Skip::Erased));
    };
    let (Some(email), Some(name)) = (
        open_text(&key, &customer, field::EMAIL, &profile.email),
        open_text(&key, &customer, field::NAME, &profile.name),
    ) else {
        return Ok(Err(Skip::Erased));
    };
    let Ok(to) = format!("{name} <{email}>")
        .parse::<Mailbox>()
        .or_else(|_| email.parse::<Mailbox>())
    else {
        return Ok(Err(Skip::NoAddress));
    };

    // The order as the log has it, and where it ships.
    let loaded = store
        .load_stream(due.order_id)
        .await
        .map_err(|e| e.to_string())?;
    let mut order = Order::default();
    let mut shipping: Option<Sealed> = None;
    for event in &loaded.events {
        if let Ok(ShopEvent::Order(decoded)) = eventstore::decode(event) {
            if let OrderEvent::OrderPlaced(placed) = &decoded {
                shipping = placed.shipping_address.clone();
            }
            order.apply(decoded);
        }
    }
    let currency = order
        .currency()
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default();
    let product_ids: Vec<Uuid> = order
        .lines()
        .iter()
        .map(|l| l.product_id.as_uuid())
        .collect();
    let products: HashMap<Uuid, Product> = store
        .load_states(&product_ids)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(id, state)| (id, state.product()))
        .collect();
    let lines: Vec<Line> = order
        .lines()
        .iter()
        .map(|line| {
            let id: ProductId = line.product_id;
            let name = products
                .get(&id.as_uuid())
                .and_then(|p| p.name().map(|n| n.as_str().to_owned()))
                .unwrap_or_else(|| id.to_string());
            let quantity = line.quantity.get();
            let unit = line.unit_price_cents.get();
            Line {
                name,
                quantity,
                unit_price: money(unit, &currency),
                line_total: money(unit * quantity, &currency),
            }
        })
        .collect();
    let address: Option<Address> = shipping.as_ref().and_then(|sealed| {
        let plain = key
            .open(stream_id(&customer), field::ADDRESS, sealed)
            .ok()?;
        serde_json::from_slice(&plain).ok()
    });
    drop(key);
    let shop = if settings.shop_name.trim().is_empty() {
        "Agora"
    } else {
        settings.shop_name.as_str()
    };
    let carrier = order
        .carrier()
        .map(|c| c.as_str().to_owned())
        .unwrap_or_default();
    let tracking_number = order
        .tracking_number()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default();
    let tracking_url = settings
        .tracking_url
        .replace("{tracking_number}", &urlencode(&tracking_number))
        .replace("{carrier}", &urlencode(&carrier));
    let refund = due.details["amount_cents"]
        .as_i64()
        .map(|cents| money(cents, due.details["currency"].as_str().unwrap_or(&currency)))
        .unwrap_or_default();
    let subject = subject.replace("{shop}", shop);
    let values = context! {
        shop_name => shop,
        subject => &subject,
        name => &name,
        order_id => due.order_id.to_string(),
        lines => &lines,
        total => money(order.total_cents(), &currency),
        address => &address,
        carrier => &carrier,
        tracking_number => &tracking_number,
        tracking_url => &tracking_url,
        refund => &refund,
    };
    let render = |suffix: &str| -> Result<String, String> {
        environment()
            .get_template(&format!("{}.{suffix}", due.template))
            .and_then(|t| t.render(&values))
            .map_err(|e| format!("template {}.{suffix}: {e}", due.template))
    };
    let (text, html) = (render("txt")?, render("html")?);
    let from: Mailbox = format!("{shop} <{}>", settings.mail_from)
        .parse()
        .or_else(|_| settings.mail_from.parse())
        .map_err(|_| format!("AGORA_MAIL_FROM is not an address: {}", settings.mail_from))?;
    let domain = from.email.domain().to_owned();
    Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(message_id(&due.template, due.event_id, &domain)))
        .header(header::Date::now())
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map(Ok)
        .map_err(|e| format!("cannot build the message: {e}"))
}

fn urlencode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_as_money() {
        assert_eq!(money(1299, "EUR"), "12.99 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(-250, "EUR"), "-2.50 EUR");
    }

    #[test]
    fn every_template_renders_and_html_is_escaped() {
        let lines = vec![Line {
            name: "<b>Mug</b> & Co".into(),
            quantity: 2,
            unit_price: money(1299, "EUR"),
            line_total: money(2598, "EUR"),
        }];
        for (template, _) in TEMPLATES {
            for suffix in ["txt", "html"] {
                let rendered = environment()
                    .get_template(&format!("{template}.{suffix}"))
                    .unwrap()
                    .render(context! {
                        shop_name => "Shop", subject => "S", name => "Ana <script>",
                        order_id => "o-1", lines => &lines, total => "25.98 EUR",
                        address => Address { line1: "Rua 1".into(), line2: None,
                            postal_code: "1000".into(), city: "Lisboa".into(),
                            country: "PT".into() },
                        carrier => "CTT", tracking_number => "RR1", tracking_url => "https://t/RR1",
                        refund => "5.00 EUR",
                    })
                    .unwrap();
                assert!(rendered.contains("25.98 EUR"), "{template}.{suffix}");
                if suffix == "html" {
                    assert!(!rendered.contains("<script>"), "{template}.html escapes");
                    assert!(rendered.contains("&lt;b&gt;Mug"), "{template}.html escapes");
                } else {
                    assert!(rendered.contains("Ana <script>"), "{template}.txt is plain");
                }
            }
        }
    }
}
