//! Immutable Parquet segments: how buffered batches become files, and how files are read back.
//!
//! Rows are sorted by (stream, timestamp, seq) so that a stream's events sit together and row-group
//! statistics on `stream` and `timestamp` let readers skip what they do not need. Encodings are
//! chosen per column: a dictionary for the low-cardinality stream name, delta for the three
//! monotone-ish integers, plain zstd for messages (a dictionary there costs ~20%).
//!
//! After the five event columns, a segment may hold `field:<path>` columns: the JSON fields most
//! of its messages carry (chosen per segment by [`ColumnChoice`]), as the text
//! [`PathSet::extract`] gives, so queries on them read a small dictionary-encoded column instead of
//! parsing every message again. They are derived data: readers of events ignore them, and
//! compaction computes them afresh.

use crate::memtable::{col, event_schema};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::array::{ArrayRef, StringBuilder};
use arrow::compute::{interleave_record_batch, lexsort_to_indices, SortColumn};
use arrow::datatypes::{DataType, Int64Type};
use arrow::datatypes::{Field, Schema};
use bytes::Bytes;
use logwell_fields::{ColumnChoice, PathSet};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::sync::Arc;

/// What a segment holds, as the catalog records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentStats {
    pub rows: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub max_seq: i64,
    /// Sum of message bytes: the raw log volume the segment stands for.
    pub raw_bytes: u64,
    /// Distinct stream names, sorted.
    pub streams: Vec<String>,
}

/// Sorts batches by (stream, timestamp, seq) into one batch. Only the sort keys are concatenated;
/// every column is then gathered once, in order, straight from the input batches, so a flush
/// holds the buffered events plus one sorted copy (not a concatenated copy besides).
pub fn sort_batches(batches: &[RecordBatch]) -> arrow::error::Result<RecordBatch> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 {
        return Ok(RecordBatch::new_empty(event_schema()));
    }
    let key = |i: usize, as_text: bool| -> arrow::error::Result<ArrayRef> {
        let parts: Vec<ArrayRef> = batches
            .iter()
            .map(|b| {
                if as_text {
                    arrow::compute::cast(b.column(i), &DataType::Utf8)
                } else {
                    Ok(b.column(i).clone())
                }
            })
            .collect::<arrow::error::Result<_>>()?;
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        arrow::compute::concat(&refs)
    };
    let cols = [
        SortColumn {
            values: key(0, true)?,
            options: None,
        },
        SortColumn {
            values: key(1, false)?,
            options: None,
        },
        SortColumn {
            values: key(3, false)?,
            options: None,
        },
    ];
    let idx = lexsort_to_indices(&cols, None)?;
    drop(cols);
    let mut starts = Vec::with_capacity(batches.len());
    let mut at = 0;
    for b in batches {
        starts.push(at);
        at += b.num_rows();
    }
    let pairs: Vec<(usize, usize)> = idx
        .values()
        .iter()
        .map(|&g| {
            let g = g as usize;
            let b = starts.partition_point(|&s| s <= g) - 1;
            (b, g - starts[b])
        })
        .collect();
    let inputs: Vec<&RecordBatch> = batches.iter().collect();
    interleave_record_batch(&inputs, &pairs)
}

/// Statistics of a sorted batch.
pub fn stats(batch: &RecordBatch) -> SegmentStats {
    let ts = batch.column(1).as_primitive::<Int64Type>();
    let seq = batch.column(3).as_primitive::<Int64Type>();
    let msg = batch.column(4).as_string::<i32>();
    let streams = batch
        .column(0)
        .as_dictionary::<arrow::datatypes::Int32Type>();
    let values = streams.values().as_string::<i32>();
    let mut used = vec![false; values.len()];
    for k in streams.keys().values() {
        used[*k as usize] = true;
    }
    let mut names: Vec<String> = (0..values.len())
        .filter(|i| used[*i])
        .map(|i| values.value(i).to_string())
        .collect();
    names.sort();
    names.dedup();
    SegmentStats {
        rows: batch.num_rows() as u64,
        min_ts: arrow::compute::min(ts).unwrap_or(0),
        max_ts: arrow::compute::max(ts).unwrap_or(0),
        max_seq: arrow::compute::max(seq).unwrap_or(0),
        raw_bytes: (msg.value_offsets()[msg.len()] - msg.value_offsets()[0]) as u64,
        streams: names,
    }
}

/// The name of the column that holds discovered field `path`.
pub fn field_column(path: &str) -> String {
    format!("field:{path}")
}

/// The field columns `choice` picks for a sorted batch: their paths and values.
pub fn field_columns(batch: &RecordBatch, choice: &ColumnChoice) -> (Vec<String>, Vec<ArrayRef>) {
    let msg = batch.column(4).as_string::<i32>();
    let paths = choice.choose(msg.len(), |i| msg.is_valid(i).then(|| msg.value(i)));
    if paths.is_empty() {
        return (paths, Vec::new());
    }
    let set = PathSet::new(&paths);
    let mut out = vec![None; paths.len()];
    let mut builders: Vec<StringBuilder> = paths.iter().map(|_| StringBuilder::new()).collect();
    for i in 0..msg.len() {
        if msg.is_valid(i) {
            set.extract(msg.value(i), &mut out);
        } else {
            out.iter_mut().for_each(|o| *o = None);
        }
        for (b, v) in builders.iter_mut().zip(&out) {
            b.append_option(v.as_deref());
        }
    }
    let arrays = builders
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    (paths, arrays)
}

