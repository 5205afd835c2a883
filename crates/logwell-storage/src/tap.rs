//! The tap on the ingest path: each event batch, once durable and applied, is offered to the live
//! consumers of its log group (tail sessions now; metric filters and subscriptions next).
//!
//! As Loki's tailer does, ingest never waits for a consumer: each has a bounded queue, and a
//! batch that does not fit is dropped for that consumer and counted, so it can say it was sampled.
//! A batch is copied once (its WAL record bytes) and shared by every consumer that wants it;
//! with no consumers the tap costs one atomic load per batch.

use crate::memtable::SEQ_INDEX_BITS;
use crate::record::{self, EventBatch, Record};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// One durable event batch as its WAL record holds it.
#[derive(Debug)]
pub struct TapBatch {
    lsn: u64,
    payload: Box<[u8]>,
}

impl TapBatch {
    /// The WAL position the batch was written at: every event applied before a read snapshot
    /// has a smaller one, every event after it a larger one.
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// The batch: group, stream, ingestion time and events.
    pub fn events(&self) -> EventBatch<'_> {
        match record::decode(&self.payload) {
            Some(Record::Events(b)) => b,
            // Only event records are published, and they decoded when they were applied.
            _ => unreachable!("the tap holds event records only"),
        }
    }

    /// The storage sequence of the batch's event `index` (what query results order by).
    pub fn seq(&self, index: usize) -> i64 {
        ((self.lsn << SEQ_INDEX_BITS) | index as u64) as i64
    }
}

/// A consumer's registration: the groups it wants, its queue and what it missed.
#[derive(Debug)]
struct Consumer {
    id: u64,
    groups: Vec<String>,
    tx: mpsc::Sender<Arc<TapBatch>>,
    /// Events dropped because the queue was full, since the consumer last looked.
    dropped: AtomicU64,
}

/// The live consumers of ingested events.
#[derive(Debug, Default)]
pub struct Tap {
    consumers: RwLock<Vec<Arc<Consumer>>>,
    count: AtomicUsize,
    next_id: AtomicU64,
}

impl Tap {
    /// Registers a consumer of the batches of `groups` (log group names), queueing at most
    /// `queue` batches for it. Dropping the subscription unregisters it.
    pub fn subscribe(self: &Arc<Self>, groups: Vec<String>, queue: usize) -> TapSubscription {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let consumer = Arc::new(Consumer {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            groups,
            tx,
            dropped: AtomicU64::new(0),
        });
        let mut all = self.consumers.write().unwrap();
        all.push(consumer.clone());
        self.count.store(all.len(), Ordering::Release);
        TapSubscription {
            rx,
            consumer,
            tap: self.clone(),
        }
    }

    /// How many consumers are registered.
    pub fn consumers(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Offers an applied event record (`payload`, written at `lsn`) to the consumers of its group.
    pub(crate) fn publish(&self, lsn: u64, group: &str, payload: &[u8], events: usize) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut batch: Option<Arc<TapBatch>> = None;
        for c in self.consumers.read().unwrap().iter() {
            if !c.groups.iter().any(|g| g == group) {
                continue;
            }
            let b = batch.get_or_insert_with(|| {
                Arc::new(TapBatch {
                    lsn,
                    payload: payload.into(),
                })
            });
            if c.tx.try_send(b.clone()).is_err() {
                c.dropped.fetch_add(events as u64, Ordering::Relaxed);
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
#[derive(Debug)]
pub struct TapSubscription {
    rx: mpsc::Receiver<Arc<TapBatch>>,
    consumer: Arc<Consumer>,
    tap: Arc<Tap>,
}

impl TapSubscription {
    /// The next batch, waiting for one.
    pub async fn recv(&mut self) -> Option<Arc<TapBatch>> {
        self.rx.recv().await
    }

    /// The next batch if one is queued.
    pub fn try_recv(&mut self) -> Option<Arc<TapBatch>> {
        self.rx.try_recv().ok()
    }

    /// Events dropped for this consumer since the last call (its queue was full).
    pub fn take_dropped(&self) -> u64 {
        self.consumer.dropped.swap(0, Ordering::Relaxed)
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

    fn record(group: &str, n: usize) -> Vec<u8> {
        record::encode_events(group, "s", 7, (0..n).map(|i| (i as i64, "m")))
    }

    #[tokio::test]
    async fn consumers_get_their_groups_and_a_full_queue_drops_and_counts() {
        let tap = Arc::new(Tap::default());
        // No consumer: nothing is built.
        tap.publish(1, "/a", &record("/a", 1), 1);
        let mut a = tap.subscribe(vec!["/a".into()], 2);
        let mut b = tap.subscribe(vec!["/b".into()], 2);
        assert_eq!(tap.consumers(), 2);
        for lsn in 2..6 {
            tap.publish(lsn, "/a", &record("/a", 3), 3);
        }
        // Two batches fit in a's queue; the other two (3 events each) were dropped and counted.
        assert_eq!(a.recv().await.unwrap().lsn(), 2);
        let second = a.recv().await.unwrap();
        assert_eq!(second.lsn(), 3);
        assert_eq!(second.events().events.len(), 3);
        assert_eq!(second.seq(1), ((3u64 << SEQ_INDEX_BITS) | 1) as i64);
        assert!(a.try_recv().is_none());
        assert_eq!(a.take_dropped(), 6);
        assert_eq!(a.take_dropped(), 0);
        assert!(b.try_recv().is_none());
        drop(a);
        assert_eq!(tap.consumers(), 1);
    }
}
