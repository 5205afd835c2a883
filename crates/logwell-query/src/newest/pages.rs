//! The bound of a page without a filter, from what segments already say. Each data page's
//! timestamp range is in the page index kept with its footer (see `footers`), so the pages that
//! can hold the N newest (oldest) events are known before any is read, and so are the buffered
//! batches that can (each a run of its own, from its least and greatest timestamp): only their
//! timestamps are read to find the N-th. It answers what the probe would, without planning and
//! running one over the whole range.

use super::Best;
use crate::footers::{CachedFooters, Segment};
use crate::table::STORE_URL;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use datafusion::parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use datafusion::parquet::file::page_index::column_index::ColumnIndexMetaData;
use datafusion::parquet::file::statistics::Statistics;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use logwell_storage::catalog::SegmentMeta;
use logwell_storage::memtable::col as columns;
use logwell_storage::GroupSnapshot;
use std::ops::Range;
use std::sync::Arc;

/// Consecutive rows of one row group (a data page, or the whole group where its pages are not
/// indexed) and the range of their timestamps, when known.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    row_group: usize,
    rows: Range<usize>,
    min: Option<i64>,
    max: Option<i64>,
}

/// The runs of a segment's timestamp column.
fn runs(footer: &ParquetMetaData) -> Option<Vec<Run>> {
    let leaf = footer
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [columns::TIMESTAMP])?;
    let mut out = Vec::new();
    for (g, rg) in footer.row_groups().iter().enumerate() {
        let rows = rg.num_rows() as usize;
        let pages = footer
            .offset_index()
            .and_then(|o| o.get(g)?.get(leaf))
            .map(|o| o.page_locations());
        let index = footer.column_index().and_then(|c| c.get(g)?.get(leaf));
        match (pages, index) {
            (Some(pages), Some(ColumnIndexMetaData::INT64(index)))
                if pages.len() as u64 == index.num_pages() =>
            {
                for (p, page) in pages.iter().enumerate() {
                    let end = pages
                        .get(p + 1)
                        .map_or(rows, |n| n.first_row_index as usize);
                    out.push(Run {
                        row_group: g,
                        rows: page.first_row_index as usize..end,
                        min: index.min_value(p).copied(),
                        max: index.max_value(p).copied(),
                    });
                }
            }
            _ => {
                let (min, max) = match rg.column(leaf).statistics() {
                    Some(Statistics::Int64(s)) => (s.min_opt().copied(), s.max_opt().copied()),
                    _ => (None, None),
                };
                out.push(Run {
                    row_group: g,
                    rows: 0..rows,
                    min,
                    max,
                });
            }
        }
    }
    Some(out)
}

/// How far the N best events surely reach: the best key at which the runs (min, max, rows)
/// hold N events between them, or None if they do not. Only runs wholly inside the range are
/// given (others may hold fewer visible events than rows).
fn reach(runs: impl Iterator<Item = (i64, i64, usize)>, ascending: bool, n: usize) -> Option<i64> {
    // A run counts at its worst key: all of its rows are at least that good.
    let mut keyed: Vec<(i64, usize)> = runs
        .map(|(min, max, rows)| (if ascending { max } else { min }, rows))
        .collect();
    if ascending {
        keyed.sort_unstable_by_key(|(k, _)| *k);
    } else {
        keyed.sort_unstable_by_key(|(k, _)| std::cmp::Reverse(*k));
    }
    let mut seen = 0;
    for (k, rows) in keyed {
        seen += rows;
        if seen >= n {
            return Some(k);
        }
    }
    None
}

/// A segment of the page's groups, with its footer and the range of the group it belongs to.
struct Opened {
    footer: Arc<ParquetMetaData>,
    reader: Segment,
    options: ArrowReaderOptions,
    runs: Vec<Run>,
    range: (i64, i64),
}

