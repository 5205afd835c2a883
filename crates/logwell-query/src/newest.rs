//! Newest-first and oldest-first pages: `[fields ...] [| filter ...] | sort @timestamp desc|asc |
//! limit N`, the query a console opens with. Sorting every event to keep N reads every message;
//! instead a probe runs the same pipeline keeping only `@timestamp` (so messages are read only
//! where a filter needs them) and finds the N-th timestamp, then the query runs over the time
//! range that starts (newest first) or ends (oldest first) there. Segments and row groups
//! outside it are skipped by their statistics and, inside, only rows in it are decoded, so the
//! cost follows N and the rows that match, not the length of the history.
//!
//! The answer is the same: at least N events lie in the narrowed range, so the N newest
//! (oldest) of the whole range are among them, ties at the bound included. Events that arrive
//! between probe and query are in the query's own snapshot, as they would have been anyway.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, DynamicFilterPhysicalExpr};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use logwell_insights::{Command, Expr, Projection, Query, SortKey};
use std::sync::Arc;

pub(crate) mod pages;

/// A page query's direction and size, if `query` has that shape.
pub(crate) fn page_shape(query: &Query) -> Option<(bool, usize)> {
    let mut commands = query.commands.as_slice();
    if let Some(Command::Source(_)) = commands.first() {
        commands = &commands[1..];
    }
    let [before @ .., Command::Sort(keys), Command::Limit { n, any: false }] = commands else {
        return None;
    };
    let [SortKey {
        expr: Expr::Field(f),
        ascending,
    }] = keys.as_slice()
    else {
        return None;
    };
    if f != "@timestamp" {
        return None;
    }
    // Only commands that keep each event's own @timestamp: a projection naming another value
    // `@timestamp` would sort by that value instead.
    let keeps_time =
        |p: &Vec<Projection>| p.iter().all(|p| p.alias.as_deref() != Some("@timestamp"));
    let simple = before.iter().all(|c| match c {
        Command::Fields(p) | Command::Display(p) => keeps_time(p),
        Command::Filter(_) => true,
        _ => false,
    });
    (simple && *n > 0).then_some((*ascending, *n as usize))
}

/// The probe: the query's commands up to its sort (compiled by `compile_timestamps`, which
/// streams every matching event's timestamp; `bound` keeps the N best). The query's own sort
/// would do it with a TopK whose heap, fed the ascending timestamps of a stream-ordered file, is
/// replaced at almost every row: ten times slower than keeping the N best of a plain i64 run.
///
/// A page with a filter keeps its sort instead: DataFusion's TopK then pushes its rising bound
/// into the scan, and row groups and pages below it are skipped before the filter (a JSON
/// extraction, a regex) is evaluated on them, which costs more than the heap.
pub(crate) fn probe_query(query: &Query) -> (Query, bool) {
    let mut probe = query.clone();
    let filtered = query
        .commands
        .iter()
        .any(|c| matches!(c, Command::Filter(_)));
    if filtered {
        probe.commands.push(Command::Display(vec![Projection {
            expr: Expr::Field("@timestamp".into()),
            alias: None,
            text: "@timestamp".into(),
        }]));
    } else {
        probe.commands.truncate(probe.commands.len() - 2);
    }
    (probe, filtered)
}

/// The probe's bar as a filter its Parquet scans evaluate: files, row groups and pages whose
/// timestamps are all below it (newest first) or above it (oldest first) are skipped, and since
/// the newest files are read first, the bar soon rules out the rest of history.
#[derive(Clone, Debug)]
pub(crate) struct TimeBound {
    pub(crate) ascending: bool,
    filter: Arc<DynamicFilterPhysicalExpr>,
}

impl TimeBound {
    pub(crate) fn new(ascending: bool) -> TimeBound {
        TimeBound {
            ascending,
            filter: Arc::new(DynamicFilterPhysicalExpr::new(
                vec![Self::timestamp()],
                datafusion::physical_expr::expressions::lit(true),
            )),
        }
    }

    /// The `timestamp` column of segments (the same index in every segment schema).
    fn timestamp() -> Arc<dyn PhysicalExpr> {
        let index = logwell_storage::memtable::event_schema()
            .index_of(logwell_storage::memtable::col::TIMESTAMP)
            .expect("segments have a timestamp");
        Arc::new(Column::new(
            logwell_storage::memtable::col::TIMESTAMP,
            index,
        ))
    }

    /// The filter, to be ANDed into a scan's predicate.
    pub(crate) fn filter(&self) -> Arc<dyn PhysicalExpr> {
        self.filter.clone()
    }

    fn raise(&self, bar: i64) {
        let op = if self.ascending {
            Operator::LtEq
        } else {
            Operator::GtEq
        };
        let expr = Arc::new(BinaryExpr::new(
            Self::timestamp(),
            op,
            datafusion::physical_expr::expressions::lit(bar),
        ));
        // Only fails when the expression names columns it was not made with; it does not.
        let _ = self.filter.update(expr);
    }
}

