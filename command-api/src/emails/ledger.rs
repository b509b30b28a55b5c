//! The email ledger (table `emails`, migration `V25`): what the reactor decided to send, keyed
//! by (template, event id), and each attempt's outcome. It holds no personal data: the
//! recipient and everything personal are looked up at send time.

use chrono::{DateTime, Utc};
use eventstore::{Pool, StoreError};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

/// A row to add (from the log follower).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEmail {
    pub template: &'static str,
    pub event_id: Uuid,
    pub position: i64,
    pub order_id: Uuid,
    pub customer_id: String,
    pub details: Value,
}

/// Adds `emails` through the follower's `session` (in its batch's transaction); a row
/// already there for the same (template, event) is left alone. Returns how many were added.
pub async fn enqueue(
    session: &tokio_postgres::Client,
    emails: &[NewEmail],
) -> Result<u64, tokio_postgres::Error> {
    if emails.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = emails.iter().map(|_| Uuid::now_v7()).collect();
    let templates: Vec<&str> = emails.iter().map(|e| e.template).collect();
    let events: Vec<Uuid> = emails.iter().map(|e| e.event_id).collect();
    let positions: Vec<i64> = emails.iter().map(|e| e.position).collect();
    let orders: Vec<Uuid> = emails.iter().map(|e| e.order_id).collect();
    let customers: Vec<&str> = emails.iter().map(|e| e.customer_id.as_str()).collect();
    let details: Vec<&Value> = emails.iter().map(|e| &e.details).collect();
    session
        .execute(
            "INSERT INTO emails (id, template, event_id, position, order_id, customer_id, details) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::int8[], $5::uuid[], \
                                  $6::text[], $7::jsonb[]) \
             ON CONFLICT (template, event_id) DO NOTHING",
            &[&ids, &templates, &events, &positions, &orders, &customers, &details],
        )
        .await
}

/// A row taken to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub id: Uuid,
    pub template: String,
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub customer_id: String,
    pub details: Value,
    /// Including this attempt.
    pub attempts: i32,
}

