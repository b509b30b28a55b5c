//! Placement rules: all-or-nothing decisions over an order and its products.

use std::collections::HashMap;

use super::*;
use crate::order::{OrderCancelled, OrderPlaced, OrderShipped, OrderStatus};
use crate::product::{StockReleased, StockReserved, StockShipped};
use crate::test_support::*;
use crate::values::{PricedLines, ProductId, RestockQuantity};

fn catalog(entries: &[(u128, Product)]) -> HashMap<ProductId, Product> {
    entries.iter().map(|(n, p)| (pid(*n), p.clone())).collect()
}

fn lines(items: &[(u128, i64)]) -> OrderLines {
    OrderLines::parse(items.iter().map(|&(n, q)| line(n, q)).collect()).unwrap()
}

fn discontinued(price_cents: i64, stock: i64) -> Product {
    let mut p = product(price_cents, "EUR", stock);
    run_product(&mut p, ProductCommand::Discontinue);
    p
}

/// Applies placement events to the order and the catalog.
fn apply_all(
    events: &PlacementEvents,
    order: &mut Order,
    products: &mut HashMap<ProductId, Product>,
) {
    for e in events.order.clone() {
        order.apply(e);
    }
    for (id, product_events) in &events.products {
        let p = products.get_mut(id).unwrap();
        for e in product_events.clone() {
            p.apply(e);
        }
    }
}

#[test]
fn place_prices_lines_and_reserves_stock_in_line_order() {
    let products = catalog(&[(1, product(1299, "EUR", 10)), (2, product(500, "EUR", 1))]);
    let events = place_order(
        oid(1),
        customer(),
        customer().into(),
        &lines(&[(2, 1), (1, 2)]),
        &products,
    )
    .unwrap();
    assert_eq!(
        events.order,
        vec![OrderPlaced {
            customer_id: customer(),
            placed_by: customer().into(),
            lines: PricedLines::parse(vec![priced_line(2, 1, 500), priced_line(1, 2, 1299)])
                .unwrap(),
            total_cents: 500 + 2 * 1299,
            currency: eur(),
            shipping_address: None,
        }
        .into()]
    );
    assert_eq!(
        events.products,
        vec![
            (
                pid(2),
                vec![StockReserved {
                    order_id: oid(1),
                    quantity: qty(1)
                }
                .into()]
            ),
            (
                pid(1),
                vec![StockReserved {
                    order_id: oid(1),
                    quantity: qty(2)
                }
                .into()]
            ),
        ]
    );
}

#[test]
fn an_admin_places_an_order_on_a_customers_behalf() {
    let products = catalog(&[(1, product(1299, "EUR", 10))]);
    let events = place_order(
        oid(1),
        customer(),
        actor("root"),
        &lines(&[(1, 1)]),
        &products,
    )
    .unwrap();
    assert!(matches!(
        &events.order[..],
        [OrderEvent::OrderPlaced(OrderPlaced { customer_id, placed_by, .. })]
            if customer_id == &customer() && placed_by.as_str() == "root"
    ));
    let order = Order::from_events(events.order);
    assert_eq!(order.customer_id(), Some(&customer()));
    assert_eq!(order.placed_by(), Some(&actor("root")));
}

#[test]
fn place_takes_the_current_price() {
    let mut p = product(1299, "EUR", 10);
    run_product(&mut p, ProductCommand::ChangePrice { price: price(1499) });
    let events = place_order(
        oid(1),
        customer(),
        customer().into(),
        &lines(&[(1, 1)]),
        &catalog(&[(1, p)]),
    )
    .unwrap();
    let mut o = Order::default();
    for e in events.order {
        o.apply(e);
    }
    assert_eq!(o.lines()[0].unit_price_cents, price(1499));
    assert_eq!(o.total_cents(), 1499);
}

#[test]
fn place_with_a_missing_or_uncreated_product_is_unknown_product() {
    let products = catalog(&[(1, product(1, "EUR", 10)), (3, Product::default())]);
    for missing in [2, 3] {
        let err = place_order(
            oid(1),
            customer(),
            customer().into(),
            &lines(&[(1, 1), (missing, 1)]),
            &products,
        )
        .unwrap_err();
        assert_eq!(
            err,
            DomainError::UnknownProduct {
                product_id: pid(missing)
            }
        );
        assert_eq!(err.code(), "unknown_product");
    }
}

#[test]
fn place_with_a_discontinued_product_is_product_discontinued() {
    let products = catalog(&[(1, product(1, "EUR", 10)), (2, discontinued(1, 10))]);
    let err = place_order(
        oid(1),
        customer(),
        customer().into(),
        &lines(&[(1, 1), (2, 1)]),
        &products,
    )
    .unwrap_err();
    assert_eq!(
        err,
        DomainError::ProductDiscontinued {
            product_id: Some(pid(2))
        }
    );
    assert_eq!(
        err.to_string(),
        format!("product {} is discontinued and cannot be ordered", pid(2))
    );
}

