//! Subscription delivery: each subscription filter's matching events, sent to its destination at
//! least once, in order per log stream, from a durable cursor.
//!
//! A worker per filter reads the group's events after its cursor in the order they were applied
//! (buffered batches and segments: a worker that is behind, or restarted, reads what it missed
//! from storage), sends the matching ones, one message per log stream, retrying with exponential
//! backoff while the destination is down, and only then records the new cursor in the catalog.
//! A crash between the two sends a batch again: at least once, never lost. The ingest tap only
//! wakes a worker when its group gets events.

mod message;
mod target;

pub use message::{control_message, data_messages};
pub use target::{DeliveryConfig, Target};

use logwell_filter::FilterPattern;
use logwell_model::ApiError;
use logwell_storage::catalog::SubscriptionFilter;
use logwell_storage::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Per filter: where delivery stands (for `/metrics` and operators).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub delivered_seq: i64,
    pub events_delivered: u64,
    pub messages_delivered: u64,
    pub delivery_errors: u64,
    /// Ingestion time of the newest delivered event (epoch ms).
    pub last_ingestion_time: Option<i64>,
}

type Key = (String, String);

struct Worker {
    /// The definition it runs (a changed filter restarts its worker).
    filter: SubscriptionFilter,
    task: tokio::task::JoinHandle<()>,
}

/// Runs a worker for every subscription filter in the store.
pub struct Delivery {
    engine: Engine,
    owner: String,
    config: DeliveryConfig,
    http: reqwest::Client,
    workers: Mutex<HashMap<Key, Worker>>,
    progress: Arc<Mutex<HashMap<Key, Progress>>>,
    changed: Notify,
    stop: watch::Sender<bool>,
}

impl Delivery {
    /// Starts delivering for the filters the store holds, and for those created later.
    pub fn start(engine: Engine, owner: String, config: DeliveryConfig) -> Arc<Delivery> {
        let delivery = Arc::new(Delivery {
            engine,
            owner,
            http: reqwest::Client::builder()
                .timeout(config.request_timeout())
                .build()
                .expect("an HTTP client builds"),
            config,
            workers: Mutex::new(HashMap::new()),
            progress: Arc::new(Mutex::new(HashMap::new())),
            changed: Notify::new(),
            stop: watch::channel(false).0,
        });
        let supervisor = delivery.clone();
        tokio::spawn(async move {
            let mut stop = supervisor.stop.subscribe();
            loop {
                supervisor.reconcile();
                tokio::select! {
                    _ = supervisor.changed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => break,
                }
            }
            for (_, w) in supervisor.workers.lock().unwrap().drain() {
                w.task.abort();
            }
        });
        delivery
    }

    /// The destination an ARN maps to, or CloudWatch's error for one that cannot be reached.
    pub fn target(&self, arn: &str) -> Result<Target, ApiError> {
        self.config.target(arn)
    }

    /// Sends the `CONTROL_MESSAGE` CloudWatch sends when a filter is created; an unmapped or
    /// unreachable destination is CloudWatch's InvalidParameterException.
    pub async fn check_destination(&self, arn: &str) -> Result<(), ApiError> {
        let target = self.target(arn)?;
        target
            .send(&self.http, &control_message(logwell_model::now_millis()))
            .await
            .map_err(|e| {
                tracing::warn!(destination = arn, error = %e, "test message not delivered");
                unreachable_destination()
            })
    }

    /// Tells the supervisor that filters changed.
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// Stops every worker (the server is stopping); cursors stay where they were recorded.
    pub fn close(&self) {
        self.stop.send_replace(true);
    }

    /// Where each filter's delivery stands: (group, filter) -> progress.
    pub fn progress(&self) -> HashMap<Key, Progress> {
        self.progress.lock().unwrap().clone()
    }

