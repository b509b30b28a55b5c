//! What the fault tests share: `scripts/faults.sh` and `scripts/kafka.sh`, readiness probes, and one run of the
//! workload with its history checked at the end.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::checker::{self, Report};
use e2e::history::{History, Outcome};
use e2e::workload::{self, Product, ReadCounts, StopFlag};
use platform::Role;
use serde_json::json;

use super::Stack;

/// Runs `scripts/faults.sh ACTION`; returns what it printed.
pub fn faults_script(action: &str) -> anyhow::Result<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/faults.sh");
    let output = Command::new("bash").arg(script).arg(action).output()?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/faults.sh {action} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// Runs `scripts/kafka.sh ACTION` (start, stop) on the shared test broker.
pub fn kafka_script(action: &str) -> anyhow::Result<()> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
    let status = Command::new("bash").arg(script).arg(action).status()?;
    anyhow::ensure!(status.success(), "scripts/kafka.sh {action} failed");
    Ok(())
}

/// The shared broker's listener for a fault proxy (`scripts/kafka.sh proxied`): the address
/// it listens on, and the one it advertises, where the proxy must listen.
pub fn kafka_proxied() -> anyhow::Result<(String, String)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
    let output = Command::new("bash").arg(script).arg("proxied").output()?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/kafka.sh proxied failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let mut addresses = text.split_whitespace().map(str::to_owned);
    match (addresses.next(), addresses.next()) {
        (Some(listener), Some(advertised)) => Ok((listener, advertised)),
        _ => anyhow::bail!("scripts/kafka.sh proxied printed {text:?}"),
    }
}