/// Parquet writer settings for event segments; `fields` are the field columns it will hold.
pub fn writer_properties(
    zstd_level: i32,
    row_group_rows: usize,
    fields: &[String],
) -> WriterProperties {
    let level = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let delta = [col::TIMESTAMP, col::INGESTION_TIME, col::SEQ];
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from(col::STREAM), true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_column_statistics_enabled(ColumnPath::from(col::MESSAGE), EnabledStatistics::None)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_created_by("logwell".into());
    for c in delta {
        b = b.set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED);
    }
    // Field values repeat (levels, status codes, hosts): a dictionary makes them nearly free.
    for f in fields {
        b = b.set_column_dictionary_enabled(ColumnPath::new(vec![field_column(f)]), true);
    }
    b.build()
}

/// Encodes a sorted batch as a Parquet file with the field columns `choice` picks; returns the
/// file and the fields it holds as columns.
pub fn encode(
    batch: &RecordBatch,
    zstd_level: i32,
    row_group_rows: usize,
    choice: &ColumnChoice,
) -> parquet::errors::Result<(Bytes, Vec<String>)> {
    let (fields, arrays) = field_columns(batch, choice);
    let mut schema_fields: Vec<Field> = event_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    schema_fields.extend(
        fields
            .iter()
            .map(|f| Field::new(field_column(f), DataType::Utf8, true)),
    );
    let schema = Arc::new(Schema::new(schema_fields));
    let mut columns = batch.columns().to_vec();
    columns.extend(arrays);
    let full = RecordBatch::try_new(schema.clone(), columns)?;
    let props = writer_properties(zstd_level, row_group_rows, &fields);
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut w = ArrowWriter::try_new(&mut out, schema, Some(props))?;
    w.write(&full)?;
    w.close()?;
    Ok((Bytes::from(out), fields))
}

/// Decodes a whole segment file.
pub fn decode(bytes: Bytes) -> parquet::errors::Result<Vec<RecordBatch>> {
    decode_pruned(bytes, i64::MIN, i64::MAX, |_, _| true)
}

/// Decodes the row groups of a segment that may hold events with timestamps in `[lo, hi]` and a
/// stream for which `streams(min, max)` says the row group's range of names may match.
/// Row-group statistics decide; the file is sorted by stream, so a stream sits in few row groups.
pub fn decode_pruned(
    bytes: Bytes,
    lo: i64,
    hi: i64,
    streams: impl Fn(&str, &str) -> bool,
) -> parquet::errors::Result<Vec<RecordBatch>> {
    use parquet::file::statistics::Statistics;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let keep: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| {
            let time_ok = match rg.column(1).statistics() {
                Some(Statistics::Int64(v)) => match (v.min_opt(), v.max_opt()) {
                    (Some(min), Some(max)) => *max >= lo && *min <= hi,
                    _ => true,
                },
                _ => true,
            };
            let names = rg.column(0).statistics().and_then(|st| {
                let min = std::str::from_utf8(st.min_bytes_opt()?).ok()?;
                let max = std::str::from_utf8(st.max_bytes_opt()?).ok()?;
                Some((min, max))
            });
            time_ok && names.is_none_or(|(min, max)| streams(min, max))
        })
        .map(|(i, _)| i)
        .collect();
    // The event columns only; field columns are for queries.
    let events = ProjectionMask::roots(builder.parquet_schema(), 0..event_schema().fields().len());
    let reader = builder
        .with_projection(events)
        .with_row_groups(keep)
        .with_batch_size(64 * 1024)
        .build()?;
    let mut out = Vec::new();
    for b in reader {
        let b = b?;
        // Files written by this version carry the Arrow schema, so types come back unchanged.
        out.push(RecordBatch::try_new(event_schema(), b.columns().to_vec())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtable::GroupMemtable;

    #[test]
    fn segments_sort_by_stream_then_time_and_round_trip() {
        let mut m = GroupMemtable::default();
        m.append("b", 5, 100, [(3i64, "b3"), (1, "b1")].into_iter());
        m.append("a", 5, 200, [(2i64, "a2")].into_iter());
        let sorted = sort_batches(&m.freeze()).unwrap();
        let s = stats(&sorted);
        assert_eq!(
            (s.rows, s.min_ts, s.max_ts, s.max_seq, s.raw_bytes),
            (3, 1, 3, 200, 6)
        );
        assert_eq!(s.streams, vec!["a".to_string(), "b".to_string()]);
        let (file, fields) = encode(&sorted, 3, 1024, &ColumnChoice::default()).unwrap();
        assert!(fields.is_empty(), "no JSON, no field columns");
        let back = decode(file).unwrap();
        let msgs: Vec<String> = back
            .iter()
            .flat_map(|b| {
                b.column(4)
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(msgs, vec!["a2", "b1", "b3"]);
    }

    #[test]
    fn row_group_statistics_prune_by_stream_and_time() {
        let mut m = GroupMemtable::default();
        for (i, stream) in ["a", "b", "c", "d"].iter().enumerate() {
            let t = i as i64 * 100;
            m.append(
                stream,
                0,
                i as i64 * 10,
                [(t, "x"), (t + 1, "y")].into_iter(),
            );
        }
        let sorted = sort_batches(&m.freeze()).unwrap();
        // Two rows per row group: one stream each.
        let (file, _) = encode(&sorted, 3, 2, &ColumnChoice::default()).unwrap();
        let rows = |lo, hi, f: &dyn Fn(&str, &str) -> bool| -> usize {
            decode_pruned(file.clone(), lo, hi, f)
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum()
        };
        assert_eq!(rows(i64::MIN, i64::MAX, &|_, _| true), 8);
        assert_eq!(
            rows(i64::MIN, i64::MAX, &|min, max| "c" >= min && "c" <= max),
            2
        );
        assert_eq!(rows(150, 250, &|_, _| true), 2);
        assert_eq!(rows(1000, 2000, &|_, _| true), 0);
    }
}
