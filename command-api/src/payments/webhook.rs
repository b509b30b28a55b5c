//! The provider's webhooks, read: the `Stripe-Signature` check and the events Agora acts
//! on. Nothing here touches the log; [`crate::routes::payments`] applies what it reads.
//!
//! A signature is `t=<unix seconds>,v1=<hex>[,v1=<hex>...]` (other schemes such as `v0`
//! are ignored): `v1` is hex(HMAC-SHA256(secret, "<t>.<raw body>")). It verifies when any
//! `v1` matches any configured secret (several during a rotation) and `t` is within the
//! tolerance of now, in either direction.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::webhooks::signing::verifies;

/// Why a webhook is refused (each a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

/// Checks `header` over `body` against `secrets` at `now` (unix seconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[Vec<u8>],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match name {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(timestamp) > tolerance_seconds.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let matched = secrets.iter().any(|secret| {
        candidates
            .iter()
            .any(|candidate| verifies(secret, timestamp, body, candidate))
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// A Stripe event, the envelope.
#[derive(Debug, Deserialize)]
pub struct StripeEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    pub object: Value,
}

/// What a verified event asks of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `payment_intent.succeeded`: the provider captured `amount_cents` `currency`.
    PaymentSucceeded {
        order_id: Uuid,
        payment_id: String,
        amount_cents: i64,
        currency: String,
    },
    /// `payment_intent.payment_failed`.
    PaymentFailed {
        order_id: Uuid,
        payment_id: String,
        reason: String,
    },
    /// `refund.updated`, `refund.failed`, `charge.refunded`: a refund settled (failure:
    /// none when it succeeded).
    RefundSettled {
        order_id: Uuid,
        refund_id: String,
        failure: Option<String>,
    },
}

impl StripeEvent {
    /// The effects of this event on orders (none for an event type Agora ignores, or an
    /// object that names no order of ours).
    pub fn effects(&self) -> Vec<Effect> {
        let object = &self.data.object;
        match self.kind.as_str() {
            "payment_intent.succeeded" => {
                let (Some(order_id), Some(payment_id), Some(currency)) = (
                    order_of(object),
                    text(object, "id"),
                    text(object, "currency"),
                ) else {
                    return vec![];
                };
                let amount = object["amount_received"]
                    .as_i64()
                    .filter(|amount| *amount > 0)
                    .or_else(|| object["amount"].as_i64());
                let Some(amount_cents) = amount else {
                    return vec![];
                };
                vec![Effect::PaymentSucceeded {
                    order_id,
                    payment_id,
                    amount_cents,
                    currency: currency.to_ascii_uppercase(),
                }]
            }
            "payment_intent.payment_failed" => {
                let (Some(order_id), Some(payment_id)) = (order_of(object), text(object, "id"))
                else {
                    return vec![];
                };
                let error = &object["last_payment_error"];
                let reason = error["code"]
                    .as_str()
                    .or_else(|| error["message"].as_str())
                    .unwrap_or("")
                    .to_owned();
                vec![Effect::PaymentFailed {
                    order_id,
                    payment_id,
                    reason,
                }]
            }
            "refund.updated" | "refund.failed" | "refund.created" => {
                refund_effect(object).into_iter().collect()
            }
            "charge.refunded" | "charge.refund.updated" => object["refunds"]["data"]
                .as_array()
                .map(|refunds| refunds.iter().filter_map(refund_effect).collect())
                .unwrap_or_default(),
            _ => vec![],
        }
    }
}

/// A settled refund object's effect (none while it is pending).
fn refund_effect(refund: &Value) -> Option<Effect> {
    let order_id = order_of(refund)?;
    let refund_id = text(refund, "id")?;
    let failure = match refund["status"].as_str()? {
        "succeeded" => None,
        "failed" | "canceled" => Some(
            refund["failure_reason"]
                .as_str()
                .unwrap_or("failed")
                .to_owned(),
        ),
        _ => return None,
    };
    Some(Effect::RefundSettled {
        order_id,
        refund_id,
        failure,
    })
}

fn order_of(object: &Value) -> Option<Uuid> {
    object["metadata"]["order_id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
}

fn text(object: &Value, field: &str) -> Option<String> {
    object[field]
        .as_str()
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::signing::signature;

    const SECRET: &[u8] = b"whsec_test_0123456789";

    fn header(secret: &[u8], t: i64, body: &[u8]) -> String {
        format!("t={t},v1={}", signature(secret, t, body))
    }

    #[test]
    fn a_signature_verifies_with_any_current_secret_only_over_the_exact_body() {
        let body = br#"{"id":"evt_1"}"#;
        let now = 1_700_000_000;
        let good = header(SECRET, now, body);
        assert_eq!(
            verify(Some(&good), body, &[SECRET.to_vec()], now, 300),
            Ok(())
        );
        // Rotation: the old and the new secret both configured, signed with either.
        let secrets = [b"whsec_new".to_vec(), SECRET.to_vec()];
        assert_eq!(verify(Some(&good), body, &secrets, now, 300), Ok(()));
        // Several v1 values (the provider signing with both during its rotation).
        let both = format!("{good},v1={}", signature(b"whsec_other", now, body));
        assert_eq!(
            verify(Some(&both), body, &[b"whsec_other".to_vec()], now, 300),
            Ok(())
        );
        // A body changed by one byte, a wrong secret, a stale or future timestamp.
        let changed = br#"{"id":"evt_2"}"#;
        assert_eq!(
            verify(Some(&good), changed, &[SECRET.to_vec()], now, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&good), body, &[b"whsec_wrong".to_vec()], now, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&good), body, &[SECRET.to_vec()], now + 301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&good), body, &[SECRET.to_vec()], now - 301, 300),
            Err(SignatureError::Stale)
        );
        // A signed timestamp cannot be swapped for a fresh one.
        let swapped = good.replace(&format!("t={now}"), &format!("t={}", now + 1));
        assert_eq!(
            verify(Some(&swapped), body, &[SECRET.to_vec()], now, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let body = b"{}";
        for bad in ["", "t=1", "v1=ab", "t=x,v1=ab", "garbage", "t=1,v0=ab"] {
            assert!(
                verify(Some(bad), body, &[SECRET.to_vec()], 1, 300).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(None, body, &[SECRET.to_vec()], 1, 300),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn events_name_their_effects_and_ignore_what_is_not_ours() {
        let order = Uuid::nil();
        let event: StripeEvent = serde_json::from_value(serde_json::json!({
            "id": "evt_1", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "amount": 2598, "amount_received": 2598,
                                "currency": "eur", "metadata": {"order_id": order.to_string()}}}
        }))
        .unwrap();
        assert_eq!(
            event.effects(),
            vec![Effect::PaymentSucceeded {
                order_id: order,
                payment_id: "pi_1".into(),
                amount_cents: 2598,
                currency: "EUR".into()
            }]
        );
        let foreign: StripeEvent = serde_json::from_value(serde_json::json!({
            "id": "evt_2", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_2", "amount": 1, "currency": "eur", "metadata": {}}}
        }))
        .unwrap();
        assert_eq!(foreign.effects(), vec![]);
        let other: StripeEvent = serde_json::from_value(serde_json::json!({
            "id": "evt_3", "type": "customer.created", "data": {"object": {}}
        }))
        .unwrap();
        assert_eq!(other.effects(), vec![]);
    }
}
