//! For tests and benchmarks (feature `testing`): a reader of the SSE stream
//! (`GET /v1/dashboard/stream`) over a real HTTP connection.

use std::time::Duration;

use tokio::time::Instant;

/// One block of the stream: an event with its data, or a comment (heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseBlock {
    Event { name: String, data: String },
    Comment(String),
}

/// Reads blocks from a `text/event-stream` response.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    /// Opens `url` with a bearer token; the response (any status) is returned as an error
    /// unless it is 200.
    pub async fn open(
        http: &reqwest::Client,
        url: &str,
        token: &str,
    ) -> Result<SseReader, reqwest::Response> {
        let response = match http
            .get(url)
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => panic!("GET {url}: {error}"),
        };
        if response.status() != 200 {
            return Err(response);
        }
        Ok(SseReader {
            response,
            buffer: String::new(),
        })
    }

    /// The next block, or `None` if none arrives within `wait` or the stream ends.
    pub async fn next_block(&mut self, wait: Duration) -> Option<SseBlock> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(block.trim_end()));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next event named `name` whose data satisfies `wanted`, skipping others, within
    /// `wait`.
    pub async fn next_event_where(
        &mut self,
        name: &str,
        wait: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_block(left).await? {
                SseBlock::Event { name: got, data } if got == name => {
                    let value = serde_json::from_str(&data).ok()?;
                    if wanted(&value) {
                        return Some(value);
                    }
                }
                _ => {}
            }
        }
    }
}

fn parse(block: &str) -> SseBlock {
    let mut name = String::from("message");
    let mut data = String::new();
    let mut comment = None;
    for line in block.lines() {
        if let Some(text) = line.strip_prefix(':') {
            comment = Some(text.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("event:") {
            name = value.trim().to_owned();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim());
        }
    }
    match comment {
        Some(text) if data.is_empty() => SseBlock::Comment(text),
        _ => SseBlock::Event { name, data },
    }
}
