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
//! parsing every message again; a field whose every value is a number printed as [`number`]
//! prints it is held as Float64 instead, which queries read as numbers and print back as the
//! same text. They are derived data: readers of events ignore them, and compaction computes
//! them afresh.
//!
//! A segment compaction writes may hold its messages split instead (see [`logwell_template`]):
//! `message_template` (dictionary-encoded: lines of one kind share it) and `message_vars` in
//! place of `message`, about a tenth smaller on real logs. Readers rebuild the message from
//! the two, byte for byte.
//!
//! [`number`]: logwell_fields::number

use crate::config::MessageTemplates;
use crate::memtable::{col, event_schema};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::array::{ArrayRef, Float64Builder, StringBuilder};
use arrow::compute::{interleave_record_batch, lexsort_to_indices, SortColumn};
use arrow::datatypes::{DataType, Int64Type};
use arrow::datatypes::{Field, Schema};
use bytes::Bytes;
use logwell_fields::{canonical_number, ColumnChoice, PathSet};
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
    pub min_seq: i64,
    pub max_seq: i64,
    /// Sum of message bytes: the raw log volume the segment stands for.
    pub raw_bytes: u64,
    /// Distinct stream names, sorted.
    pub streams: Vec<String>,
}

/// The (batch, row) positions of every row in (stream, timestamp, seq) order. Only the sort keys
/// are concatenated.
pub fn sort_order(batches: &[RecordBatch]) -> arrow::error::Result<Vec<(usize, usize)>> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 {
        return Ok(Vec::new());
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
    let mut starts = Vec::with_capacity(batches.len());
    let mut at = 0;
    for b in batches {
        starts.push(at);
        at += b.num_rows();
    }
    Ok(idx
        .values()
        .iter()
        .map(|&g| {
            let g = g as usize;
            let b = starts.partition_point(|&s| s <= g) - 1;
            (b, g - starts[b])
        })
        .collect())
}

/// Statistics of the events in `batches` (in any order).
pub fn stats(batches: &[RecordBatch]) -> SegmentStats {
    let mut s = SegmentStats {
        min_ts: i64::MAX,
        max_ts: i64::MIN,
        min_seq: i64::MAX,
        max_seq: i64::MIN,
        ..Default::default()
    };
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
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
        s.streams.extend(
            (0..values.len())
                .filter(|i| used[*i])
                .map(|i| values.value(i).to_string()),
        );
        s.rows += batch.num_rows() as u64;
        s.min_ts = s.min_ts.min(arrow::compute::min(ts).unwrap_or(i64::MAX));
        s.max_ts = s.max_ts.max(arrow::compute::max(ts).unwrap_or(i64::MIN));
        s.min_seq = s.min_seq.min(arrow::compute::min(seq).unwrap_or(i64::MAX));
        s.max_seq = s.max_seq.max(arrow::compute::max(seq).unwrap_or(i64::MIN));
        s.raw_bytes += (msg.value_offsets()[msg.len()] - msg.value_offsets()[0]) as u64;
    }
    s.streams.sort();
    s.streams.dedup();
    if s.rows == 0 {
        (s.min_ts, s.max_ts, s.min_seq, s.max_seq) = (0, 0, 0, 0);
    }
    s
}

/// The columns that replace `message` in a segment whose messages are split into templates.
pub const MESSAGE_TEMPLATE: &str = "message_template";
pub const MESSAGE_VARS: &str = "message_vars";

/// The file columns a split segment holds in place of `message`, at its position (never
/// null, as the message is not).
pub fn template_fields() -> [Field; 2] {
    [
        Field::new(MESSAGE_TEMPLATE, logwell_template::template_type(), false),
        Field::new(MESSAGE_VARS, DataType::Utf8, false),
    ]
}

/// The name of the column that holds discovered field `path`.
pub fn field_column(path: &str) -> String {
    format!("field:{path}")
}

/// One field column being built: text, or numbers while every value is one.
enum FieldBuilder {
    Text(StringBuilder),
    Number(Float64Builder),
}

