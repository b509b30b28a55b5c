//! The JSON report of a verification, the shape of `GET /v1/audit/verify`:
//! `{"ok", "streams_checked", "events_checked", "failures": [{"stream_id", "version", "reason"}]}`.

use eventstore::{ChainFailure, VerifyReport};
use serde::Serialize;
use uuid::Uuid;

/// One event that breaks its stream's chain. `stream_id` and `version` are `null` only for
/// an export line too damaged to say which event it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub stream_id: Option<Uuid>,
    pub version: Option<i64>,
    pub reason: String,
}

impl From<ChainFailure> for Failure {
    fn from(failure: ChainFailure) -> Self {
        Failure {
            stream_id: Some(failure.stream_id),
            version: Some(failure.version),
            reason: failure.reason,
        }
    }
}

/// The outcome of a verification, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    pub streams_checked: u64,
    pub events_checked: u64,
    pub failures: Vec<Failure>,
}

impl From<VerifyReport> for Report {
    fn from(report: VerifyReport) -> Self {
        Report {
            ok: report.ok(),
            streams_checked: report.streams_checked,
            events_checked: report.events_checked,
            failures: report.failures.into_iter().map(Failure::from).collect(),
        }
    }
}
