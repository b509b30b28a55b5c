//! `agora audit export`: the event log as NDJSON, one envelope per line, in log order
//! (`(transaction_id, position)`, the commit order), exactly the lines of
//! `GET /v1/audit/events`.
//!
//! The log is read in pages (`--page-size`, default 5,000 events per query) by one task,
//! each page's sequence numbers by a task of its own (one range query, while the next page
//! is read), and another serializes and writes the previous page, so memory stays bounded
//! by a few pages whatever the size of the log. The export ends at the end of the log as it was when
//! the export started (events committed later are left for the next export with `--after`),
//! so it terminates even while writers keep appending. With `--out FILE`, the file appears
//! only complete: it is written as `FILE.partial` and renamed at the end; without `--out`,
//! or with `--out -`, the lines go to stdout (e.g. into `agora audit verify --file -`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use eventstore::envelope::write_json_line;
use eventstore::xid8::Xid8;
use eventstore::{connect_pool, EventStore, LogCheckpoint, RecordedEvent};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::commands::DatabaseArgs;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Export the events after the event at this position (the `position` of the last line
    /// of a previous export); 0 or absent: from the start of the log.
    #[arg(long, value_name = "POSITION", value_parser = clap::value_parser!(i64).range(0..))]
    pub after: Option<i64>,
    /// Stop after this many events (default: the whole log).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Write to FILE instead of stdout (`-`: stdout, e.g. to pipe into `agora audit verify
    /// --file -`).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Events read per database query.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub page_size: i64,
}

/// Pages in flight between the reader and the writer.
const PAGES_IN_FLIGHT: usize = 2;

pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let store = EventStore::new(
        connect_pool(&args.database.database_url, 2).context("invalid database URL")?,
    );
    let start = match args.after {
        None | Some(0) => LogCheckpoint::START,
        Some(position) => store
            .checkpoint_of(position)
            .await
            .context("cannot read the event log")?
            .with_context(|| {
                format!(
                    "--after {position}: there is no event at position {position} \
                     (pass the position of an event already exported, e.g. the last line's)"
                )
            })?,
    };
    let horizon = log_horizon(&store).await?;

    let (sink, target) = open_sink(args.out.as_deref())?;
    let progress = progress_bar(args.out.as_deref().is_some_and(|out| !is_stdout(out)));
    let (pages, received) = mpsc::channel::<NumberedPage>(PAGES_IN_FLIGHT);
    let writer_progress = progress.clone();
    let runtime = tokio::runtime::Handle::current();
    let writer = tokio::task::spawn_blocking(move || {
        write_pages(sink, received, &runtime, &writer_progress)
    });

    // A task of the runtime, not the main thread: it then runs where the connection's task
    // wakes it, without a thread switch for every batch of rows.
    let reader = tokio::spawn(read_pages(
        store,
        start,
        horizon,
        args.limit,
        args.page_size,
        pages,
    ));
    let read = match reader.await {
        Ok(read) => read,
        Err(error) => Err(anyhow::Error::new(error).context("the reader task failed")),
    };
    // The writer's error (a full disk, a closed pipe) explains a failed send better than
    // the send itself, so it comes first.
    let outcome = match writer.await.context("the writer task failed") {
        Ok(Ok(written)) => read.map(|()| written),
        Ok(Err(error)) | Err(error) => Err(error),
    };
    progress.finish_and_clear();
    if let Some(target) = target {
        target.finish(outcome.is_ok())?;
    }
    let written = outcome?;

    let elapsed = started.elapsed();
    eprintln!(
        "exported {} events in {:.2}s ({:.0} events/s); {}",
        written.events,
        elapsed.as_secs_f64(),
        written.events as f64 / elapsed.as_secs_f64().max(1e-9),
        match written.last_position {
            Some(position) => format!("continue with --after {position}"),
            None => "nothing new".to_owned(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// What the writer wrote.
#[derive(Debug, Default)]
struct Written {
    events: u64,
    last_position: Option<i64>,
}

/// The transaction id below which every transaction has finished now: the export stops
/// there, so it ends even while writers keep appending.
async fn log_horizon(store: &EventStore) -> anyhow::Result<u64> {
    let client = store
        .pool()
        .get()
        .await
        .context("cannot connect to the event store")?;
    let row = client
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())", &[])
        .await
        .context("cannot read the event log")?;
    let horizon: Xid8 = row.try_get(0).context("cannot read the event log")?;
    Ok(horizon.0)
}

/// A page of the log whose sequence numbers are being read (by a task of its own, so the
/// next page is read meanwhile).
type NumberedPage = tokio::task::JoinHandle<anyhow::Result<Vec<RecordedEvent>>>;

/// Reads the log after `start`, page by page, and hands the pages to the writer, each with
/// its sequence numbers.
async fn read_pages(
    store: EventStore,
    start: LogCheckpoint,
    horizon: u64,
    limit: Option<u64>,
    page_size: i64,
    pages: mpsc::Sender<NumberedPage>,
) -> anyhow::Result<()> {
    let mut checkpoint = start;
    let mut remaining = limit.unwrap_or(u64::MAX);
    while remaining > 0 {
        let wanted = i64::try_from(remaining).map_or(page_size, |r| r.min(page_size));
        let mut page = store
            .read_log(checkpoint, wanted)
            .await
            .context("cannot read the event log")?;
        let full = page.len() as i64 == wanted;
        let before_horizon = page.partition_point(|e| e.transaction_id < horizon);
        let reached_horizon = before_horizon < page.len();
        page.truncate(before_horizon);
        let Some(last) = page.last() else { break };
        checkpoint = LogCheckpoint::after(last);
        remaining -= page.len() as u64;
        let numbering = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .attach_sequences(&mut page)
                    .await
                    .context("cannot read the log's sequence")?;
                Ok(page)
            }
        });
        if pages.send(numbering).await.is_err() {
            // The writer stopped: its error is reported by the caller.
            break;
        }
        if !full || reached_horizon {
            break;
        }
    }
    Ok(())
}