#[test]
fn place_beyond_available_is_insufficient_stock() {
    let mut p = product(1, "EUR", 10);
    run_product(
        &mut p,
        ProductCommand::Reserve {
            order_id: oid(9),
            quantity: qty(7),
        },
    );
    let products = catalog(&[(1, p)]);
    let err = place_order(
        oid(1),
        customer(),
        customer().into(),
        &lines(&[(1, 4)]),
        &products,
    )
    .unwrap_err();
    assert_eq!(
        err,
        DomainError::InsufficientStock {
            product_id: Some(pid(1)),
            requested: 4,
            available: 3,
        }
    );
    assert!(place_order(
        oid(1),
        customer(),
        customer().into(),
        &lines(&[(1, 3)]),
        &products
    )
    .is_ok());
}

#[test]
fn place_with_mixed_currencies_is_currency_mismatch() {
    let products = catalog(&[(1, product(1, "EUR", 10)), (2, product(1, "USD", 10))]);
    let err = place_order(
        oid(1),
        customer(),
        customer().into(),
        &lines(&[(1, 1), (2, 1)]),
        &products,
    )
    .unwrap_err();
    assert_eq!(
        err,
        DomainError::CurrencyMismatch {
            product_id: pid(2),
            order_currency: eur(),
            product_currency: cur("USD"),
        }
    );
    assert_eq!(err.code(), "currency_mismatch");
    // The order's currency is that of its products.
    let events = place_order(
        oid(1),
        customer(),
        customer().into(),
        &lines(&[(2, 1)]),
        &products,
    )
    .unwrap();
    assert!(matches!(
        &events.order[..],
        [OrderEvent::OrderPlaced(OrderPlaced { currency, .. })] if currency.as_str() == "USD"
    ));
}

#[test]
fn place_reports_the_first_failing_line() {
    let products = catalog(&[
        (1, product(1, "EUR", 0)),
        (2, discontinued(1, 10)),
        (3, product(1, "USD", 10)),
    ]);
    let first = |items: &[(u128, i64)]| {
        place_order(
            oid(1),
            customer(),
            customer().into(),
            &lines(items),
            &products,
        )
        .unwrap_err()
        .code()
    };
    assert_eq!(first(&[(1, 1), (2, 1), (4, 1)]), "insufficient_stock");
    assert_eq!(first(&[(2, 1), (1, 1), (4, 1)]), "product_discontinued");
    assert_eq!(first(&[(4, 1), (2, 1), (1, 1)]), "unknown_product");
    assert_eq!(first(&[(3, 1), (1, 1)]), "currency_mismatch");
    assert_eq!(first(&[(3, 1), (2, 1)]), "product_discontinued");
}

fn placed(products: &mut HashMap<ProductId, Product>, items: &[(u128, i64)]) -> Order {
    let mut order = Order::default();
    let events = place_order(
        oid(1),
        customer(),
        customer().into(),
        &lines(items),
        products,
    )
    .unwrap();
    apply_all(&events, &mut order, products);
    order
}

#[test]
fn ship_sends_every_line_out_of_the_warehouse() {
    let mut products = catalog(&[(1, product(1299, "EUR", 10)), (2, product(500, "EUR", 5))]);
    let mut order = placed(&mut products, &[(1, 2), (2, 5)]);
    run_order(&mut order, pay_command(2 * 1299 + 5 * 500, "EUR"));
    // Discontinued meanwhile: shipping still works.
    run_product(
        products.get_mut(&pid(2)).unwrap(),
        ProductCommand::Discontinue,
    );

    let events = ship_order(
        oid(1),
        &order,
        Carrier::parse("DHL").unwrap(),
        TrackingNumber::parse("JD0001").unwrap(),
        &products,
    )
    .unwrap();
    assert_eq!(
        events.order,
        vec![OrderShipped {
            carrier: Carrier::parse("DHL").unwrap(),
            tracking_number: TrackingNumber::parse("JD0001").unwrap(),
        }
        .into()]
    );
    assert_eq!(
        events.products,
        vec![
            (
                pid(1),
                vec![StockShipped {
                    order_id: oid(1),
                    quantity: qty(2)
                }
                .into()]
            ),
            (
                pid(2),
                vec![StockShipped {
                    order_id: oid(1),
                    quantity: qty(5)
                }
                .into()]
            ),
        ]
    );
    apply_all(&events, &mut order, &mut products);
    assert_eq!(order.status(), Some(OrderStatus::Shipped));
    let p1 = &products[&pid(1)];
    assert_eq!((p1.on_hand(), p1.reserved(), p1.available()), (8, 0, 8));
    let p2 = &products[&pid(2)];
    assert_eq!((p2.on_hand(), p2.reserved(), p2.available()), (0, 0, 0));
}

