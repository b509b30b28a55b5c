//! Product rules, one by one, plus the stored form and a property-style loop.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::json;

use super::*;
use crate::error::EventDecodeError;
use crate::test_support::*;

fn all_non_create_commands() -> Vec<ProductCommand> {
    vec![
        ProductCommand::ChangePrice { price: price(1) },
        ProductCommand::Restock {
            quantity: RestockQuantity::parse(1).unwrap(),
        },
        ProductCommand::Discontinue,
        ProductCommand::Reserve {
            order_id: oid(1),
            quantity: qty(1),
        },
        ProductCommand::Release {
            order_id: oid(1),
            quantity: qty(1),
        },
        ProductCommand::Ship {
            order_id: oid(1),
            quantity: qty(1),
        },
    ]
}

#[test]
fn create_records_the_catalog_data_and_initial_stock() {
    let mut p = Product::default();
    assert!(!p.exists());
    let events = run_product(&mut p, create_command(1299, "EUR", 10));
    assert_eq!(
        events,
        vec![ProductEvent::ProductCreated(ProductCreated {
            sku: Sku::parse("A-1").unwrap(),
            name: ProductName::parse("Mug").unwrap(),
            price_cents: price(1299),
            currency: eur(),
            initial_stock: StockQuantity::parse(10).unwrap(),
        })]
    );
    assert!(p.exists());
    assert_eq!(p.sku().map(Sku::as_str), Some("A-1"));
    assert_eq!(p.name().map(ProductName::as_str), Some("Mug"));
    assert_eq!(p.price(), Some(price(1299)));
    assert_eq!(p.currency(), Some(&eur()));
    assert_eq!((p.on_hand(), p.reserved(), p.available()), (10, 0, 10));
    assert!(!p.is_discontinued());
}

#[test]
fn create_with_zero_stock_is_allowed() {
    let p = product(1, "EUR", 0);
    assert_eq!(p.available(), 0);
}

#[test]
fn create_on_an_existing_product_is_already_exists() {
    let p = product(1299, "EUR", 10);
    let err = p.decide(create_command(1, "USD", 0)).unwrap_err();
    assert_eq!(err, DomainError::AlreadyExists { entity: "product" });
    assert_eq!(err.code(), "conflict");
    assert_eq!(err.to_string(), "product already exists");
}

#[test]
fn every_other_command_on_a_missing_product_is_not_found() {
    for command in all_non_create_commands() {
        let err = Product::default().decide(command.clone()).unwrap_err();
        assert_eq!(
            err,
            DomainError::NotFound { entity: "product" },
            "{command:?}"
        );
        assert_eq!(err.code(), "not_found");
    }
}

#[test]
fn change_price_records_new_and_previous_price() {
    let mut p = product(1299, "EUR", 10);
    let events = run_product(&mut p, ProductCommand::ChangePrice { price: price(1499) });
    assert_eq!(
        events,
        vec![ProductEvent::PriceChanged(PriceChanged {
            price_cents: price(1499),
            previous_price_cents: price(1299),
        })]
    );
    assert_eq!(p.price(), Some(price(1499)));
}

