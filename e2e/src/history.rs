//! A client history: every command a test sends during faults, with what came back.
//!
//! Each command carries its own `Idempotency-Key` and `X-Correlation-Id` (the command API
//! stores the latter in every event's metadata), so the checker ([`crate::checker`]) can
//! find what a command appended. An answer is one of three [`Outcome`]s: acknowledged (2xx),
//! refused (4xx: nothing may have been appended) or unknown (a timeout, a cut connection, a
//! 5xx: the command may or may not have been applied, but never twice). An unknown outcome is
//! resolved afterwards by sending the same command again with its key.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

/// What one attempt at a command came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the command's events are in the store at this position, its stream at `version`.
    Acknowledged {
        status: u16,
        id: Uuid,
        version: i64,
        position: i64,
    },
    /// 4xx: a definite refusal; nothing was appended.
    Refused { status: u16, code: String },
    /// No definite answer (timeout, connection cut, 5xx).
    Unknown { reason: String },
}

impl Outcome {
    pub fn is_unknown(&self) -> bool {
        matches!(self, Outcome::Unknown { .. })
    }
}

/// One command as sent: where, by whom, with which body and keys.
#[derive(Debug, Clone)]
pub struct Command {
    pub path: String,
    pub token: String,
    pub body: Value,
    pub idempotency_key: String,
    pub correlation_id: String,
}

impl Command {
    /// A command with fresh keys.
    pub fn new(path: impl Into<String>, token: &str, body: Value) -> Command {
        Command {
            path: path.into(),
            token: token.to_owned(),
            body,
            idempotency_key: format!("hist-{}", Uuid::new_v4().simple()),
            correlation_id: format!("hist-{}", Uuid::new_v4().simple()),
        }
    }
}

/// A command and its outcomes: the first attempt's, and the resolution of an unknown one.
#[derive(Debug, Clone)]
pub struct Entry {
    pub command: Command,
    pub first: Outcome,
    pub resolved: Option<Outcome>,
    pub sent_at: Instant,
}

impl Entry {
    /// The definite outcome when there is one: the resolution, else the first answer.
    pub fn outcome(&self) -> &Outcome {
        self.resolved.as_ref().unwrap_or(&self.first)
    }
}

/// Sends commands to the command API and records each with its outcome.
pub struct History {
    http: reqwest::Client,
    command_url: String,
    entries: Mutex<Vec<Entry>>,
}

impl History {
    /// A history of commands to the command API at `command_url`; each attempt gives up
    /// after `timeout` (its outcome is then unknown).
    pub fn new(command_url: &str, timeout: Duration) -> anyhow::Result<History> {
        Ok(History {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .pool_max_idle_per_host(64)
                .build()?,
            command_url: command_url.trim_end_matches('/').to_owned(),
            entries: Mutex::new(Vec::new()),
        })
    }

    /// Sends `command` once and records it.
    pub async fn send(&self, command: Command) -> Outcome {
        let sent_at = Instant::now();
        let outcome = self.attempt(&command).await;
        self.lock().push(Entry {
            command,
            first: outcome.clone(),
            resolved: None,
            sent_at,
        });
        outcome
    }

    /// Sends `command` once without recording it, for a request whose success is not a
    /// command's answer (a checkout answers the payment to complete at the provider, with no
    /// version or position): the 2xx body, or why there is none (`Err` with the outcome, a
    /// refusal or no definite answer). A checkout is idempotent by itself (asking again
    /// returns the open payment), so the history records the confirmation that follows it.
    pub async fn call(&self, command: &Command) -> Result<Value, Outcome> {
        let response = self.post(command).await.map_err(|error| Outcome::Unknown {
            reason: format!("transport: {error}"),
        })?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|error| Outcome::Unknown {
            reason: format!("{status}, body unreadable: {error}"),
        })?;
        if status.is_success() {
            Ok(body)
        } else if status.is_client_error() {
            Err(Outcome::Refused {
                status: status.as_u16(),
                code: body["code"].as_str().unwrap_or_default().to_owned(),
            })
        } else {
            Err(Outcome::Unknown {
                reason: format!("{status}: {body}"),
            })
        }
    }

    /// Sends every command whose outcome is unknown again, with its key, until each has a
    /// definite answer or `deadline` passes. Returns how many were resolved.
    pub async fn resolve_unknown(&self, deadline: Duration) -> anyhow::Result<usize> {
        let until = Instant::now() + deadline;
        let pending: Vec<usize> = self
            .lock()
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.first.is_unknown())
            .map(|(index, _)| index)
            .collect();
        for index in &pending {
            let command = self.lock()[*index].command.clone();
            loop {
                let outcome = self.attempt(&command).await;
                if !outcome.is_unknown() {
                    self.lock()[*index].resolved = Some(outcome);
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < until,
                    "command {} {} still has no answer: {outcome:?}",
                    command.path,
                    command.correlation_id
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(pending.len())
    }

    /// How many commands so far had their first attempt acknowledged, and how many had no
    /// definite answer.
    pub fn counts(&self) -> (usize, usize) {
        let entries = self.lock();
        let acknowledged = entries
            .iter()
            .filter(|e| matches!(e.first, Outcome::Acknowledged { .. }))
            .count();
        let unknown = entries.iter().filter(|e| e.first.is_unknown()).count();
        (acknowledged, unknown)
    }

    /// A copy of every entry so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // A panicking writer cannot leave the list half-updated: every change is one push
        // or one assignment.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// POSTs `command` with its keys.
    async fn post(&self, command: &Command) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{}{}", self.command_url, command.path))
            .bearer_auth(&command.token)
            .header("Idempotency-Key", &command.idempotency_key)
            .header("X-Correlation-Id", &command.correlation_id)
            .json(&command.body)
            .send()
            .await
    }

    async fn attempt(&self, command: &Command) -> Outcome {
        let response = self.post(command).await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                return Outcome::Unknown {
                    reason: format!("transport: {error}"),
                }
            }
        };
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(error) => {
                return Outcome::Unknown {
                    reason: format!("{status}, body unreadable: {error}"),
                }
            }
        };
        if status.is_success() {
            let id = body["id"].as_str().and_then(|id| id.parse().ok());
            match (id, body["version"].as_i64(), body["position"].as_i64()) {
                (Some(id), Some(version), Some(position)) => Outcome::Acknowledged {
                    status: status.as_u16(),
                    id,
                    version,
                    position,
                },
                _ => Outcome::Unknown {
                    reason: format!("{status} without id, version and position: {body}"),
                },
            }
        } else if status.is_client_error() {
            Outcome::Refused {
                status: status.as_u16(),
                code: body["code"].as_str().unwrap_or_default().to_owned(),
            }
        } else {
            Outcome::Unknown {
                reason: format!("{status}: {body}"),
            }
        }
    }
}
