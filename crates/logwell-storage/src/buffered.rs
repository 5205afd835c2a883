//! A buffered batch as reads see it, with the JSON fields queries have extracted from its
//! messages kept beside it, so that the next query over the last minutes reads columns instead
//! of parsing every message again.
//!
//! Only sealed batches keep fields (their rows never change); the copy of the active batch a
//! snapshot takes is extracted per query. What a batch keeps is bounded by its own message
//! bytes, so the memtable's memory stays within twice its buffered bytes.

use arrow::array::{Array, ArrayRef, AsArray, Float64Builder, StringBuilder};
use arrow::record_batch::RecordBatch;
use logwell_fields::{canonical_number, number, PathSet};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One buffered batch: its event columns (the segment schema), and for sealed batches the
/// field columns extracted from it so far.
#[derive(Debug, Clone)]
pub struct Buffered {
    pub batch: RecordBatch,
    pub fields: Option<Arc<BatchFields>>,
    /// The least and greatest timestamp of its rows (None when it has none), found once: every
    /// query over the last minutes asks it of every batch, several times.
    time_range: Option<(i64, i64)>,
}

impl Buffered {
    /// A sealed batch, which keeps what queries extract from it.
    pub fn sealed(batch: RecordBatch) -> Buffered {
        let budget = message_bytes(&batch);
        Buffered {
            time_range: time_range(&batch),
            batch,
            fields: Some(Arc::new(BatchFields {
                budget,
                ..Default::default()
            })),
        }
    }

    /// A batch that keeps nothing: a copy of the growing one, or rows read back from a segment.
    pub fn plain(batch: RecordBatch) -> Buffered {
        Buffered {
            time_range: time_range(&batch),
            batch,
            fields: None,
        }
    }

