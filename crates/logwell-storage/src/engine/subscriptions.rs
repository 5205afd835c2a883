//! Subscription filters as storage keeps them: their definitions and delivery cursors in the
//! catalog (through the WAL, like every metadata change), and the read delivery needs: a group's
//! events after a position, in the order they were applied.

use super::*;
use crate::catalog::SubscriptionFilter;

impl Engine {
    /// PutSubscriptionFilter: creates (delivering the events that follow) or replaces one.
    pub async fn put_subscription_filter(
        &self,
        group: &str,
        name: &str,
        filter: SubscriptionFilter,
    ) -> Result<(), ApiError> {
        self.change(MetaChange::PutSubscriptionFilter {
            group: group.into(),
            name: name.into(),
            filter,
        })
        .await
    }

    pub async fn delete_subscription_filter(
        &self,
        group: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        self.change(MetaChange::DeleteSubscriptionFilter {
            group: group.into(),
            name: name.into(),
        })
        .await
    }

    /// A group's subscription filters, by name.
    pub fn subscription_filters(
        &self,
        group: &str,
    ) -> Result<BTreeMap<String, SubscriptionFilter>, ApiError> {
        let st = self.inner.state.read().unwrap();
        Ok(st.meta.group(group)?.subscriptions.clone())
    }

    /// Every subscription filter: (group, name, filter).
    pub fn all_subscription_filters(&self) -> Vec<(String, String, SubscriptionFilter)> {
        let st = self.inner.state.read().unwrap();
        st.meta
            .groups
            .iter()
            .flat_map(|(g, m)| {
                m.subscriptions
                    .iter()
                    .map(move |(n, f)| (g.clone(), n.clone(), f.clone()))
            })
            .collect()
    }

    /// Records that a subscription delivered every matching event up to `seq`. Shares the gate
    /// with puts: a cursor never waits for ingest to pause.
    pub async fn advance_subscription(
        &self,
        group: &str,
        name: &str,
        seq: i64,
    ) -> Result<(), ApiError> {
        self.check_accepting()?;
        let gate = self.inner.gate.clone().read_owned().await;
        self.check_accepting()?;
        let change = MetaChange::AdvanceSubscription {
            group: group.into(),
            name: name.into(),
            seq,
        };
        self.inner.state.read().unwrap().meta.check(&change)?;
        self.append_whole(gate, record::encode_meta(&change)).await
    }

