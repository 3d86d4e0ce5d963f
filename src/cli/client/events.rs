//! Following the service's Server-Sent Events across dropped connections, restarts and
//! replicas: every reconnection sends `Last-Event-ID`, so the client gets exactly what it missed
//! (or a `resync` snapshot where the history, or the replica, does not hold its place). Where a
//! proxy strips streams (the answer is plain JSON, or no event arrives), the caller is told so
//! and long-polls instead.

use std::time::{Duration, Instant};

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http_body_util::BodyExt;

use super::{ApiClient, ClientError};

/// A stream's `snapshot` comes at once: none within this means a proxy holds the stream back.
const FIRST_EVENT: Duration = Duration::from_secs(5);
/// Largest event accepted: an execution's whole detail is at most a few hundred KiB.
const MAX_EVENT: usize = 8 << 20;

/// One event: its name (`snapshot`, `modified`, `closed`, ...), id and JSON data.
pub type Event = eventsource_stream::Event;

/// Retries of transient failures with capped, jittered backoff, for a while in a row (a rolling
/// update takes less than the default minute).
pub struct Retry {
    give_up_after: Duration,
    failing_since: Option<Instant>,
    attempts: u32,
}

impl Retry {
    pub fn new(give_up_after: Duration) -> Self {
        Retry { give_up_after, failing_since: None, attempts: 0 }
    }

    /// Waits before the next attempt, or hands the error back when it has lasted too long.
    pub async fn pause(&mut self, error: ClientError) -> Result<(), ClientError> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.give_up_after {
            return Err(error);
        }
        tracing::debug!(%error, "retrying");
        let backoff = Duration::from_millis(100 << self.attempts.min(4)).min(Duration::from_secs(2));
        self.attempts += 1;
        tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
        Ok(())
    }

    /// A success: the next failure starts afresh.
    pub fn reset(&mut self) {
        (self.failing_since, self.attempts) = (None, 0);
    }
}

/// A followed stream: `next` reconnects as needed and resumes where it left off.
pub struct Follow {
    client: ApiClient,
    path: String,
    last_id: Option<String>,
    events: Option<BoxStream<'static, Result<Event, Broken>>>,
    /// Whether the open connection has delivered an event yet.
    delivered: bool,
    retry: Retry,
    /// Connections opened after the first.
    pub reconnects: u32,
}

impl Follow {
    pub fn new(client: ApiClient, path: String) -> Self {
        let retry = client.retry();
        Follow { client, path, last_id: None, events: None, delivered: false, retry, reconnects: 0 }
    }

    /// The next event; `None` when streams do not reach this client (poll instead); an error
    /// when the stream cannot go on (not found, refused, or unreachable for too long).
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            let Some(events) = &mut self.events else {
                match self.open().await {
                    Ok(Some(events)) => self.events = Some(events),
                    Ok(None) => return Ok(None),
                    Err(e) if e.is_transient() => self.retry.pause(e).await?,
                    Err(e) => return Err(e),
                }
                continue;
            };
            let wait = if self.delivered { Duration::MAX } else { FIRST_EVENT };
            match tokio::time::timeout(wait, events.next()).await {
                Ok(Some(Ok(event))) => {
                    if !event.id.is_empty() {
                        self.last_id = Some(event.id.clone());
                    }
                    self.delivered = true;
                    self.retry.reset();
                    return Ok(Some(event));
                }
                // Ended (`closed`: a replica shutting down, a stream's life over) or broken:
                // open it again where it left off.
                Ok(ended) => {
                    let reason = match ended {
                        Some(Err(e)) => e.to_string(),
                        _ => "the stream ended".to_owned(),
                    };
                    self.events = None;
                    if !self.delivered {
                        let server = self.client.server().to_owned();
                        self.retry.pause(ClientError::Unreachable { server, reason }).await?;
                    }
                }
                Err(_) => {
                    tracing::info!(after = ?FIRST_EVENT, "no event came on the stream: polling instead");
                    return Ok(None);
                }
            }
        }
    }

    async fn open(&mut self) -> Result<Option<BoxStream<'static, Result<Event, Broken>>>, ClientError> {
        let mut headers = vec![("accept", "text/event-stream"), ("cache-control", "no-cache")];
        if let Some(id) = &self.last_id {
            headers.push(("last-event-id", id));
            self.reconnects += 1;
        }
        let answer = self.client.send(&self.path, &headers).await?;
        self.delivered = false;
        if !answer.content_type.starts_with("text/event-stream") {
            tracing::info!(content_type = %answer.content_type, "the answer is not a stream: polling instead");
            return Ok(None);
        }
        let bytes = answer.body.into_data_stream().map(|chunk| chunk.map_err(Broken::from));
        let events = bounded(bytes).eventsource().map(|e| e.map_err(Broken::from));
        Ok(Some(events.boxed()))
    }
}

/// Why an open stream broke: the connection, the event stream's framing, or an event too long.
/// It is opened again where it left off.
type Broken = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
#[error("an event is over {} MiB", MAX_EVENT >> 20)]
struct EventTooLong;

/// Refuses an event longer than `MAX_EVENT` (bytes since the last blank line), so a broken
/// proxy cannot make the client hold an endless one.
fn bounded(bytes: impl Stream<Item = Result<Bytes, Broken>>) -> impl Stream<Item = Result<Bytes, Broken>> {
    let (mut since_blank, mut newline) = (0usize, false);
    bytes.map(move |chunk| {
        let chunk = chunk?;
        for &b in chunk.iter() {
            match b {
                b'\r' => continue,
                b'\n' if newline => since_blank = 0,
                _ => since_blank += 1,
            }
            newline = b == b'\n';
        }
        if since_blank > MAX_EVENT {
            return Err(EventTooLong.into());
        }
        Ok(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_bounded_but_many_small_ones_pass() {
        let small = Bytes::from("event: a\ndata: x\n\n".repeat(1 << 20));
        let chunks: Vec<Result<Bytes, Broken>> = vec![Ok(small.clone()), Ok(small)];
        let passed: Vec<_> = bounded(futures::stream::iter(chunks)).collect().await;
        assert!(passed.iter().all(Result::is_ok));
        let huge = Bytes::from(format!("data: {}\r\n", "x".repeat(MAX_EVENT)));
        let refused: Vec<_> = bounded(futures::stream::iter(vec![Ok::<_, Broken>(huge)])).collect().await;
        assert!(refused[0].as_ref().is_err_and(|e| e.to_string().contains("over 8 MiB")), "{refused:?}");
    }
}
