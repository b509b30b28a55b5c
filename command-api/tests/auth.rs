//! Authentication and roles: a missing, malformed, expired, forged or foreign token is 401;
//! a valid token without the role is 403; neither appends anything. A customer never pays,
//! confirms a payment or refunds by saying so, not even on their own order.

mod support;

use platform::{JwtKeys, Role};
use serde_json::{json, Value};
use support::{
    assert_problem, body_of, craft_token, in_seconds, offline_payment, signed_token, TestApp,
    SECRET,
};
use uuid::Uuid;

/// Every command endpoint with a body that would be valid.
fn every_command(product: Uuid, order: Uuid) -> Vec<(String, Value)> {
    vec![
        (
            "/v1/products".into(),
            json!({"sku": "NEW-1", "name": "New", "price_cents": 100, "currency": "EUR"}),
        ),
        (
            format!("/v1/products/{product}/price"),
            json!({"price_cents": 200}),
        ),
        (
            format!("/v1/products/{product}/restock"),
            json!({"quantity": 1}),
        ),
        (format!("/v1/products/{product}/discontinue"), json!({})),
        (
            "/v1/orders".into(),
            json!({"lines": [{"product_id": product, "quantity": 1}]}),
        ),
        (format!("/v1/orders/{order}/pay"), offline_payment(100)),
        (
            format!("/v1/orders/{order}/ship"),
            json!({"carrier": "DHL", "tracking_number": "T"}),
        ),
        (format!("/v1/orders/{order}/cancel"), json!({})),
        (format!("/v1/orders/{order}/payment"), json!({})),
        (format!("/v1/orders/{order}/payment/confirm"), json!({})),
        (
            format!("/v1/orders/{order}/refunds"),
            json!({"amount_cents": 100, "reason": "broken"}),
        ),
    ]
}

/// The body `every_command` gives the route ending in `suffix`.
fn command_ending(commands: &[(String, Value)], suffix: &str) -> (String, Value) {
    commands
        .iter()
        .find(|(path, _)| path.ends_with(suffix))
        .cloned()
        .unwrap_or_else(|| panic!("no command ends in {suffix}"))
}

async fn product_and_order(app: &TestApp) -> (Uuid, Uuid) {
    let product = app.create_product("AUTH-1", 100, 10).await;
    let order = app
        .placed_order(&app.admin, json!([{"product_id": product, "quantity": 1}]))
        .await;
    (product, order)
}

