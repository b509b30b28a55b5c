//! Order rules, one by one: the status machine, payment checks, the stored form.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::json;

use super::*;
use crate::error::EventDecodeError;
use crate::test_support::*;
use crate::values::PricedLines;

fn place_command() -> OrderCommand {
    OrderCommand::Place {
        customer_id: customer(),
        placed_by: actor("root"),
        lines: PricedLines::parse(vec![priced_line(1, 2, 1299)]).unwrap(),
        currency: eur(),
        shipping_address: None,
    }
}

fn order_in(status: OrderStatus) -> Order {
    let mut o = placed_order();
    match status {
        OrderStatus::Placed => {}
        OrderStatus::Paid => {
            run_order(&mut o, pay_command(3098, "EUR"));
        }
        OrderStatus::Shipped => {
            run_order(&mut o, pay_command(3098, "EUR"));
            run_order(&mut o, ship_command());
        }
        OrderStatus::Cancelled => {
            run_order(&mut o, cancel_command());
        }
    }
    assert_eq!(o.status(), Some(status));
    o
}

const STATUSES: [OrderStatus; 4] = [
    OrderStatus::Placed,
    OrderStatus::Paid,
    OrderStatus::Shipped,
    OrderStatus::Cancelled,
];

#[test]
fn place_records_lines_total_and_currency() {
    let o = placed_order();
    assert!(o.exists());
    assert_eq!(o.customer_id(), Some(&customer()));
    assert_eq!(o.placed_by(), Some(&actor("alice")));
    assert_eq!(
        o.lines(),
        &[priced_line(1, 2, 1299), priced_line(2, 1, 500)]
    );
    assert_eq!(o.total_cents(), 2 * 1299 + 500);
    assert_eq!(o.currency(), Some(&eur()));
    assert_eq!(o.status(), Some(OrderStatus::Placed));
    assert_eq!(o.payment_ref(), None);
    assert_eq!(o.refunded_cents(), None);
}

#[test]
fn place_emits_order_placed() {
    let events = Order::default().decide(place_command()).unwrap();
    assert_eq!(
        events,
        vec![OrderEvent::OrderPlaced(OrderPlaced {
            customer_id: customer(),
            placed_by: actor("root"),
            lines: PricedLines::parse(vec![priced_line(1, 2, 1299)]).unwrap(),
            total_cents: 2598,
            currency: eur(),
            shipping_address: None,
        })]
    );
}

#[test]
fn the_order_keeps_who_placed_it() {
    let mut o = Order::default();
    run_order(&mut o, place_command());
    assert_eq!(o.customer_id(), Some(&customer()));
    assert_eq!(o.placed_by(), Some(&actor("root")));
    run_order(&mut o, pay_command(2598, "EUR"));
    assert_eq!(o.placed_by(), Some(&actor("root")));
    assert_eq!(Order::default().placed_by(), None);
}

#[test]
fn place_on_an_existing_order_is_already_exists() {
    let err = placed_order().decide(place_command()).unwrap_err();
    assert_eq!(err, DomainError::AlreadyExists { entity: "order" });
}

#[test]
fn commands_on_a_missing_order_are_not_found() {
    for command in [pay_command(1, "EUR"), ship_command(), cancel_command()] {
        let err = Order::default().decide(command).unwrap_err();
        assert_eq!(err, DomainError::NotFound { entity: "order" });
        assert_eq!(err.to_string(), "order not found");
    }
}

#[test]
fn pay_with_the_exact_total_and_currency() {
    let mut o = placed_order();
    let events = run_order(&mut o, pay_command(3098, "EUR"));
    assert_eq!(
        events,
        vec![OrderEvent::OrderPaid(OrderPaid {
            amount_cents: 3098,
            currency: eur(),
            payment_ref: PaymentRef::parse("psp-123").unwrap(),
            provider_event: None,
            reason: Some(Reason::parse("bank transfer received").unwrap()),
        })]
    );
    assert_eq!(o.status(), Some(OrderStatus::Paid));
    assert_eq!(o.payment_ref().map(PaymentRef::as_str), Some("psp-123"));
}