    /// The least and greatest timestamp of the batch's rows, None if it has none.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        self.time_range
    }

    /// The paths this batch keeps, each with whether its column holds numbers.
    pub fn kept_paths(&self) -> Vec<(String, bool)> {
        self.kept()
            .into_iter()
            .map(|(p, c)| (p, c.data_type() == &arrow::datatypes::DataType::Float64))
            .collect()
    }

    /// The kept column of each of `paths` (text, or Float64 where every value was a
    /// [`canonical_number`]), or None where the batch does not keep it.
    pub fn kept_columns(&self, paths: &[String]) -> Vec<Option<ArrayRef>> {
        match &self.fields {
            Some(f) => {
                let kept = f.columns.lock().unwrap();
                paths.iter().map(|p| kept.get(p).cloned()).collect()
            }
            None => vec![None; paths.len()],
        }
    }

    /// Extracts those of `paths` the batch does not keep yet (in one pass over its messages;
    /// as numbers where `numbers` names the path and every value is one) and keeps them while
    /// within its budget. Paths another call is extracting are left to it. Nothing for a batch
    /// that keeps nothing.
    pub fn keep(&self, paths: &[String], numbers: &[String]) {
        let Some(f) = &self.fields else {
            return;
        };
        let missing: Vec<&String> = {
            let kept = f.columns.lock().unwrap();
            let mut pending = f.pending.lock().unwrap();
            let rejected = f.rejected.lock().unwrap();
            let missing: Vec<&String> = paths
                .iter()
                .filter(|p| !kept.contains_key(*p) && !pending.contains(*p))
                .filter(|p| !rejected.contains(*p))
                .collect();
            pending.extend(missing.iter().map(|p| (*p).clone()));
            missing
        };
        if missing.is_empty() {
            return;
        }
        let wanted: Vec<(&str, bool)> = missing
            .iter()
            .map(|p| (p.as_str(), numbers.contains(p)))
            .collect();
        let fresh = extract_columns(&self.batch, &wanted);
        let mut kept = f.columns.lock().unwrap();
        for (path, column) in missing.iter().zip(fresh) {
            let bytes = column.get_array_memory_size() as u64;
            let used = f.used.load(std::sync::atomic::Ordering::Relaxed);
            if used + bytes <= f.budget {
                kept.insert((*path).clone(), column);
                f.used
                    .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
            } else {
                f.rejected.lock().unwrap().insert((*path).clone());
            }
        }
        let mut pending = f.pending.lock().unwrap();
        pending.retain(|p| !missing.contains(&p));
    }

    /// Whether [`Self::keep`] would extract any of `paths`: a sealed batch that neither keeps
    /// it nor has found it too big.
    pub fn would_keep(&self, paths: &[String]) -> bool {
        let Some(f) = &self.fields else {
            return false;
        };
        let kept = f.columns.lock().unwrap();
        let rejected = f.rejected.lock().unwrap();
        paths
            .iter()
            .any(|p| !kept.contains_key(p) && !rejected.contains(p))
    }

    /// The field columns this batch keeps, by path.
    fn kept(&self) -> HashMap<String, ArrayRef> {
        self.fields
            .as_ref()
            .map(|f| f.columns.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Bytes of field columns this batch keeps.
    pub fn kept_bytes(&self) -> u64 {
        self.fields
            .as_ref()
            .map_or(0, |f| f.used.load(std::sync::atomic::Ordering::Relaxed))
    }
}

fn time_range(batch: &RecordBatch) -> Option<(i64, i64)> {
    let ts = batch
        .column_by_name(crate::memtable::col::TIMESTAMP)?
        .as_primitive_opt::<arrow::datatypes::Int64Type>()?;
    Some((arrow::compute::min(ts)?, arrow::compute::max(ts)?))
}

impl std::ops::Deref for Buffered {
    type Target = RecordBatch;

    fn deref(&self) -> &RecordBatch {
        &self.batch
    }
}

/// What one sealed batch keeps of its messages' fields.
#[derive(Debug, Default)]
pub struct BatchFields {
    columns: Mutex<HashMap<String, ArrayRef>>,
    /// Paths being extracted to be kept.
    pending: Mutex<std::collections::HashSet<String>>,
    /// Paths extracted once that did not fit the budget: not extracted again.
    rejected: Mutex<std::collections::HashSet<String>>,
    /// Bytes of the columns kept, at most `budget` (the batch's message bytes).
    used: std::sync::atomic::AtomicU64,
    budget: u64,
}

/// The fields that queries extracted from batches holding at least half of `batches`' rows,
/// sorted by path, each with one column per batch: the one kept, or extracted now for batches
/// that kept none. A flush writes them as field columns, at little more than the cost of
/// encoding them.
pub fn kept_fields(batches: &[Buffered]) -> Vec<crate::segment::Given> {
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let kept: Vec<HashMap<String, ArrayRef>> = batches.iter().map(|b| b.kept()).collect();
    let mut rows_keeping: HashMap<&str, usize> = HashMap::new();
    for (b, k) in batches.iter().zip(&kept) {
        for path in k.keys() {
            *rows_keeping.entry(path).or_default() += b.num_rows();
        }
    }
    let mut paths: Vec<&str> = rows_keeping
        .into_iter()
        .filter(|(_, rows)| rows * 2 >= total && *rows > 0)
        .map(|(p, _)| p)
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Vec::new();
    }
    // Per batch, the paths it lacks, extracted in one pass (as numbers where another batch
    // kept numbers).
    let numeric = |p: &str| {
        kept.iter()
            .filter_map(|k| k.get(p))
            .all(|c| c.data_type() == &arrow::datatypes::DataType::Float64)
    };
    let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::with_capacity(batches.len()); paths.len()];
    for (b, k) in batches.iter().zip(&kept) {
        let missing: Vec<(&str, bool)> = paths
            .iter()
            .filter(|p| !k.contains_key(**p))
            .map(|p| (*p, numeric(p)))
            .collect();
        let mut extracted = match missing.is_empty() {
            true => Vec::new().into_iter(),
            false => extract_columns(b, &missing).into_iter(),
        };
        for (i, p) in paths.iter().enumerate() {
            columns[i].push(match k.get(*p) {
                Some(c) => c.clone(),
                None => extracted.next().expect("one column per missing path"),
            });
        }
    }
    paths
        .into_iter()
        .zip(columns)
        .map(|(path, columns)| crate::segment::Given::new(path.to_string(), columns))
        .collect()
}

/// Index of the message in the event schema.
const MESSAGE: usize = 4;

fn message_bytes(batch: &RecordBatch) -> u64 {
    batch.column(MESSAGE).as_string::<i32>().values().len() as u64
}

/// One column being extracted: numbers while every value is one, then text.
enum Extracting {
    Number(Float64Builder),
    Text(StringBuilder),
}

impl Extracting {
    fn push(&mut self, v: Option<&str>) {
        if let (Extracting::Number(b), Some(text)) = (&mut *self, v) {
            if canonical_number(text).is_none() {
                // A canonical number prints back as its text, so the values so far convert
                // without loss.
                let done = b.finish();
                let mut t = StringBuilder::with_capacity(done.len() + 1, done.len() * 4);
                for x in done.iter() {
                    t.append_option(x.map(number));
                }
                *self = Extracting::Text(t);
            }
        }
        match self {
            Extracting::Number(b) => b.append_option(v.and_then(canonical_number)),
            Extracting::Text(b) => b.append_option(v),
        }
    }

    fn finish(self) -> ArrayRef {
        let mut column: ArrayRef = match self {
            Extracting::Number(mut b) => Arc::new(b.finish()),
            Extracting::Text(mut b) => Arc::new(b.finish()),
        };
        // Builders grow by doubling: what a batch keeps is counted at its size, not capacity.
        column.shrink_to_fit();
        column
    }
}

