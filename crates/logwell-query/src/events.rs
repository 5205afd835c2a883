//! FilterLogEvents as a DataFusion plan over a group's segments and memtable: the filter pattern
//! becomes a filter expression (the compiled matcher as a UDF, so its semantics are the filter
//! crate's exactly), the time range and stream selection prune row groups, and a page is a TopK
//! by event key. JSON patterns first find candidates in the field columns segments store (a
//! necessary condition, see [`Necessary`]) and read the messages of those events only.

use crate::compile::CastTo;
use crate::table::GroupTable;
use crate::{Querier, QueryError};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result as DfResult;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{
    col, lit, ColumnarValue, Expr, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use logwell_filter::{CompareOp, FilterPattern, Necessary};
use logwell_storage::catalog::SegmentMeta;
use logwell_storage::memtable::col as columns;
use logwell_storage::{EventRow, Scan, StreamFilter};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// `lw_filter_pattern(message)`: whether a filter pattern matches.
#[derive(Debug)]
struct PatternUdf {
    text: String,
    pattern: FilterPattern,
    signature: Signature,
}

impl PartialEq for PatternUdf {
    fn eq(&self, o: &Self) -> bool {
        self.text == o.text
    }
}
impl Eq for PatternUdf {}
impl Hash for PatternUdf {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.text.hash(h)
    }
}

