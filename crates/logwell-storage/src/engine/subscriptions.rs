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

    /// Up to `limit` visible events of `group` with a seq above `after`, in seq order (the order
    /// they were applied), from buffered batches and the segments that can hold such events.
    pub async fn events_after(
        &self,
        group: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRow>, ApiError> {
        let snap = self.snapshot(group, i64::MIN, i64::MAX)?;
        let lo = snap.cutoff.unwrap_or(i64::MIN);
        let mut rows: Vec<EventRow> = Vec::new();
        let mut threshold: Option<i64> = None;
        let mut take = |b: &RecordBatch, rows: &mut Vec<EventRow>, in_seq_order: bool| {
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
                if s <= after || ts.value(i) < lo {
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
                if rows.len() >= 2 * limit.max(1) {
                    rows.sort_unstable_by_key(|r| r.seq);
                    rows.truncate(limit.max(1));
                    threshold = rows.last().map(|r| r.seq);
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
            take(b, &mut rows, true);
        }
        let mut segments: Vec<_> = snap
            .segments
            .iter()
            .filter(|s| s.max_seq > after)
            .cloned()
            .collect();
        segments.sort_by_key(|s| s.max_seq);
        for seg in segments {
            for b in &self.read_segment(&seg).await? {
                take(b, &mut rows, false);
            }
        }
        rows.sort_unstable_by_key(|r| r.seq);
        rows.dedup_by_key(|r| r.seq);
        rows.truncate(limit);
        Ok(rows)
    }
}