/// The N-th newest (oldest) timestamp of the events of `snapshots` in `range`, as the probe
/// finds it: Some(bound), or None when this cannot tell (a deleted stream, pages without
/// statistics, fewer than N events surely in range), and the probe is to run instead.
pub(crate) async fn bound(
    ctx: &SessionContext,
    snapshots: &[GroupSnapshot],
    range: (i64, i64),
    ascending: bool,
    n: usize,
) -> datafusion::common::Result<Option<i64>> {
    // Rows below a tombstone are hidden row by row; counting pages cannot see that.
    if snapshots.iter().any(|s| !s.tombstones.is_empty()) {
        return Ok(None);
    }
    let runtime = ctx.runtime_env();
    let footers = CachedFooters::new(
        runtime.object_store(ObjectStoreUrl::parse(STORE_URL)?)?,
        runtime.cache_manager.get_file_metadata_cache(),
    );
    let metrics = ExecutionPlanMetricsSet::new();
    let ts_column = logwell_storage::memtable::event_schema().index_of(columns::TIMESTAMP)?;
    let mut opened: Vec<Opened> = Vec::new();
    // Buffered batches, each a run of its own: its timestamps, their range, the group's range.
    let mut buffered: Vec<(&[i64], (i64, i64), (i64, i64))> = Vec::new();
    for snap in snapshots {
        let lo = range.0.max(snap.cutoff.unwrap_or(i64::MIN));
        let hi = range.1;
        for b in &snap.buffered {
            let Some((min, max)) = b.time_range() else {
                continue;
            };
            let ts = b.batch.column(ts_column).as_primitive::<Int64Type>();
            if max >= lo && min <= hi {
                buffered.push((ts.values(), (min, max), (lo, hi)));
            }
        }
        let within = |s: &&Arc<SegmentMeta>| s.max_ts >= lo && s.min_ts <= hi;
        for s in snap.segments.iter().filter(within) {
            let mut options =
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
            if s.encrypted {
                let key = snap.held_keys.get(&s.path).or(snap.data_key.as_ref());
                let Some(key) = key else {
                    return Ok(None);
                };
                options = options.with_file_decryption_properties(key.decryption());
            }
            let file = PartitionedFile::new(s.path.clone(), s.bytes);
            let mut reader = footers.open(0, file, None, &metrics)?;
            let footer = reader.get_metadata(Some(&options)).await?;
            let Some(runs) = runs(&footer) else {
                return Ok(None);
            };
            opened.push(Opened {
                footer,
                reader,
                options,
                runs,
                range: (lo, hi),
            });
        }
    }
    // Every event at or better than `reach` is in a run that starts there or better.
    let whole = opened.iter().flat_map(|o| {
        o.runs.iter().filter_map(move |r| {
            let (min, max) = (r.min?, r.max?);
            (min >= o.range.0 && max <= o.range.1).then_some((min, max, r.rows.len()))
        })
    });
    // A batch wholly in range counts as a run; one that the range cuts, by its values in range.
    let (whole_buffered, cut_buffered): (Vec<_>, Vec<_>) = buffered
        .iter()
        .partition(|(_, (min, max), (lo, hi))| min >= lo && max <= hi);
    let in_range = cut_buffered.iter().flat_map(|(ts, _, (lo, hi))| {
        ts.iter()
            .filter(move |t| (lo..=hi).contains(t))
            .map(|t| (*t, *t, 1))
    });
    let runs = whole_buffered
        .iter()
        .map(|(ts, (min, max), _)| (*min, *max, ts.len()))
        .chain(in_range)
        .chain(whole);
    let Some(reach) = reach(runs, ascending, n) else {
        return Ok(None);
    };
    // Whether a run from `min` to `max` may hold an event at or better than `reach`.
    let may_hold = |min: i64, max: i64| {
        if ascending {
            min <= reach
        } else {
            max >= reach
        }
    };
    let mut best = Best {
        ascending,
        n,
        kept: Vec::new(),
        bar: None,
        publish: None,
    };
    for (ts, (min, max), (lo, hi)) in buffered {
        if may_hold(min, max) {
            for v in ts.iter().filter(|t| (lo..=hi).contains(*t)) {
                best.offer(*v);
            }
        }
    }
    for o in opened {
        let wanted: Vec<&Run> = o
            .runs
            .iter()
            .filter(|r| match (r.min, r.max) {
                (Some(min), Some(max)) => {
                    max >= o.range.0 && min <= o.range.1 && may_hold(min, max)
                }
                _ => true,
            })
            .collect();
        if wanted.is_empty() {
            continue;
        }
        for v in read_runs(o.footer, o.reader, o.options, &wanted).await? {
            if (o.range.0..=o.range.1).contains(&v) {
                best.offer(v);
            }
        }
    }
    Ok(best.bound())
}

