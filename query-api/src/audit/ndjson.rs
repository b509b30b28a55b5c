//! NDJSON bodies of recorded events, streamed page by page: one line per event (the
//! envelope of API.md, exactly `eventstore::envelope::to_json_line`), pages of at most
//! [`PAGE_SIZE`] events. At most two pages are held at a time: the one being encoded and
//! sent, and the next one, read in the background meanwhile (so the store's latency and
//! the encoding overlap). An export of 10,000 events never sits in memory whole.
//!
//! The first page is read before the response starts, so a store that cannot be reached
//! still gets a proper problem+json answer. A failure on a later page can only abort the
//! body (the status is already sent): the client sees a truncated chunked response, never
//! a silently short one, and the error is logged.

use actix_web::web::Bytes;
use eventstore::envelope::to_json_line;
use eventstore::{EventStore, LogCheckpoint, RecordedEvent, StoreError};
use futures::{Stream, TryStreamExt};
use tokio::task::{JoinError, JoinHandle};
use uuid::Uuid;

use super::store::stream_page;

/// The most events read from the store at a time.
pub const PAGE_SIZE: i64 = 1000;

/// Where the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// In the global log, after this checkpoint (log order).
    Log(LogCheckpoint),
    /// In one stream, after this version (version order).
    Stream { stream_id: Uuid, version: i64 },
    /// In the sequenced log, after this sequence (sequence order).
    Sequence(i64),
}

impl Cursor {
    async fn fetch(
        &self,
        store: &EventStore,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut page = match *self {
            Cursor::Log(checkpoint) => store.read_log(checkpoint, limit).await?,
            Cursor::Stream { stream_id, version } => {
                stream_page(store.pool(), stream_id, version, limit).await?
            }
            Cursor::Sequence(after) => return store.read_sequenced(after, limit).await,
        };
        store.attach_sequences(&mut page).await?;
        Ok(page)
    }

    fn advance(&mut self, last: &RecordedEvent) {
        match self {
            Cursor::Log(checkpoint) => *checkpoint = LogCheckpoint::after(last),
            Cursor::Stream { version, .. } => *version = last.version,
            Cursor::Sequence(after) => *after = last.sequence.unwrap_or(*after),
        }
    }
}

/// Why a page could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode an event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the page read failed: {0}")]
    Task(#[from] JoinError),
}

/// A page being read in the background.
struct InFlight {
    wanted: i64,
    read: JoinHandle<Result<Vec<RecordedEvent>, StoreError>>,
}

/// A walk over at most `limit` events from a cursor. The next page is read in the
/// background while the current one is encoded and sent.
pub struct Pages {
    store: EventStore,
    cursor: Cursor,
    remaining: i64,
    /// A page came back shorter than asked: the walk has reached the end for now.
    caught_up: bool,
    /// The first page, read by [`Pages::start`].
    first: Option<Vec<RecordedEvent>>,
    in_flight: Option<InFlight>,
}

impl Pages {
    /// Reads the first page (so a failure is still an error answer) and returns the walk.
    /// Must run on the actix (tokio `LocalSet`) runtime.
    pub async fn start(store: EventStore, cursor: Cursor, limit: i64) -> Result<Pages, PageError> {
        let mut pages = Pages {
            store,
            cursor,
            remaining: limit.max(0),
            caught_up: false,
            first: None,
            in_flight: None,
        };
        pages.launch();
        let first = pages.receive().await?;
        pages.first = Some(first);
        Ok(pages)
    }

    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.first.as_ref().is_some_and(Vec::is_empty)
    }

    /// Starts reading the next page, unless the walk is over.
    fn launch(&mut self) {
        if self.caught_up || self.remaining == 0 {
            return;
        }
        let wanted = self.remaining.min(PAGE_SIZE);
        let (store, cursor) = (self.store.clone(), self.cursor);
        let read = actix_web::rt::spawn(async move { cursor.fetch(&store, wanted).await });
        self.in_flight = Some(InFlight { wanted, read });
    }

    /// The page in flight (empty when none is), with the one after it launched.
    async fn receive(&mut self) -> Result<Vec<RecordedEvent>, PageError> {
        let Some(InFlight { wanted, read }) = self.in_flight.take() else {
            return Ok(Vec::new());
        };
        let page = read.await??;
        let got = i64::try_from(page.len()).unwrap_or(i64::MAX);
        self.caught_up = got < wanted;
        self.remaining = self.remaining.saturating_sub(got);
        if let Some(last) = page.last() {
            self.cursor.advance(last);
        }
        self.launch();
        Ok(page)
    }

    async fn next_page(&mut self) -> Result<Vec<RecordedEvent>, PageError> {
        match self.first.take() {
            Some(first) => Ok(first),
            None => self.receive().await,
        }
    }

    /// The response body: one chunk of lines per page.
    pub fn into_body(self) -> impl Stream<Item = Result<Bytes, PageError>> + 'static {
        futures::stream::try_unfold(self, |mut pages| async move {
            let page = pages.next_page().await?;
            if page.is_empty() {
                return Ok(None);
            }
            Ok(Some((encode(&page)?, pages)))
        })
        .inspect_err(|error| tracing::error!(%error, "an NDJSON body was cut short"))
    }
}

impl Drop for Pages {
    /// A client that hangs up does not leave a page read running.
    fn drop(&mut self) {
        if let Some(in_flight) = &self.in_flight {
            in_flight.read.abort();
        }
    }
}

/// A page as NDJSON: each event's envelope on its own line, each line ending in `\n`.
pub fn encode(page: &[RecordedEvent]) -> Result<Bytes, serde_json::Error> {
    let mut body = String::with_capacity(page.len() * 640);
    for event in page {
        body.push_str(&to_json_line(event)?);
        body.push('\n');
    }
    Ok(Bytes::from(body))
}