#[test]
fn pay_with_another_amount_or_currency_is_amount_mismatch() {
    let o = placed_order();
    for (amount, currency) in [
        (3097, "EUR"),
        (3099, "EUR"),
        (0, "EUR"),
        (-3098, "EUR"),
        (i64::MAX, "EUR"),
        (3098, "USD"),
    ] {
        let err = o.decide(pay_command(amount, currency)).unwrap_err();
        assert_eq!(
            err,
            DomainError::AmountMismatch {
                expected_cents: 3098,
                currency: eur(),
            }
        );
        assert_eq!(err.code(), "amount_mismatch");
    }
    assert_eq!(
        o.decide(pay_command(1, "EUR")).unwrap_err().to_string(),
        "the payment must be exactly the order total: 3098 (minor units) EUR"
    );
}

#[test]
fn ship_records_carrier_and_tracking_number() {
    let mut o = order_in(OrderStatus::Paid);
    let events = run_order(&mut o, ship_command());
    assert_eq!(
        events,
        vec![OrderEvent::OrderShipped(OrderShipped {
            carrier: Carrier::parse("DHL").unwrap(),
            tracking_number: TrackingNumber::parse("JD0001").unwrap(),
        })]
    );
    assert_eq!(o.status(), Some(OrderStatus::Shipped));
    assert_eq!(o.carrier().map(Carrier::as_str), Some("DHL"));
    assert_eq!(
        o.tracking_number().map(TrackingNumber::as_str),
        Some("JD0001")
    );
}

#[test]
fn cancel_of_a_placed_order_refunds_nothing() {
    let mut o = placed_order();
    let events = run_order(&mut o, cancel_command());
    assert_eq!(
        events,
        vec![OrderEvent::OrderCancelled(OrderCancelled {
            reason: CancelReason::parse("changed my mind").unwrap(),
            refunded_cents: 0,
        })]
    );
    assert_eq!(o.status(), Some(OrderStatus::Cancelled));
    assert_eq!(o.refunded_cents(), Some(0));
    assert_eq!(
        o.cancel_reason().map(CancelReason::as_str),
        Some("changed my mind")
    );
}

#[test]
fn cancel_of_a_paid_order_refunds_the_total_through_the_provider() {
    let mut o = order_in(OrderStatus::Paid);
    // Without the refund the provider accepted, a paid order is not cancelled.
    assert_eq!(
        o.decide(cancel_command()).unwrap_err().code(),
        "invalid_state"
    );
    let cancel = cancel_command_for(&o);
    let events = run_order(&mut o, cancel);
    assert!(matches!(
        &events[..],
        [
            OrderEvent::OrderCancelled(OrderCancelled {
                refunded_cents: 0,
                ..
            }),
            OrderEvent::RefundRequested(RefundRequested {
                amount_cents: 3098,
                ..
            }),
            OrderEvent::Refunded(Refunded {
                amount_cents: 3098,
                ..
            })
        ]
    ));
    assert_eq!(o.refunded_cents(), Some(3098));
    assert_eq!(o.payments().refundable_cents(), 0);
}

#[test]
fn cancel_with_an_empty_reason_is_fine() {
    let o = placed_order();
    assert!(o
        .decide(OrderCommand::Cancel {
            reason: CancelReason::default(),
            refund: None,
        })
        .is_ok());
}

/// The whole status machine: placed → paid → shipped; placed | paid → cancelled; every
/// other transition is `invalid_state` with a message naming the current status.
#[test]
fn status_machine_table() {
    let allowed = |status: OrderStatus, command: &str| {
        matches!(
            (status, command),
            (OrderStatus::Placed, "pay")
                | (OrderStatus::Paid, "ship")
                | (OrderStatus::Placed | OrderStatus::Paid, "cancel")
        )
    };
    for status in STATUSES {
        let o = order_in(status);
        for (name, command) in [
            ("pay", pay_command(3098, "EUR")),
            ("ship", ship_command()),
            ("cancel", cancel_command_for(&o)),
        ] {
            let result = o.decide(command);
            if allowed(status, name) {
                assert!(result.is_ok(), "{name} on {status}: {result:?}");
            } else {
                let err = result.unwrap_err();
                assert_eq!(err.code(), "invalid_state", "{name} on {status}");
                assert!(
                    err.to_string()
                        .starts_with(&format!("order is {status}; only")),
                    "{err}"
                );
            }
        }
    }
}

