//! Logs leaving: each subscription filter's matching events, sent to its destination at least
//! once, in order per log stream, from a durable cursor; and export tasks to buckets.
//!
//! A worker per filter reads the group's events after its cursor in the order they were applied
//! (buffered batches and segments: a worker that is behind, or restarted, reads what it missed
//! from storage), sends the matching ones, one message per log stream, retrying with exponential
//! backoff while the destination is down, and only then records the new cursor in the catalog.
//! A crash between the two sends a batch again: at least once, never lost. The ingest tap only
//! wakes a worker when its group gets events.

mod buckets;
mod destinations;
mod export;
mod firehose;
mod message;
mod target;

pub use buckets::{BucketConfig, Buckets};
pub use destinations::{policy_allows, Destinations};
pub use export::{Exports, Format as ExportFormat};
pub use firehose::FirehoseConfig;
pub use message::{control_message, data_messages};
pub use target::{encode, gzip, AccountServer, DeliveryConfig, Target};

use logwell_filter::FilterPattern;
use logwell_model::ApiError;
use logwell_storage::catalog::SubscriptionFilter;
use logwell_storage::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use target::{Clients, Kind, Sender};
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
    /// The last read found nothing after the cursor and nothing is held: no lag.
    pub caught_up: bool,
    /// The filter's destination was deleted (DeleteDestination): delivery stopped, as CloudWatch
    /// disables the filters that publish to a deleted destination. Putting the filter again
    /// starts it afresh.
    pub disabled: bool,
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
    /// Where workers run: background threads, below the request path's priority.
    runtime: tokio::runtime::Handle,
    owner: String,
    config: DeliveryConfig,
    clients: Arc<Clients>,
    workers: Mutex<HashMap<Key, Worker>>,
    progress: Arc<Mutex<HashMap<Key, Progress>>>,
    changed: Notify,
    stop: watch::Sender<bool>,
}