impl ScalarUDFImpl for PatternUdf {
    fn name(&self) -> &str {
        "lw_filter_pattern"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let msgs = args.args[0].to_array(args.number_rows)?;
        let msgs = msgs.as_string::<i32>();
        let out: arrow::array::BooleanArray = (0..msgs.len())
            .map(|i| Some(msgs.is_valid(i) && self.pattern.matches(msgs.value(i))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The filter expression a pattern compiles to.
pub fn pattern_filter(text: &str, pattern: FilterPattern) -> Expr {
    ScalarUDF::from(PatternUdf {
        text: text.to_string(),
        pattern,
        signature: Signature::any(1, Volatility::Immutable),
    })
    .call(vec![col(columns::MESSAGE)])
}

/// `lw_seq_in(seq)`: whether an event's seq is one of a page's candidate keys, as a bitmap over
/// the keys' span. The row filter tests it on every row of the candidates' time range: as an IN
/// list of 1,024 values, hashing each row cost about 8 ms a page.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SeqSet {
    min: i64,
    bits: Vec<u64>,
    signature: Signature,
}

/// The widest span of seqs [`seq_in`] holds as a bitmap (8 MiB); wider takes the IN list.
const SEQ_SET_SPAN: i64 = 1 << 26;

impl ScalarUDFImpl for SeqSet {
    fn name(&self) -> &str {
        "lw_seq_in"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let seqs = args.args[0].to_array(args.number_rows)?;
        let seqs = seqs.as_primitive::<Int64Type>();
        let span = (self.bits.len() * 64) as u64;
        let values = seqs.values();
        let held = arrow::buffer::BooleanBuffer::collect_bool(seqs.len(), |i| {
            let at = values[i].wrapping_sub(self.min) as u64;
            at < span && self.bits[(at / 64) as usize] & (1 << (at % 64)) != 0 && seqs.is_valid(i)
        });
        Ok(ColumnarValue::Array(Arc::new(
            arrow::array::BooleanArray::new(held, None),
        )))
    }
}

/// `seq` is one of `keys`.
fn seq_in(keys: impl IntoIterator<Item = i64>) -> Expr {
    let keys: Vec<i64> = keys.into_iter().collect();
    let (Some(&min), Some(&max)) = (keys.iter().min(), keys.iter().max()) else {
        return lit(false);
    };
    if max - min >= SEQ_SET_SPAN {
        return col(columns::SEQ).in_list(keys.iter().map(|k| lit(*k)).collect(), false);
    }
    let mut bits = vec![0u64; ((max - min) / 64 + 1) as usize];
    for k in &keys {
        let at = (k - min) as usize;
        bits[at / 64] |= 1 << (at % 64);
    }
    ScalarUDF::from(SeqSet {
        min,
        bits,
        signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
    })
    .call(vec![col(columns::SEQ)])
}

/// A `*` glob as a LIKE pattern (`\` escapes).
fn like_pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len());
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `necessary` over the stored field columns `stored` (paths); None when it constrains none
/// of them. Absent fields read as null, so each test is false there, never null. Fields in
/// `numeric` are held as numbers by every segment, so their text is the number as
/// [`logwell_fields::number`] prints it, and they are tested on their number column.
fn candidates(necessary: &Necessary, stored: &[String], numeric: &[String]) -> Option<Expr> {
    let named = |name: String| Expr::Column(datafusion::common::Column::new_unqualified(name));
    let column = |path: &String| {
        stored
            .contains(path)
            .then(|| named(logwell_storage::segment::field_column(path)))
    };
    let number = |path: &String| -> Option<Expr> {
        if numeric.contains(path) {
            return Some(named(crate::table::number_column(path)));
        }
        Some(Expr::TryCast(datafusion::logical_expr::TryCast::new(
            Box::new(column(path)?),
            DataType::Float64,
        )))
    };
    let no_null = |e: Expr| datafusion::functions::expr_fn::coalesce(vec![e, lit(false)]);
    let recurse = |n: &Necessary| candidates(n, stored, numeric);
    match necessary {
        Necessary::Any => None,
        Necessary::And(a, b) => match (recurse(a), recurse(b)) {
            (Some(a), Some(b)) => Some(a.and(b)),
            (a, b) => a.or(b),
        },
        Necessary::Or(a, b) => Some(recurse(a)?.or(recurse(b)?)),
        Necessary::Present(path) if numeric.contains(path) => Some(number(path)?.is_not_null()),
        Necessary::Present(path) => Some(column(path)?.is_not_null()),
        // Every value is a number whose text prints it: the text equals a plain glob only if
        // the glob is that print of the number (the candidates may hold more than match: the
        // pattern itself is tested after).
        Necessary::Text {
            path,
            glob,
            equals,
            any_number,
        } if numeric.contains(path) && !glob.contains('*') => {
            let x = number(path)?;
            let mut test = match logwell_fields::canonical_number(glob) {
                Some(v) => x.clone().eq(lit(v)),
                None => lit(false),
            };
            if let Some(n) = equals {
                test = test.or(x.clone().eq(lit(*n)));
            }
            if *any_number {
                test = test.or(x.is_not_null());
            }
            Some(no_null(test))
        }
        Necessary::Text {
            path,
            glob,
            equals,
            any_number,
        } => {
            let c = column(path)?;
            let mut test = if glob.contains('*') {
                c.clone().like(lit(like_pattern(glob)))
            } else {
                c.clone().eq(lit(glob.as_str()))
            };
            if let Some(n) = equals {
                let same = number(path)?.eq(lit(*n));
                // JSON has no leading zeros: a number equal to a plain non-zero integer is
                // either written as those very digits or has a fraction or an exponent, so only
                // such texts need parsing.
                // Up to 15 digits, so that the pattern's float reads back as the same digits.
                let digits = glob.strip_prefix('-').unwrap_or(glob);
                let plain = !digits.starts_with('0')
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && (1..=15).contains(&digits.len());
                test = test.or(if plain {
                    let written_otherwise = c
                        .clone()
                        .like(lit("%.%"))
                        .or(c.clone().like(lit("%e%")))
                        .or(c.clone().like(lit("%E%")));
                    written_otherwise.and(same)
                } else {
                    same
                });
            }
            if *any_number {
                test = test.or(number(path)?.is_not_null());
            }
            Some(no_null(test))
        }
        Necessary::Number { path, op, value } => {
            let x = number(path)?;
            let v = lit(*value);
            Some(no_null(match op {
                CompareOp::Eq => x.eq(v),
                CompareOp::Ne => x.not_eq(v),
                CompareOp::Lt => x.lt(v),
                CompareOp::Le => x.lt_eq(v),
                CompareOp::Gt => x.gt(v),
                CompareOp::Ge => x.gt_eq(v),
            }))
        }
    }
}

/// The first `limit` items of a page in (timestamp, seq) order, ascending or descending,
/// gathered from time slices (see [`time_slices`]).
struct SlicedPage<T> {
    asc: bool,
    limit: usize,
    key: fn(&T) -> (i64, i64),
    items: Vec<T>,
}

impl<T> SlicedPage<T> {
    fn new(asc: bool, limit: usize, key: fn(&T) -> (i64, i64)) -> SlicedPage<T> {
        SlicedPage {
            asc,
            limit,
            key,
            items: Vec::new(),
        }
    }

    /// Whether the page is full and a slice whose edge is `edge` (and every slice after it) can
    /// only hold items past its last one.
    fn past(&self, edge: i64) -> bool {
        let Some(last) = self.limit.checked_sub(1).and_then(|i| self.items.get(i)) else {
            return false;
        };
        let last = (self.key)(last).0;
        if self.asc {
            edge > last
        } else {
            edge < last
        }
    }

    /// Adds a slice's items, keeping the first `limit` in the page's order.
    fn add(&mut self, items: impl IntoIterator<Item = T>) {
        self.items.extend(items);
        self.items.sort_by_key(self.key);
        if !self.asc {
            self.items.reverse();
        }
        self.items.truncate(self.limit);
    }
}

/// `snap`'s segments and buffered batches in slices of at least `rows` rows, oldest first by
/// their earliest event (`asc`) or newest first by their latest, each with that edge: a slice
/// whose edge is past a page's last event, and every slice after it, holds nothing for the page.
fn time_slices(
    snap: &logwell_storage::GroupSnapshot,
    asc: bool,
    rows: usize,
) -> Vec<(logwell_storage::GroupSnapshot, i64)> {
    enum Source<'a> {
        Segment(&'a Arc<SegmentMeta>),
        Buffered(&'a logwell_storage::Buffered),
    }
    let mut sources: Vec<(i64, usize, Source)> = Vec::new();
    for s in &snap.segments {
        let edge = if asc { s.min_ts } else { s.max_ts };
        sources.push((edge, s.rows as usize, Source::Segment(s)));
    }
    for b in &snap.buffered {
        if let Some((min, max)) = b.time_range() {
            let edge = if asc { min } else { max };
            sources.push((edge, b.num_rows(), Source::Buffered(b)));
        }
    }
    if asc {
        sources.sort_by_key(|(edge, _, _)| *edge);
    } else {
        sources.sort_by_key(|(edge, _, _)| std::cmp::Reverse(*edge));
    }
    // The snapshot without its sources, copied once (not once per slice with all of them).
    let template = logwell_storage::GroupSnapshot {
        segments: Vec::new(),
        buffered: Vec::new(),
        ..snap.clone()
    };
    let empty = || template.clone();
    let mut out: Vec<(logwell_storage::GroupSnapshot, i64)> = Vec::new();
    let mut held = 0;
    for (edge, n, source) in sources {
        if out.is_empty() || held >= rows {
            out.push((empty(), edge));
            held = 0;
        }
        let slice = &mut out.last_mut().expect("a slice").0;
        match source {
            Source::Segment(s) => slice.segments.push(s.clone()),
            Source::Buffered(b) => slice.buffered.push(b.clone()),
        }
        held += n;
    }
    if out.is_empty() {
        out.push((empty(), 0));
    }
    out
}

/// The field paths an expression reads (`field:<path>` and `num:<path>` columns), sorted.
fn field_refs(e: &Expr) -> Vec<String> {
    let mut fields: Vec<String> = e
        .column_refs()
        .iter()
        .filter_map(|r| {
            r.name
                .strip_prefix("field:")
                .or_else(|| r.name.strip_prefix("num:"))
        })
        .map(str::to_string)
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// `key > (t, s)` over the event columns.
fn key_after(t: i64, s: i64) -> Expr {
    let ts = col(columns::TIMESTAMP);
    ts.clone()
        .gt(lit(t))
        .or(ts.eq(lit(t)).and(col(columns::SEQ).gt(lit(s))))
}

/// `key < (t, s)`.
fn key_before(t: i64, s: i64) -> Expr {
    let ts = col(columns::TIMESTAMP);
    ts.clone()
        .lt(lit(t))
        .or(ts.eq(lit(t)).and(col(columns::SEQ).lt(lit(s))))
}

impl Querier {
    /// The events of `group` that `scan` selects, in key order (newest first when asked), as
    /// `Engine::scan` returns them, keeping only events that `pattern` (its text and the
    /// pattern parsed from it) matches. A group's data protection policy masks the messages
    /// before the pattern sees them, unless `unmask` (the caller may).
    pub async fn filter_events(
        &self,
        group: &str,
        scan: &Scan,
        pattern: Option<(&str, &FilterPattern)>,
        unmask: bool,
    ) -> Result<Vec<EventRow>, QueryError> {
        let mut lo = scan.start.unwrap_or(i64::MIN);
        let mut hi = scan.end.map_or(i64::MAX, |e| e.saturating_sub(1));
        if let Some((t, _)) = scan.after {
            lo = lo.max(t);
        }
        if let Some((t, _)) = scan.before {
            hi = hi.min(t);
        }
        let mut snap = self.engine.snapshot(group, lo, hi)?;
        if unmask {
            snap.data_protection = None;
        }
        lo = lo.max(snap.cutoff.unwrap_or(i64::MIN));
        if lo > hi || scan.limit == 0 {
            return Ok(Vec::new());
        }
        let ts = col(columns::TIMESTAMP);
        let stream = col(columns::STREAM);
        let mut pred = crate::table::visible_rows(&snap, lo, hi);
        match &scan.streams {
            StreamFilter::All => {}
            StreamFilter::Names(names) => {
                let list = names.iter().map(|n| lit(n.as_str())).collect();
                pred = pred.and(stream.clone().in_list(list, false));
            }
            StreamFilter::Prefix(p) => {
                pred = pred.and(datafusion::functions::expr_fn::starts_with(
                    stream.clone().cast_to_type(DataType::Utf8),
                    lit(p.as_str()),
                ));
            }
        }
        if let Some((t, s)) = scan.after {
            pred = pred.and(key_after(t, s));
        }
        if let Some((t, s)) = scan.before {
            pred = pred.and(key_before(t, s));
        }
        // Field columns every segment stores (elsewhere they would be extracted from the message,
        // parsing it twice).
        let in_every = |list: fn(&SegmentMeta) -> &Vec<String>| -> Vec<String> {
            match snap.segments.split_first() {
                // Stored field columns hold unmasked values: a masked read extracts from the
                // text.
                _ if snap.data_protection.is_some() => Vec::new(),
                Some((first, rest)) => list(first)
                    .iter()
                    .filter(|f| rest.iter().all(|s| list(s).contains(f)))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            }
        };
        let stored = in_every(|s| &s.fields);
        let numeric = in_every(|s| &s.numeric);
        let mut fields = Vec::new();
        if let Some((text, p)) = pattern.filter(|(_, p)| !p.matches_all()) {
            let necessary = p.necessary();
            if necessary.as_ref().is_some_and(|n| !n.paths().is_empty()) {
                self.engine.fields_queried(group);
            }
            if let Some(c) = necessary
                .as_ref()
                .and_then(|n| candidates(n, &stored, &numeric))
            {
                let text_candidates = necessary
                    .as_ref()
                    .and_then(|n| candidates(n, &stored, &[]))
                    .expect("a condition on stored fields as numbers is one on their text");
                let mut fields = field_refs(&c);
                fields.extend(field_refs(&text_candidates));
                fields.sort();
                fields.dedup();
                let page = CandidatePage {
                    pred,
                    fields,
                    numeric,
                    text_candidates,
                    candidates: c,
                    matcher: pattern_filter(text, p.clone()),
                    asc: !scan.newest_first,
                    limit: scan.limit,
                };
                return self.filter_by_candidates(snap, (lo, hi), page).await;
            }
            // Not stored everywhere (fresh segments, the memtable): the fields the condition
            // tests are extracted from each message in one pass that skips the rest of it, and
            // the matcher parses only the events that pass (DataFusion evaluates the right of an
            // AND on the rows its left selected).
            if let Some(c) = necessary.and_then(|n| candidates(&n, &n.paths(), &[])) {
                fields = field_refs(&c);
                pred = pred.and(c);
            }
            pred = pred.and(pattern_filter(text, p.clone()));
        }
        // The sources in the page's time order, a slice at a time, until the next slice can
        // only hold events after the page's last: a page of the oldest (or newest) events reads
        // and tests the slices that can hold them, not the whole range.
        let asc = !scan.newest_first;
        let order = vec![ts.sort(asc, false), col(columns::SEQ).sort(asc, false)];
        let mut rows = SlicedPage::new(asc, scan.limit, EventRow::key);
        for (slice, edge) in time_slices(&snap, asc, self.config.filter_slice_rows.max(1)) {
            if rows.past(edge) {
                break;
            }
            let table = GroupTable::new(slice, (lo, hi), fields.clone(), &[]).oldest_first(asc);
            let batches = self
                .collect(table, |b| {
                    b.filter(pred.clone())?
                        .sort_with_limit(order.clone(), Some(scan.limit))
                })
                .await?;
            rows.add(event_rows(&batches)?);
        }
        Ok(rows.items)
    }

    /// Runs `build`'s plan over `table` to the end.
    async fn collect(
        &self,
        table: GroupTable,
        build: impl FnOnce(LogicalPlanBuilder) -> DfResult<LogicalPlanBuilder>,
    ) -> Result<Vec<arrow::array::RecordBatch>, QueryError> {
        let scan = LogicalPlanBuilder::scan("events", provider_as_source(Arc::new(table)), None)?;
        self.run_plan(build(scan)?.build()?).await
    }

    /// Runs `plan` to the end; the plan log (`logwell_query::plan=debug`) shows where its time
    /// went, as it does for Insights queries.
    async fn run_plan(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
    ) -> Result<Vec<arrow::array::RecordBatch>, QueryError> {
        let t0 = std::time::Instant::now();
        let ctx = self.context();
        let physical = ctx
            .execute_logical_plan(plan)
            .await?
            .create_physical_plan()
            .await?;
        let batches = datafusion::physical_plan::collect(physical.clone(), ctx.task_ctx()).await?;
        tracing::debug!(
            target: "logwell_query::plan",
            total_ms = t0.elapsed().as_secs_f64() * 1e3,
            "FilterLogEvents\n{}",
            datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                physical.as_ref()
            )
            .indent(true)
        );
        Ok(batches)
    }

    /// A page of a JSON pattern's events in two steps: the keys of the first candidates, from
    /// the stored field columns alone, then the messages of those events only
    /// (their time span prunes every other row group), which the matcher checks. Repeats after
    /// the last candidate while the page is not full.
    async fn filter_by_candidates(
        &self,
        snap: logwell_storage::GroupSnapshot,
        range: (i64, i64),
        page: CandidatePage,
    ) -> Result<Vec<EventRow>, QueryError> {
        let ts = col(columns::TIMESTAMP);
        let seq = col(columns::SEQ);
        let order = vec![
            ts.clone().sort(page.asc, false),
            seq.clone().sort(page.asc, false),
        ];
        // Candidates per round: at least a page, and enough that candidates the matcher rejects
        // do not cost a round each.
        let batch = page.limit.max(1024);
        let mut rows: Vec<EventRow> = Vec::new();
        let mut cursor: Option<(i64, i64)> = None;
        loop {
            let mut keys_pred = page.pred.clone();
            if let Some((t, s)) = cursor {
                keys_pred = keys_pred.and(if page.asc {
                    key_after(t, s)
                } else {
                    key_before(t, s)
                });
            }
            let keys = self
                .candidate_keys(&snap, range, &page, &keys_pred, batch)
                .await?;
            let Some(&last) = (if page.asc {
                keys.iter().max()
            } else {
                keys.iter().min()
            }) else {
                return Ok(rows);
            };
            let lo = keys.iter().map(|k| k.0).min().unwrap_or(range.0);
            let hi = keys.iter().map(|k| k.0).max().unwrap_or(range.1);
            // The candidates' own seqs pick their rows (a seq is unique), and their time span
            // (the table's range) prunes the rest. The matcher runs above a limit of as many
            // rows, where no pushdown takes it into the scan: there it would be a row filter,
            // and the message, then cached for the output, would be decoded for every row of
            // every page read instead of for the candidates only.
            let events_pred = page.pred.clone().and(seq_in(keys.iter().map(|k| k.1)));
            let table = GroupTable::new(snap.clone(), (lo, hi), Vec::new(), &[]);
            let batches = self
                .collect(table, |b| {
                    b.filter(events_pred)?
                        .sort(order.clone())?
                        .limit(0, Some(keys.len()))?
                        .filter(page.matcher.clone())
                })
                .await?;
            rows.extend(event_rows(&batches)?);
            if rows.len() >= page.limit || keys.len() < batch {
                rows.truncate(page.limit);
                return Ok(rows);
            }
            cursor = Some(last);
        }
    }
}

impl Querier {
    /// The keys (timestamp, seq) of the first `batch` events, in the page's order, that pass
    /// `keys_pred` and the page's candidate test, read a time slice at a time as
    /// [`Querier::filter_events`] reads (stopping once the next slice can only hold later keys).
    async fn candidate_keys(
        &self,
        snap: &logwell_storage::GroupSnapshot,
        range: (i64, i64),
        page: &CandidatePage,
        keys_pred: &Expr,
        batch: usize,
    ) -> Result<Vec<(i64, i64)>, QueryError> {
        let ts = col(columns::TIMESTAMP);
        let seq = col(columns::SEQ);
        let order = vec![
            ts.clone().sort(page.asc, false),
            seq.clone().sort(page.asc, false),
        ];
        let mut keys = SlicedPage::new(page.asc, batch, |k: &(i64, i64)| *k);
        for (slice, edge) in time_slices(snap, page.asc, self.config.filter_slice_rows.max(1)) {
            if keys.past(edge) {
                break;
            }
            // Fields every segment holds as numbers are tested on their numbers, which is right
            // for segment rows only: buffered rows may hold text there, so they get the text
            // test.
            let parts = if page.numeric.is_empty() || slice.buffered.is_empty() {
                vec![(slice, &page.numeric[..], &page.candidates)]
            } else {
                let segments = logwell_storage::GroupSnapshot {
                    buffered: Vec::new(),
                    ..slice.clone()
                };
                let buffered = logwell_storage::GroupSnapshot {
                    segments: Vec::new(),
                    ..slice
                };
                vec![
                    (segments, &page.numeric[..], &page.candidates),
                    (buffered, &[][..], &page.text_candidates),
                ]
            };
            let mut plan: Option<LogicalPlanBuilder> = None;
            for (part, numeric, candidates) in parts {
                let table = GroupTable::new(part, range, page.fields.clone(), numeric)
                    .oldest_first(page.asc);
                let scan =
                    LogicalPlanBuilder::scan("events", provider_as_source(Arc::new(table)), None)?
                        .filter(keys_pred.clone().and(candidates.clone()))?
                        .project(vec![ts.clone(), seq.clone()])?;
                plan = Some(match plan {
                    None => scan,
                    Some(b) => b.union(scan.build()?)?,
                });
            }
            let plan = plan
                .expect("at least one part")
                .sort_with_limit(order.clone(), Some(batch))?
                .build()?;
            for b in &self.run_plan(plan).await? {
                let t = b.column(0).as_primitive::<Int64Type>();
                let s = b.column(1).as_primitive::<Int64Type>();
                keys.add((0..b.num_rows()).map(|i| (t.value(i), s.value(i))));
            }
        }
        Ok(keys.items)
    }
}

/// What [`Querier::filter_by_candidates`] needs of a FilterLogEvents request.
struct CandidatePage {
    /// Time range, streams, deleted streams, paging key.
    pred: Expr,
    /// The test on stored field columns every matching event passes.
    candidates: Expr,
    /// The same test with every field read as text (for buffered rows).
    text_candidates: Expr,
    /// The field columns `candidates` reads.
    fields: Vec<String>,
    /// The fields every segment holds as numbers.
    numeric: Vec<String>,
    /// The pattern itself, over the message.
    matcher: Expr,
    asc: bool,
    limit: usize,
}

/// The events of FilterLogEvents' result batches (stream, timestamp, ingestion time, seq,
/// message first).
fn event_rows(batches: &[arrow::array::RecordBatch]) -> Result<Vec<EventRow>, QueryError> {
    let mut rows = Vec::new();
    for b in batches {
        let streams = arrow::compute::cast(b.column(0), &DataType::Utf8)
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        let streams = streams.as_string::<i32>();
        let ts = b.column(1).as_primitive::<Int64Type>();
        let ing = b.column(2).as_primitive::<Int64Type>();
        let seq = b.column(3).as_primitive::<Int64Type>();
        let msg = b.column(4).as_string::<i32>();
        for i in 0..b.num_rows() {
            rows.push(EventRow {
                stream: streams.value(i).to_string(),
                timestamp: ts.value(i),
                ingestion_time: ing.value(i),
                seq: seq.value(i),
                message: msg.value(i).to_string(),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    /// The seqs of `batch` (one Int64 column `seq`) that `seq_in(keys)` keeps.
    async fn kept(keys: &[i64], seqs: Vec<Option<i64>>) -> Vec<i64> {
        let batch = arrow::record_batch::RecordBatch::try_from_iter([(
            columns::SEQ,
            Arc::new(arrow::array::Int64Array::from(seqs)) as _,
        )])
        .unwrap();
        let ctx = SessionContext::new();
        let rows = ctx
            .read_batch(batch)
            .unwrap()
            .filter(seq_in(keys.iter().copied()))
            .unwrap()
            .collect()
            .await
            .unwrap();
        rows.iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[tokio::test]
    async fn seq_in_keeps_exactly_the_keys() {
        let seqs: Vec<Option<i64>> = (0..300).map(Some).chain([None]).collect();
        // The span's first and last bits, a word boundary, and what lies outside the span.
        let keys = [100, 163, 164, 227, 250];
        assert_eq!(kept(&keys, seqs.clone()).await, keys);
        // Keys too far apart for a bitmap take the IN list, with the same answer.
        let far = [5, 7, SEQ_SET_SPAN + 10];
        let seqs_far = vec![Some(5), Some(6), Some(7), Some(SEQ_SET_SPAN + 10), None];
        assert_eq!(kept(&far, seqs_far).await, far);
        assert_eq!(kept(&[42], seqs).await, [42]);
    }
}