/// The N best timestamps seen so far (newest or oldest), kept loosely: candidates pile up
/// until there are a few times N, then the best N stay and the worst of them is the bar.
struct Best<'a> {
    ascending: bool,
    n: usize,
    kept: Vec<i64>,
    bar: Option<i64>,
    /// Where the bar is published, if anywhere.
    publish: Option<&'a TimeBound>,
}

impl Best<'_> {
    fn offer(&mut self, v: i64) {
        let passes = match self.bar {
            None => true,
            Some(b) if self.ascending => v <= b,
            Some(b) => v >= b,
        };
        if passes {
            self.kept.push(v);
            if self.kept.len() >= (4 * self.n).max(4096) {
                self.trim();
            }
        }
    }

    fn trim(&mut self) {
        if self.kept.len() < self.n {
            return;
        }
        let asc = self.ascending;
        let order = |a: &i64, b: &i64| if asc { a.cmp(b) } else { b.cmp(a) };
        self.kept.select_nth_unstable_by(self.n - 1, order);
        self.kept.truncate(self.n);
        // After select_nth, the n-th best sits at n - 1 and everything before it is as good.
        let bar = self.kept[self.n - 1];
        if self.bar != Some(bar) {
            if let Some(p) = self.publish {
                p.raise(bar);
            }
        }
        self.bar = Some(bar);
    }

    /// The N-th best timestamp, once N were seen.
    fn bound(mut self) -> Option<i64> {
        self.trim();
        (self.kept.len() >= self.n).then_some(self.bar).flatten()
    }
}

/// Runs the probe; the N-th timestamp (epoch ms) when it found N events, else None (the query
/// then runs over the whole range, which holds fewer than N).
pub(crate) async fn bound(
    ctx: &SessionContext,
    probe: &LogicalPlan,
    time_bound: &TimeBound,
    n: usize,
) -> datafusion::common::Result<Option<i64>> {
    use futures::StreamExt;
    let plan = ctx
        .execute_logical_plan(probe.clone())
        .await?
        .create_physical_plan()
        .await?;
    let mut stream = datafusion::physical_plan::execute_stream(plan.clone(), ctx.task_ctx())?;
    let mut best = Best {
        ascending: time_bound.ascending,
        n,
        kept: Vec::new(),
        bar: None,
        publish: Some(time_bound),
    };
    while let Some(b) = stream.next().await {
        let b = b?;
        let i = b.schema().index_of("@timestamp")?;
        let ts = datafusion::arrow::compute::cast(b.column(i), &DataType::Int64)?;
        for v in ts.as_primitive::<Int64Type>().iter().flatten() {
            best.offer(v);
        }
    }
    tracing::debug!(
        target: "logwell_query::plan",
        "probe\n{}",
        datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(plan.as_ref())
            .indent(true)
    );
    Ok(best.bound())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(q: &str) -> Option<(bool, usize)> {
        page_shape(&logwell_insights::parse(q).unwrap())
    }

    #[test]
    fn the_bound_is_the_nth_best_timestamp_ties_included() {
        for ascending in [false, true] {
            let published = TimeBound::new(ascending);
            let mut best = Best {
                ascending,
                n: 3,
                kept: Vec::new(),
                bar: None,
                publish: Some(&published),
            };
            // Ascending input, the worst case for a newest-first heap, long enough to trim.
            for v in (0..10_000).chain([9_999, 5, 0]) {
                best.offer(v);
            }
            // The three best: 0, 0, 1 oldest first; 9999, 9999, 9998 newest first.
            assert_eq!(
                best.bound(),
                Some(if ascending { 1 } else { 9_998 }),
                "{ascending}"
            );
            // The scans were told as the bar rose.
            let filter = published.filter().to_string();
            let expected = if ascending {
                "timestamp@1 <= 1"
            } else {
                "timestamp@1 >= 9998"
            };
            assert!(filter.contains(expected), "{filter}");
        }
        let mut few = Best {
            ascending: false,
            n: 3,
            kept: Vec::new(),
            bar: None,
            publish: None,
        };
        few.offer(1);
        few.offer(2);
        assert_eq!(few.bound(), None, "fewer than N events: no bound");
    }

    #[test]
    fn pages_are_recognised_and_other_queries_are_not() {
        assert_eq!(
            shape("fields @timestamp, @message | sort @timestamp desc | limit 25"),
            Some((false, 25))
        );
        assert_eq!(
            shape("filter level = 'ERROR' | fields @message | sort @timestamp asc | limit 5"),
            Some((true, 5))
        );
        assert_eq!(
            shape("SOURCE '/a' | sort @timestamp desc | limit 3"),
            Some((false, 3))
        );
        assert_eq!(shape("fields @timestamp | sort @timestamp desc"), None);
        assert_eq!(
            shape("sort @timestamp desc | limit 3 | fields @message"),
            None
        );
        assert_eq!(
            shape("stats count(*) by bin(5m) | sort @timestamp desc | limit 3"),
            None
        );
        assert_eq!(
            shape("fields @ingestionTime as @timestamp | sort @timestamp desc | limit 3"),
            None
        );
        assert_eq!(
            shape("fields @timestamp | sort @timestamp desc, @message | limit 3"),
            None
        );
        assert_eq!(
            shape("parse @message 'a *' as x | sort @timestamp desc | limit 3"),
            None
        );
    }
}
