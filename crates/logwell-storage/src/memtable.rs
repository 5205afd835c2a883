//! Acknowledged events that are not in a segment yet, gathered into Arrow record batches per group.

use crate::buffered::Buffered;
use arrow::array::{ArrayRef, Int64Builder, StringBuilder, StringDictionaryBuilder};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Column names of the event schema, shared by memtables and segments.
pub mod col {
    pub const STREAM: &str = "stream";
    pub const TIMESTAMP: &str = "timestamp";
    pub const INGESTION_TIME: &str = "ingestion_time";
    pub const SEQ: &str = "seq";
    pub const MESSAGE: &str = "message";
}

/// The schema of every event batch: one row per event.
///
/// `seq` is the event's identity (`lsn << 14 | index in its batch`): unique, stable across
/// flushes, and the tie-breaker after `timestamp` in read order.
pub fn event_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(
                    col::STREAM,
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                    false,
                ),
                Field::new(col::TIMESTAMP, DataType::Int64, false),
                Field::new(col::INGESTION_TIME, DataType::Int64, false),
                Field::new(col::SEQ, DataType::Int64, false),
                Field::new(col::MESSAGE, DataType::Utf8, false),
            ]))
        })
        .clone()
}

/// Bits of `seq` that number an event inside its WAL record (10,000 events fit in 14 bits).
pub const SEQ_INDEX_BITS: u32 = 14;

/// Rows per sealed batch by default: big enough for vectorised scans, small enough to seal
/// often.
const SEAL_ROWS: usize = 32 * 1024;
/// Message bytes per sealed batch, far below the 2 GiB that 32-bit string offsets allow. Small
/// enough that a query's copy of the active batch stays cheap.
const SEAL_BYTES: usize = 8 << 20;
/// The active batch's message buffer is allocated once at its largest size (a batch seals after
/// the append that crosses SEAL_BYTES, and one append is at most ~1 MiB), so it never regrows
/// into a doubled copy; pages it never fills are never touched, so they cost no memory.
const MESSAGE_CAPACITY: usize = SEAL_BYTES + (2 << 20);

struct Builders {
    stream: StringDictionaryBuilder<Int32Type>,
    timestamp: Int64Builder,
    ingestion: Int64Builder,
    seq: Int64Builder,
    message: StringBuilder,
    rows: usize,
}

impl Builders {
    fn new(rows: usize) -> Self {
        Builders {
            stream: StringDictionaryBuilder::new(),
            timestamp: Int64Builder::with_capacity(rows),
            ingestion: Int64Builder::with_capacity(rows),
            seq: Int64Builder::with_capacity(rows),
            message: StringBuilder::with_capacity(rows, MESSAGE_CAPACITY),
            rows: 0,
        }
    }

    fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.stream.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.ingestion.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.message.finish()),
        ];
        RecordBatch::try_new(event_schema(), cols).expect("memtable columns match the schema")
    }
}

/// The unflushed events of one log group.
pub struct GroupMemtable {
    sealed: Vec<Buffered>,
    active: Builders,
    /// Batches handed to a flush that has not registered its segment yet; still readable.
    frozen: Vec<Buffered>,
    bytes: u64,
    frozen_bytes: u64,
    oldest: Option<Instant>,
    /// Rows per sealed batch.
    seal_rows: usize,
}

impl Default for GroupMemtable {
    fn default() -> Self {
        GroupMemtable::new(SEAL_ROWS)
    }
}

/// Approximate in-memory cost of one event beyond its message bytes.
pub const ROW_OVERHEAD: u64 = 32;

impl GroupMemtable {
    /// An empty memtable sealing a batch every `seal_rows` rows.
    pub fn new(seal_rows: usize) -> Self {
        GroupMemtable {
            sealed: Vec::new(),
            active: Builders::new(seal_rows),
            frozen: Vec::new(),
            bytes: 0,
            frozen_bytes: 0,
            oldest: None,
            seal_rows,
        }
    }