#[tokio::test]
async fn missing_malformed_and_bad_tokens_are_401_on_every_command() {
    let app = TestApp::spawn().await;
    let (product, order) = product_and_order(&app).await;
    let before = app.event_count().await;

    let claims = |sub: &str, exp: i64| json!({"sub": sub, "roles": ["admin"], "exp": exp});
    let valid_signature = signed_token(&claims("root", in_seconds(3600)));
    let mut tampered = valid_signature.clone();
    tampered.pop();
    tampered.push(if valid_signature.ends_with('A') {
        'B'
    } else {
        'A'
    });
    let forged_payload = {
        // Another payload under the signature of the first.
        let other = signed_token(&claims("someone-else", in_seconds(3600)));
        let mut parts: Vec<&str> = valid_signature.split('.').collect();
        parts[1] = other.split('.').nth(1).expect("a payload");
        parts.join(".")
    };
    let expired = app.keys.mint("root", &[Role::Admin], -3600).expect("token");
    let foreign = JwtKeys::hs256(b"another-secret")
        .mint("root", &[Role::Admin], 3600)
        .expect("token");
    let unsigned = craft_token(
        &json!({"alg": "none", "typ": "JWT"}),
        &claims("root", in_seconds(3600)),
        None,
    );
    let hs512 = craft_token(
        &json!({"alg": "HS512", "typ": "JWT"}),
        &claims("root", in_seconds(3600)),
        Some(SECRET.as_bytes()),
    );
    let no_exp = signed_token(&json!({"sub": "root", "roles": ["admin"]}));
    let no_sub = signed_token(&json!({"roles": ["admin"], "exp": in_seconds(3600)}));
    let empty_sub = signed_token(&claims("", in_seconds(3600)));
    let string_exp = signed_token(&json!({"sub": "root", "roles": ["admin"], "exp": "never"}));

    let authorizations: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(format!("Basic {}", app.admin)),
        Some(format!("Token {}", app.admin)),
        Some(app.admin.clone()),
        Some(format!("Bearer{}", app.admin)),
        Some("Bearer garbage".into()),
        Some("Bearer a.b.c".into()),
        Some("Bearer ....".into()),
        Some(format!("Bearer {tampered}")),
        Some(format!("Bearer {forged_payload}")),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {foreign}")),
        Some(format!("Bearer {unsigned}")),
        Some(format!("Bearer {hs512}")),
        Some(format!("Bearer {no_exp}")),
        Some(format!("Bearer {no_sub}")),
        Some(format!("Bearer {empty_sub}")),
        Some(format!("Bearer {string_exp}")),
    ];
    for (path, body) in every_command(product, order) {
        for authorization in &authorizations {
            let response = app
                .post_authorized(&path, authorization.as_deref(), &body)
                .await;
            let label = format!("{path} with {authorization:?}");
            assert_eq!(response.status(), 401, "{label}");
            assert_problem(response, 401, "unauthenticated").await;
        }
    }
    // Non-ASCII in the header.
    let response = app
        .send(
            reqwest::Method::POST,
            &format!("/v1/products/{product}/restock"),
            None,
            Some(br#"{"quantity": 1}"#.to_vec()),
            &[("Authorization", "Bearer caf\u{e9}".as_bytes())],
        )
        .await;
    assert_problem(response, 401, "unauthenticated").await;
    assert_eq!(app.event_count().await, before);

    // The hand-made tokens are sound: the same construction with good claims passes.
    let response = app
        .post_authorized(
            &format!("/v1/products/{product}/restock"),
            Some(&format!("Bearer {valid_signature}")),
            &json!({"quantity": 1}),
        )
        .await;
    assert_eq!(response.status(), 200);
    // So does the lower-case scheme.
    let response = app
        .post_authorized(
            &format!("/v1/products/{product}/restock"),
            Some(&format!("bearer {}", app.admin)),
            &json!({"quantity": 1}),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn authentication_comes_before_validation() {
    let app = TestApp::spawn().await;
    for (path, body) in [
        ("/v1/products", "{not json"),
        ("/v1/products/not-a-uuid/restock", r#"{"quantity": 1}"#),
        ("/v1/orders", "[]"),
    ] {
        let response = app
            .send(reqwest::Method::POST, path, None, Some(body.into()), &[])
            .await;
        assert_problem(response, 401, "unauthenticated").await;
    }
}

#[tokio::test]
async fn tokens_without_the_role_are_403_and_append_nothing() {
    let app = TestApp::spawn().await;
    let (product, order) = product_and_order(&app).await;
    let before = app.event_count().await;

    let viewer = app.token("vera", &[Role::Viewer]);
    let auditor = app.token("audrey", &[Role::Auditor]);
    let customer = app.token("root", &[Role::Customer]);
    let nobody = app.token("nobody", &[]);
    let unknown_role = signed_token(
        &json!({"sub": "root", "roles": ["superuser", "Admin"], "exp": in_seconds(3600)}),
    );
    let commands = every_command(product, order);
    let (product_commands, order_commands) = commands.split_at(4);

    for token in [&viewer, &auditor, &customer, &nobody, &unknown_role] {
        for (path, body) in product_commands {
            let response = app.post(path, token, body).await;
            assert_problem(response, 403, "forbidden").await;
        }
    }
    for token in [&viewer, &auditor, &nobody, &unknown_role] {
        for (path, body) in order_commands {
            let response = app.post(path, token, body).await;
            assert_problem(response, 403, "forbidden").await;
        }
    }
    // The order's owner is "root" (placed by the admin), but a customer may still not ship,
    // record an offline payment, confirm a payment or refund.
    for suffix in ["/ship", "/pay", "/payment/confirm", "/refunds"] {
        let (path, body) = command_ending(order_commands, suffix);
        let response = app.post(&path, &customer, &body).await;
        assert_problem(response, 403, "forbidden").await;
    }
    assert_eq!(app.event_count().await, before);

    // A viewer that is also an admin may.
    let both = app.token("root", &[Role::Viewer, Role::Admin]);
    let response = app
        .post(&product_commands[2].0, &both, &product_commands[2].1)
        .await;
    assert_eq!(response.status(), 200);
}

/// The attacker is the order's owner: a customer's token with the owner's `sub` tries to
/// mark their own order paid (`/pay`, then the development provider's confirmation, with
/// the open payment their own checkout made) and to refund it. Each is 403, nothing is
/// appended, the order stays `placed`. An admin's offline payment needs a real `reason`.
#[tokio::test]
async fn the_owner_cannot_pay_confirm_or_refund_their_own_order() {
    let app = TestApp::spawn().await;
    let product = app.create_product("OWN-1", 1299, 10).await;
    let alice = app.token("alice", &[Role::Customer]);
    let order = app
        .placed_order(&alice, json!([{"product_id": product, "quantity": 2}]))
        .await;
    // Her checkout is allowed: it opens a payment at the provider, which an admin (or the
    // provider's webhook) must confirm.
    let checkout = app.checkout(order, &alice).await;
    assert_eq!(checkout["amount_cents"], 2598, "{checkout}");
    let before = app.event_count().await;
    let events = app.events_of(order).await;
    assert_eq!(events.len(), 2, "{events:?}");

    let attempts = [
        (format!("/v1/orders/{order}/pay"), offline_payment(2598)),
        (format!("/v1/orders/{order}/payment/confirm"), json!({})),
        (
            format!("/v1/orders/{order}/refunds"),
            json!({"amount_cents": 2598, "reason": "I want my money back"}),
        ),
    ];
    for (path, body) in &attempts {
        let response = app.post(path, &alice, body).await;
        assert_problem(response, 403, "forbidden").await;
        // With the headers a retrying client sends, too.
        let response = app
            .post_with(
                path,
                &alice,
                body,
                &[("Idempotency-Key", "retry-1"), ("If-Match", "\"2\"")],
            )
            .await;
        assert_problem(response, 403, "forbidden").await;
    }
    assert_eq!(app.event_count().await, before, "nothing appended");
    assert_eq!(app.events_of(order).await, events);
    let state = app.order_state(order).await;
    assert_eq!(state.status(), Some(domain::OrderStatus::Placed));
    assert_eq!(state.payments().captured_cents(), 0);

    // An admin's offline payment without a reason, or with a blank one, is 400.
    let mut without = offline_payment(2598);
    without.as_object_mut().expect("an object").remove("reason");
    let mut bodies = vec![without];
    for blank in ["", " ", "   ", "\u{3000}"] {
        let mut body = offline_payment(2598);
        body["reason"] = json!(blank);
        bodies.push(body);
    }
    let mut null_reason = offline_payment(2598);
    null_reason["reason"] = Value::Null;
    bodies.push(null_reason);
    for body in &bodies {
        let response = app
            .post(&format!("/v1/orders/{order}/pay"), &app.admin, body)
            .await;
        assert_eq!(response.status(), 400, "{body}");
        assert_problem(response, 400, "invalid_request").await;
    }
    assert_eq!(app.event_count().await, before, "nothing appended");
    assert_eq!(
        app.order_state(order).await.status(),
        Some(domain::OrderStatus::Placed)
    );

    // The same confirmation by an admin pays the order: the 403s were about the role.
    let confirmed = app.confirm_payment(order).await;
    assert_eq!(confirmed["version"], 3, "{confirmed}");
    assert_eq!(
        app.order_state(order).await.status(),
        Some(domain::OrderStatus::Paid)
    );
    // Now there is money to refund; the owner still may not.
    let before = app.event_count().await;
    let (path, body) = &attempts[2];
    assert_problem(app.post(path, &alice, body).await, 403, "forbidden").await;
    assert_eq!(app.event_count().await, before);
    let response = app.post(path, &app.admin, body).await;
    assert_eq!(response.status(), 202);
    let refund = body_of(response).await;
    assert_eq!(refund["status"], "succeeded", "{refund}");
}

/// Fair shares: one token flooding the API gets 429 with `Retry-After` once past its share,
/// while another caller is served at once; nothing the refused requests asked for is done.
#[tokio::test]
async fn one_subject_flooding_gets_429_and_others_are_served() {
    let app = TestApp::spawn_with(|settings| settings.auth.rate_limit_per_subject = 20).await;
    let flood = app.token("flood", &[Role::Admin]);
    let before = app.event_count().await;
    let bodies: Vec<Value> = (0..80)
        .map(|n| {
            json!({"sku": format!("FLOOD-{n}"), "name": "Flood", "price_cents": 1,
                   "currency": "EUR", "initial_stock": 1})
        })
        .collect();
    let requests = bodies
        .iter()
        .map(|body| app.post("/v1/products", &flood, body));
    let answers = futures::future::join_all(requests).await;
    let mut created = 0;
    let mut limited = 0;
    for answer in answers {
        match answer.status().as_u16() {
            201 => created += 1,
            429 => {
                assert!(answer.headers().contains_key("retry-after"));
                let problem: Value = answer.json().await.expect("problem");
                assert_eq!(problem["code"], "rate_limited");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        limited > 0,
        "80 requests at once from one subject were all served"
    );
    assert!(created <= 40, "{created} created: far past a share of 20/s");
    assert_eq!(
        app.event_count().await - before,
        created,
        "a refused request appends nothing"
    );
    // Another caller is served at once.
    let other = app
        .post(
            "/v1/products",
            &app.admin,
            &json!({"sku": "OTHER-1", "name": "Other", "price_cents": 1,
                    "currency": "EUR", "initial_stock": 1}),
        )
        .await;
    assert_eq!(other.status().as_u16(), 201);
}
