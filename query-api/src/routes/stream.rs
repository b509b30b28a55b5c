//! `GET /v1/dashboard/stream` (`admin`, `viewer`): server-sent events. An event `sales` or
//! `top_products`, its data the same JSON as `GET /v1/dashboard/sales` (default window)
//! or `GET /v1/dashboard/top-products` (default limit) answers, first the latest of each
//! and then whenever that read model changes; a comment heartbeat every
//! `AGORA_SSE_HEARTBEAT_SECS` (15). The stream ends when the caller's token expires. Too
//! many subscribers at once: 503 `too_many_subscribers`; one caller holding its share
//! already ([`crate::live::SUBSCRIBERS_PER_SUBJECT`]): 429 `rate_limited`. A client that falls behind is disconnected (see [`crate::live`]).

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use futures::{stream, Stream, StreamExt};
use platform::{Caller, Problem};

use super::{AppState, DASHBOARD_ROLES};
use crate::live::{Subscription, Update};

/// `GET /v1/dashboard/stream`.
pub async fn stream(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    caller.require_any(DASHBOARD_ROLES)?;
    let subscription = state.live.subscribe(&caller)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies (the compose stack's nginx) must pass events on at once.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events(subscription, state.heartbeat)))
}

/// One SSE event.
fn event(update: &Update) -> Bytes {
    Bytes::from(format!(
        "event: {}\ndata: {}\n\n",
        update.event(),
        update.json
    ))
}

/// The response body: the updates as events, interleaved with heartbeats, until the
/// subscription ends.
fn events(
    subscription: Subscription,
    heartbeat: Duration,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let updates = subscription.into_stream().boxed();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let opening = stream::once(async { Ok(Bytes::from_static(b": connected\n\n")) });
    opening.chain(stream::unfold(
        (updates, ticks),
        |(mut updates, mut ticks)| async move {
            let chunk = tokio::select! {
                update = updates.next() => event(&update?),
                _ = ticks.tick() => Bytes::from_static(b": heartbeat\n\n"),
            };
            Some((Ok(chunk), (updates, ticks)))
        },
    ))
}
