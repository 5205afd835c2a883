//! Live tail: sessions that watch the ingest tap, filtered by stream and pattern, sampled and
//! coalesced into updates as CloudWatch's Live Tail sends them.
//!
//! A session sends an update as soon as matching events arrive (after a few milliseconds of
//! coalescing), an empty one after a second without any (CloudWatch's heartbeat), at most
//! `max_events_per_update` events per update (evenly sampled beyond that, and flagged), and ends
//! after `max_duration`. Ingest never waits for a session: one that falls behind loses batches
//! at the tap and flags its next update as sampled.

use logwell_filter::FilterPattern;
use logwell_model::api_tail::{
    LiveTailSessionLogEvent, LiveTailSessionMetadata, LiveTailSessionStart, LiveTailSessionUpdate,
    StartLiveTailRequest,
};
use logwell_model::{ApiError, ErrorKind};
use logwell_storage::tap::{TapBatch, TapSubscription};
use logwell_storage::Engine;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How sessions behave; the defaults are CloudWatch's.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Concurrent sessions (CloudWatch: 15 per account).
    pub max_sessions: usize,
    /// Events per update; more are sampled down to this many.
    pub max_events_per_update: usize,
    /// How long a session gathers events after the first arrives before sending them.
    pub coalesce: Duration,
    /// An empty update after this long without one.
    pub heartbeat: Duration,
    /// A session's lifetime (CloudWatch: 3 hours).
    pub max_duration: Duration,
    /// Batches queued for a session before the tap drops them for it.
    pub queue_batches: usize,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            max_sessions: 15,
            max_events_per_update: 500,
            coalesce: Duration::from_millis(5),
            heartbeat: Duration::from_secs(1),
            max_duration: Duration::from_secs(3 * 3600),
            queue_batches: 256,
        }
    }
}

/// Starts sessions, within the concurrency limit.
pub struct Tails {
    engine: Engine,
    account: String,
    config: TailConfig,
    permits: Arc<Semaphore>,
    closing: tokio::sync::watch::Sender<bool>,
}

impl Tails {
    pub fn new(engine: Engine, account: String, config: TailConfig) -> Tails {
        Tails {
            engine,
            account,
            permits: Arc::new(Semaphore::new(config.max_sessions)),
            config,
            closing: tokio::sync::watch::channel(false).0,
        }
    }

    /// Ends every session (with [`Next::Closed`]) and refuses new ones: the server is stopping.
    pub fn close(&self) {
        self.permits.close();
        self.closing.send_replace(true);
    }

    pub fn config(&self) -> &TailConfig {
        &self.config
    }

    /// Sessions running now.
    pub fn active(&self) -> usize {
        self.config.max_sessions - self.permits.available_permits()
    }

    /// Checks a StartLiveTail request and starts its session: it sees every event applied from
    /// now on. Errors are CloudWatch's, before any stream starts.
    pub fn start(&self, request: StartLiveTailRequest) -> Result<Session, ApiError> {
        let groups = &request.log_group_identifiers;
        let listed = || format!("[{}]", groups.join(", "));
        if groups.is_empty() {
            return Err(ApiError::constraint(
                &listed(),
                "logGroupIdentifiers",
                "have length greater than or equal to 1",
            ));
        }
        if groups.len() > 10 {
            return Err(ApiError::constraint(
                &listed(),
                "logGroupIdentifiers",
                "have length less than or equal to 10",
            ));
        }
        if let Some(g) = groups.iter().find(|g| g.ends_with('*')) {
            return Err(ApiError::invalid(format!(
                "logGroupIdentifier {g} must not end with '*'"
            )));
        }
        let streams = match (&request.log_stream_names, &request.log_stream_name_prefixes) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "Only one of logStreamNames or logStreamNamePrefixes can be provided.",
                ))
            }
            (Some(names), None) => Streams::Names(names.clone()),
            (None, Some(prefixes)) => Streams::Prefixes(prefixes.clone()),
            (None, None) => Streams::All,
        };
        if let Streams::Names(list) | Streams::Prefixes(list) = &streams {
            let member = match streams {
                Streams::Names(_) => "logStreamNames",
                _ => "logStreamNamePrefixes",
            };
            if list.is_empty() || list.len() > 100 {
                return Err(ApiError::constraint(
                    &format!("[{}]", list.join(", ")),
                    member,
                    if list.is_empty() {
                        "have length greater than or equal to 1"
                    } else {
                        "have length less than or equal to 100"
                    },
                ));
            }
            if groups.len() != 1 {
                return Err(ApiError::invalid(
                    "logStreamNames and logStreamNamePrefixes can only be used with a single log group.",
                ));
            }
        }
        let pattern = match request.log_event_filter_pattern.as_deref() {
            Some(p) if !p.trim().is_empty() => {
                let parsed =
                    FilterPattern::parse(p).map_err(|e| ApiError::invalid(e.to_string()))?;
                (!parsed.matches_all()).then_some(parsed)
            }
            _ => None,
        };
        let mut names: HashMap<String, String> = HashMap::new();
        for g in groups {
            let name = logwell_model::group_name_from_identifier(g);
            if !self.engine.group_exists(name) {
                return Err(ApiError::new(
                    ErrorKind::ResourceNotFound,
                    "The specified log group does not exist.",
                ));
            }
            names.insert(name.to_string(), format!("{}:{name}", self.account));
        }
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => {
                    ApiError::unavailable("the server is shutting down")
                }
                tokio::sync::TryAcquireError::NoPermits => ApiError::new(
                    ErrorKind::LimitExceeded,
                    format!(
                    "You have reached the maximum number of concurrent Live Tail sessions ({}).",
                    self.config.max_sessions
                ),
                ),
            })?;
        let tap = self
            .engine
            .tap()
            .subscribe(names.keys().cloned().collect(), self.config.queue_batches);
        let now = Instant::now();
        Ok(Session {
            start: LiveTailSessionStart {
                request_id: uuid::Uuid::new_v4().to_string(),
                session_id: uuid::Uuid::new_v4().to_string(),
                log_group_identifiers: request.log_group_identifiers.clone(),
                log_stream_names: request.log_stream_names.clone(),
                log_stream_name_prefixes: request.log_stream_name_prefixes.clone(),
                log_event_filter_pattern: request.log_event_filter_pattern.clone(),
            },
            tap,
            identifiers: names,
            streams,
            pattern,
            config: self.config.clone(),
            deadline: now + self.config.max_duration,
            last_update: now,
            closing: self.closing.subscribe(),
            _permit: permit,
        })
    }
}

