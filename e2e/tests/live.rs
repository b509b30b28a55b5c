//! Live dashboards end to end: a paid order goes command API → event store → projector
//! (NOTIFY after its batch) → query API fan-out, and reaches an SSE subscriber and a
//! GraphQL subscription (`graphql-transport-ws`) within a second.

mod support;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use platform::Role;
use query_api::testing::{SseBlock, SseReader};
use serde_json::{json, Value};
use support::Stack;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/graphql/ws` and says `connection_init` with `init`.
async fn graphql_ws(stack: &Stack, init: Value) -> Socket {
    let url = format!("{}/graphql/ws", stack.query.replace("http://", "ws://"));
    let mut request = url.into_client_request().expect("a WebSocket request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("a header value"),
    );
    let (mut socket, _) = connect_async(request).await.expect("the upgrade succeeds");
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": init}),
    )
    .await;
    socket
}

/// Opens `/graphql/ws` with `token` and expects `connection_ack`.
async fn connected(stack: &Stack, token: &str) -> Socket {
    let mut socket = graphql_ws(stack, json!({"Authorization": format!("Bearer {token}")})).await;
    let ack = receive(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(
        ack.map(|m| m["type"].clone()),
        Some(json!("connection_ack"))
    );
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("the message is sent");
}

/// The next JSON message within `wait`, `None` if the socket closed or nothing came.
async fn receive(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// The next `next` message whose payload satisfies `wanted`, within `wait`.
async fn next_where(
    socket: &mut Socket,
    wait: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let message = receive(socket, deadline.saturating_duration_since(Instant::now())).await?;
        if message["type"] == "next" && wanted(&message["payload"]) {
            return Some(message["payload"].clone());
        }
    }
}

fn sells(top: &Value, sku: &str) -> bool {
    top["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| i["sku"] == sku))
}

#[tokio::test]
async fn a_paid_order_reaches_sse_and_graphql_subscribers_within_a_second() -> anyhow::Result<()> {
    let stack = Stack::start(false).await?;
    let alice = stack.token("alice", &[Role::Customer]);
    let viewer = stack.token("vera", &[Role::Viewer]);
    let (mug, _) = stack
        .ok("/v1/products", &stack.admin, json!({"sku": "LIVE-MUG", "name": "Mug", "price_cents": 1299, "currency": "EUR", "initial_stock": 10}))
        .await?;
    let (order, version) = stack
        .ok(
            "/v1/orders",
            &alice,
            json!({"lines": [{"product_id": mug, "quantity": 2}]}),
        )
        .await?;
    // The order is in the read model (so is its sales bucket) before anyone subscribes.
    stack
        .read_at(&format!("/v1/orders/{order}"), &viewer, version)
        .await?;

    let mut sse = SseReader::open(
        &stack.http,
        &format!("{}/v1/dashboard/stream", stack.query),
        &viewer,
    )
    .await
    .map_err(|r| anyhow::anyhow!("stream: {}", r.status()))?;
    let first = sse
        .next_event_where("top_products", Duration::from_secs(5), |_| true)
        .await
        .expect("the current top products");
    assert!(!sells(&first, "LIVE-MUG"), "nothing is paid yet: {first}");

    let mut socket = connected(&stack, &viewer).await;
    send(
        &mut socket,
        json!({"id": "1", "type": "subscribe", "payload": {"query":
            "subscription { topProducts { items { sku unitsSold revenueCents } } }"}}),
    )
    .await;
    next_where(&mut socket, Duration::from_secs(5), |_| true)
        .await
        .expect("the subscription's first answer");

    // Alice checks out; the payment counts once an admin confirms it.
    let checkout = stack.checkout(order, &alice).await?;
    assert_eq!(checkout["amount_cents"], 2598, "{checkout}");
    let paid = Instant::now();
    stack.confirm_payment(order).await?;
    // Both live read models follow, in whichever order the projector commits them.
    let (mut top, mut sales_paid) = (None, false);
    while top.is_none() || !sales_paid {
        let left = Duration::from_secs(1).saturating_sub(paid.elapsed());
        match sse.next_block(left).await {
            Some(SseBlock::Event { name, data }) => {
                let body: Value = serde_json::from_str(&data)?;
                if name == "top_products" && sells(&body, "LIVE-MUG") {
                    top = Some(body);
                } else if name == "sales" {
                    sales_paid |= body["buckets"]
                        .as_array()
                        .is_some_and(|b| b.iter().any(|b| b["orders_paid"] == 1));
                }
            }
            Some(SseBlock::Comment(_)) => {}
            None => panic!("SSE did not deliver the payment within a second"),
        }
    }
    let top = top.unwrap_or_default();
    let sse_latency = paid.elapsed();
    let payload = next_where(&mut socket, Duration::from_secs(1), |p| {
        sells(&p["data"]["topProducts"], "LIVE-MUG")
    })
    .await
    .expect("the subscription delivers the paid order within a second");
    assert!(sse_latency < Duration::from_secs(1), "{sse_latency:?}");
    assert!(
        paid.elapsed() < Duration::from_secs(1),
        "{:?}",
        paid.elapsed()
    );

    // What was pushed is what REST answers.
    let rest: Value = stack
        .get("/v1/dashboard/top-products", &viewer)
        .await?
        .json()
        .await?;
    assert_eq!(top, rest);
    assert_eq!(payload["data"]["topProducts"]["items"][0]["unitsSold"], 2);
    assert_eq!(
        payload["data"]["topProducts"]["items"][0]["revenueCents"],
        2598
    );
    stack.stop().await
}

#[tokio::test]
async fn subscriptions_need_a_dashboard_token() -> anyhow::Result<()> {
    let stack = Stack::start(false).await?;
    // No token, or a forged one: the connection is refused (closed without an ack).
    let forged = platform::JwtKeys::hs256(b"another secret").mint("eve", &[Role::Admin], 60)?;
    for init in [
        json!({}),
        json!({"Authorization": format!("Bearer {forged}")}),
    ] {
        let mut socket = graphql_ws(&stack, init.clone()).await;
        let answer = receive(&mut socket, Duration::from_secs(5)).await;
        assert!(
            answer
                .as_ref()
                .is_none_or(|m| m["type"] != "connection_ack"),
            "{init}: {answer:?}"
        );
    }
    // A customer: connected, but the subscription is refused as forbidden.
    let alice = stack.token("alice", &[Role::Customer]);
    let mut socket = connected(&stack, &alice).await;
    send(
        &mut socket,
        json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { sales { buckets { start } } }"}}),
    )
    .await;
    let refused = receive(&mut socket, Duration::from_secs(5))
        .await
        .expect("an answer");
    let errors = if refused["type"] == "error" {
        refused["payload"].clone()
    } else {
        refused["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "forbidden", "{refused}");
    stack.stop().await
}