    /// Appends one stream's events; `first_seq` numbers the first, the rest follow.
    pub fn append<'a>(
        &mut self,
        stream: &str,
        ingestion_time: i64,
        first_seq: i64,
        events: impl ExactSizeIterator<Item = (i64, &'a str)>,
    ) {
        if self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
        let b = &mut self.active;
        // One dictionary lookup per batch, not per event.
        b.stream.append_values(stream, events.len());
        for (i, (ts, msg)) in events.enumerate() {
            b.timestamp.append_value(ts);
            b.ingestion.append_value(ingestion_time);
            b.seq.append_value(first_seq + i as i64);
            b.message.append_value(msg);
            b.rows += 1;
            self.bytes += msg.len() as u64 + ROW_OVERHEAD;
        }
        if b.rows >= self.seal_rows || b.message.values_slice().len() >= SEAL_BYTES {
            let batch = b.finish();
            self.sealed.push(Buffered::sealed(batch));
        }
    }

    /// Every buffered batch (frozen, sealed and a copy of the active one).
    pub fn snapshot(&self) -> Vec<Buffered> {
        let mut out: Vec<Buffered> = self
            .frozen
            .iter()
            .chain(self.sealed.iter())
            .cloned()
            .collect();
        if self.active.rows > 0 {
            out.push(Buffered::plain(self.active_copy()));
        }
        out
    }

    fn active_copy(&self) -> RecordBatch {
        let b = &self.active;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(b.stream.finish_cloned()),
            Arc::new(b.timestamp.finish_cloned()),
            Arc::new(b.ingestion.finish_cloned()),
            Arc::new(b.seq.finish_cloned()),
            Arc::new(b.message.finish_cloned()),
        ];
        RecordBatch::try_new(event_schema(), cols).expect("memtable columns match the schema")
    }

    /// Moves everything buffered into the frozen set and returns the whole frozen set, which a
    /// flush writes out (with the fields queries had extracted). Frozen data stays readable
    /// until `release_frozen`.
    pub fn freeze(&mut self) -> Vec<Buffered> {
        if self.active.rows > 0 {
            let batch = self.active.finish();
            self.sealed.push(Buffered::sealed(batch));
        }
        self.frozen.append(&mut self.sealed);
        self.frozen_bytes += self.bytes;
        self.bytes = 0;
        self.oldest = None;
        self.frozen.clone()
    }

    /// [`Self::freeze`]'s batches without what they keep.
    #[cfg(test)]
    pub fn freeze_batches(&mut self) -> Vec<RecordBatch> {
        self.freeze().into_iter().map(|b| b.batch).collect()
    }

    /// Drops the frozen batches once their segment is registered in the catalog.
    pub fn release_frozen(&mut self) {
        self.frozen.clear();
        self.frozen_bytes = 0;
    }

    /// Bytes of field columns the sealed and frozen batches keep for queries.
    pub fn kept_field_bytes(&self) -> u64 {
        self.frozen
            .iter()
            .chain(&self.sealed)
            .map(|b| b.kept_bytes())
            .sum()
    }

    /// Bytes buffered and not frozen.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// All bytes held, frozen included.
    pub fn total_bytes(&self) -> u64 {
        self.bytes + self.frozen_bytes
    }

    pub fn oldest(&self) -> Option<Instant> {
        self.oldest
    }

    pub fn is_empty(&self) -> bool {
        self.active.rows == 0 && self.sealed.is_empty() && self.frozen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};

    #[test]
    fn buffered_rows_are_visible_before_and_after_freeze() {
        let mut m = GroupMemtable::default();
        m.append(
            "s1",
            10,
            1 << SEQ_INDEX_BITS,
            [(1i64, "a"), (2, "b")].into_iter(),
        );
        let snap = m.snapshot();
        assert_eq!(snap.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        let frozen = m.freeze();
        assert_eq!(frozen.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        m.append("s2", 11, 2 << SEQ_INDEX_BITS, [(3i64, "c")].into_iter());
        assert_eq!(m.snapshot().iter().map(|b| b.num_rows()).sum::<usize>(), 3);
        m.release_frozen();
        let snap = m.snapshot();
        assert_eq!(snap.len(), 1);
        let ts = snap[0]
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ts.len(), 1);
        assert_eq!(ts.value(0), 3);
    }
}