/// Which streams of its one group a session watches.
#[derive(Debug, Clone)]
enum Streams {
    All,
    Names(Vec<String>),
    Prefixes(Vec<String>),
}

impl Streams {
    fn wants(&self, stream: &str) -> bool {
        match self {
            Streams::All => true,
            Streams::Names(n) => n.iter().any(|s| s == stream),
            Streams::Prefixes(p) => p.iter().any(|s| stream.starts_with(s.as_str())),
        }
    }
}

/// What a session has to say next.
#[derive(Debug, PartialEq)]
pub enum Next {
    Update(LiveTailSessionUpdate),
    /// The session reached its maximum duration (`SessionTimeoutException`).
    Timeout,
    /// The server is shutting down (`SessionStreamingException`).
    Closed,
}

/// One live tail. Dropping it (a client that went away) frees its place at once.
pub struct Session {
    /// The `sessionStart` event.
    pub start: LiveTailSessionStart,
    tap: TapSubscription,
    /// Group name -> the identifier results carry.
    identifiers: HashMap<String, String>,
    streams: Streams,
    pattern: Option<FilterPattern>,
    config: TailConfig,
    deadline: Instant,
    last_update: Instant,
    closing: tokio::sync::watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Session {
    /// The next update: matching events as soon as they arrive (after the coalescing window),
    /// or an empty heartbeat when a second passes without any.
    pub async fn next(&mut self) -> Next {
        let mut events: Vec<LiveTailSessionLogEvent> = Vec::new();
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return Next::Timeout;
            }
            if *self.closing.borrow() {
                return Next::Closed;
            }
            let heartbeat = (self.last_update + self.config.heartbeat).min(self.deadline);
            let received = tokio::select! {
                r = tokio::time::timeout_at(heartbeat, self.tap.recv()) => r,
                _ = self.closing.changed() => return Next::Closed,
            };
            match received {
                Err(_) if Instant::now() >= self.deadline => return Next::Timeout,
                Err(_) => return Next::Update(self.update(events)),
                Ok(None) => return Next::Closed,
                Ok(Some(batch)) => {
                    self.matching(&batch, &mut events);
                    if events.is_empty() {
                        continue;
                    }
                    // Gather what else arrives within the coalescing window.
                    let until = Instant::now() + self.config.coalesce;
                    while let Ok(Some(batch)) =
                        tokio::time::timeout_at(until, self.tap.recv()).await
                    {
                        self.matching(&batch, &mut events);
                    }
                    return Next::Update(self.update(events));
                }
            }
        }
    }

    fn matching(&self, batch: &TapBatch, out: &mut Vec<LiveTailSessionLogEvent>) {
        let b = batch.events();
        let Some(identifier) = self.identifiers.get(b.group) else {
            return;
        };
        if !self.streams.wants(b.stream) {
            return;
        }
        for (timestamp, message) in b.events {
            if self.pattern.as_ref().is_some_and(|p| !p.matches(message)) {
                continue;
            }
            out.push(LiveTailSessionLogEvent {
                log_stream_name: b.stream.to_string(),
                log_group_identifier: identifier.clone(),
                message: message.to_string(),
                timestamp,
                ingestion_time: b.ingestion_time,
            });
        }
    }

    /// An update of `events`, sampled evenly down to the limit.
    fn update(&mut self, mut events: Vec<LiveTailSessionLogEvent>) -> LiveTailSessionUpdate {
        self.last_update = Instant::now();
        let mut sampled = self.tap.take_dropped() > 0;
        let max = self.config.max_events_per_update;
        if events.len() > max {
            let n = events.len();
            let mut keep = (0..max).map(|i| i * n / max).peekable();
            let mut i = 0;
            events.retain(|_| {
                let kept = keep.next_if_eq(&i).is_some();
                i += 1;
                kept
            });
            sampled = true;
        }
        LiveTailSessionUpdate {
            session_metadata: LiveTailSessionMetadata { sampled },
            session_results: events,
        }
    }
}

#[cfg(test)]
mod tests;