impl Delivery {
    /// Starts delivering, on `runtime`, for the filters the store holds, and for those created
    /// later.
    pub fn start(
        engine: Engine,
        owner: String,
        config: DeliveryConfig,
        storage: logwell_storage::StorageConfig,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Delivery> {
        let buckets = Arc::new(Buckets::new(config.buckets.clone(), storage));
        let delivery = Arc::new(Delivery {
            engine,
            runtime: runtime.clone(),
            clients: Arc::new(Clients::new(&config, buckets, owner.clone())),
            owner,
            config,
            workers: Mutex::new(HashMap::new()),
            progress: Arc::new(Mutex::new(HashMap::new())),
            changed: Notify::new(),
            stop: watch::channel(false).0,
        });
        let supervisor = delivery.clone();
        runtime.spawn(async move {
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
        if Kind::of(arn) == Kind::Destination {
            let account = arn.split(':').nth(4).unwrap_or_default();
            let name = arn.rsplit_once(":destination:").map(|(_, n)| n);
            if let (Some(d), Some(name)) = (self.clients.local.read().unwrap().get(account), name) {
                return Ok(Target::LocalDestination {
                    at: target::LocalDestinations(d.clone()),
                    name: name.to_string(),
                });
            }
        }
        self.config.target(arn)
    }

    /// Sets the destinations of the other accounts this server hosts (delivered to in-process,
    /// not through `[delivery.accounts]`).
    pub fn set_local_destinations(&self, by_account: HashMap<String, Arc<Destinations>>) {
        *self.clients.local.write().unwrap() = by_account;
    }

    /// Sends the `CONTROL_MESSAGE` CloudWatch sends when a filter is created; an unmapped or
    /// unreachable destination is CloudWatch's InvalidParameterException.
    pub async fn check_destination(&self, arn: &str) -> Result<(), ApiError> {
        let target = self.target(arn)?;
        let kind = Kind::of(arn);
        if let Target::LocalDestination { at, name } = &target {
            let message = control_message(logwell_model::now_millis(), kind.health_check_text());
            return target::deliver_locally(&self.clients, at, name, &message).await;
        }
        if let Target::Destination {
            server,
            account,
            name,
        } = &target
        {
            // The recipient's answer as it gave it: AccessDeniedException when its policy does
            // not allow this account, ResourceNotFoundException for no such destination.
            let message = control_message(logwell_model::now_millis(), kind.health_check_text());
            return target::deliver_to_destination(&self.clients, server, account, name, &message)
                .await
                .map_err(|e| match e.kind {
                    logwell_model::ErrorKind::ServiceUnavailable => kind.unreachable(),
                    _ => e,
                });
        }
        let mut sender = Sender::new(target, "ByLogStream", self.clients.clone());
        let message = control_message(logwell_model::now_millis(), kind.health_check_text());
        let sent = match sender.deliver(&message).await {
            Ok(()) => sender.flush().await,
            Err(e) => Err(e),
        };
        sent.map_err(|e| {
            tracing::warn!(destination = arn, error = %e, "test message not delivered");
            kind.unreachable()
        })
    }

    /// This server's destinations (the recipient's end of cross-account subscriptions).
    pub async fn destinations(&self, region: String) -> Result<Arc<Destinations>, ApiError> {
        Destinations::start(
            self.engine.clone(),
            region,
            self.owner.clone(),
            self.config.clone(),
            self.clients.clone(),
        )
        .await
    }

    /// The buckets Firehose destinations and export tasks write to.
    pub fn buckets(&self) -> Arc<Buckets> {
        self.clients.buckets.clone()
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

    /// The runtime background work runs on (export tasks share it).
    pub fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime.clone()
    }

    /// Starts workers for new or changed filters and stops those of deleted ones.
    fn reconcile(&self) {
        let filters = self.engine.all_subscription_filters();
        let mut workers = self.workers.lock().unwrap();
        let wanted: HashMap<Key, SubscriptionFilter> =
            filters.into_iter().map(|(g, n, f)| ((g, n), f)).collect();
        let mut progress = self.progress.lock().unwrap();
        workers.retain(|key, w| {
            let same = wanted
                .get(key)
                .is_some_and(|f| same_definition(f, &w.filter));
            // A worker that stopped because its destination is gone stays stopped until the
            // filter is put again.
            let disabled = progress.get(key).is_some_and(|p| p.disabled);
            let keep = same && (!w.task.is_finished() || disabled);
            if !keep {
                w.task.abort();
                if !same {
                    progress.remove(key);
                }
            }
            keep
        });
        progress.retain(|key, _| wanted.contains_key(key));
        drop(progress);
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
                owner: self.owner.clone(),
                config: self.config.clone(),
                key: key.clone(),
                cursor: filter.delivered_seq,
                sender: Sender::new(target, &filter.distribution, self.clients.clone()),
                pattern,
                progress: self.progress.clone(),
                stop: self.stop.subscribe(),
            };
            let task = self.runtime.spawn(run.run());
            workers.insert(key, Worker { filter, task });
        }
    }
}

fn same_definition(a: &SubscriptionFilter, b: &SubscriptionFilter) -> bool {
    a.filter_pattern == b.filter_pattern
        && a.destination_arn == b.destination_arn
        && a.distribution == b.distribution
        && a.creation_time == b.creation_time
}

/// One filter's delivery.
struct Run {
    engine: Engine,
    owner: String,
    config: DeliveryConfig,
    key: Key,
    /// The last event recorded as delivered (durable).
    cursor: i64,
    sender: Sender,
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
        // The last event handed to the sender: ahead of the cursor while a Firehose buffer
        // holds events not yet written.
        let mut read = self.cursor;
        let mut held = Held::default();
        let mut cache = logwell_storage::SegmentCache::default();
        loop {
            if *self.stop.borrow() {
                return;
            }
            let rows = match self
                .engine
                .events_after_cached(&group, read, self.config.batch_events, &mut cache)
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
            self.set_caught_up(rows.is_empty() && !self.sender.holds());
            let Some(last) = rows.last() else {
                if self.sender.should_flush() {
                    if !self.commit(&mut held, &mut backoff).await {
                        return;
                    }
                    continue;
                }
                let wait = self
                    .sender
                    .due()
                    .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1))
                    .min(tokio::time::Instant::now() + Duration::from_secs(1));
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep_until(wait) => {}
                    _ = self.stop.changed() => return,
                }
                continue;
            };
            let (last_seq, last_ingestion) = (last.seq, last.ingestion_time);
            // A protected group's events leave masked; the pattern sees what is sent.
            let protection = logwell_dataprotection::Protection::of_lookup(
                self.engine.masking_policy(&group),
                false,
            );
            let matching: Vec<_> = rows
                .into_iter()
                .map(|mut r| {
                    protection.mask_string(&mut r.message);
                    r
                })
                .filter(|r| self.pattern.matches(&r.message))
                .collect();
            let messages = data_messages(
                &self.owner,
                &group,
                &name,
                matching,
                self.config.message_bytes,
            );
            for m in &messages {
                // At least once: a message is retried until the destination takes it.
                loop {
                    match self.sender.deliver(m).await {
                        Ok(()) => {
                            backoff = self.config.backoff_min();
                            held.messages += 1;
                            held.events += m.log_events.len() as u64;
                            break;
                        }
                        Err(e) if self.sender.destination_gone() => {
                            tracing::warn!(group, filter = name, error = %e, "the destination was deleted: subscription filter disabled");
                            self.count_error();
                            self.progress
                                .lock()
                                .unwrap()
                                .entry(self.key.clone())
                                .or_default()
                                .disabled = true;
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(group, filter = name, error = %e, "delivery failed; retrying");
                            self.count_error();
                            if !self.pause(&mut backoff).await {
                                return;
                            }
                        }
                    }
                }
                // A full buffer is written at once, so it stays bounded; the cursor waits for
                // the round's end (a round's messages are per stream, not in applied order).
                if self.sender.should_flush() && !self.flush(&mut backoff).await {
                    return;
                }
            }
            read = last_seq;
            held.seq = last_seq;
            held.ingestion_time = Some(last_ingestion);
            // Then the cursor, durably, once the target holds everything up to it; until it is
            // recorded, a restart sends these again.
            if (!self.sender.holds() || self.sender.should_flush())
                && !self.commit(&mut held, &mut backoff).await
            {
                return;
            }
        }
    }

    /// Writes what the sender holds, then records the cursor; false when delivery is stopping.
    async fn commit(&mut self, held: &mut Held, backoff: &mut Duration) -> bool {
        if !self.flush(backoff).await {
            return false;
        }
        let (group, name) = self.key.clone();
        if held.seq > self.cursor {
            loop {
                match self
                    .engine
                    .advance_subscription(&group, &name, held.seq)
                    .await
                {
                    Ok(()) => break,
                    Err(e) if e.kind == logwell_model::ErrorKind::ResourceNotFound => return false,
                    Err(e) => {
                        tracing::warn!(group, filter = name, error = %e, "cannot record the cursor");
                        if !self.pause(backoff).await {
                            return false;
                        }
                    }
                }
            }
            self.cursor = held.seq;
        }
        let mut p = self.progress.lock().unwrap();
        let p = p.entry(self.key.clone()).or_default();
        p.delivered_seq = self.cursor;
        p.messages_delivered += held.messages;
        p.events_delivered += held.events;
        if held.ingestion_time.is_some() {
            p.last_ingestion_time = held.ingestion_time;
        }
        *held = Held {
            seq: held.seq,
            ..Held::default()
        };
        true
    }

    /// Writes what the sender holds, retrying; false when delivery is stopping.
    async fn flush(&mut self, backoff: &mut Duration) -> bool {
        while let Err(e) = self.sender.flush().await {
            let (group, name) = &self.key;
            tracing::warn!(group, filter = name, error = %e, "delivery failed; retrying");
            self.count_error();
            if !self.pause(backoff).await {
                return false;
            }
        }
        true
    }

    fn set_caught_up(&self, caught_up: bool) {
        self.progress
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default()
            .caught_up = caught_up;
    }

    fn count_error(&self) {
        self.progress
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default()
            .delivery_errors += 1;
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

/// What has been handed to the sender since the cursor was last recorded.
#[derive(Default)]
struct Held {
    seq: i64,
    ingestion_time: Option<i64>,
    messages: u64,
    events: u64,
}
