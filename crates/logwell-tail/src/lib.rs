//! Live tail: sessions that watch the ingest tap, filtered by stream and pattern, sampled and
//! coalesced into updates as CloudWatch's Live Tail sends them.
//!
//! A session sends an update as soon as matching events arrive (after a few milliseconds of
//! coalescing), an empty one after a second without any (CloudWatch's heartbeat), and ends after
//! `max_duration`. It sends at most `max_events_per_update` events a second, as CloudWatch does:
//! beyond that it sends one update at the end of the second holding a uniform sample, flagged
//! `sampled`, and builds only the events it sends, so a flood costs a session little. Ingest never
//! waits for a session: one that falls behind loses batches at the tap and says so the same way.

use logwell_filter::FilterPattern;
use logwell_model::api_tail::{
    LiveTailSessionLogEvent, LiveTailSessionMetadata, LiveTailSessionStart, LiveTailSessionUpdate,
    StartLiveTailRequest,
};
use logwell_model::{ApiError, ErrorKind};
use logwell_storage::tap::{TapBatch, TapSubscription};
use logwell_storage::Engine;
use sample::Reservoir;
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
    /// Events per update and per second; more are sampled down to this many.
    pub max_events_per_update: usize,
    /// How long a session gathers events after the first arrives before sending them.
    pub coalesce: Duration,
    /// An empty update after this long without one.
    pub heartbeat: Duration,
    /// The span `max_events_per_update` applies to (CloudWatch: a second).
    pub rate_window: Duration,
    /// A session's lifetime (CloudWatch: 3 hours).
    pub max_duration: Duration,
    /// Batches queued for a session before the tap drops them for it ...
    pub queue_batches: usize,
    /// ... and the bytes they may hold.
    pub queue_bytes: usize,
}

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            max_sessions: 15,
            max_events_per_update: 500,
            coalesce: Duration::from_millis(5),
            heartbeat: Duration::from_secs(1),
            rate_window: Duration::from_secs(1),
            max_duration: Duration::from_secs(3 * 3600),
            queue_batches: 1024,
            queue_bytes: 16 << 20,
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
            // An ARN keeps its account: another account's group is not this one's of that name.
            let account = g.strip_prefix("arn:").and_then(|a| a.split(':').nth(3));
            if account.is_some_and(|a| a != self.account) {
                return Err(ApiError::new(
                    ErrorKind::AccessDenied,
                    format!("{g} is not a log group of account {}", self.account),
                ));
            }
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
        let wanted = (names.keys().cloned().collect::<Vec<_>>(), streams.clone());
        let tap = self.engine.tap().subscribe(
            Box::new(move |group, stream| {
                wanted.0.iter().any(|g| g == group) && wanted.1.wants(stream)
            }),
            self.config.queue_batches,
            self.config.queue_bytes,
        );
        // Batches applied before the subscription may still be on their way to the tap (it is
        // offered each batch after its put was answered); they are not the session's.
        let started_after = self.engine.applied_seq();
        let now = Instant::now();
        Ok(Session {
            started_after,
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
            pattern,
            config: self.config.clone(),
            deadline: now + self.config.max_duration,
            last_update: now,
            window_start: now,
            sent_in_window: 0,
            sample: Reservoir::new(
                self.config.max_events_per_update,
                uuid::Uuid::new_v4().as_u64_pair().0,
            ),
            matched: Vec::new(),
            closing: self.closing.subscribe(),
            _permit: permit,
            engine: self.engine.clone(),
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
    /// The highest seq applied when the session started: batches up to it came before.
    started_after: i64,
    /// Group name -> the identifier results carry.
    identifiers: HashMap<String, String>,
    pattern: Option<FilterPattern>,
    config: TailConfig,
    deadline: Instant,
    last_update: Instant,
    /// The current second and the events sent in it.
    window_start: Instant,
    sent_in_window: usize,
    sample: Reservoir<LiveTailSessionLogEvent>,
    /// Which events of a batch matched the pattern (kept to reuse its allocation).
    matched: Vec<usize>,
    closing: tokio::sync::watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    /// Where each batch's group's data protection policy is read (masked before matching).
    engine: Engine,
}

impl Session {
    /// The next update: matching events as soon as they arrive (after the coalescing window),
    /// or an empty heartbeat when a second passes without any. Past `max_events_per_update` in a
    /// second, the session holds its update to the end of that second and sends a uniform sample.
    pub async fn next(&mut self) -> Next {
        loop {
            if *self.closing.borrow() {
                return Next::Closed;
            }
            if Instant::now() >= self.deadline {
                return Next::Timeout;
            }
            let heartbeat = (self.last_update + self.config.heartbeat).min(self.deadline);
            let received = tokio::select! {
                r = tokio::time::timeout_at(heartbeat, self.tap.recv()) => r,
                _ = self.closing.changed() => return Next::Closed,
            };
            let batch = match received {
                Err(_) if Instant::now() >= self.deadline => return Next::Timeout,
                Err(_) => return Next::Update(self.update()),
                Ok(None) => return Next::Closed,
                Ok(Some(batch)) => batch,
            };
            self.offer(&batch);
            if self.sample.seen() == 0 {
                continue;
            }
            let now = Instant::now();
            if now >= self.window_start + self.config.rate_window {
                self.window_start = now;
                self.sent_in_window = 0;
            }
            // Gather what else arrives within the coalescing window, or, once this second's
            // budget is spent, until the second ends.
            let budget = self.config.max_events_per_update;
            let mut until = now + self.config.coalesce;
            let mut held = false;
            loop {
                if self.sent_in_window + self.sample.seen() as usize > budget {
                    held = true;
                    until = until.max(self.window_start + self.config.rate_window);
                }
                let received = tokio::select! {
                    r = tokio::time::timeout_at(until.min(self.deadline), self.tap.recv()) => r,
                    _ = self.closing.changed() => return Next::Closed,
                };
                match received {
                    Ok(Some(batch)) => self.offer(&batch),
                    _ => break,
                }
            }
            let update = self.update();
            let n = update.session_results.len();
            if held {
                self.window_start = Instant::now();
                self.sent_in_window = n;
            } else {
                self.sent_in_window += n;
            }
            return Next::Update(update);
        }
    }

    /// Offers a batch's matching events to the sample (built only if it keeps them).
    fn offer(&mut self, batch: &TapBatch) {
        // The tap sends only the groups and streams this session wants.
        let Some(identifier) = self.identifiers.get(batch.group()) else {
            return;
        };
        if batch.seq(0) <= self.started_after {
            return;
        }
        // A protected group's events are masked before the pattern or the client sees them.
        let protection = logwell_dataprotection::Protection::of_lookup(
            self.engine.masking_policy(batch.group()),
            false,
        );
        let masked: Option<Vec<String>> = protection.is_masked().then(|| {
            (0..batch.len())
                .map(|i| protection.mask(batch.event(i).1).into_owned())
                .collect()
        });
        let text = |i: usize| masked.as_ref().map_or(batch.event(i).1, |m| m[i].as_str());
        let make = |i: usize| {
            let (timestamp, _) = batch.event(i);
            LiveTailSessionLogEvent {
                log_stream_name: batch.stream().to_string(),
                log_group_identifier: identifier.clone(),
                message: text(i).to_string(),
                timestamp,
                ingestion_time: batch.ingestion_time(),
            }
        };
        match &self.pattern {
            None => self.sample.offer(batch.len(), make),
            Some(p) => {
                self.matched.clear();
                self.matched
                    .extend((0..batch.len()).filter(|&i| p.matches(text(i))));
                let matched = &self.matched;
                self.sample.offer(matched.len(), |k| make(matched[k]));
            }
        }
    }

    /// An update of what the sample holds.
    fn update(&mut self) -> LiveTailSessionUpdate {
        self.last_update = Instant::now();
        let (events, left_out) = self.sample.take();
        let sampled = left_out | (self.tap.take_dropped() > 0);
        LiveTailSessionUpdate {
            session_metadata: LiveTailSessionMetadata { sampled },
            session_results: events,
        }
    }
}

mod sample;
#[cfg(test)]
mod tests;