/// Starts the shared broker again after it was killed: a killed broker's accepted
/// connections linger in TIME_WAIT for a minute and Kafka binds its listener without
/// SO_REUSEADDR, so a start can fail with "Address already in use" until they are gone;
/// each failed start is retried until `deadline`.
pub fn restart_kafka(deadline: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    loop {
        match kafka_script("start") {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() < until => {
                eprintln!("{error}; trying again");
                std::thread::sleep(Duration::from_secs(2));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Starts the shared broker again when dropped, so a test that stopped or killed it leaves
/// Kafka running even when it fails.
pub struct BrokerBack;

impl Drop for BrokerBack {
    fn drop(&mut self) {
        let _ = kafka_script("start");
    }
}

/// The status of `GET {base}/readyz`, or None when nothing answered.
pub async fn readyz(base: &str) -> Option<u16> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let response = http.get(format!("{base}/readyz")).send().await.ok()?;
    Some(response.status().as_u16())
}

/// The three services' base URLs: command API, query API, projector.
pub fn services(stack: &Stack) -> Vec<String> {
    let mut bases = vec![stack.command.clone(), stack.query.clone()];
    if let Some(projector) = &stack.projector {
        bases.push(format!("http://127.0.0.1:{}", projector.port));
    }
    bases
}

/// Waits until every service's `/readyz` answers `status`.
pub async fn all_ready_are(stack: &Stack, status: u16, deadline: Duration) -> anyhow::Result<()> {
    let bases = services(stack);
    stack
        .eventually(
            &format!("every /readyz to answer {status}"),
            deadline,
            || {
                let bases = bases.clone();
                async move {
                    for base in &bases {
                        if readyz(base).await != Some(status) {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                }
            },
        )
        .await
}

/// The workload running against a stack: writers recording into `history`, readers counting.
pub struct Load {
    pub history: Arc<History>,
    pub reads: Arc<ReadCounts>,
    pub products: Arc<Vec<Product>>,
    stop: StopFlag,
    tasks: Vec<tokio::task::JoinHandle<u64>>,
}

impl Load {
    /// Creates `products` products with plenty of stock, then starts `writers` writers and
    /// `readers` readers; each command attempt gives up after `timeout`.
    pub async fn start(
        stack: &Stack,
        products: usize,
        writers: usize,
        readers: usize,
        timeout: Duration,
    ) -> anyhow::Result<Load> {
        let mut made = Vec::new();
        for index in 0..products {
            let price_cents = 500 + 100 * index as i64;
            let (id, _) = stack
                .ok(
                    "/v1/products",
                    &stack.admin,
                    json!({"sku": format!("FAULT-{index}"), "name": format!("Fault {index}"),
                           "price_cents": price_cents, "currency": "EUR", "initial_stock": 50}),
                )
                .await?;
            made.push(Product { id, price_cents });
        }
        let viewer = stack.token("fault-viewer", &[Role::Viewer]);
        for product in &made {
            stack
                .read_at(&format!("/v1/products/{}", product.id), &viewer, 1)
                .await?;
        }
        let products = Arc::new(made);
        let history = Arc::new(History::new(&stack.command, timeout)?);
        let reads = Arc::new(ReadCounts::default());
        let stop = StopFlag::default();
        let mut tasks = Vec::new();
        for index in 0..writers {
            let customer = stack.token(&format!("fault-customer-{index}"), &[Role::Customer]);
            tasks.push(tokio::spawn(workload::writer(
                history.clone(),
                products.clone(),
                stack.admin.clone(),
                customer,
                stop.clone(),
            )));
        }
        for _ in 0..readers {
            let (query, viewer, products, reads, stop) = (
                stack.query.clone(),
                viewer.clone(),
                products.clone(),
                reads.clone(),
                stop.clone(),
            );
            tasks.push(tokio::spawn(async move {
                workload::reader(query, viewer, products, reads, stop).await;
                0
            }));
        }
        Ok(Load {
            history,
            reads,
            products,
            stop,
            tasks,
        })
    }

    /// Waits until `more` further commands were acknowledged.
    pub async fn acknowledge(
        &self,
        stack: &Stack,
        more: usize,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let target = self.history.counts().0 + more;
        let history = self.history.clone();
        stack
            .eventually(&format!("{target} acknowledged commands"), deadline, || {
                let history = history.clone();
                async move { Ok(history.counts().0 >= target) }
            })
            .await
    }

    /// Waits until `more` further commands had no definite answer.
    pub async fn lose_answers(
        &self,
        stack: &Stack,
        more: usize,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        let target = self.history.counts().1 + more;
        let history = self.history.clone();
        stack
            .eventually(
                &format!("{target} commands without an answer"),
                deadline,
                || {
                    let history = history.clone();
                    async move { Ok(history.counts().1 >= target) }
                },
            )
            .await
    }

    /// Stops the load, resolves every unknown outcome by repeating the command with its key,
    /// and checks the history against the store and (once caught up) the read models.
    pub async fn stop_and_check(self, stack: &Stack) -> anyhow::Result<(Report, Summary)> {
        self.stop.raise();
        let mut sent = 0;
        for task in self.tasks {
            sent += task.await?;
        }
        // Whatever a first attempt appended is in the store by now (the writers are done):
        // an unknown command acknowledged at or below this position was applied by its first
        // attempt, whose answer was lost.
        let watermark = checker::max_position(&stack.db.url).await?;
        let resolving = Instant::now();
        let resolved = self
            .history
            .resolve_unknown(Duration::from_secs(120))
            .await?;
        let resolve_time = resolving.elapsed();
        let answers_lost_after_commit = self
            .history
            .entries()
            .iter()
            .filter(|entry| entry.first.is_unknown())
            .filter(|entry| {
                matches!(entry.resolved, Some(Outcome::Acknowledged { position, .. }) if position <= watermark)
            })
            .count();
        let events = checker::load_events(&stack.db.url).await?;
        let entries = self.history.entries();
        let (mut report, folds) = checker::check_store(&entries, &events);
        let viewer = stack.token("fault-checker", &[Role::Viewer]);
        checker::compare_read_models(
            &folds,
            &stack.query,
            &viewer,
            Duration::from_secs(180),
            &mut report,
        )
        .await?;
        let summary = Summary {
            sent,
            resolved,
            answers_lost_after_commit,
            resolve_time,
            reads_ok: self.reads.ok.load(Ordering::Relaxed),
            reads_unavailable: self.reads.unavailable.load(Ordering::Relaxed),
            reads_other: self.reads.other.load(Ordering::Relaxed),
            reads_other_samples: self
                .reads
                .other_samples
                .lock()
                .map(|samples| samples.clone())
                .unwrap_or_default(),
        };
        Ok((report, summary))
    }
}

/// What every fault run must end with: the history clean (nothing lost or applied twice,
/// the read models equal to the log) and every read answered 200 or 503.
pub fn assert_survived(report: &Report, summary: &Summary) -> anyhow::Result<()> {
    report.assert_clean()?;
    anyhow::ensure!(
        summary.reads_other == 0,
        "reads answered neither 200 nor 503: {summary:?}"
    );
    Ok(())
}

/// [`assert_survived`] after a fault of Kafka alone: besides, no command went unanswered,
/// since the broker is not on the write path.
pub fn assert_survived_off_the_write_path(
    report: &Report,
    summary: &Summary,
) -> anyhow::Result<()> {
    assert_survived(report, summary)?;
    anyhow::ensure!(
        report.unknown == 0,
        "the broker is not on the write path: {report:?}"
    );
    Ok(())
}

/// Counts of a run besides the checker's report.
#[derive(Debug)]
pub struct Summary {
    pub sent: u64,
    pub resolved: usize,
    /// Unknown outcomes whose first attempt had committed (the repeat answered with the
    /// stored response).
    pub answers_lost_after_commit: usize,
    pub resolve_time: Duration,
    pub reads_ok: u64,
    pub reads_unavailable: u64,
    pub reads_other: u64,
    pub reads_other_samples: Vec<String>,
}
