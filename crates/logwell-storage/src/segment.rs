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

/// Rows per data page at most. A page is what the page index prunes by time and what a read
/// decompresses whole: a newest- or oldest-first page of 25 events reads one page per stream
/// (rows are in stream order), so smaller pages than the writer's default 20,000 rows read
/// fewer; 4,096 read fewer still but stored plain lines 16% larger.
pub const PAGE_ROWS: usize = 8192;

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
        .set_data_page_row_count_limit(PAGE_ROWS)
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
            let estimate = logwell_template::split_estimate(
                sample.into_iter().filter_map(|i| {
                    let (b, r) = order[i];
                    messages[b].is_valid(r).then(|| messages[b].value(r))
                }),
                zstd_level,
            );
            let pays = estimate <= logwell_template::SPLIT_BAR;
            tracing::debug!(rows = order.len(), estimate, pays, "splitting messages");
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
mod tests;
