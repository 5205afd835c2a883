//! The row-level part of a scan: which rows of a batch a read keeps, and the newest/oldest `limit`.

use super::*;

/// The row-level part of a scan.
pub(super) struct RowFilter<'a> {
    pub(super) scan: &'a Scan,
    pub(super) lo: i64,
    pub(super) hi: i64,
    pub(super) tombstones: &'a BTreeMap<String, i64>,
}

impl RowFilter<'_> {
    pub(super) fn select(&self, b: &RecordBatch, sel: &mut Selector) {
        let streams = b.column(0).as_dictionary::<Int32Type>();
        let names = streams.values().as_string::<i32>();
        // Per dictionary entry: the lowest visible seq, or None if the stream is not wanted.
        let floors: Vec<Option<i64>> = (0..names.len())
            .map(|i| {
                let n = names.value(i);
                self.scan
                    .streams
                    .accepts(n)
                    .then(|| self.tombstones.get(n).copied().unwrap_or(i64::MIN))
            })
            .collect();
        if floors.iter().all(|f| f.is_none()) {
            return;
        }
        let keys = streams.keys();
        let ts = b.column(1).as_primitive::<Int64Type>();
        let ing = b.column(2).as_primitive::<Int64Type>();
        let seq = b.column(3).as_primitive::<Int64Type>();
        let msg = b.column(4).as_string::<i32>();
        for i in 0..b.num_rows() {
            let t = ts.value(i);
            if t < self.lo || t > self.hi {
                continue;
            }
            let Some(floor) = floors[keys.value(i) as usize] else {
                continue;
            };
            let s = seq.value(i);
            if s < floor {
                continue;
            }
            let key = (t, s);
            if self.scan.after.is_some_and(|a| key <= a)
                || self.scan.before.is_some_and(|b| key >= b)
            {
                continue;
            }
            if !sel.would_take(key) {
                continue;
            }
            let m = msg.value(i);
            sel.push(EventRow {
                stream: names.value(keys.value(i) as usize).to_string(),
                timestamp: t,
                ingestion_time: ing.value(i),
                seq: s,
                message: m.to_string(),
            });
        }
    }
}

/// Keeps the first (or last) `limit` rows by key.
pub(super) struct Selector {
    pub(super) limit: usize,
    pub(super) newest_first: bool,
    pub(super) heap: BinaryHeap<HeapRow>,
}

/// A kept row, ordered by its key oriented so that the heap's top is the row to drop first.
pub(super) struct HeapRow(EventKey, EventRow);
impl PartialEq for HeapRow {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl Eq for HeapRow {}
impl PartialOrd for HeapRow {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeapRow {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.cmp(&o.0)
    }
}

impl Selector {
    pub(super) fn new(limit: usize, newest_first: bool) -> Self {
        Selector {
            limit,
            newest_first,
            heap: BinaryHeap::new(),
        }
    }
    pub(super) fn oriented(&self, key: EventKey) -> EventKey {
        if self.newest_first {
            (!key.0, !key.1)
        } else {
            key
        }
    }
    pub(super) fn is_full(&self) -> bool {
        self.heap.len() >= self.limit
    }
    /// The key of the row that would be dropped next.
    pub(super) fn worst(&self) -> Option<EventKey> {
        self.heap.peek().map(|r| r.1.key())
    }
    pub(super) fn would_take(&self, key: EventKey) -> bool {
        !self.is_full() || self.heap.peek().is_some_and(|w| self.oriented(key) < w.0)
    }
    pub(super) fn push(&mut self, row: EventRow) {
        self.heap.push(HeapRow(self.oriented(row.key()), row));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }
    /// Oldest first, or newest first when `newest_first`.
    pub(super) fn finish(self) -> Vec<EventRow> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.1)
            .collect()
    }
}