/// The values of the field columns of `set` for every row of `batch`: a number column for each
/// path `numeric` marks, text for the others. Err lists the marked paths that held a value that
/// is not a [`canonical_number`] in this batch.
fn field_arrays(
    batch: &RecordBatch,
    set: &PathSet,
    numeric: &[bool],
) -> Result<Vec<ArrayRef>, Vec<usize>> {
    let msg = batch.column(4).as_string::<i32>();
    let mut out: Vec<Option<std::borrow::Cow<str>>> = vec![None; numeric.len()];
    let mut builders: Vec<FieldBuilder> = numeric
        .iter()
        .map(|&n| match n {
            true => FieldBuilder::Number(Float64Builder::with_capacity(msg.len())),
            false => FieldBuilder::Text(StringBuilder::new()),
        })
        .collect();
    let mut failed: Vec<usize> = Vec::new();
    for i in 0..msg.len() {
        if msg.is_valid(i) {
            set.extract(msg.value(i), &mut out);
        } else {
            out.iter_mut().for_each(|o| *o = None);
        }
        for (k, (b, v)) in builders.iter_mut().zip(&out).enumerate() {
            match b {
                FieldBuilder::Text(b) => b.append_option(v.as_deref()),
                FieldBuilder::Number(b) => match v.as_deref().map(canonical_number) {
                    None => b.append_null(),
                    Some(Some(x)) => b.append_value(x),
                    Some(None) => {
                        b.append_null();
                        if !failed.contains(&k) {
                            failed.push(k);
                        }
                    }
                },
            }
        }
    }
    if !failed.is_empty() {
        return Err(failed);
    }
    Ok(builders
        .into_iter()
        .map(|b| match b {
            FieldBuilder::Text(mut b) => Arc::new(b.finish()) as ArrayRef,
            FieldBuilder::Number(mut b) => Arc::new(b.finish()) as ArrayRef,
        })
        .collect())
}

/// A segment with the rows for it has at least this many row groups...
pub const MIN_ROW_GROUPS: usize = 8;
/// ... of at least this many rows.
pub const MIN_ROW_GROUP_ROWS: usize = 64 * 1024;

/// Rows per row group of a segment of `rows` events: at most `max`, and small enough that the
/// segment has [`MIN_ROW_GROUPS`] of them, down to [`MIN_ROW_GROUP_ROWS`]. Row groups are what
/// a query reads in parallel and prunes by time: a segment of 600 K events in three row groups
/// kept one of two cores idle for a third of each scan (and read a page's whole row group for
/// a minute of it), for 3% fewer bytes than in eight.
pub fn rows_per_group(rows: usize, max: usize) -> usize {
    rows.div_ceil(MIN_ROW_GROUPS)
        .clamp(MIN_ROW_GROUP_ROWS.min(max), max.max(1))
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
        .set_column_dictionary_enabled(ColumnPath::from(MESSAGE_TEMPLATE), true)
        .set_column_statistics_enabled(ColumnPath::from(MESSAGE_TEMPLATE), EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from(MESSAGE_VARS), EnabledStatistics::None)
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

/// Whether splitting a segment's messages pays is measured on this many runs of its rows
/// (spread over it: fewer runs, as a stream's first rows, misjudged generated Lambda and JSON
/// logs by 10%)...
const SAMPLE_RUNS: usize = 16;
/// ... of this many consecutive rows each, as a page holds them.
const SAMPLE_RUN_ROWS: usize = 512;

/// A segment file and what the catalog records of it.
#[derive(Debug)]
pub struct Encoded {
    pub file: Bytes,
    /// Discovered fields the file also holds as `field:<path>` columns, sorted.
    pub fields: Vec<String>,
    /// Those of them held as Float64 (every value a [`canonical_number`]), sorted.
    pub numeric: Vec<String>,
    /// Its messages are split into `message_template` and `message_vars`.
    pub templated: bool,
    pub stats: SegmentStats,
}

/// A field column already extracted from the batches a segment is written from (by queries,
/// while they were buffered): one column per batch, all Float64 or all text.
pub struct Given {
    path: String,
    columns: Vec<ArrayRef>,
    numeric: bool,
}

impl Given {
    /// `columns` holds one column per batch, each text or Float64; if not all are Float64, the
    /// Float64 ones become text (a [`canonical_number`] prints back as the text it was read
    /// from, so nothing changes).
    pub fn new(path: String, columns: Vec<ArrayRef>) -> Given {
        let numeric = columns.iter().all(|c| c.data_type() == &DataType::Float64);
        let columns = if numeric {
            columns
        } else {
            columns
                .into_iter()
                .map(
                    |c| match c.as_primitive_opt::<arrow::datatypes::Float64Type>() {
                        Some(n) => Arc::new(
                            n.iter()
                                .map(|v| v.map(logwell_fields::number))
                                .collect::<arrow::array::StringArray>(),
                        ) as ArrayRef,
                        None => c,
                    },
                )
                .collect()
        };
        Given {
            path,
            columns,
            numeric,
        }
    }
}

/// Where a segment's field column comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// `given[i]`.
    Given(usize),
    /// Slot `i` of the paths extracted while writing.
    Extracted(usize),
}

