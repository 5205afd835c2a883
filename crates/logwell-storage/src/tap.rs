//! The tap on the ingest path: each event batch, once durable and applied, is offered to the live
//! consumers of its log group (tail sessions now; metric filters and subscriptions next).
//!
//! As Loki's tailer does, ingest never waits for a consumer: each has a queue bounded in batches
//! and in bytes, and a batch that does not fit is dropped for that consumer and counted, so it can
//! say it was sampled.
//! A batch is copied once (its WAL record bytes) and shared by every consumer that wants it;
//! with no consumers the tap costs one atomic load per batch.

use crate::memtable::SEQ_INDEX_BITS;
use crate::record::EventBatch;
#[cfg(test)]
use crate::record::{self, Record};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// One durable event batch, copied once from its WAL record and indexed so that a consumer can
/// reach any event without reading the others.
#[derive(Debug)]
pub struct TapBatch {
    lsn: u64,
    group: String,
    stream: String,
    ingestion_time: i64,
    /// The messages, end to end.
    text: String,
    /// Each event's timestamp and the end of its message in `text`.
    events: Vec<(i64, u32)>,
}

impl TapBatch {
    fn new(lsn: u64, b: &EventBatch<'_>) -> TapBatch {
        let mut text = String::with_capacity(b.events.iter().map(|(_, m)| m.len()).sum());
        let events = b
            .events
            .iter()
            .map(|(ts, m)| {
                text.push_str(m);
                (*ts, text.len() as u32)
            })
            .collect();
        TapBatch {
            lsn,
            group: b.group.to_string(),
            stream: b.stream.to_string(),
            ingestion_time: b.ingestion_time,
            text,
            events,
        }
    }

    /// The WAL position the batch was written at: every event applied before a read snapshot
    /// has a smaller one, every event after it a larger one.
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn ingestion_time(&self) -> i64 {
        self.ingestion_time
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// About what the batch holds in memory.
    pub fn bytes(&self) -> usize {
        self.text.len() + self.events.len() * 16 + self.group.len() + self.stream.len() + 64
    }

    /// Event `i`'s timestamp and message.
    pub fn event(&self, i: usize) -> (i64, &str) {
        let start = match i {
            0 => 0,
            _ => self.events[i - 1].1 as usize,
        };
        let (ts, end) = self.events[i];
        (ts, &self.text[start..end as usize])
    }

    /// The storage sequence of event `i` (what query results order by).
    pub fn seq(&self, i: usize) -> i64 {
        ((self.lsn << SEQ_INDEX_BITS) | i as u64) as i64
    }
}

/// Which batches a consumer wants, by group and stream: asked at the tap, so a consumer is not
/// woken for batches it would turn away.
pub type Wants = Box<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// A consumer's registration: the batches it wants and how it takes them.
struct Consumer {
    id: u64,
    wants: Wants,
    sink: Sink,
}

enum Sink {
    /// The batches themselves, queued.
    Batches(Queue),
    /// Only word that a wanted batch was applied (the consumer reads storage itself): no copy.
    Signal(Arc<tokio::sync::Notify>),
}

/// A consumer's queue and what it missed.
struct Queue {
    tx: mpsc::Sender<Arc<TapBatch>>,
    /// Events dropped because the queue was full, since the consumer last looked.
    dropped: AtomicU64,
    /// Bytes of the batches in its queue, and the most it may hold.
    queued_bytes: AtomicUsize,
    max_bytes: usize,
}

/// The live consumers of ingested events.
#[derive(Default)]
pub struct Tap {
    consumers: RwLock<Vec<Arc<Consumer>>>,
    count: AtomicUsize,
    next_id: AtomicU64,
}

impl Tap {
    /// Registers a consumer of the batches `wants(group, stream)` accepts, queueing at most
    /// `queue` batches and `max_bytes` of them for it. Dropping the subscription unregisters it.
    pub fn subscribe(
        self: &Arc<Self>,
        wants: Wants,
        queue: usize,
        max_bytes: usize,
    ) -> TapSubscription {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let consumer = self.register(
            wants,
            Sink::Batches(Queue {
                tx,
                dropped: AtomicU64::new(0),
                queued_bytes: AtomicUsize::new(0),
                max_bytes,
            }),
        );
        TapSubscription {
            rx,
            consumer,
            tap: self.clone(),
        }
    }

    /// Registers a consumer that is only told when a batch `wants` accepts was applied, without
    /// the batch being copied for it. Dropping the signal unregisters it.
    pub fn signal(self: &Arc<Self>, wants: Wants) -> TapSignal {
        let notify = Arc::new(tokio::sync::Notify::new());
        let consumer = self.register(wants, Sink::Signal(notify.clone()));
        TapSignal {
            notify,
            id: consumer.id,
            tap: self.clone(),
        }
    }

    fn register(&self, wants: Wants, sink: Sink) -> Arc<Consumer> {
        let consumer = Arc::new(Consumer {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            wants,
            sink,
        });
        let mut all = self.consumers.write().unwrap();
        all.push(consumer.clone());
        self.count.store(all.len(), Ordering::Release);
        consumer
    }