#[test]
fn status_is_checked_before_the_amount() {
    let err = order_in(OrderStatus::Paid)
        .decide(pay_command(1, "USD"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "order is paid; only a placed order can be paid"
    );
}

#[test]
fn status_serializes_lowercase() {
    for (status, name) in STATUSES
        .iter()
        .zip(["placed", "paid", "shipped", "cancelled"])
    {
        assert_eq!(serde_json::to_value(status).unwrap(), json!(name));
        assert_eq!(status.as_str(), name);
        assert_eq!(status.to_string(), name);
    }
}

#[test]
fn state_serializes_for_snapshots_and_audit() {
    let o = order_in(OrderStatus::Cancelled);
    let state = serde_json::to_value(&o).unwrap();
    assert_eq!(
        state,
        json!({
            "exists": true,
            "customer_id": "alice",
            "placed_by": "alice",
            "lines": [
                {"product_id": pid(1), "quantity": 2, "unit_price_cents": 1299},
                {"product_id": pid(2), "quantity": 1, "unit_price_cents": 500}
            ],
            "total_cents": 3098,
            "currency": "EUR",
            "status": "cancelled",
            "payment_ref": null,
            "carrier": null,
            "tracking_number": null,
            "cancel_reason": "changed my mind",
            "refunded_cents": 0,
            "payments": {"payments": [], "refunds": []}
        })
    );
    assert_eq!(serde_json::from_value::<Order>(state).unwrap(), o);
}

#[test]
fn stored_form_is_type_name_version_and_exact_payload() {
    let events: Vec<(OrderEvent, serde_json::Value)> = vec![
        (
            OrderPlaced {
                customer_id: customer(),
                placed_by: actor("root"),
                lines: PricedLines::parse(vec![priced_line(1, 2, 1299)]).unwrap(),
                total_cents: 2598,
                currency: eur(),
                shipping_address: None,
            }
            .into(),
            json!({"customer_id": "alice", "placed_by": "root",
                   "lines": [{"product_id": "00000000-0000-0000-0000-000000000001",
                              "quantity": 2, "unit_price_cents": 1299}],
                   "total_cents": 2598, "currency": "EUR", "shipping_address": null}),
        ),
        (
            OrderPaid {
                amount_cents: 2598,
                currency: eur(),
                payment_ref: PaymentRef::parse("psp-123").unwrap(),
                provider_event: Some(ProviderEventId::parse("evt_1").unwrap()),
                reason: None,
            }
            .into(),
            json!({"amount_cents": 2598, "currency": "EUR", "payment_ref": "psp-123",
                   "provider_event": "evt_1", "reason": null}),
        ),
        (
            OrderShipped {
                carrier: Carrier::parse("DHL").unwrap(),
                tracking_number: TrackingNumber::parse("JD0001").unwrap(),
            }
            .into(),
            json!({"carrier": "DHL", "tracking_number": "JD0001"}),
        ),
        (
            OrderCancelled {
                reason: CancelReason::parse("").unwrap(),
                refunded_cents: 0,
            }
            .into(),
            json!({"reason": "", "refunded_cents": 0}),
        ),
        (
            PaymentRequested {
                payment_id: PaymentRef::parse("pi_1").unwrap(),
                provider: ProviderName::parse("stripe").unwrap(),
                amount_cents: 2598,
                currency: eur(),
            }
            .into(),
            json!({"payment_id": "pi_1", "provider": "stripe", "amount_cents": 2598,
                   "currency": "EUR"}),
        ),
        (
            PaymentFailed {
                payment_id: PaymentRef::parse("pi_1").unwrap(),
                provider_event: ProviderEventId::parse("evt_2").unwrap(),
                reason: "card_declined".into(),
            }
            .into(),
            json!({"payment_id": "pi_1", "provider_event": "evt_2", "reason": "card_declined"}),
        ),
        (
            PaymentNeedsReview {
                payment_id: PaymentRef::parse("pi_2").unwrap(),
                amount_cents: 1,
                currency: eur(),
                provider_event: ProviderEventId::parse("evt_3").unwrap(),
                reason: "amount".into(),
            }
            .into(),
            json!({"payment_id": "pi_2", "amount_cents": 1, "currency": "EUR",
                   "provider_event": "evt_3", "reason": "amount"}),
        ),
        (
            RefundRequested {
                refund_id: RefundId::parse("re_1").unwrap(),
                payment_id: PaymentRef::parse("pi_1").unwrap(),
                amount_cents: 100,
                currency: eur(),
                reason: Reason::parse("damaged").unwrap(),
            }
            .into(),
            json!({"refund_id": "re_1", "payment_id": "pi_1", "amount_cents": 100,
                   "currency": "EUR", "reason": "damaged"}),
        ),
        (
            Refunded {
                refund_id: RefundId::parse("re_1").unwrap(),
                amount_cents: 100,
                currency: eur(),
                provider_event: None,
            }
            .into(),
            json!({"refund_id": "re_1", "amount_cents": 100, "currency": "EUR",
                   "provider_event": null}),
        ),
        (
            RefundFailed {
                refund_id: RefundId::parse("re_2").unwrap(),
                provider_event: Some(ProviderEventId::parse("evt_4").unwrap()),
                reason: "expired_card".into(),
            }
            .into(),
            json!({"refund_id": "re_2", "provider_event": "evt_4", "reason": "expired_card"}),
        ),
    ];
    let types: Vec<_> = events.iter().map(|(e, _)| e.event_type()).collect();
    assert_eq!(types, OrderEvent::EVENT_TYPES);
    for (event, payload) in events {
        let version = match event.event_type() {
            "OrderPlaced" => 3,
            "OrderPaid" => 2,
            _ => 1,
        };
        assert_eq!(event.payload(), payload, "{}", event.event_type());
        assert_eq!(event.schema_version(), version, "{}", event.event_type());
        assert_eq!(event.event_version(), version.to_string());
        assert_eq!(
            OrderEvent::current_schema_version(event.event_type()),
            Some(version)
        );
        assert_eq!(
            OrderEvent::from_stored(event.event_type(), version, &payload).unwrap(),
            event
        );
    }
    assert_eq!(OrderPlaced::SCHEMA_VERSION, 3);
    assert_eq!(OrderPaid::SCHEMA_VERSION, 2);
    assert_eq!(OrderEvent::current_schema_version("ProductCreated"), None);
}

/// `OrderPlaced` v2 added `placed_by`, v3 `shipping_address`. The domain reads the current
/// version only: older payloads must be upcast first (by the `schemas` crate), and a v3
/// payload needs both fields, the address sealed or `null`.
#[test]
fn order_placed_is_read_at_version_3_only() {
    let v1 = json!({"customer_id": "alice",
        "lines": [{"product_id": "00000000-0000-0000-0000-000000000001",
                   "quantity": 1, "unit_price_cents": 1}],
        "total_cents": 1, "currency": "EUR"});
    for version in [0, 1, 2, 4] {
        let err = OrderEvent::from_stored("OrderPlaced", version, &v1).unwrap_err();
        assert_eq!(
            err,
            EventDecodeError::UnsupportedSchemaVersion {
                event_type: "OrderPlaced".into(),
                schema_version: version,
                expected: 3,
            }
        );
    }
    // A v1-shaped payload claimed as v3 is invalid (placed_by is required) ...
    assert!(matches!(
        OrderEvent::from_stored("OrderPlaced", 3, &v1),
        Err(EventDecodeError::InvalidPayload { ref reason, .. }) if reason.contains("placed_by")
    ));
    // ... and so is an empty placed_by, or an address in plaintext.
    let mut v3 = v1.clone();
    v3["placed_by"] = json!("");
    v3["shipping_address"] = json!(null);
    assert!(matches!(
        OrderEvent::from_stored("OrderPlaced", 3, &v3),
        Err(EventDecodeError::InvalidPayload { .. })
    ));
    v3["placed_by"] = json!("root");
    v3["shipping_address"] = json!("Main Street 1, Berlin");
    assert!(matches!(
        OrderEvent::from_stored("OrderPlaced", 3, &v3),
        Err(EventDecodeError::InvalidPayload { .. })
    ));
    v3["shipping_address"] = json!("pii1.c2VhbGVk");
    let Ok(OrderEvent::OrderPlaced(placed)) = OrderEvent::from_stored("OrderPlaced", 3, &v3) else {
        panic!("a v3 payload decodes");
    };
    assert_eq!(placed.placed_by, actor("root"));
    assert_eq!(placed.customer_id, customer());
    assert_eq!(placed.shipping_address.unwrap().as_str(), "pii1.c2VhbGVk");
    // The other order events are still at version 1.
    assert!(matches!(
        OrderEvent::from_stored(
            "OrderCancelled",
            2,
            &json!({"reason": "", "refunded_cents": 0})
        ),
        Err(EventDecodeError::UnsupportedSchemaVersion { expected: 1, .. })
    ));
}

#[test]
fn from_stored_validates_the_payload() {
    let bad_lines = json!({"customer_id": "alice", "placed_by": "alice",
        "lines": [{"product_id": "00000000-0000-0000-0000-000000000001",
                   "quantity": 1001, "unit_price_cents": 1}],
        "total_cents": 1001, "currency": "EUR", "shipping_address": null});
    assert!(matches!(
        OrderEvent::from_stored("OrderPlaced", 3, &bad_lines),
        Err(EventDecodeError::InvalidPayload { .. })
    ));
    assert!(matches!(
        OrderEvent::from_stored("ProductCreated", 1, &json!({})),
        Err(EventDecodeError::UnknownEventType {
            stream_type: "order",
            ..
        })
    ));
}

#[tokio::test]
async fn aggregate_handle_writes_the_decided_events_to_the_sink() {
    let mut via_handle = placed_order();
    let command = pay_command(3098, "EUR");
    let expected = via_handle.decide(command.clone()).unwrap();
    let sink = EventSink::<Order>::default();
    Aggregate::handle(&mut via_handle, command, &(), &sink)
        .await
        .unwrap();
    assert_eq!(sink.collect().await, expected);
    assert_eq!(via_handle.status(), Some(OrderStatus::Paid));
    assert_eq!(<Order as Aggregate>::TYPE, "order");
}

fn confirm(payment: &str, amount_cents: i64, currency: &str, event: &str) -> OrderCommand {
    OrderCommand::ConfirmPayment {
        payment_id: PaymentRef::parse(payment).unwrap(),
        amount_cents,
        currency: cur(currency),
        provider_event: ProviderEventId::parse(event).unwrap(),
    }
}

fn request(payment: &str) -> OrderCommand {
    OrderCommand::RequestPayment {
        payment_id: PaymentRef::parse(payment).unwrap(),
        provider: ProviderName::parse("stripe").unwrap(),
    }
}

#[test]
fn the_providers_success_pays_a_placed_order_once() {
    let mut o = placed_order();
    let requested = run_order(&mut o, request("pi_1"));
    assert!(matches!(&requested[..], [OrderEvent::PaymentRequested(p)] if p.amount_cents == 3098));
    // Asking again for the open payment records nothing; another one while it is open is refused.
    assert_eq!(o.decide(request("pi_1")).unwrap(), vec![]);
    assert_eq!(
        o.decide(request("pi_2")).unwrap_err().code(),
        "invalid_state"
    );
    let paid = run_order(&mut o, confirm("pi_1", 3098, "EUR", "evt_1"));
    assert!(matches!(
        &paid[..],
        [OrderEvent::OrderPaid(OrderPaid {
            provider_event: Some(_),
            reason: None,
            ..
        })]
    ));
    assert_eq!(o.status(), Some(OrderStatus::Paid));
    // The same success again (another event id: the provider retried) records nothing.
    assert_eq!(
        o.decide(confirm("pi_1", 3098, "EUR", "evt_9")).unwrap(),
        vec![]
    );
    // A failure reported late does not undo a captured payment.
    let late = OrderCommand::FailPayment {
        payment_id: PaymentRef::parse("pi_1").unwrap(),
        provider_event: ProviderEventId::parse("evt_0").unwrap(),
        reason: "card_declined".into(),
    };
    assert_eq!(o.decide(late).unwrap(), vec![]);
    assert_eq!(o.payments().captured_cents(), 3098);
}

#[test]
fn a_success_the_order_cannot_take_needs_review_and_never_pays() {
    // Another amount, another currency.
    for (amount, currency) in [(3097, "EUR"), (3098, "USD")] {
        let mut o = placed_order();
        let events = run_order(&mut o, confirm("pi_1", amount, currency, "evt_1"));
        assert!(
            matches!(&events[..], [OrderEvent::PaymentNeedsReview(_)]),
            "{events:?}"
        );
        assert_eq!(o.status(), Some(OrderStatus::Placed));
        assert_eq!(o.payments().refundable_cents(), amount);
    }
    // An order no longer placed: expired (cancelled), or paid by another payment.
    for status in [
        OrderStatus::Cancelled,
        OrderStatus::Paid,
        OrderStatus::Shipped,
    ] {
        let mut o = order_in(status);
        let events = run_order(&mut o, confirm("pi_late", 3098, "EUR", "evt_1"));
        assert!(
            matches!(&events[..], [OrderEvent::PaymentNeedsReview(_)]),
            "{status}"
        );
        assert_eq!(o.status(), Some(status));
    }
}

#[test]
fn a_failed_payment_leaves_the_order_placed() {
    let mut o = placed_order();
    run_order(&mut o, request("pi_1"));
    let failed = OrderCommand::FailPayment {
        payment_id: PaymentRef::parse("pi_1").unwrap(),
        provider_event: ProviderEventId::parse("evt_1").unwrap(),
        reason: "card_declined\u{7}".into(),
    };
    let events = run_order(&mut o, failed);
    assert!(matches!(&events[..], [OrderEvent::PaymentFailed(f)] if f.reason == "card_declined"));
    assert_eq!(o.status(), Some(OrderStatus::Placed));
    assert_eq!(o.payments().open(), None);
    // The buyer may try again with a new payment.
    assert!(o.decide(request("pi_2")).is_ok());
}

#[test]
fn refunds_never_exceed_what_was_captured_and_not_refunded() {
    let mut o = order_in(OrderStatus::Paid);
    let refund = |id: &str, amount: i64, succeeded: bool| {
        OrderCommand::Refund(RefundRequest {
            succeeded,
            ..refund_request(id, amount)
        })
    };
    let too_much = o.decide(refund("re_1", 3099, true)).unwrap_err();
    assert_eq!(too_much.code(), "refund_exceeds_payment");
    assert_eq!(
        o.decide(refund("re_0", 0, true)).unwrap_err().code(),
        "refund_exceeds_payment"
    );
    run_order(&mut o, refund("re_1", 1000, false));
    // A requested refund counts against what is left.
    assert_eq!(
        o.decide(refund("re_2", 2099, true)).unwrap_err().code(),
        "refund_exceeds_payment"
    );
    run_order(&mut o, refund("re_2", 2098, true));
    assert_eq!(o.refunded_cents(), Some(2098));
    // The provider fails the first: its amount may be refunded again.
    let failed = OrderCommand::SettleRefund {
        refund_id: RefundId::parse("re_1").unwrap(),
        provider_event: None,
        failure: Some("expired_card".into()),
    };
    assert!(matches!(
        &run_order(&mut o, failed)[..],
        [OrderEvent::RefundFailed(_)]
    ));
    assert_eq!(o.payments().refundable_cents(), 1000);
    // Settling a settled refund again records nothing; an unknown one is not found.
    let again = OrderCommand::SettleRefund {
        refund_id: RefundId::parse("re_2").unwrap(),
        provider_event: None,
        failure: None,
    };
    assert_eq!(o.decide(again).unwrap(), vec![]);
    let unknown = OrderCommand::SettleRefund {
        refund_id: RefundId::parse("re_x").unwrap(),
        provider_event: None,
        failure: None,
    };
    assert_eq!(o.decide(unknown).unwrap_err().code(), "not_found");
    // The same refund id again (a retried request) records nothing.
    assert_eq!(o.decide(refund("re_2", 2098, true)).unwrap(), vec![]);
    assert_eq!(o.status(), Some(OrderStatus::Paid));
}