/// Writes `batches` as one Parquet segment: rows sorted by (stream, timestamp, seq), gathered a
/// chunk at a time, plus the field columns `given` (already extracted) and those `choice`
/// picks (chosen from a sample of all rows, extracted as each chunk is written). A chosen field
/// whose sampled values were all numbers is tried as a number column; a row holding anything
/// else turns it back to text and the file is written again (twice at most: the third time
/// every extracted field is text). `templates` says whether messages are stored split
/// ([`MessageTemplates::WhenSmaller`]: if [`logwell_template::splitting_pays`] on a sample
/// of the rows).
pub fn encode(
    batches: &[RecordBatch],
    zstd_level: i32,
    row_group_rows: usize,
    choice: &ColumnChoice,
    key: Option<&crate::keys::DataKey>,
    given: &[Given],
    templates: MessageTemplates,
) -> parquet::errors::Result<Encoded> {
    let stats = stats(batches);
    let order = sort_order(batches)?;
    let row_group_rows = rows_per_group(order.len(), row_group_rows);
    let messages: Vec<_> = batches
        .iter()
        .map(|b| b.column(4).as_string::<i32>())
        .collect();
    // Split only where it pays, as measured on a few runs of the segment's own rows.
    let templates = match templates {
        MessageTemplates::Off => false,
        MessageTemplates::Always => true,
        MessageTemplates::WhenSmaller => {
            let runs = (0..SAMPLE_RUNS).flat_map(|k| {
                let start = (2 * k + 1) * order.len() / (2 * SAMPLE_RUNS);
                let start = start.saturating_sub(SAMPLE_RUN_ROWS / 2);
                start..(start + SAMPLE_RUN_ROWS).min(order.len())
            });
            let mut sample: Vec<usize> = runs.collect();
            sample.sort_unstable();
            sample.dedup();
            let pays = logwell_template::splitting_pays(
                sample.into_iter().filter_map(|i| {
                    let (b, r) = order[i];
                    messages[b].is_valid(r).then(|| messages[b].value(r))
                }),
                zstd_level,
            );
            tracing::debug!(rows = order.len(), pays, "splitting messages");
            pays
        }
    };
    let chosen: Vec<_> = choice
        .choose_typed(order.len(), |i| {
            let (b, r) = order[i];
            messages[b].is_valid(r).then(|| messages[b].value(r))
        })
        .into_iter()
        .filter(|c| !given.iter().any(|g| g.path == c.path))
        .collect();
    let extracted: Vec<String> = chosen.iter().map(|c| c.path.clone()).collect();
    let mut numeric: Vec<bool> = chosen.iter().map(|c| c.numeric).collect();
    let set = (!extracted.is_empty()).then(|| PathSet::new(&extracted));
    let mut fields: Vec<(String, Source)> = given
        .iter()
        .enumerate()
        .map(|(i, g)| (g.path.clone(), Source::Given(i)))
        .chain(
            extracted
                .iter()
                .enumerate()
                .map(|(i, p)| (p.clone(), Source::Extracted(i))),
        )
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<String> = fields.iter().map(|(p, _)| p.clone()).collect();
    let layout = Layout {
        batches,
        order: &order,
        fields: &fields,
        names: &names,
        given,
        set: set.as_ref(),
        zstd_level,
        row_group_rows,
        key,
        raw_bytes: stats.raw_bytes,
        templates,
    };
    for attempt in 0.. {
        match layout.write(&numeric)? {
            Ok(file) => {
                let numeric = fields
                    .iter()
                    .filter(|(_, source)| layout.is_number(*source, &numeric))
                    .map(|(f, _)| f.clone())
                    .collect();
                return Ok(Encoded {
                    file,
                    fields: names,
                    numeric,
                    templated: templates,
                    stats,
                });
            }
            Err(failed) if attempt == 0 => failed.into_iter().for_each(|k| numeric[k] = false),
            Err(_) => numeric.iter_mut().for_each(|n| *n = false),
        }
    }
    unreachable!("the third attempt writes extracted fields as text only")
}

