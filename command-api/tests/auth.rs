//! Authentication and roles: a missing, malformed, expired, forged or foreign token is 401;
//! a valid token without the role is 403; neither appends anything.

mod support;

use platform::{JwtKeys, Role};
use serde_json::{json, Value};
use support::{assert_problem, craft_token, in_seconds, signed_token, TestApp, SECRET};
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
        (
            format!("/v1/orders/{order}/pay"),
            json!({"amount_cents": 100, "currency": "EUR", "payment_ref": "p"}),
        ),
        (
            format!("/v1/orders/{order}/ship"),
            json!({"carrier": "DHL", "tracking_number": "T"}),
        ),
        (format!("/v1/orders/{order}/cancel"), json!({})),
    ]
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
    // The order's owner is "root" (placed by the admin), but a customer may still not ship.
    let (ship_path, ship_body) = &order_commands[2];
    assert!(ship_path.ends_with("/ship"));
    let response = app.post(ship_path, &customer, ship_body).await;
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(app.event_count().await, before);

    // A viewer that is also an admin may.
    let both = app.token("root", &[Role::Viewer, Role::Admin]);
    let response = app
        .post(&product_commands[2].0, &both, &product_commands[2].1)
        .await;
    assert_eq!(response.status(), 200);
}