#[test]
fn ship_needs_a_paid_order() {
    let mut products = catalog(&[(1, product(1, "EUR", 10))]);
    let order = placed(&mut products, &[(1, 2)]);
    let err = ship_order(
        oid(1),
        &order,
        Carrier::parse("DHL").unwrap(),
        TrackingNumber::parse("1").unwrap(),
        &products,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "order is placed; only a paid order can be shipped"
    );
    let err = ship_order(
        oid(1),
        &Order::default(),
        Carrier::parse("DHL").unwrap(),
        TrackingNumber::parse("1").unwrap(),
        &products,
    )
    .unwrap_err();
    assert_eq!(err.code(), "not_found");
}

#[test]
fn cancel_releases_every_reservation() {
    let mut products = catalog(&[(1, product(1299, "EUR", 10)), (2, product(500, "EUR", 5))]);
    let mut order = placed(&mut products, &[(1, 2), (2, 5)]);
    assert_eq!(products[&pid(2)].available(), 0);
    run_product(
        products.get_mut(&pid(1)).unwrap(),
        ProductCommand::Discontinue,
    );

    let events = cancel_order(oid(1), &order, CancelReason::default(), None, &products).unwrap();
    assert_eq!(
        events.order,
        vec![OrderCancelled {
            reason: CancelReason::default(),
            refunded_cents: 0,
        }
        .into()]
    );
    assert_eq!(
        events.products[1],
        (
            pid(2),
            vec![StockReleased {
                order_id: oid(1),
                quantity: qty(5)
            }
            .into()]
        )
    );
    apply_all(&events, &mut order, &mut products);
    assert_eq!(products[&pid(1)].available(), 10);
    assert_eq!(products[&pid(2)].available(), 5);
    assert_eq!(order.status(), Some(OrderStatus::Cancelled));
}

#[test]
fn cancel_of_a_paid_order_refunds_and_releases() {
    let mut products = catalog(&[(1, product(1299, "EUR", 10))]);
    let mut order = placed(&mut products, &[(1, 2)]);
    run_order(&mut order, pay_command(2598, "EUR"));
    let refund = Some(refund_request("re_1", 2598));
    let events = cancel_order(oid(1), &order, CancelReason::default(), refund, &products).unwrap();
    assert!(matches!(
        &events.order[..],
        [
            OrderEvent::OrderCancelled(OrderCancelled {
                refunded_cents: 0,
                ..
            }),
            OrderEvent::RefundRequested(_),
            OrderEvent::Refunded(_)
        ]
    ));
    assert_eq!(events.products.len(), 1);
}

#[test]
fn cancel_of_a_shipped_or_cancelled_order_is_invalid_state() {
    let mut products = catalog(&[(1, product(1299, "EUR", 10))]);
    let mut order = placed(&mut products, &[(1, 2)]);
    let events = cancel_order(oid(1), &order, CancelReason::default(), None, &products).unwrap();
    apply_all(&events, &mut order, &mut products);
    let err = cancel_order(oid(1), &order, CancelReason::default(), None, &products).unwrap_err();
    assert_eq!(
        err.to_string(),
        "order is cancelled; only a placed or paid order can be cancelled"
    );
}

#[test]
fn expiry_cancels_a_placed_order_with_reason_payment_timeout_and_releases_it() {
    let mut products = catalog(&[(1, product(1299, "EUR", 10))]);
    let mut order = placed(&mut products, &[(1, 4)]);
    let events = expire_order(oid(1), &order, &products).unwrap();
    assert_eq!(
        events.order,
        vec![OrderCancelled {
            reason: CancelReason::payment_timeout(),
            refunded_cents: 0,
        }
        .into()]
    );
    apply_all(&events, &mut order, &mut products);
    assert_eq!(products[&pid(1)].available(), 10);
    assert_eq!(order.status(), Some(OrderStatus::Cancelled));
    // Expired once: a second expiry is refused.
    let err = expire_order(oid(1), &order, &products).unwrap_err();
    assert_eq!(err.code(), "invalid_state");
}

#[test]
fn a_paid_order_never_expires() {
    let mut products = catalog(&[(1, product(1299, "EUR", 10))]);
    let mut order = placed(&mut products, &[(1, 2)]);
    run_order(&mut order, pay_command(2598, "EUR"));
    let err = expire_order(oid(1), &order, &products).unwrap_err();
    assert_eq!(
        err.to_string(),
        "order is paid; only a placed order expires"
    );
    let err = expire_order(oid(2), &Order::default(), &products).unwrap_err();
    assert_eq!(err.code(), "not_found");
}