/// What one attempt at writing a segment needs.
struct Layout<'a> {
    batches: &'a [RecordBatch],
    order: &'a [(usize, usize)],
    /// Every field column, sorted by path, and where it comes from.
    fields: &'a [(String, Source)],
    names: &'a [String],
    given: &'a [Given],
    set: Option<&'a PathSet>,
    zstd_level: i32,
    row_group_rows: usize,
    key: Option<&'a crate::keys::DataKey>,
    raw_bytes: u64,
    templates: bool,
}

impl Layout<'_> {
    fn is_number(&self, source: Source, numeric: &[bool]) -> bool {
        match source {
            Source::Given(i) => self.given[i].numeric,
            Source::Extracted(i) => numeric[i],
        }
    }

    /// The file, with the extracted fields `numeric` marks as number columns; Err (inside)
    /// lists those that held something else.
    fn write(&self, numeric: &[bool]) -> parquet::errors::Result<Result<Bytes, Vec<usize>>> {
        let mut schema_fields: Vec<Field> = event_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let message = event_schema().index_of(col::MESSAGE)?;
        if self.templates {
            schema_fields.splice(message..=message, template_fields());
        }
        schema_fields.extend(self.fields.iter().map(|(f, source)| {
            let ty = match self.is_number(*source, numeric) {
                true => DataType::Float64,
                false => DataType::Utf8,
            };
            Field::new(field_column(f), ty, true)
        }));
        let schema = Arc::new(Schema::new(schema_fields));
        let mut props = writer_properties(self.zstd_level, self.row_group_rows, self.names);
        if let Some(key) = self.key {
            props = props
                .into_builder()
                .with_file_encryption_properties(key.encryption())
                .build();
        }
        let mut out = Vec::with_capacity(self.raw_bytes as usize / 8);
        let mut w = ArrowWriter::try_new(&mut out, schema.clone(), Some(props))?;
        let inputs: Vec<&RecordBatch> = self.batches.iter().collect();
        let given: Vec<Vec<&dyn Array>> = self
            .given
            .iter()
            .map(|g| g.columns.iter().map(|c| c.as_ref()).collect())
            .collect();
        // One row group's rows gathered at a time: the sorted events are never all copied at
        // once (a flush holds the buffered events plus one row group), and each row group is
        // written from one batch, which keeps its pages as large as reads want them.
        for chunk in self.order.chunks(self.row_group_rows.max(1)) {
            let sorted = interleave_record_batch(&inputs, chunk)?;
            let mut columns = sorted.columns().to_vec();
            let extracted = match self.set {
                Some(set) => match field_arrays(&sorted, set, numeric) {
                    Ok(arrays) => arrays,
                    Err(failed) => return Ok(Err(failed)),
                },
                None => Vec::new(),
            };
            if self.templates {
                let (t, v) = logwell_template::split_array(columns[message].as_string::<i32>());
                columns.splice(
                    message..=message,
                    [Arc::new(t) as ArrayRef, Arc::new(v) as ArrayRef],
                );
            }
            for (_, source) in self.fields {
                columns.push(match *source {
                    Source::Given(i) => arrow::compute::interleave(&given[i], chunk)?,
                    Source::Extracted(i) => extracted[i].clone(),
                });
            }
            w.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
        }
        w.close()?;
        Ok(Ok(Bytes::from(out)))
    }
}

/// Decodes a whole segment file.
pub fn decode(
    bytes: Bytes,
    key: Option<&crate::keys::DataKey>,
) -> parquet::errors::Result<Vec<RecordBatch>> {
    decode_pruned(bytes, key, i64::MIN, i64::MAX, |_, _| true)
}