#[test]
fn change_price_to_the_same_price_is_still_recorded() {
    let p = product(1299, "EUR", 10);
    let events = p
        .decide(ProductCommand::ChangePrice { price: price(1299) })
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn restock_adds_to_on_hand() {
    let mut p = product(1299, "EUR", 10);
    let quantity = RestockQuantity::parse(5).unwrap();
    let events = run_product(&mut p, ProductCommand::Restock { quantity });
    assert_eq!(
        events,
        vec![ProductEvent::StockAdded(StockAdded { quantity })]
    );
    assert_eq!((p.on_hand(), p.reserved(), p.available()), (15, 0, 15));
}

#[test]
fn restock_may_fill_up_to_the_stock_limit_but_not_beyond() {
    let mut p = product(1, "EUR", StockQuantity::MAX - RestockQuantity::MAX);
    let max = RestockQuantity::parse(RestockQuantity::MAX).unwrap();
    run_product(&mut p, ProductCommand::Restock { quantity: max });
    assert_eq!(p.on_hand(), StockQuantity::MAX);
    let err = p
        .decide(ProductCommand::Restock {
            quantity: RestockQuantity::parse(1).unwrap(),
        })
        .unwrap_err();
    assert_eq!(err.code(), "invalid_state");
    assert_eq!(
        err.to_string(),
        "restocking 1 units would put 1000000001 units on hand; at most 1000000000 are allowed"
    );
}

#[test]
fn discontinue_once_then_invalid_state() {
    let mut p = product(1299, "EUR", 10);
    let events = run_product(&mut p, ProductCommand::Discontinue);
    assert_eq!(
        events,
        vec![ProductEvent::ProductDiscontinued(ProductDiscontinued {})]
    );
    assert!(p.is_discontinued());
    let err = p.decide(ProductCommand::Discontinue).unwrap_err();
    assert_eq!(err.code(), "invalid_state");
    assert_eq!(err.to_string(), "product is already discontinued");
}

#[test]
fn a_discontinued_product_cannot_be_reserved_repriced_or_restocked() {
    let mut p = product(1299, "EUR", 10);
    run_product(&mut p, ProductCommand::Discontinue);
    let err = p
        .decide(ProductCommand::Reserve {
            order_id: oid(1),
            quantity: qty(1),
        })
        .unwrap_err();
    assert_eq!(err, DomainError::ProductDiscontinued { product_id: None });
    assert_eq!(err.code(), "product_discontinued");

    let err = p
        .decide(ProductCommand::ChangePrice { price: price(5) })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "product is discontinued; its price cannot be changed"
    );
    let err = p
        .decide(ProductCommand::Restock {
            quantity: RestockQuantity::parse(5).unwrap(),
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "product is discontinued; it cannot be restocked"
    );
}

#[test]
fn a_discontinued_product_still_releases_and_ships_its_reservations() {
    let mut p = product(1299, "EUR", 10);
    run_product(
        &mut p,
        ProductCommand::Reserve {
            order_id: oid(1),
            quantity: qty(3),
        },
    );
    run_product(
        &mut p,
        ProductCommand::Reserve {
            order_id: oid(2),
            quantity: qty(4),
        },
    );
    run_product(&mut p, ProductCommand::Discontinue);
    run_product(
        &mut p,
        ProductCommand::Release {
            order_id: oid(1),
            quantity: qty(3),
        },
    );
    run_product(
        &mut p,
        ProductCommand::Ship {
            order_id: oid(2),
            quantity: qty(4),
        },
    );
    assert_eq!((p.on_hand(), p.reserved(), p.available()), (6, 0, 6));
}

#[test]
fn reserve_holds_available_stock() {
    let mut p = product(1299, "EUR", 10);
    let events = run_product(
        &mut p,
        ProductCommand::Reserve {
            order_id: oid(1),
            quantity: qty(4),
        },
    );
    assert_eq!(
        events,
        vec![ProductEvent::StockReserved(StockReserved {
            order_id: oid(1),
            quantity: qty(4),
        })]
    );
    assert_eq!((p.on_hand(), p.reserved(), p.available()), (10, 4, 6));
    // Exactly the rest is fine.
    run_product(
        &mut p,
        ProductCommand::Reserve {
            order_id: oid(2),
            quantity: qty(6),
        },
    );
    assert_eq!(p.available(), 0);
}

#[test]
fn reserve_beyond_available_is_insufficient_stock() {
    let mut p = product(1299, "EUR", 10);
    run_product(
        &mut p,
        ProductCommand::Reserve {
            order_id: oid(1),
            quantity: qty(8),
        },
    );
    let err = p
        .decide(ProductCommand::Reserve {
            order_id: oid(2),
            quantity: qty(3),
        })
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::InsufficientStock {
            product_id: None,
            requested: 3,
            available: 2,
        }
    );
    assert_eq!(err.code(), "insufficient_stock");
    let empty = product(1, "EUR", 0);
    assert!(matches!(
        empty.decide(ProductCommand::Reserve {
            order_id: oid(1),
            quantity: qty(1)
        }),
        Err(DomainError::InsufficientStock { available: 0, .. })
    ));
}

#[test]
fn release_gives_back_reserved_stock_but_never_more_than_reserved() {
    let mut p = product(1299, "EUR", 10);
    run_product(
        &mut p,
        ProductCommand::Reserve {
            order_id: oid(1),
            quantity: qty(4),
        },
    );
    let err = p
        .decide(ProductCommand::Release {
            order_id: oid(1),
            quantity: qty(5),
        })
        .unwrap_err();
    assert_eq!(err.code(), "invalid_state");
    assert_eq!(
        err.to_string(),
        "cannot release 5 units: only 4 are reserved"
    );
    let events = run_product(
        &mut p,
        ProductCommand::Release {
            order_id: oid(1),
            quantity: qty(4),
        },
    );
    assert_eq!(
        events,
        vec![ProductEvent::StockReleased(StockReleased {
            order_id: oid(1),
            quantity: qty(4),
        })]
    );
    assert_eq!((p.on_hand(), p.reserved(), p.available()), (10, 0, 10));
}