/// Where `--out` writes: `partial` while exporting, renamed to `path` once complete.
struct OutFile {
    partial: PathBuf,
    path: PathBuf,
}

impl OutFile {
    /// Renames the file into place when the export completed, removes it when not.
    fn finish(self, complete: bool) -> anyhow::Result<()> {
        if complete {
            std::fs::rename(&self.partial, &self.path).with_context(|| {
                format!(
                    "cannot rename {} to {}",
                    self.partial.display(),
                    self.path.display()
                )
            })
        } else {
            let _ = std::fs::remove_file(&self.partial);
            Ok(())
        }
    }
}

/// Stdout (no `--out`, or `--out -`), or `FILE.partial` for `--out FILE`.
fn open_sink(out: Option<&Path>) -> anyhow::Result<(Box<dyn Write + Send>, Option<OutFile>)> {
    let Some(path) = out.filter(|path| !is_stdout(path)) else {
        let stdout = io::stdout();
        super::widen_pipe(&stdout);
        return Ok((Box::new(stdout), None));
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let target = OutFile {
        partial,
        path: path.to_owned(),
    };
    Ok((Box::new(file), Some(target)))
}

/// Writes every page it receives, one envelope per line.
fn write_pages(
    sink: Box<dyn Write + Send>,
    mut pages: mpsc::Receiver<NumberedPage>,
    runtime: &tokio::runtime::Handle,
    progress: &ProgressBar,
) -> anyhow::Result<Written> {
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let mut written = Written::default();
    // A page's lines, written at once.
    let mut lines = Vec::with_capacity(1 << 22);
    while let Some(numbering) = pages.blocking_recv() {
        let page = runtime
            .block_on(numbering)
            .context("the numbering task failed")??;
        lines.clear();
        for event in &page {
            write_json_line(&mut lines, event).with_context(|| {
                format!("cannot serialize the event at position {}", event.position)
            })?;
            lines.push(b'\n');
        }
        out.write_all(&lines).context("cannot write the export")?;
        written.events += page.len() as u64;
        written.last_position = page.last().map(|e| e.position).or(written.last_position);
        progress.inc(page.len() as u64);
    }
    out.flush().context("cannot write the export")?;
    Ok(written)
}

/// `--out -`: the standard output.
fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// A spinner with the count and rate on stderr, drawn only when exporting to a file from
/// a terminal (indicatif hides itself when stderr is not a terminal).
fn progress_bar(to_file: bool) -> ProgressBar {
    if !to_file {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {human_pos} events exported ({per_sec}, {elapsed})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