    /// How many consumers are registered.
    pub fn consumers(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Offers an applied event batch (written at `lsn`) to the consumers of its group.
    pub(crate) fn publish(&self, lsn: u64, events: &EventBatch<'_>) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut batch: Option<Arc<TapBatch>> = None;
        for c in self.consumers.read().unwrap().iter() {
            if !(c.wants)(events.group, events.stream) {
                continue;
            }
            let c = match &c.sink {
                Sink::Signal(n) => {
                    n.notify_one();
                    continue;
                }
                Sink::Batches(q) => q,
            };
            let b = batch.get_or_insert_with(|| Arc::new(TapBatch::new(lsn, events)));
            let size = b.bytes();
            let queued = c.queued_bytes.fetch_add(size, Ordering::AcqRel);
            // One batch always fits an empty queue, whatever its size.
            let fits = queued == 0 || queued + size <= c.max_bytes;
            if !fits || c.tx.try_send(b.clone()).is_err() {
                c.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                c.dropped
                    .fetch_add(events.events.len() as u64, Ordering::Relaxed);
            }
        }
    }

    fn unsubscribe(&self, id: u64) {
        let mut all = self.consumers.write().unwrap();
        all.retain(|c| c.id != id);
        self.count.store(all.len(), Ordering::Release);
    }
}

/// One consumer's end of the tap.
pub struct TapSubscription {
    rx: mpsc::Receiver<Arc<TapBatch>>,
    consumer: Arc<Consumer>,
    tap: Arc<Tap>,
}

impl TapSubscription {
    /// The next batch, waiting for one.
    pub async fn recv(&mut self) -> Option<Arc<TapBatch>> {
        let b = self.rx.recv().await?;
        self.queue()
            .queued_bytes
            .fetch_sub(b.bytes(), Ordering::AcqRel);
        Some(b)
    }

    /// The next batch if one is queued.
    pub fn try_recv(&mut self) -> Option<Arc<TapBatch>> {
        let b = self.rx.try_recv().ok()?;
        self.queue()
            .queued_bytes
            .fetch_sub(b.bytes(), Ordering::AcqRel);
        Some(b)
    }

    /// Events dropped for this consumer since [`Self::take_dropped`] last ran, left counted.
    pub fn dropped(&self) -> u64 {
        self.queue().dropped.load(Ordering::Relaxed)
    }

    /// Events dropped for this consumer since the last call (its queue was full).
    pub fn take_dropped(&self) -> u64 {
        self.queue().dropped.swap(0, Ordering::Relaxed)
    }

    fn queue(&self) -> &Queue {
        match &self.consumer.sink {
            Sink::Batches(q) => q,
            Sink::Signal(_) => unreachable!("a subscription has a queue"),
        }
    }
}

/// A consumer that is told when a batch it wants was applied (see [`Tap::signal`]).
pub struct TapSignal {
    notify: Arc<tokio::sync::Notify>,
    id: u64,
    tap: Arc<Tap>,
}

impl TapSignal {
    /// Waits until a wanted batch was applied since the last call (or for the first one).
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

impl Drop for TapSignal {
    fn drop(&mut self) {
        self.tap.unsubscribe(self.id);
    }
}

impl Drop for TapSubscription {
    fn drop(&mut self) {
        self.tap.unsubscribe(self.consumer.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(tap: &Tap, lsn: u64, group: &str, n: usize) {
        let payload = record::encode_events(group, "s", 7, (0..n).map(|i| (i as i64, "m")));
        let Some(Record::Events(b)) = record::decode(&payload) else {
            unreachable!()
        };
        tap.publish(lsn, &b);
    }

    #[tokio::test]
    async fn consumers_get_their_groups_and_a_full_queue_drops_and_counts() {
        let tap = Arc::new(Tap::default());
        // No consumer: nothing is built.
        publish(&tap, 1, "/a", 1);
        let mut a = tap.subscribe(Box::new(|g, _| g == "/a"), 2, 1 << 20);
        let mut b = tap.subscribe(Box::new(|g, _| g == "/b"), 2, 1 << 20);
        assert_eq!(tap.consumers(), 2);
        for lsn in 2..6 {
            publish(&tap, lsn, "/a", 3);
        }
        // Two batches fit in a's queue; the other two (3 events each) were dropped and counted.
        assert_eq!(a.recv().await.unwrap().lsn(), 2);
        let second = a.recv().await.unwrap();
        assert_eq!(second.lsn(), 3);
        assert_eq!(second.len(), 3);
        assert_eq!(second.event(2), (2, "m"));
        assert_eq!(second.seq(1), ((3u64 << SEQ_INDEX_BITS) | 1) as i64);
        assert!(a.try_recv().is_none());
        assert_eq!(a.take_dropped(), 6);
        assert_eq!(a.take_dropped(), 0);
        assert!(b.try_recv().is_none());
        drop(a);
        assert_eq!(tap.consumers(), 1);
        // A queue bounded in bytes: the first batch always fits, the next only within the bound.
        let mut c = tap.subscribe(Box::new(|_, _| true), 100, 1);
        for lsn in 10..13 {
            publish(&tap, lsn, "/c", 2);
        }
        assert_eq!(c.try_recv().unwrap().lsn(), 10);
        assert!(c.try_recv().is_none());
        assert_eq!(c.take_dropped(), 4);
        publish(&tap, 13, "/c", 2);
        assert_eq!(c.try_recv().unwrap().lsn(), 13);
    }
}
