//! 401 for missing or bad tokens on every `/v1` endpoint, 403 per role.

use platform::{JwtKeys, Role};
use uuid::Uuid;

use crate::support::{assert_problem, at, TestApp, SECRET};

/// One path per endpoint, with an existing product and order.
async fn endpoints(app: &TestApp) -> Vec<String> {
    let product = app.insert_product("A-1", 1, 0, 1).await;
    let order = app
        .insert_order("alice", "placed", at("2024-05-01T10:00:00Z"), 1)
        .await;
    vec![
        "/v1/products".into(),
        format!("/v1/products/{product}"),
        "/v1/orders".into(),
        format!("/v1/orders/{order}"),
        "/v1/dashboard/sales".into(),
        "/v1/dashboard/top-products".into(),
    ]
}

#[tokio::test]
async fn every_endpoint_needs_a_valid_token() {
    let app = TestApp::spawn().await;
    let expired = app.keys.mint("root", &[Role::Admin], -3600).unwrap();
    let foreign = JwtKeys::hs256(b"another secret")
        .mint("root", &[Role::Admin], 3600)
        .unwrap();
    assert_ne!(SECRET.as_bytes(), b"another secret");
    for path in endpoints(&app).await {
        assert_problem(app.get_anonymous(&path).await, 401, "unauthenticated").await;
        for token in [expired.as_str(), foreign.as_str(), "not.a.jwt", "garbage"] {
            assert_problem(app.get(&path, token).await, 401, "unauthenticated").await;
        }
        for scheme in ["Basic cm9vdDpyb290", "Bearer", "Bearer ", &app.admin] {
            let response = app
                .http
                .get(format!("{}{path}", app.address))
                .header("authorization", scheme)
                .send()
                .await
                .unwrap();
            assert_problem(response, 401, "unauthenticated").await;
        }
        // Authentication comes before input checks.
        let bad_input = app.get_anonymous(&format!("{path}?limit=0&x=1")).await;
        assert_problem(bad_input, 401, "unauthenticated").await;
    }
    let bad_id = app.get_anonymous("/v1/orders/not-a-uuid").await;
    assert_problem(bad_id, 401, "unauthenticated").await;
}

#[tokio::test]
async fn each_role_reaches_what_api_md_grants() {
    let app = TestApp::spawn().await;
    let paths = endpoints(&app).await;
    let (products, product, orders, order, sales, top) = (
        &paths[0], &paths[1], &paths[2], &paths[3], &paths[4], &paths[5],
    );
    let auditor = app.token("audit", &[Role::Auditor]);
    let customer = app.token("alice", &[Role::Customer]);
    let nobody = app.token("nobody", &[]);

    for token in [&app.admin, &app.viewer] {
        for path in &paths {
            app.get_json(path, token).await;
        }
    }
    for path in [products, product] {
        app.get_json(path, &auditor).await;
        app.get_json(path, &customer).await;
        assert_problem(app.get(path, &nobody).await, 403, "forbidden").await;
    }
    for path in [orders, order, sales, top] {
        assert_problem(app.get(path, &auditor).await, 403, "forbidden").await;
        assert_problem(app.get(path, &nobody).await, 403, "forbidden").await;
    }
    // The customer owns the order; dashboards are not theirs.
    app.get_json(orders, &customer).await;
    app.get_json(order, &customer).await;
    for path in [sales, top] {
        assert_problem(app.get(path, &customer).await, 403, "forbidden").await;
    }
    // Role checks come before existence: an auditor learns nothing about order ids.
    let unknown = format!("/v1/orders/{}", Uuid::new_v4());
    assert_problem(app.get(&unknown, &auditor).await, 403, "forbidden").await;
}