#[test]
fn ship_takes_reserved_stock_out_of_on_hand_and_reserved() {
    let mut p = product(1299, "EUR", 10);
    run_product(
        &mut p,
        ProductCommand::Reserve {
            order_id: oid(1),
            quantity: qty(4),
        },
    );
    let events = run_product(
        &mut p,
        ProductCommand::Ship {
            order_id: oid(1),
            quantity: qty(4),
        },
    );
    assert_eq!(
        events,
        vec![ProductEvent::StockShipped(StockShipped {
            order_id: oid(1),
            quantity: qty(4),
        })]
    );
    assert_eq!((p.on_hand(), p.reserved(), p.available()), (6, 0, 6));
    let err = p
        .decide(ProductCommand::Ship {
            order_id: oid(1),
            quantity: qty(1),
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "cannot ship 1 units: only 0 are reserved");
}

#[test]
fn decide_does_not_change_the_state() {
    let p = product(1299, "EUR", 10);
    let before = p.clone();
    for command in all_non_create_commands() {
        let _ = p.decide(command);
    }
    assert_eq!(p, before);
}

/// Random command sequences: whatever is accepted, `0 <= reserved <= on_hand <= MAX`
/// holds, so `available` never goes negative, and folding the log gives the same state.
#[test]
fn property_stock_invariants_hold_under_random_commands() {
    for seed in 0..200 {
        let mut rng = Rng::new(seed);
        let mut p = product(100, "EUR", rng.range(0, 20));
        let mut log: Vec<ProductEvent> = Product::default()
            .decide(create_command(100, "EUR", p.on_hand()))
            .unwrap();
        for _ in 0..60 {
            let order_id = oid(rng.range(0, 5) as u128);
            let command = match rng.range(0, 9) {
                0 => ProductCommand::Restock {
                    quantity: RestockQuantity::parse(rng.range(1, 10)).unwrap(),
                },
                1 => ProductCommand::ChangePrice {
                    price: price(rng.range(1, 1000)),
                },
                2 if rng.range(0, 9) == 0 => ProductCommand::Discontinue,
                3 | 4 => ProductCommand::Release {
                    order_id,
                    quantity: qty(rng.range(1, 8)),
                },
                5 | 6 => ProductCommand::Ship {
                    order_id,
                    quantity: qty(rng.range(1, 8)),
                },
                _ => ProductCommand::Reserve {
                    order_id,
                    quantity: qty(rng.range(1, 8)),
                },
            };
            let before = p.clone();
            match p.decide(command.clone()) {
                Ok(events) => {
                    for e in events {
                        log.push(e.clone());
                        p.apply(e);
                    }
                }
                Err(err) => {
                    assert_eq!(p, before);
                    if let ProductCommand::Reserve { quantity, .. } = command {
                        if !p.is_discontinued() {
                            assert!(quantity.get() > p.available(), "{err}");
                        }
                    }
                }
            }
            assert!(0 <= p.reserved(), "seed {seed}: {p:?}");
            assert!(p.reserved() <= p.on_hand(), "seed {seed}: {p:?}");
            assert!(p.on_hand() <= StockQuantity::MAX, "seed {seed}: {p:?}");
            assert_eq!(p.available(), p.on_hand() - p.reserved());
            assert!(p.available() >= 0);
        }
        assert_eq!(Product::from_events(log), p, "seed {seed}");
    }
}

fn one_of_each_event() -> Vec<(ProductEvent, serde_json::Value)> {
    let order = "00000000-0000-0000-0000-000000000a01";
    vec![
        (
            ProductCreated {
                sku: Sku::parse("A-1").unwrap(),
                name: ProductName::parse("Mug").unwrap(),
                price_cents: price(1299),
                currency: eur(),
                initial_stock: StockQuantity::parse(10).unwrap(),
            }
            .into(),
            json!({"sku": "A-1", "name": "Mug", "price_cents": 1299, "currency": "EUR",
                   "initial_stock": 10}),
        ),
        (
            PriceChanged {
                price_cents: price(1499),
                previous_price_cents: price(1299),
            }
            .into(),
            json!({"price_cents": 1499, "previous_price_cents": 1299}),
        ),
        (
            StockAdded {
                quantity: RestockQuantity::parse(5).unwrap(),
            }
            .into(),
            json!({"quantity": 5}),
        ),
        (
            StockReserved {
                order_id: oid(1),
                quantity: qty(2),
            }
            .into(),
            json!({"order_id": order, "quantity": 2}),
        ),
        (
            StockReleased {
                order_id: oid(1),
                quantity: qty(2),
            }
            .into(),
            json!({"order_id": order, "quantity": 2}),
        ),
        (
            StockShipped {
                order_id: oid(1),
                quantity: qty(2),
            }
            .into(),
            json!({"order_id": order, "quantity": 2}),
        ),
        (ProductDiscontinued {}.into(), json!({})),
    ]
}

#[test]
fn stored_form_is_type_name_version_and_exact_payload() {
    let events = one_of_each_event();
    let types: Vec<_> = events.iter().map(|(e, _)| e.event_type()).collect();
    assert_eq!(types, ProductEvent::EVENT_TYPES);
    for (event, payload) in events {
        assert_eq!(event.payload(), payload, "{}", event.event_type());
        assert_eq!(event.schema_version(), 1);
        assert_eq!(DomainEvent::event_type(&event), event.event_type());
        assert_eq!(event.event_version(), "1");
        let decoded = ProductEvent::from_stored(event.event_type(), 1, &payload).unwrap();
        assert_eq!(decoded, event);
        // The enum's own serde form is adjacently tagged.
        let tagged = serde_json::to_value(&event).unwrap();
        assert_eq!(
            tagged,
            json!({"event_type": event.event_type(), "payload": payload})
        );
        assert_eq!(
            serde_json::from_value::<ProductEvent>(tagged).unwrap(),
            event
        );
    }
}

#[test]
fn from_stored_refuses_what_it_cannot_read() {
    assert_eq!(
        ProductEvent::from_stored("OrderPlaced", 1, &json!({})),
        Err(EventDecodeError::UnknownEventType {
            stream_type: "product",
            event_type: "OrderPlaced".into(),
        })
    );
    assert!(matches!(
        ProductEvent::from_stored("StockAdded", 2, &json!({"quantity": 5})),
        Err(EventDecodeError::UnsupportedSchemaVersion {
            schema_version: 2,
            expected: 1,
            ..
        })
    ));
    for bad in [
        json!({"quantity": 5, "extra": 1}),
        json!({}),
        json!({"quantity": 0}),
        json!({"quantity": "5"}),
        json!(null),
        json!([5]),
    ] {
        let err = ProductEvent::from_stored("StockAdded", 1, &bad).unwrap_err();
        assert!(
            matches!(err, EventDecodeError::InvalidPayload { .. }),
            "{bad}: {err}"
        );
    }
    let err = ProductEvent::from_stored("ProductDiscontinued", 1, &json!({"x": 1})).unwrap_err();
    assert!(matches!(err, EventDecodeError::InvalidPayload { .. }));
}

#[test]
fn state_serializes_for_snapshots_and_audit() {
    let p = product(1299, "EUR", 10);
    let state = serde_json::to_value(&p).unwrap();
    assert_eq!(
        state,
        json!({"exists": true, "sku": "A-1", "name": "Mug", "price_cents": 1299,
               "currency": "EUR", "on_hand": 10, "reserved": 0, "discontinued": false})
    );
    assert_eq!(serde_json::from_value::<Product>(state).unwrap(), p);
}

#[tokio::test]
async fn aggregate_handle_writes_the_decided_events_to_the_sink() {
    let mut via_handle = product(1299, "EUR", 10);
    let via_decide = via_handle.clone();
    let command = ProductCommand::Reserve {
        order_id: oid(1),
        quantity: qty(3),
    };
    let expected = via_decide.decide(command.clone()).unwrap();

    let sink = EventSink::<Product>::default();
    Aggregate::handle(&mut via_handle, command, &(), &sink)
        .await
        .unwrap();
    assert_eq!(sink.collect().await, expected);
    // The sink applied the events to the aggregate.
    assert_eq!(
        via_handle,
        Product::from_events(
            [
                Product::default()
                    .decide(create_command(1299, "EUR", 10))
                    .unwrap(),
                expected,
            ]
            .concat()
        )
    );

    let sink = EventSink::<Product>::default();
    let err = Aggregate::handle(&mut via_handle, create_command(1, "EUR", 0), &(), &sink)
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::AlreadyExists { entity: "product" });
    assert!(sink.collect().await.is_empty());
    assert_eq!(<Product as Aggregate>::TYPE, "product");
}