/// The timestamps of `wanted` runs (in file order) of one segment.
async fn read_runs(
    footer: Arc<ParquetMetaData>,
    reader: Segment,
    options: ArrowReaderOptions,
    wanted: &[&Run],
) -> datafusion::common::Result<Vec<i64>> {
    let mut groups: Vec<usize> = wanted.iter().map(|r| r.row_group).collect();
    groups.dedup();
    let mut selectors = Vec::new();
    for &g in &groups {
        let rows = footer.row_group(g).num_rows() as usize;
        let mut at = 0;
        for r in wanted.iter().filter(|r| r.row_group == g) {
            if r.rows.start > at {
                selectors.push(RowSelector::skip(r.rows.start - at));
            }
            selectors.push(RowSelector::select(r.rows.len()));
            at = r.rows.end;
        }
        if rows > at {
            selectors.push(RowSelector::skip(rows - at));
        }
    }
    let meta = ArrowReaderMetadata::try_new(footer, options)?;
    let projection = ProjectionMask::columns(meta.parquet_schema(), [columns::TIMESTAMP]);
    let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta)
        .with_projection(projection)
        .with_row_groups(groups)
        .with_row_selection(RowSelection::from(selectors))
        .with_batch_size(8192)
        .build()?;
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b?;
        out.extend(b.column(0).as_primitive::<Int64Type>().values().iter());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reach_counts_whole_runs_at_their_worst_key() {
        // Runs of (min, max, rows): oldest first, 10 rows surely at or before 20 (the first
        // run), 15 by 30.
        let runs = || [(0, 20, 10), (5, 30, 5), (40, 50, 100)].into_iter();
        assert_eq!(reach(runs(), true, 10), Some(20));
        assert_eq!(reach(runs(), true, 11), Some(30));
        assert_eq!(reach(runs(), true, 16), Some(50));
        assert_eq!(reach(runs(), true, 116), None);
        // Newest first: 100 rows at or after 40.
        assert_eq!(reach(runs(), false, 100), Some(40));
        assert_eq!(reach(runs(), false, 101), Some(5));
    }

    /// Pages of several streams in two (encrypted) segments and in memory, in ranges that hold
    /// them all or cut into them: the bound is the N-th timestamp of a full sort, found from the
    /// pages (not left to the probe).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bound_from_pages_is_the_nth_timestamp() {
        use logwell_model::api::InputLogEvent;
        let dir = tempfile::tempdir().unwrap();
        let engine = logwell_storage::Engine::open(logwell_storage::StorageConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        })
        .await
        .unwrap();
        engine
            .create_group(logwell_storage::NewGroup {
                name: "/g".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let now = logwell_model::now_millis();
        let base = now - 2_000_000;
        let mut all: Vec<i64> = Vec::new();
        // Streams interleave in time; each round is 20,000 events a stream (pages of 8,192
        // rows), 6,000, then 1,500 left in memory.
        for (round, per_stream) in [20_000i64, 6_000, 1_500].into_iter().enumerate() {
            for (k, stream) in ["a", "b", "c"].into_iter().enumerate() {
                if round == 0 {
                    engine.create_stream("/g", stream).await.unwrap();
                }
                let mut ts: Vec<i64> = (0..per_stream)
                    .map(|i| {
                        base + (i * 7_919 + k as i64 * 104_729 + round as i64 * 31) % 1_900_000
                    })
                    .collect();
                ts.sort_unstable();
                all.extend(&ts);
                for chunk in ts.chunks(5_000) {
                    let events: Vec<InputLogEvent> = chunk
                        .iter()
                        .map(|t| InputLogEvent {
                            timestamp: *t,
                            message: std::borrow::Cow::Borrowed("x"),
                        })
                        .collect();
                    engine.put_events("/g", stream, &events).await.unwrap();
                }
            }
            if round < 2 {
                engine.flush().await.unwrap();
            }
        }
        let querier = crate::Querier::new(engine.clone(), Default::default()).unwrap();
        let ctx = querier.context();
        let whole = (base - 1, now);
        let cut = (base + 300_000, base + 1_500_000);
        for range in [whole, cut] {
            let snap = engine.snapshot("/g", range.0, range.1).unwrap();
            assert_eq!(snap.segments.len(), 2);
            assert!(snap.segments.iter().all(|s| s.encrypted));
            assert!(!snap.buffered.is_empty());
            let mut inside: Vec<i64> = all
                .iter()
                .copied()
                .filter(|t| (range.0..=range.1).contains(t))
                .collect();
            inside.sort_unstable();
            for n in [1, 25, 10_000] {
                for ascending in [true, false] {
                    let want = if ascending {
                        inside[n - 1]
                    } else {
                        inside[inside.len() - n]
                    };
                    let got = bound(&ctx, std::slice::from_ref(&snap), range, ascending, n)
                        .await
                        .unwrap();
                    assert_eq!(got, Some(want), "{range:?} n={n} ascending={ascending}");
                }
            }
        }
        engine.shutdown().await.unwrap();
    }
}