/// Decodes the row groups of a segment that may hold events with timestamps in `[lo, hi]` and a
/// stream for which `streams(min, max)` says the row group's range of names may match.
/// Row-group statistics decide; the file is sorted by stream, so a stream sits in few row groups.
pub fn decode_pruned(
    bytes: Bytes,
    key: Option<&crate::keys::DataKey>,
    lo: i64,
    hi: i64,
    streams: impl Fn(&str, &str) -> bool,
) -> parquet::errors::Result<Vec<RecordBatch>> {
    use parquet::file::statistics::Statistics;
    let mut options = parquet::arrow::arrow_reader::ArrowReaderOptions::new();
    if let Some(key) = key {
        options = options.with_file_decryption_properties(key.decryption());
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options)?;
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
    // The event columns only; field columns are for queries. A split message is two columns.
    let templated = builder.schema().index_of(MESSAGE_TEMPLATE).is_ok();
    let n = event_schema().fields().len() + usize::from(templated);
    let events = ProjectionMask::roots(builder.parquet_schema(), 0..n);
    let reader = builder
        .with_projection(events)
        .with_row_groups(keep)
        .with_batch_size(64 * 1024)
        .build()?;
    let mut out = Vec::new();
    for b in reader {
        let b = b?;
        let mut columns = b.columns().to_vec();
        if templated {
            let message = event_schema().index_of(col::MESSAGE)?;
            let joined = logwell_template::join_arrays(&columns[message], &columns[message + 1])?;
            columns.splice(message..message + 2, [joined]);
        }
        // Files written by this version carry the Arrow schema, so types come back unchanged.
        out.push(RecordBatch::try_new(event_schema(), columns)?);
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
        // Written a row group at a time: more rows than one, so they must join in sorted order.
        let n = 1024 + 10;
        let bulk: Vec<String> = (0..n).map(|i| format!("c{i:06}")).collect();
        m.append(
            "c",
            5,
            300,
            bulk.iter()
                .enumerate()
                .rev()
                .map(|(i, v)| (10 + i as i64, v.as_str())),
        );
        let Encoded {
            file,
            fields,
            stats: s,
            ..
        } = encode(
            &m.freeze_batches(),
            3,
            1024,
            &ColumnChoice::default(),
            None,
            &[],
            MessageTemplates::Off,
        )
        .unwrap();
        assert_eq!(
            (s.rows, s.min_ts, s.max_ts, s.max_seq),
            (3 + n as u64, 1, 9 + n as i64, 300 + n as i64 - 1)
        );
        assert_eq!(s.raw_bytes, 6 + 7 * n as u64);
        assert_eq!(
            s.streams,
            vec!["a".to_string(), "b".to_string(), "c".to_string()]
        );
        assert!(fields.is_empty(), "no JSON, no field columns");
        let back = decode(file, None).unwrap();
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
        let mut want = vec!["a2".to_string(), "b1".into(), "b3".into()];
        want.extend(bulk);
        assert_eq!(msgs, want);
    }

    /// `lines` as the batches of one stream, timestamped 0, 1, 2...
    fn one_stream(lines: &[String]) -> Vec<RecordBatch> {
        let mut m = GroupMemtable::default();
        let rows = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i as i64, l.as_str()));
        m.append("s", 5, 100, rows);
        m.freeze_batches()
    }

    #[test]
    fn split_messages_read_back_byte_exact_and_take_fewer_bytes() {
        // sshd's lines, awkward bytes, and empty lines.
        let lines: Vec<String> = logwell_template::sample_sshd_lines(5000)
            .into_iter()
            .enumerate()
            .map(|(i, l)| match i % 9 {
                7 => String::new(),
                8 => format!("{l} \r\x11 café "),
                _ => l,
            })
            .collect();
        let batches = one_stream(&lines);
        let whole = encode(
            &batches,
            15,
            1024,
            &ColumnChoice::default(),
            None,
            &[],
            MessageTemplates::Off,
        )
        .unwrap();
        let split = encode(
            &batches,
            15,
            1024,
            &ColumnChoice::default(),
            None,
            &[],
            MessageTemplates::WhenSmaller,
        )
        .unwrap();
        assert!(split.templated && !whole.templated);
        assert!(
            split.file.len() * 100 < whole.file.len() * 90,
            "split {} bytes, whole {}",
            split.file.len(),
            whole.file.len()
        );
        let all = read_whole(split.file.clone());
        assert!(all.column_by_name(col::MESSAGE).is_none());
        assert!(all.column_by_name(MESSAGE_TEMPLATE).is_some());
        let messages = |batches: Vec<RecordBatch>| -> Vec<String> {
            batches
                .iter()
                .flat_map(|b| {
                    let m = b.column(4).as_string::<i32>();
                    m.iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
                })
                .collect()
        };
        assert_eq!(messages(decode(split.file.clone(), None).unwrap()), lines);
        let some = decode_pruned(split.file, None, 100, 199, |_, _| true).unwrap();
        assert!(messages(some).contains(&lines[150]));
    }

    #[test]
    fn a_segment_with_the_rows_for_it_has_eight_row_groups_of_at_least_64k_rows() {
        let max = 256 * 1024;
        assert_eq!(rows_per_group(600_000, max), 75_000);
        assert_eq!(rows_per_group(100_000, max), 64 * 1024);
        assert_eq!(rows_per_group(10_000_000, max), max);
        assert_eq!(rows_per_group(100, 64), 64, "a smaller maximum is kept");
        let mut m = GroupMemtable::default();
        let lines: Vec<String> = (0..600_000).map(|i| format!("m{}", i % 10)).collect();
        m.append(
            "s",
            5,
            0,
            lines
                .iter()
                .enumerate()
                .map(|(i, v)| (i as i64, v.as_str())),
        );
        let file = encode(
            &m.freeze_batches(),
            1,
            max,
            &ColumnChoice::default(),
            None,
            &[],
            MessageTemplates::Off,
        )
        .unwrap()
        .file;
        let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
        use parquet::file::reader::FileReader;
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, [vec![75_000; 8]].concat());
    }

    #[test]
    fn fields_holding_only_numbers_are_number_columns_that_print_back() {
        // `n` is a number in every row; `late` is one in the sampled rows but text in a row
        // the sample skips (the writer notices and writes it again as text); `code` has a
        // string that reads as a number but does not print back (`007`), so it stays text.
        let lines: Vec<String> = (0..40)
            .map(|i| {
                let late = if i == 37 {
                    "\"x\"".to_string()
                } else {
                    i.to_string()
                };
                let code = if i == 0 { "\"007\"" } else { "2" };
                format!(
                    r#"{{"n":{},"late":{late},"code":{code},"s":"v{}"}}"#,
                    i * 7 % 13,
                    i % 3
                )
            })
            .collect();
        let mut m = GroupMemtable::default();
        m.append(
            "a",
            0,
            1,
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| (i as i64, l.as_str())),
        );
        let choice = ColumnChoice {
            sample: 10,
            ..Default::default()
        };
        let e = encode(
            &m.freeze_batches(),
            3,
            16,
            &choice,
            None,
            &[],
            MessageTemplates::Off,
        )
        .unwrap();
        assert_eq!(e.fields, ["code", "late", "n", "s"]);
        assert_eq!(e.numeric, ["n"]);
        let all = read_whole(e.file);
        let n = all.column_by_name("field:n").unwrap();
        assert_eq!(n.data_type(), &DataType::Float64);
        let n: Vec<f64> = n
            .as_primitive::<arrow::datatypes::Float64Type>()
            .values()
            .to_vec();
        assert_eq!(n, (0..40).map(|i| (i * 7 % 13) as f64).collect::<Vec<_>>());
        let late = all.column_by_name("field:late").unwrap().as_string::<i32>();
        assert_eq!(late.value(37), "x");
        assert_eq!(late.value(36), "36");
        let code = all.column_by_name("field:code").unwrap().as_string::<i32>();
        assert_eq!((code.value(0), code.value(1)), ("007", "2"));
    }

    /// Every column of a plain segment file, as one batch.
    fn read_whole(file: Bytes) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    #[test]
    fn given_field_columns_are_written_in_row_order_beside_chosen_ones() {
        // Two batches, written in reverse time order so the rows must be reordered; `n` is
        // given as numbers in one and text in the other, `t` as numbers in both; `s` is chosen.
        let mut m = GroupMemtable::new(3);
        let first = [
            r#"{"n":5,"t":1,"s":"a"}"#,
            r#"{"n":4,"t":2,"s":"b"}"#,
            r#"{"n":3,"t":3,"s":"c"}"#,
        ];
        let second = [r#"{"n":"x","t":4,"s":"d"}"#, r#"{"n":1,"t":5,"s":"e"}"#];
        m.append(
            "a",
            0,
            10,
            first.iter().enumerate().map(|(i, l)| (10 - i as i64, *l)),
        );
        m.append(
            "a",
            0,
            20,
            second.iter().enumerate().map(|(i, l)| (2 - i as i64, *l)),
        );
        let batches = m.freeze_batches();
        assert_eq!(batches.len(), 2);
        let given: Vec<Given> = ["n", "t"]
            .into_iter()
            .map(|p| {
                let columns = batches
                    .iter()
                    .map(|b| crate::buffered::extract_columns(b, &[(p, true)]).remove(0))
                    .collect();
                Given::new(p.to_string(), columns)
            })
            .collect();
        let e = encode(
            &batches,
            3,
            2,
            &ColumnChoice::default(),
            None,
            &given,
            MessageTemplates::Off,
        )
        .unwrap();
        assert_eq!(e.fields, ["n", "s", "t"]);
        assert_eq!(e.numeric, ["t"]);
        let all = read_whole(e.file);
        let text = |name: &str| -> Vec<String> {
            let c = all.column_by_name(name).unwrap().as_string::<i32>();
            c.iter().map(|v| v.unwrap_or("-").to_string()).collect()
        };
        // Time order: 1 ("e"), 2 ("d"), 8 ("c"), 9 ("b"), 10 ("a").
        assert_eq!(text("message")[0], second[1]);
        assert_eq!(text("field:s"), ["e", "d", "c", "b", "a"]);
        assert_eq!(text("field:n"), ["1", "x", "3", "4", "5"]);
        let t = all.column_by_name("field:t").unwrap();
        let t: Vec<f64> = t
            .as_primitive::<arrow::datatypes::Float64Type>()
            .values()
            .to_vec();
        assert_eq!(t, [5.0, 4.0, 3.0, 2.0, 1.0]);
    }

    #[test]
    fn encrypted_segments_need_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let ring =
            crate::keys::Keyring::open_or_create(&dir.path().join(crate::keys::KEYRING_FILE))
                .unwrap();
        let (key, _) = ring.new_data_key().unwrap();
        let (other, _) = ring.new_data_key().unwrap();
        let mut m = GroupMemtable::default();
        let secret = "user=alice password=hunter2 {\"level\":\"ERROR\"}";
        m.append("web-1", 5, 100, [(1i64, secret), (2, secret)].into_iter());
        let choice = ColumnChoice {
            max_columns: 4,
            ..Default::default()
        };
        let file = encode(
            &m.freeze_batches(),
            3,
            1024,
            &choice,
            Some(&key),
            &[],
            MessageTemplates::Always,
        )
        .unwrap()
        .file;
        let text = String::from_utf8_lossy(&file);
        for plain in ["alice", "hunter2", "web-1", "ERROR", "message", "timestamp"] {
            assert!(!text.contains(plain), "{plain} is readable in the file");
        }
        let back = decode(file.clone(), Some(&key)).unwrap();
        let rows: usize = back.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2);
        assert_eq!(back[0].column(4).as_string::<i32>().value(0), secret);
        assert!(decode(file.clone(), None).is_err(), "read without a key");
        assert!(decode(file, Some(&other)).is_err(), "read with another key");
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
        // Two rows per row group: one stream each.
        let file = encode(
            &m.freeze_batches(),
            3,
            2,
            &ColumnChoice::default(),
            None,
            &[],
            MessageTemplates::Off,
        )
        .unwrap()
        .file;
        let rows = |lo, hi, f: &dyn Fn(&str, &str) -> bool| -> usize {
            decode_pruned(file.clone(), None, lo, hi, f)
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

    #[test]
    fn json_events_of_random_ids_are_kept_whole() {
        let lines: Vec<String> = (0..20_000u64)
            .map(|i| {
                format!(
                    r#"{{"level":"{}","svc":"orders-api","path":"{}","status":{},"latency_ms":{},"user":"u-{:05}","trace":"{:016x}"}}"#,
                    ["INFO", "INFO", "WARN", "ERROR"][i as usize % 4],
                    ["/orders", "/orders/{id}", "/cart", "/login", "/search"][i as usize % 5],
                    200 + (i % 13 == 0) as u64 * 204,
                    (i * 7919) % 900 + 3,
                    (i * 31) % 50_000,
                    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                )
            })
            .collect();
        let batches = one_stream(&lines);
        let encoded = |t| {
            encode(
                &batches,
                15,
                256 * 1024,
                &ColumnChoice::default(),
                None,
                &[],
                t,
            )
            .unwrap()
        };
        let (whole, split) = (
            encoded(MessageTemplates::Off),
            encoded(MessageTemplates::Always),
        );
        assert!(split.file.len() > whole.file.len() * 97 / 100);
        assert!(!encoded(MessageTemplates::WhenSmaller).templated);
    }
}
