//! Webhook subscriptions in the log (stream type `webhook`, one stream per subscription,
//! its id the subscription's id): who subscribed which URL to which event types, and who
//! removed it. A subscription is where a malicious admin would send the shop's data, so
//! every change of one is an event an auditor can find, chained, sequenced and signed like
//! every other; the subscription's secret is never in it.
//!
//! The subscriptions themselves (with their sealed secrets and delivery logs) live in the
//! command side's tables; each change of them is written in the same transaction as its
//! event here.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::stored::stored_events;
use crate::values::ActorId;

/// The stream type of webhook subscription streams.
pub const STREAM_TYPE: &str = "webhook";

/// Payload of `WebhookSubscribed`: a URL now receives every event of these types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSubscribed {
    pub subscription_id: Uuid,
    /// The target, as checked when it was subscribed.
    pub url: String,
    /// The event types it receives.
    pub event_types: Vec<String>,
    /// The admin who subscribed it.
    pub subscribed_by: ActorId,
}

/// Payload of `WebhookUnsubscribed`: the subscription was deleted; nothing more is sent to
/// its URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookUnsubscribed {
    pub subscription_id: Uuid,
    /// The admin who deleted it.
    pub unsubscribed_by: ActorId,
}

stored_events!(
    /// An event of a webhook subscription's stream.
    WebhookEvent, stream_type = STREAM_TYPE, {
        /// See [`WebhookSubscribed`].
        WebhookSubscribed,
        /// See [`WebhookUnsubscribed`].
        WebhookUnsubscribed,
    }
);

/// A subscription as its events tell it: what an auditor reads back. `Default` is "never
/// subscribed".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSubscription {
    pub subscription_id: Option<Uuid>,
    pub url: Option<String>,
    pub event_types: Vec<String>,
    pub subscribed_by: Option<ActorId>,
    /// Who deleted it, once deleted.
    pub unsubscribed_by: Option<ActorId>,
}

impl WebhookSubscription {
    /// Applies one event.
    pub fn apply(&mut self, event: WebhookEvent) {
        match event {
            WebhookEvent::WebhookSubscribed(subscribed) => {
                self.subscription_id = Some(subscribed.subscription_id);
                self.url = Some(subscribed.url);
                self.event_types = subscribed.event_types;
                self.subscribed_by = Some(subscribed.subscribed_by);
            }
            WebhookEvent::WebhookUnsubscribed(unsubscribed) => {
                self.subscription_id = Some(unsubscribed.subscription_id);
                self.unsubscribed_by = Some(unsubscribed.unsubscribed_by);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let id = Uuid::from_u128(7);
        let events: Vec<WebhookEvent> = vec![
            WebhookSubscribed {
                subscription_id: id,
                url: "https://erp.example.com/agora".into(),
                event_types: vec!["OrderPaid".into()],
                subscribed_by: ActorId::parse("root").unwrap(),
            }
            .into(),
            WebhookUnsubscribed {
                subscription_id: id,
                unsubscribed_by: ActorId::parse("root").unwrap(),
            }
            .into(),
        ];
        let mut folded = WebhookSubscription::default();
        for event in events {
            folded.apply(event.clone());
            let back = WebhookEvent::from_stored(
                event.event_type(),
                event.schema_version(),
                &event.payload(),
            )
            .unwrap();
            assert_eq!(back, event);
        }
        assert_eq!(folded.url.as_deref(), Some("https://erp.example.com/agora"));
        assert_eq!(folded.unsubscribed_by.unwrap().as_str(), "root");
        assert!(WebhookEvent::from_stored(
            "WebhookSubscribed",
            1,
            &serde_json::json!({"subscription_id": id, "url": "x", "event_types": [],
                                "subscribed_by": "root", "secret": "leak"})
        )
        .is_err());
    }
}