    /// Up to `limit` events of `group` with a seq above `after`, in seq order (the order they
    /// were applied), from buffered batches and the segments that can hold such events. Events
    /// past the group's retention are still read while they are stored: they were accepted, and a
    /// subscription that lags delivers them (see `delivery_floor`).
    pub async fn events_after(
        &self,
        group: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRow>, ApiError> {
        self.events_after_cached(group, after, limit, &mut SegmentCache::default())
            .await
    }

    /// `events_after` for a reader that calls it again and again: `cache` keeps the segment it
    /// last decoded, so a reader that is behind decodes each segment once, not once per call.
    pub async fn events_after_cached(
        &self,
        group: &str,
        after: i64,
        limit: usize,
        cache: &mut SegmentCache,
    ) -> Result<Vec<EventRow>, ApiError> {
        let limit = limit.max(1);
        let snap = self.snapshot(group, i64::MIN, i64::MAX)?;
        let mut rows: Vec<EventRow> = Vec::new();
        let mut threshold: Option<i64> = None;
        let take = |b: &RecordBatch,
                    rows: &mut Vec<EventRow>,
                    threshold: &mut Option<i64>,
                    in_seq_order: bool| {
            let streams = b.column(0).as_dictionary::<Int32Type>();
            let names = streams.values().as_string::<i32>();
            let ts = b.column(1).as_primitive::<Int64Type>();
            let ing = b.column(2).as_primitive::<Int64Type>();
            let seq = b.column(3).as_primitive::<Int64Type>();
            let msg = b.column(4).as_string::<i32>();
            // Buffered batches are in applied (seq) order: start at the first row after the
            // cursor. Segments are sorted otherwise and are read whole.
            let start = if in_seq_order {
                seq.values().partition_point(|s| *s <= after)
            } else {
                0
            };
            for i in start..b.num_rows() {
                let s = seq.value(i);
                if s <= after {
                    continue;
                }
                let stream = names.value(streams.keys().value(i) as usize);
                if snap.tombstones.get(stream).is_some_and(|floor| s < *floor) {
                    continue;
                }
                // Only the `limit` lowest seqs are wanted: keep at most twice that, and once
                // `limit` are kept, nothing above the highest of them.
                if threshold.is_some_and(|t| s > t) {
                    continue;
                }
                if rows.len() >= 2 * limit {
                    keep_lowest(rows, limit, threshold);
                    if threshold.is_some_and(|t| s > t) {
                        continue;
                    }
                }
                rows.push(EventRow {
                    stream: stream.to_string(),
                    timestamp: ts.value(i),
                    ingestion_time: ing.value(i),
                    seq: s,
                    message: msg.value(i).to_string(),
                });
            }
        };
        for b in &snap.buffered {
            take(b, &mut rows, &mut threshold, true);
        }
        let mut segments: Vec<_> = snap
            .segments
            .iter()
            .filter(|s| s.max_seq > after)
            .cloned()
            .collect();
        segments.sort_by_key(|s| s.min_seq.unwrap_or(i64::MIN));
        cache.retain(&segments);
        for seg in segments {
            // Once `limit` events are kept, a segment starting above the highest of them holds
            // none of the wanted ones, and neither do the segments after it.
            if rows.len() >= limit {
                keep_lowest(&mut rows, limit, &mut threshold);
            }
            if let (Some(t), Some(min)) = (threshold, seg.min_seq) {
                if min > t {
                    break;
                }
            }
            let batches = match cache.get(&seg.path) {
                Some(b) => b,
                None => {
                    let b = Arc::new(self.read_segment(&seg).await?);
                    cache.put(&seg.path, b.clone());
                    b
                }
            };
            for b in batches.iter() {
                take(b, &mut rows, &mut threshold, false);
            }
        }
        rows.sort_unstable_by_key(|r| r.seq);
        rows.dedup_by_key(|r| r.seq);
        rows.truncate(limit);
        Ok(rows)
    }

    /// About how many events of `group` follow `after`: exact for buffered events and whole
    /// segments, estimated from the seq range for the segment `after` falls in.
    pub fn events_pending(&self, group: &str, after: i64) -> Result<u64, ApiError> {
        let snap = self.snapshot(group, i64::MIN, i64::MAX)?;
        let mut n = 0u64;
        for b in &snap.buffered {
            let seq = b.column(3).as_primitive::<Int64Type>();
            n += (b.num_rows() - seq.values().partition_point(|s| *s <= after)) as u64;
        }
        for s in snap.segments.iter().filter(|s| s.max_seq > after) {
            n += match s.min_seq {
                Some(min) if min > after => s.rows,
                Some(min) => {
                    let part = (s.max_seq - after) as f64 / (s.max_seq - min + 1) as f64;
                    (s.rows as f64 * part).ceil() as u64
                }
                None => s.rows,
            };
        }
        Ok(n)
    }
}

/// Sorts `rows` by seq, keeps the `limit` lowest and records the highest kept as `threshold`.
fn keep_lowest(rows: &mut Vec<EventRow>, limit: usize, threshold: &mut Option<i64>) {
    rows.sort_unstable_by_key(|r| r.seq);
    rows.dedup_by_key(|r| r.seq);
    rows.truncate(limit);
    if rows.len() >= limit {
        *threshold = rows.last().map(|r| r.seq);
    }
}

/// The segment an `events_after_cached` reader decoded last (one, so a reader's memory stays
/// within a segment's worth).
#[derive(Default)]
pub struct SegmentCache {
    entry: Option<(String, Arc<Vec<RecordBatch>>)>,
}

impl SegmentCache {
    fn get(&self, path: &str) -> Option<Arc<Vec<RecordBatch>>> {
        self.entry
            .as_ref()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
    }

    fn put(&mut self, path: &str, batches: Arc<Vec<RecordBatch>>) {
        self.entry = Some((path.to_string(), batches));
    }

    /// Forgets a segment the reader has passed (or compaction replaced).
    fn retain(&mut self, wanted: &[Arc<SegmentMeta>]) {
        if let Some((p, _)) = &self.entry {
            if !wanted.iter().any(|s| &s.path == p) {
                self.entry = None;
            }
        }
    }
}
