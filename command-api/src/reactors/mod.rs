//! Reactors: asynchronous work driven by the log, never inside a command's request.
//!
//! Each is a [`eventstore::follower`] (one active instance across all processes, by
//! advisory lock, with standbys; a checkpoint saved with its effects; at least once with
//! idempotent effects) plus the work its active instance does:
//! - [`expiry`]: unpaid orders expire after `AGORA_ORDER_PAYMENT_TTL`.
//! - [`crate::webhooks::delivery`]: events go out to webhook subscribers.
//! - [`crate::emails::reactor`]: customers get an email for what happened to their orders.
//!
//! Metrics: `expiry_reactor_*` and `webhook_reactor_*` (`_leader`, `_lag_seconds`,
//! `_lag_events`, `_events_total`, `_failures_total`), `orders_expired_total`,
//! `webhook_deliveries_total{outcome}`, `webhook_deliveries_pending`.

pub mod backoff;
pub mod expiry;

use std::sync::Arc;
use std::time::Duration;

use eventstore::follower::{run_follower, FollowerConfig, FollowerStatus};
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::execution::Engine;
use crate::webhooks::delivery::{run_dispatcher, FanOut};
use crate::webhooks::WebhookSettings;

/// The advisory lock electing the active expiry reactor.
pub const EXPIRY_LOCK_KEY: i64 = 0x4147_4f52_415f_4558;
/// The advisory lock electing the active webhook reactor.
pub const WEBHOOK_LOCK_KEY: i64 = 0x4147_4f52_415f_5748;
/// The advisory lock electing the active email reactor.
pub const EMAIL_LOCK_KEY: i64 = 0x4147_4f52_415f_454d;

/// Where each reactor of this process stands (for `/readyz`).
#[derive(Debug, Clone, Default)]
pub struct ReactorStatuses {
    pub expiry: Option<FollowerStatus>,
    pub webhooks: Option<FollowerStatus>,
    pub emails: Option<FollowerStatus>,
}

/// The reactors' states as `/readyz` shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReactorReport {
    /// `active`, `standby` (another instance is active) or `disconnected`; absent when
    /// the reactor does not run in this process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<&'static str>,
}

impl ReactorStatuses {
    pub fn report(&self) -> ReactorReport {
        let name = |status: &FollowerStatus| match status.get() {
            eventstore::follower::FollowerState::Active => "active",
            eventstore::follower::FollowerState::Standby => "standby",
            eventstore::follower::FollowerState::Disconnected => "disconnected",
        };
        ReactorReport {
            expiry: self.expiry.as_ref().map(name),
            webhooks: self.webhooks.as_ref().map(name),
            emails: self.emails.as_ref().map(name),
        }
    }
}

/// The running reactors of this process.
pub struct Reactors {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Reactors {
    /// Starts the expiry reactor and, with `webhooks`, the webhook reactor.
    pub fn spawn(
        database_url: &str,
        engine: Arc<Engine>,
        payment_ttl: Duration,
        payments: Arc<crate::payments::Payments>,
        webhooks: Option<WebhookSettings>,
        emails: Option<crate::emails::reactor::Sender>,
        statuses: &ReactorStatuses,
    ) -> Reactors {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(status) = &statuses.expiry {
            let config =
                FollowerConfig::new(database_url, "expiry", EXPIRY_LOCK_KEY, "expiry_reactor");
            tasks.push(tokio::spawn(run_follower(
                config,
                engine.store.clone(),
                expiry::Tracker,
                status.clone(),
                stopped.clone(),
            )));
            tasks.push(tokio::spawn(expiry::run_expirer(
                engine.clone(),
                payments,
                payment_ttl,
                status.clone(),
                stopped.clone(),
            )));
        }
        if let (Some(settings), Some(status)) = (webhooks, &statuses.webhooks) {
            let wake = Arc::new(Notify::new());
            let config = FollowerConfig::new(
                database_url,
                "webhooks",
                WEBHOOK_LOCK_KEY,
                "webhook_reactor",
            );
            tasks.push(tokio::spawn(run_follower(
                config,
                engine.store.clone(),
                FanOut { wake: wake.clone() },
                status.clone(),
                stopped.clone(),
            )));
            tasks.push(tokio::spawn(run_dispatcher(
                engine.store.clone(),
                settings,
                status.clone(),
                wake,
                stopped.clone(),
            )));
        }
        if let (Some(sender), Some(status)) = (emails, &statuses.emails) {
            let wake = Arc::new(Notify::new());
            let config =
                FollowerConfig::new(database_url, "emails", EMAIL_LOCK_KEY, "email_reactor");
            tasks.push(tokio::spawn(run_follower(
                config,
                engine.store.clone(),
                crate::emails::reactor::Ledger { wake: wake.clone() },
                status.clone(),
                stopped.clone(),
            )));
            tasks.push(tokio::spawn(crate::emails::reactor::run_sender(
                sender,
                status.clone(),
                wake,
                stopped,
            )));
        }
        Reactors { stop, tasks }
    }

    /// Stops every reactor: the batch in hand commits (or rolls back) first.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
