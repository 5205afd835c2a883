//! FilterLogEvents as a DataFusion plan over a group's segments and memtable: the filter pattern
//! becomes a filter expression (the compiled matcher as a UDF, so its semantics are the filter
//! crate's exactly), the time range and stream selection prune row groups, and a page is a TopK
//! by event key. JSON patterns first test the field columns segments store (a necessary
//! condition, see [`Necessary`]), so the matcher parses only the messages that pass.

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
use logwell_storage::memtable::col as columns;
use logwell_storage::{EventRow, Scan, StreamFilter};
use std::hash::{Hash, Hasher};
use std::ops::Not;
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
        // The optional second argument: rows that can match at all (the others are not parsed).
        let candidates = match args.args.get(1) {
            Some(c) => Some(c.to_array(args.number_rows)?),
            None => None,
        };
        let candidates = candidates.as_ref().map(|c| c.as_boolean());
        let out: arrow::array::BooleanArray = (0..msgs.len())
            .map(|i| {
                let candidate = candidates.is_none_or(|c| c.is_valid(i) && c.value(i));
                Some(candidate && msgs.is_valid(i) && self.pattern.matches(msgs.value(i)))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The filter expression a pattern compiles to; `candidates` (a boolean expression) limits the
/// rows the matcher looks at.
pub fn pattern_filter(text: &str, pattern: FilterPattern, candidates: Option<Expr>) -> Expr {
    let mut args = vec![col(columns::MESSAGE)];
    args.extend(candidates);
    ScalarUDF::from(PatternUdf {
        text: text.to_string(),
        pattern,
        signature: Signature::any(args.len(), Volatility::Immutable),
    })
    .call(args)
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
/// of them. Absent fields read as null, so each test is false there, never null.
fn candidates(necessary: &Necessary, stored: &[String]) -> Option<Expr> {
    let column = |path: &String| {
        stored.contains(path).then(|| {
            Expr::Column(datafusion::common::Column::new_unqualified(
                logwell_storage::segment::field_column(path),
            ))
        })
    };
    let number = |c: Expr| {
        Expr::TryCast(datafusion::logical_expr::TryCast::new(
            Box::new(c),
            DataType::Float64,
        ))
    };
    let no_null = |e: Expr| datafusion::functions::expr_fn::coalesce(vec![e, lit(false)]);
    match necessary {
        Necessary::Any => None,
        Necessary::And(a, b) => match (candidates(a, stored), candidates(b, stored)) {
            (Some(a), Some(b)) => Some(a.and(b)),
            (a, b) => a.or(b),
        },
        Necessary::Or(a, b) => Some(candidates(a, stored)?.or(candidates(b, stored)?)),
        Necessary::Present(path) => Some(column(path)?.is_not_null()),
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
                let same = number(c.clone()).eq(lit(*n));
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
                test = test.or(number(c).is_not_null());
            }
            Some(no_null(test))
        }
        Necessary::Number { path, op, value } => {
            let x = number(column(path)?);
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
    /// `Engine::scan` returns them. `pattern_text` is the pattern `scan.pattern` was parsed from.
    pub async fn filter_events(
        &self,
        group: &str,
        scan: &Scan,
        pattern_text: Option<&str>,
    ) -> Result<Vec<EventRow>, QueryError> {
        let mut lo = scan.start.unwrap_or(i64::MIN);
        let mut hi = scan.end.map_or(i64::MAX, |e| e.saturating_sub(1));
        if let Some((t, _)) = scan.after {
            lo = lo.max(t);
        }
        if let Some((t, _)) = scan.before {
            hi = hi.min(t);
        }
        let snap = self.engine.snapshot(group, lo, hi)?;
        lo = lo.max(snap.cutoff.unwrap_or(i64::MIN));
        if lo > hi || scan.limit == 0 {
            return Ok(Vec::new());
        }
        let ts = col(columns::TIMESTAMP);
        let stream = col(columns::STREAM);
        let mut pred = ts.clone().gt_eq(lit(lo)).and(ts.clone().lt_eq(lit(hi)));
        for (name, floor) in &snap.tombstones {
            pred = pred.and(
                stream
                    .clone()
                    .eq(lit(name.as_str()))
                    .and(col(columns::SEQ).lt(lit(*floor)))
                    .not(),
            );
        }
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
        let stored: Vec<String> = match snap.segments.split_first() {
            Some((first, rest)) => first
                .fields
                .iter()
                .filter(|f| rest.iter().all(|s| s.fields.contains(f)))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let mut fields = Vec::new();
        if let Some(p) = &scan.pattern {
            let candidates = p
                .necessary()
                .and_then(|n| candidates(&n, &stored))
                .inspect(|c| {
                    fields = c
                        .column_refs()
                        .iter()
                        .filter_map(|r| r.name.strip_prefix("field:"))
                        .map(str::to_string)
                        .collect();
                    fields.sort();
                    fields.dedup();
                });
            pred = pred.and(pattern_filter(
                pattern_text.unwrap_or_default(),
                p.clone(),
                candidates,
            ));
        }
        let asc = !scan.newest_first;
        let table = GroupTable::new(snap, (lo, hi), fields);
        let plan = LogicalPlanBuilder::scan("events", provider_as_source(Arc::new(table)), None)?
            .filter(pred)?
            .sort_with_limit(
                vec![ts.sort(asc, false), col(columns::SEQ).sort(asc, false)],
                Some(scan.limit),
            )?
            .build()?;
        let batches = self
            .context()
            .execute_logical_plan(plan)
            .await?
            .collect()
            .await?;
        let mut rows = Vec::new();
        for b in &batches {
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
}
