//! Parked streams over HTTP (role `admin`): the list with held events and requests, and
//! retry/skip requests recorded with who asked and why; the rules an admin (or anyone else)
//! runs into. The projector side (carrying requests out) is projector/tests/parked.rs.

use serde_json::{json, Value};
use uuid::Uuid;

use super::support::{assert_problem, TestApp};
use platform::Role;

/// Parks `stream` in `projection` at version 2 with two held events, as the projector does.
async fn park(app: &TestApp, projection: &str, version: i32, stream: Uuid) -> Uuid {
    let event = Uuid::now_v7();
    app.execute(
        "INSERT INTO read_model.parked_streams \
         (projection, version, stream_id, event_id, stream_version, event_type, error) \
         VALUES ($1, $2, $3, $4, 2, 'StockAdded', 'new row violates check constraint')",
        &[&projection, &version, &stream, &event],
    )
    .await;
    for (stream_version, id) in [(3_i64, Uuid::now_v7()), (2, event)] {
        app.execute(
            "INSERT INTO read_model.held_events \
             (projection, version, stream_id, stream_version, event_id, event_type, source_position) \
             VALUES ($1, $2, $3, $4, $5, 'StockAdded', 'log 1/1')",
            &[&projection, &version, &stream, &stream_version, &id],
        )
        .await;
    }
    event
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.address))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("the app answers")
}

#[tokio::test]
async fn an_admin_sees_parked_streams_and_asks_for_a_retry_or_a_skip() {
    let app = TestApp::spawn().await;
    let stream = Uuid::now_v7();
    let event = park(&app, "products", 1, stream).await;
    // A stream parked in a version that is not active (an old rebuild) is not listed.
    park(&app, "products", 7, Uuid::now_v7()).await;

    let list = app
        .get_json("/v1/projections/products/parked", &app.admin)
        .await;
    assert_eq!(list["projection"], "products");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["stream_id"], stream.to_string());
    assert_eq!(items[0]["event_id"], event.to_string());
    assert_eq!(items[0]["stream_version"], 2);
    let held: Vec<i64> = items[0]["held"]
        .as_array()
        .expect("held")
        .iter()
        .map(|h| h["stream_version"].as_i64().expect("a version"))
        .collect();
    assert_eq!(held, [2, 3], "held in stream order");
    assert_eq!(items[0]["actions"], json!([]));

    let path = format!("/v1/projections/products/parked/{stream}/retry");
    let accepted = post(
        &app,
        &path,
        &app.admin,
        &json!({"reason": "column widened"}),
    )
    .await;
    assert_eq!(accepted.status(), 202);
    let body: Value = accepted.json().await.expect("JSON");
    assert_eq!(body, json!({"status": "requested", "action": "retry"}));
    let skip = format!("/v1/projections/products/parked/{stream}/skip");
    assert_eq!(
        post(&app, &skip, &app.admin, &json!({"reason": "bad data"}))
            .await
            .status(),
        202
    );
    let list = app
        .get_json("/v1/projections/products/parked", &app.admin)
        .await;
    let actions = list["items"][0]["actions"]
        .as_array()
        .expect("actions")
        .clone();
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0]["action"], "skip", "newest first");
    assert_eq!(actions[0]["requested_by"], "root");
    assert_eq!(actions[0]["reason"], "bad data");
    assert!(actions[0]["done_at"].is_null());
    assert_eq!(actions[1]["action"], "retry");
}

#[tokio::test]
async fn requests_are_refused_unless_an_admin_asks_for_a_parked_stream_with_a_reason() {
    let app = TestApp::spawn().await;
    let stream = Uuid::now_v7();
    park(&app, "orders", 1, stream).await;
    let path = format!("/v1/projections/orders/parked/{stream}/retry");
    let reason = json!({"reason": "fixed"});
    // Not an admin.
    for token in [&app.viewer, &app.auditor] {
        assert_problem(
            app.get("/v1/projections/orders/parked", token).await,
            403,
            "forbidden",
        )
        .await;
        assert_problem(post(&app, &path, token, &reason).await, 403, "forbidden").await;
    }
    let customer = app.token("ana", &[Role::Customer]);
    assert_problem(
        post(&app, &path, &customer, &reason).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.http
            .post(format!("{}{path}", app.address))
            .json(&reason)
            .send()
            .await
            .expect("an answer")
            .status(),
        401
    );
    // No reason, an empty or a too long one, an unknown field.
    for body in [
        json!({}),
        json!({"reason": ""}),
        json!({"reason": "   "}),
        json!({"reason": "x".repeat(501)}),
        json!({"reason": "ok", "force": true}),
    ] {
        let response = post(&app, &path, &app.admin, &body).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    // A projection that does not exist; a stream that is not parked; a bad stream id.
    assert_problem(
        app.get("/v1/projections/nope/parked", &app.admin).await,
        404,
        "not_found",
    )
    .await;
    let other = format!("/v1/projections/orders/parked/{}/skip", Uuid::now_v7());
    assert_problem(
        post(&app, &other, &app.admin, &reason).await,
        404,
        "not_found",
    )
    .await;
    let wrong = format!("/v1/projections/products/parked/{stream}/skip");
    assert_problem(
        post(&app, &wrong, &app.admin, &reason).await,
        404,
        "not_found",
    )
    .await;
    let bad = post(
        &app,
        "/v1/projections/orders/parked/not-a-uuid/retry",
        &app.admin,
        &reason,
    )
    .await;
    assert_eq!(bad.status(), 400);
    // Nothing refused was recorded.
    let client = eventstore::testing::attacker_session(&app.db.url)
        .await
        .expect("a connection");
    let recorded: i64 = client
        .query_one("SELECT count(*) FROM read_model.parked_actions", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(recorded, 0);
}