    /// Starts workers for new or changed filters and stops those of deleted ones.
    fn reconcile(&self) {
        let filters = self.engine.all_subscription_filters();
        let mut workers = self.workers.lock().unwrap();
        let wanted: HashMap<Key, SubscriptionFilter> =
            filters.into_iter().map(|(g, n, f)| ((g, n), f)).collect();
        workers.retain(|key, w| {
            let keep = wanted
                .get(key)
                .is_some_and(|f| same_definition(f, &w.filter) && !w.task.is_finished());
            if !keep {
                w.task.abort();
            }
            keep
        });
        self.progress
            .lock()
            .unwrap()
            .retain(|key, _| wanted.contains_key(key));
        for (key, filter) in wanted {
            if workers.contains_key(&key) {
                continue;
            }
            let target = match self.target(&filter.destination_arn) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(group = key.0, filter = key.1, error = %e, "no destination");
                    continue;
                }
            };
            let pattern = match FilterPattern::parse(&filter.filter_pattern) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(group = key.0, filter = key.1, error = %e, "bad pattern");
                    continue;
                }
            };
            let run = Run {
                engine: self.engine.clone(),
                http: self.http.clone(),
                owner: self.owner.clone(),
                config: self.config.clone(),
                key: key.clone(),
                cursor: filter.delivered_seq,
                target,
                pattern,
                progress: self.progress.clone(),
                stop: self.stop.subscribe(),
            };
            let task = tokio::spawn(run.run());
            workers.insert(key, Worker { filter, task });
        }
    }
}

fn same_definition(a: &SubscriptionFilter, b: &SubscriptionFilter) -> bool {
    a.filter_pattern == b.filter_pattern
        && a.destination_arn == b.destination_arn
        && a.creation_time == b.creation_time
}

fn unreachable_destination() -> ApiError {
    ApiError::invalid(
        "Could not deliver test message to specified destination. Check if the destination is valid.",
    )
}

/// One filter's delivery.
struct Run {
    engine: Engine,
    http: reqwest::Client,
    owner: String,
    config: DeliveryConfig,
    key: Key,
    cursor: i64,
    target: Target,
    pattern: FilterPattern,
    progress: Arc<Mutex<HashMap<Key, Progress>>>,
    stop: watch::Receiver<bool>,
}

impl Run {
    async fn run(mut self) {
        let (group, name) = self.key.clone();
        // Woken by the tap when the group gets events (nothing is copied for it); the batches
        // themselves are read from storage, in order, from the cursor.
        let wake = self.engine.tap().signal(Box::new({
            let group = group.clone();
            move |g, _| g == group
        }));
        let mut backoff = self.config.backoff_min();
        loop {
            if *self.stop.borrow() {
                return;
            }
            let rows = match self
                .engine
                .events_after(&group, self.cursor, self.config.batch_events)
                .await
            {
                Ok(rows) => rows,
                Err(e) if e.kind == logwell_model::ErrorKind::ResourceNotFound => return,
                Err(e) => {
                    tracing::warn!(group, filter = name, error = %e, "cannot read events");
                    self.pause(&mut backoff).await;
                    continue;
                }
            };
            let Some(last) = rows.last().map(|r| r.seq) else {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = self.stop.changed() => return,
                }
                continue;
            };
            let matching: Vec<_> = rows
                .iter()
                .filter(|r| self.pattern.matches(&r.message))
                .collect();
            let messages = data_messages(
                &self.owner,
                &group,
                &name,
                &matching,
                self.config.message_bytes,
            );
            for m in &messages {
                // At least once: a message is retried until the destination takes it.
                loop {
                    match self.target.send(&self.http, m).await {
                        Ok(()) => {
                            backoff = self.config.backoff_min();
                            let mut p = self.progress.lock().unwrap();
                            let p = p.entry(self.key.clone()).or_default();
                            p.messages_delivered += 1;
                            p.events_delivered += m.log_events.len() as u64;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(group, filter = name, error = %e, "delivery failed; retrying");
                            self.progress
                                .lock()
                                .unwrap()
                                .entry(self.key.clone())
                                .or_default()
                                .delivery_errors += 1;
                            if !self.pause(&mut backoff).await {
                                return;
                            }
                        }
                    }
                }
            }
            // Then the cursor, durably; until it is recorded, a restart sends these again.
            loop {
                match self.engine.advance_subscription(&group, &name, last).await {
                    Ok(()) => break,
                    Err(e) if e.kind == logwell_model::ErrorKind::ResourceNotFound => return,
                    Err(e) => {
                        tracing::warn!(group, filter = name, error = %e, "cannot record the cursor");
                        if !self.pause(&mut backoff).await {
                            return;
                        }
                    }
                }
            }
            self.cursor = last;
            let mut p = self.progress.lock().unwrap();
            let p = p.entry(self.key.clone()).or_default();
            p.delivered_seq = last;
            p.last_ingestion_time = rows.last().map(|r| r.ingestion_time);
        }
    }

    /// Waits `backoff` (doubling it up to the maximum); false when delivery is stopping.
    async fn pause(&mut self, backoff: &mut Duration) -> bool {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(self.config.backoff_max());
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.stop.changed() => false,
        }
    }
}