/// The columns of `paths` (each with whether to try it as numbers) for every row of `batch`,
/// from one pass over its messages: the values [`PathSet::extract`] gives.
pub fn extract_columns(batch: &RecordBatch, paths: &[(&str, bool)]) -> Vec<ArrayRef> {
    let msgs = batch.column(MESSAGE).as_string::<i32>();
    let names: Vec<&str> = paths.iter().map(|(p, _)| *p).collect();
    let set = PathSet::new(&names);
    let mut columns: Vec<Extracting> = paths
        .iter()
        .map(|(_, numeric)| match numeric {
            true => Extracting::Number(Float64Builder::with_capacity(msgs.len())),
            false => Extracting::Text(StringBuilder::new()),
        })
        .collect();
    let mut out: Vec<Option<std::borrow::Cow<str>>> = vec![None; paths.len()];
    for i in 0..msgs.len() {
        if msgs.is_valid(i) {
            set.extract(msgs.value(i), &mut out);
        } else {
            out.iter_mut().for_each(|o| *o = None);
        }
        for (c, v) in columns.iter_mut().zip(&out) {
            c.push(v.as_deref());
        }
    }
    columns.into_iter().map(Extracting::finish).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtable::GroupMemtable;
    use arrow::array::Float64Array;

    fn batch(msgs: &[&str]) -> RecordBatch {
        let mut m = GroupMemtable::default();
        m.append(
            "s",
            1,
            0,
            msgs.iter().enumerate().map(|(i, s)| (i as i64, *s)),
        );
        m.freeze_batches().remove(0)
    }

    #[test]
    fn a_batch_knows_the_range_of_its_timestamps() {
        let b = batch(&["a", "b", "c"]);
        assert_eq!(Buffered::sealed(b.clone()).time_range(), Some((0, 2)));
        assert_eq!(Buffered::plain(b.slice(1, 2)).time_range(), Some((1, 2)));
        assert_eq!(Buffered::plain(b.slice(0, 0)).time_range(), None);
    }

    #[test]
    fn a_number_column_turns_to_text_at_the_first_value_that_is_not_one() {
        let b = batch(&[
            r#"{"n":200,"s":"a"}"#,
            r#"{"s":"b"}"#,
            r#"{"n":12.5}"#,
            r#"{"n":"007"}"#,
            "plain",
        ]);
        let cols = extract_columns(&b, &[("n", true), ("s", true)]);
        let n = cols[0].as_string::<i32>();
        let got: Vec<Option<&str>> = n.iter().collect();
        assert_eq!(got, [Some("200"), None, Some("12.5"), Some("007"), None]);
        let s = cols[1].as_string::<i32>();
        assert_eq!(s.value(0), "a");
        let only_numbers = extract_columns(&b.slice(0, 3), &[("n", true)]);
        let n = only_numbers[0]
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("all numbers: a number column");
        assert_eq!(
            n.iter().collect::<Vec<_>>(),
            [Some(200.0), None, Some(12.5)]
        );
    }

    #[test]
    fn sealed_batches_keep_what_was_extracted_within_their_budget() {
        let msgs: Vec<String> = (0..300)
            .map(|i| {
                format!(
                    r#"{{"level":"INFO","user":"u-{i}","pad":"{}"}}"#,
                    "x".repeat(i % 7)
                )
            })
            .collect();
        let b = batch(&msgs.iter().map(|m| m.as_str()).collect::<Vec<_>>());
        let sealed = Buffered::sealed(b.clone());
        let level = ["level".to_string()];
        assert!(sealed.kept_columns(&level)[0].is_none());
        sealed.keep(&level, &[]);
        assert!(sealed.kept_bytes() > 0);
        let first = sealed.kept_columns(&level)[0].clone().expect("kept");
        assert_eq!(first.as_string::<i32>().value(0), "INFO");
        sealed.keep(&level, &[]);
        let again = sealed.kept_columns(&level)[0].clone().expect("kept");
        assert!(
            Arc::ptr_eq(&first, &again),
            "a kept column is not extracted again"
        );
        let plain = Buffered::plain(b);
        plain.keep(&level, &[]);
        assert_eq!(plain.kept_bytes(), 0);
        assert!(plain.kept_columns(&level)[0].is_none());
        // A batch keeps no more than its message bytes.
        for path in ["user", "pad", "a", "b", "c", "d", "e", "f", "g", "h"] {
            sealed.keep(&[path.to_string()], &[]);
        }
        assert!(sealed.kept_bytes() <= message_bytes(&sealed));
        let kept = sealed
            .fields
            .as_ref()
            .unwrap()
            .columns
            .lock()
            .unwrap()
            .len();
        assert!((1..10).contains(&kept), "{kept} columns kept");
        // What did not fit is not extracted again by later queries.
        for path in [
            "level", "user", "pad", "a", "b", "c", "d", "e", "f", "g", "h",
        ] {
            let path = [path.to_string()];
            let kept = sealed.kept_columns(&path)[0].is_some();
            assert!(!sealed.would_keep(&path), "{path:?} (kept: {kept})");
        }
    }
}