#[test]
fn ship_or_cancel_with_a_missing_product_is_unknown_product() {
    let mut products = catalog(&[(1, product(1299, "EUR", 10))]);
    let order = placed(&mut products, &[(1, 2)]);
    let err = cancel_order(
        oid(1),
        &order,
        CancelReason::default(),
        None,
        &HashMap::new(),
    )
    .unwrap_err();
    assert_eq!(err, DomainError::UnknownProduct { product_id: pid(1) });
}

/// Random place/pay/ship/cancel/restock sequences over a small catalog. Whatever is
/// accepted: `available >= 0`; `reserved` equals the units of open (placed or paid)
/// orders; `on_hand` equals initial stock + restocks - shipped units.
#[test]
fn property_stock_matches_the_orders() {
    for seed in 0..100 {
        let mut rng = Rng::new(seed);
        let mut products: HashMap<ProductId, Product> = HashMap::new();
        let mut received: HashMap<ProductId, i64> = HashMap::new();
        for n in 1..=4 {
            let stock = rng.range(0, 15);
            products.insert(pid(n), product(rng.range(1, 2000), "EUR", stock));
            received.insert(pid(n), stock);
        }
        let mut orders: Vec<Order> = Vec::new();
        for step in 0..80 {
            match rng.range(0, 5) {
                0 | 1 => {
                    let mut items: Vec<(u128, i64)> = Vec::new();
                    for n in 1..=5 {
                        if rng.range(0, 2) == 0 {
                            items.push((n, rng.range(1, 6)));
                        }
                    }
                    if items.is_empty() {
                        continue;
                    }
                    let id = oid(orders.len() as u128);
                    match place_order(id, customer(), customer().into(), &lines(&items), &products)
                    {
                        Ok(events) => {
                            let mut order = Order::default();
                            for e in events.order.clone() {
                                order.apply(e);
                            }
                            for (pid_, evs) in &events.products {
                                for e in evs.clone() {
                                    products.get_mut(pid_).unwrap().apply(e);
                                }
                            }
                            orders.push(order);
                        }
                        Err(err) => assert!(
                            matches!(
                                err,
                                DomainError::UnknownProduct { .. }
                                    | DomainError::InsufficientStock { .. }
                            ),
                            "{err}"
                        ),
                    }
                }
                2 if !orders.is_empty() => {
                    let i = rng.range(0, orders.len() as i64 - 1) as usize;
                    let total = orders[i].total_cents();
                    if let Ok(events) = orders[i].decide(pay_command(total, "EUR")) {
                        for e in events {
                            orders[i].apply(e);
                        }
                    }
                }
                3 if !orders.is_empty() => {
                    let i = rng.range(0, orders.len() as i64 - 1) as usize;
                    let result = ship_order(
                        oid(i as u128),
                        &orders[i],
                        Carrier::parse("DHL").unwrap(),
                        TrackingNumber::parse("1").unwrap(),
                        &products,
                    );
                    if let Ok(events) = result {
                        let mut order = orders[i].clone();
                        apply_all(&events, &mut order, &mut products);
                        orders[i] = order;
                    }
                }
                4 if !orders.is_empty() => {
                    let i = rng.range(0, orders.len() as i64 - 1) as usize;
                    let refund = match orders[i].payments().refundable_cents() {
                        0 => None,
                        cents => Some(refund_request(&format!("re_{i}"), cents)),
                    };
                    let result = cancel_order(
                        oid(i as u128),
                        &orders[i],
                        CancelReason::default(),
                        refund,
                        &products,
                    );
                    if let Ok(events) = result {
                        let mut order = orders[i].clone();
                        apply_all(&events, &mut order, &mut products);
                        orders[i] = order;
                    }
                }
                _ => {
                    let n = rng.range(1, 4) as u128;
                    let quantity = RestockQuantity::parse(rng.range(1, 5)).unwrap();
                    run_product(
                        products.get_mut(&pid(n)).unwrap(),
                        ProductCommand::Restock { quantity },
                    );
                    *received.get_mut(&pid(n)).unwrap() += quantity.get();
                }
            }
            for (id, p) in &products {
                let lines_of = |statuses: &[OrderStatus]| -> i64 {
                    orders
                        .iter()
                        .filter(|o| o.status().is_some_and(|s| statuses.contains(&s)))
                        .flat_map(|o| o.lines())
                        .filter(|l| l.product_id == *id)
                        .map(|l| l.quantity.get())
                        .sum()
                };
                let open = lines_of(&[OrderStatus::Placed, OrderStatus::Paid]);
                let shipped = lines_of(&[OrderStatus::Shipped]);
                assert!(p.available() >= 0, "seed {seed} step {step}");
                assert_eq!(p.reserved(), open, "seed {seed} step {step}");
                assert_eq!(
                    p.on_hand(),
                    received[id] - shipped,
                    "seed {seed} step {step}"
                );
            }
        }
    }
}