/// Takes up to `limit` rows that are due (pending and due, or sending with an expired lease:
/// its sender died), oldest first: each gets a lease of `lease` and one more attempt,
/// committed before anything is sent, so no other sender takes it meanwhile.
pub async fn claim(
    pool: &Pool,
    limit: i64,
    lease: std::time::Duration,
) -> Result<Vec<Due>, StoreError> {
    let client = pool.get().await?;
    let lease_ms = lease.as_millis() as i64;
    let rows = client
        .query(
            "UPDATE emails SET status = 'sending', attempts = attempts + 1, \
                 lease_until = now() + make_interval(secs => $2::float8 / 1000) \
             WHERE id IN ( \
                 SELECT id FROM emails \
                 WHERE (status = 'pending' AND next_attempt_at <= now()) \
                    OR (status = 'sending' AND lease_until < now()) \
                 ORDER BY position, template LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, template, event_id, order_id, customer_id, details, attempts",
            &[&limit, &(lease_ms as f64)],
        )
        .await?;
    let mut due: Vec<Due> = rows
        .iter()
        .map(|row| {
            Ok(Due {
                id: row.try_get(0)?,
                template: row.try_get(1)?,
                event_id: row.try_get(2)?,
                order_id: row.try_get(3)?,
                customer_id: row.try_get(4)?,
                details: row.try_get(5)?,
                attempts: row.try_get(6)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    due.sort_by_key(|d| d.id);
    Ok(due)
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent,
    /// Not sent, on purpose: why (`erased`, `no_address`, `opted_out`, ...).
    Skipped(&'static str),
    /// Try again at the given time.
    RetryAt(DateTime<Utc>, String),
    Failed(String),
}

/// Records the outcome of `due`'s attempt, unless another sender took the row since (its
/// lease expired): then nothing changes. Returns whether it was recorded.
pub async fn record(pool: &Pool, due: &Due, outcome: &Outcome) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let (status, next, error): (&str, Option<DateTime<Utc>>, Option<&str>) = match outcome {
        Outcome::Sent => ("sent", None, None),
        Outcome::Skipped(reason) => ("skipped", None, Some(reason)),
        Outcome::RetryAt(at, error) => ("pending", Some(*at), Some(error.as_str())),
        Outcome::Failed(error) => ("failed", None, Some(error.as_str())),
    };
    let updated = client
        .execute(
            "UPDATE emails SET status = $3, lease_until = NULL, \
                 next_attempt_at = coalesce($4, next_attempt_at), last_error = $5, \
                 sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END \
             WHERE id = $1 AND attempts = $2 AND status = 'sending'",
            &[&due.id, &due.attempts, &status, &next, &error],
        )
        .await?;
    Ok(updated == 1)
}

/// One email as `GET /v1/emails` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EmailRow {
    pub id: Uuid,
    /// `order_placed`, `order_paid`, `order_shipped`, `refunded` or `order_expired`.
    pub template: String,
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub customer_id: String,
    /// `pending`, `sending`, `sent`, `failed` or `skipped`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    #[schema(required = true)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[schema(required = true)]
    pub sent_at: Option<DateTime<Utc>>,
    /// `<template.event-id@domain>`: the same for every attempt.
    pub message_id: String,
}

const COLUMNS: &str = "id, template, event_id, order_id, customer_id, status, attempts, \
                       next_attempt_at, last_error, created_at, sent_at";

fn email_row(row: &Row, domain: &str) -> Result<EmailRow, tokio_postgres::Error> {
    let template: String = row.try_get(1)?;
    let event_id: Uuid = row.try_get(2)?;
    Ok(EmailRow {
        id: row.try_get(0)?,
        message_id: message_id(&template, event_id, domain),
        template,
        event_id,
        order_id: row.try_get(3)?,
        customer_id: row.try_get(4)?,
        status: row.try_get(5)?,
        attempts: row.try_get(6)?,
        next_attempt_at: row.try_get(7)?,
        last_error: row.try_get(8)?,
        created_at: row.try_get(9)?,
        sent_at: row.try_get(10)?,
    })
}

/// The `Message-ID` of (template, event): every attempt of one email carries the same one,
/// so a receiving server or a person can tell a repeated delivery for what it is.
pub fn message_id(template: &str, event_id: Uuid, domain: &str) -> String {
    format!("<{template}.{event_id}@{domain}>")
}

/// The newest `limit` emails, of `status` when given.
pub async fn list(
    pool: &Pool,
    status: Option<&str>,
    limit: i64,
    domain: &str,
) -> Result<Vec<EmailRow>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM emails WHERE $1::text IS NULL OR status = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $2"
            ),
            &[&status, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| email_row(row, domain).map_err(StoreError::from))
        .collect()
}

/// Puts a `failed` email back to `pending` (attempts start over). `None` when there is no
/// such email; `Err(status)` when it is not failed.
pub async fn retry(
    pool: &Pool,
    id: Uuid,
    domain: &str,
) -> Result<Option<Result<EmailRow, String>>, StoreError> {
    let client = pool.get().await?;
    let updated = client
        .query_opt(
            &format!(
                "UPDATE emails SET status = 'pending', attempts = 0, next_attempt_at = now(), \
                     last_error = NULL \
                 WHERE id = $1 AND status = 'failed' RETURNING {COLUMNS}"
            ),
            &[&id],
        )
        .await?;
    if let Some(row) = updated {
        return Ok(Some(Ok(email_row(&row, domain)?)));
    }
    let status = client
        .query_opt("SELECT status FROM emails WHERE id = $1", &[&id])
        .await?;
    Ok(match status {
        Some(row) => Some(Err(row.try_get(0)?)),
        None => None,
    })
}

/// Emails waiting to be sent (pending or being sent).
pub async fn pending_count(pool: &Pool) -> Result<i64, StoreError> {
    let client = pool.get().await?;
    Ok(client
        .query_one(
            "SELECT count(*) FROM emails WHERE status IN ('pending', 'sending')",
            &[],
        )
        .await?
        .try_get(0)?)
}
