//! Insights AST -> DataFusion logical plan. The pipeline core lives here: the state a query's
//! commands build on, the columns it adds and drops, and the final projection. Each command is
//! one file under `commands/` (its plan and the fields it reads, dispatched from
//! `commands/mod.rs`); functions and aggregates are declared once in `functions/`; expressions
//! and their static types in `expr.rs` and `types.rs`.

mod commands;
mod expr;
pub mod functions;
mod time;
mod types;

use expr::*;
use time::*;
pub(crate) use types::CastTo;
pub use types::Ty;
use types::*;

use crate::udf::TextFn;
use crate::udf::{
    AnomalyUdf, Captures, CountTrue, JsonFields, JsonOp, JsonUdf, ParseFields, PatternCluster,
    PatternProfile, QueryCounters, TimeFloor,
};
use crate::QueryError;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::JoinType;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions::expr_fn as f;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::expr::{InSubquery, WindowFunction};
use datafusion::logical_expr::Subquery;
use datafusion::logical_expr::{
    ident, lit, when, Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, SortExpr,
};
use logwell_insights::{
    BinaryOp, Command, DiffPeriod, Expr as Ast, Join, Lookup, ParsePattern, PeriodUnit, Projection,
    Query, SortKey, Source, UnaryOp,
};
use std::collections::HashMap;
use std::ops::{Neg, Not};
use std::sync::Arc;

const TS: &str = "@timestamp";
const MSG: &str = "@message";
pub const SEQ: &str = "__seq";
pub const LOG: &str = "@log";
const DEFAULT_LIMIT: usize = 10_000;

fn malformed(msg: impl Into<String>) -> QueryError {
    QueryError::Malformed(msg.into())
}

/// The live state of a pipeline being compiled.
struct Pipeline<'a> {
    cx: Context<'a>,
    /// The commands this pipeline compiles (`diff` and `join` look around).
    commands: Vec<Command>,
    plan: LogicalPlan,
    fields: HashMap<String, Ty>,
    /// Names shown by `fields` commands, in order.
    shown: Vec<String>,
    display: Option<Vec<String>>,
    stats: usize,
    /// Set by `sort`; `dedup` keeps the first row in this order.
    order: Option<Vec<SortExpr>>,
    matched_counted: bool,
    explicit_limit: Option<usize>,
    /// Index of the last filter before the first stats (it feeds `recordsMatched`).
    count_at_filter: Option<usize>,
    /// Index of the last `sort` command, if any.
    sort_after: Option<usize>,
    next_tmp: usize,
    /// After `stats ... by bin(p)` with that single key: its name, period and offset (ms), for
    /// `fillmissing`.
    bins: Option<(String, i64, i64)>,
    /// Fields commands such as `accum` added while no `fields` command chose the output: they
    /// follow the default fields.
    added: Vec<String>,
    /// Fields extracted from the message by this pipeline (not read from stored columns): a
    /// filter tests them after cheaper conjuncts.
    extracted: Vec<String>,
    /// Discovered fields read from stored columns -> the hidden column of their values as
    /// numbers (`__num:<path>`), for as long as the name holds that field.
    numbers: HashMap<String, String>,
}

/// The compiled query: a plan whose columns are the output fields, in order, plus (for
/// non-aggregating queries) the pointer columns `@log`/`@timestamp`/`__seq` under `__ptr_*`.
#[derive(Debug)]
pub struct CompiledQuery {
    pub plan: LogicalPlan,
    /// Output field names, in order; plan columns have the same names.
    pub fields: Vec<String>,
    pub with_ptr: bool,
    pub counters: Arc<QueryCounters>,
    pub counts_matched: bool,
}

/// The fields `pattern` and `diff` output.
const PATTERN: &str = "@pattern";
const RATIO: &str = "@ratio";
const SAMPLE_COUNT: &str = "@sampleCount";
const SEVERITY: &str = "@severityLabel";
const PREVIOUS_COUNT: &str = "@previousSampleCount";
const CHANGE: &str = "@changeType";
const PERCENT_CHANGE: &str = "@percentChange";
/// The fields `anomaly` adds.
const ANOMALY_TYPE: &str = "@anomalyType";
const PRIORITY: &str = "@priority";
const DESCRIPTION: &str = "@description";
/// Hidden columns `pattern` keeps when `anomaly` follows: each pattern's first and last event
/// and its profile.
const PATTERN_FIRST: &str = "__pattern_first";
const PATTERN_LAST: &str = "__pattern_last";
const PATTERN_PROFILE: &str = "__pattern_profile";
const PATTERN_LO: &str = "__pattern_lo";
const PATTERN_HI: &str = "__pattern_hi";

/// Hidden columns holding discovered fields that segments store as columns (`__field:level`).
pub const FIELD_PREFIX: &str = "__field:";
/// Hidden columns holding the same fields as numbers (`__num:latency_ms`; null where the text
/// is not a number).
pub const NUMBER_PREFIX: &str = "__num:";

pub const PTR_LOG: &str = "__ptr_log";
pub const PTR_TS: &str = "__ptr_ts";
pub const PTR_SEQ: &str = "__ptr_seq";

/// Compiles `query` over `base` (the union of the groups' system columns).
/// Where the events of a query and of its subqueries come from.
pub trait Events {
    /// A base plan (system fields, hidden field columns) over the query's own log groups
    /// (`source` None) or the groups a `SOURCE` command selects; over `range`, else the SOURCE's
    /// START/END, else the query's time range.
    fn plan(
        &self,
        source: Option<&Source>,
        range: Option<(i64, i64)>,
    ) -> Result<LogicalPlan, QueryError>;

    /// A lookup table's rows (text columns named by its header).
    fn lookup(&self, table: &str) -> Result<LogicalPlan, QueryError>;
}

/// Compiles `query` over `base` (the events of the query's groups and time range).
pub fn compile(
    query: &Query,
    base: LogicalPlan,
    events: &dyn Events,
    counters: Arc<QueryCounters>,
    now_ms: i64,
    range: (i64, i64),
    api_limit: Option<usize>,
) -> Result<CompiledQuery, QueryError> {
    let context = Context::top(events, counters, now_ms, range);
    Pipeline::run(&query.commands, base, context, true)?.finish(api_limit)
}

/// The `@timestamp` of every event `query`'s commands select, in no order and with no limit
/// (the probe of a newest- or oldest-first page).
pub fn compile_timestamps(
    query: &Query,
    base: LogicalPlan,
    events: &dyn Events,
    counters: Arc<QueryCounters>,
    now_ms: i64,
    range: (i64, i64),
) -> Result<LogicalPlan, QueryError> {
    let context = Context::top(events, counters, now_ms, range);
    let mut pipeline = Pipeline::run(&query.commands, base, context, true)?;
    pipeline.build(|b| b.project(vec![ident(TS)]))?;
    Ok(pipeline.plan)
}

impl<'a> Context<'a> {
    /// The context of a query's own pipeline (not a subquery's).
    fn top(
        events: &'a dyn Events,
        counters: Arc<QueryCounters>,
        now_ms: i64,
        range: (i64, i64),
    ) -> Context<'a> {
        Context {
            events,
            counters,
            now_ms,
            range,
            nested: false,
            merge_patterns: true,
        }
    }
}

/// What every pipeline of one query shares.
#[derive(Clone)]
struct Context<'a> {
    events: &'a dyn Events,
    counters: Arc<QueryCounters>,
    /// The time the query started, epoch ms (for `now()`).
    now_ms: i64,
    range: (i64, i64),
    /// Compiling a subquery (subqueries do not nest).
    nested: bool,
    /// `pattern` merges templates into `<*>` patterns (not for `diff`, which compares the
    /// patterns of two ranges by their text).
    merge_patterns: bool,
}

impl<'a> Pipeline<'a> {
    /// Compiles `commands` over `base`; with `count_matched`, the last filter before the first
    /// stats counts `recordsMatched` (the main query's pipeline only).
    pub(in crate::compile) fn run(
        commands: &[Command],
        base: LogicalPlan,
        cx: Context<'a>,
        count_matched: bool,
    ) -> Result<Pipeline<'a>, QueryError> {
        let mut fields = HashMap::new();
        for (n, ty) in [
            (TS, Ty::Time),
            (MSG, Ty::Str),
            ("@logStream", Ty::Str),
            ("@ingestionTime", Ty::Time),
            (LOG, Ty::Str),
            (SEQ, Ty::Num),
        ] {
            fields.insert(n.to_string(), ty);
        }
        let stats_total = commands
            .iter()
            .filter(|c| matches!(c, Command::Stats { .. }))
            .count();
        if stats_total > 2 {
            return Err(malformed("A query can contain at most two stats commands"));
        }
        let first_stats = commands
            .iter()
            .position(|c| matches!(c, Command::Stats { .. } | Command::Pattern(_)))
            .unwrap_or(commands.len());
        let count_at_filter = commands[..first_stats]
            .iter()
            .rposition(|c| matches!(c, Command::Filter(_) | Command::FilterIndex(_)))
            .filter(|_| count_matched);
        if let Some(i) = commands
            .iter()
            .position(|c| matches!(c, Command::Source(_)))
        {
            if i != 0 {
                return Err(malformed("SOURCE must be the first command of a query"));
            }
        }
        let mut p = Pipeline {
            cx,
            commands: commands.to_vec(),
            plan: base,
            fields,
            shown: Vec::new(),
            display: None,
            stats: 0,
            order: None,
            matched_counted: false,
            explicit_limit: None,
            count_at_filter,
            sort_after: commands.iter().rposition(|c| matches!(c, Command::Sort(_))),
            next_tmp: 0,
            bins: None,
            added: Vec::new(),
            extracted: Vec::new(),
            numbers: HashMap::new(),
        };
        for (i, cmd) in commands.iter().enumerate() {
            if let Some(prev) = i.checked_sub(1).map(|j| &commands[j]) {
                if matches!(prev, Command::Dedup(_)) && !matches!(cmd, Command::Limit { .. }) {
                    return Err(malformed("Only limit can follow dedup"));
                }
            }
            p.command(cmd, i)?;
        }
        Ok(p)
    }

    /// The pipeline of a subquery (`in (...)`, a join's right side): its own SOURCE, or the
    /// query's groups, over the query's time range unless `range` says otherwise.
    pub(in crate::compile) fn subquery(
        &self,
        commands: &[Command],
        range: Option<(i64, i64)>,
    ) -> Result<Pipeline<'a>, QueryError> {
        if self.cx.nested {
            return Err(malformed("subqueries cannot be nested"));
        }
        let source = match commands.first() {
            Some(Command::Source(s)) => Some(s),
            _ => None,
        };
        let base = self.cx.events.plan(source, range)?;
        let mut cx = self.cx.clone();
        cx.nested = true;
        if let Some(r) = range {
            cx.range = r;
        }
        Pipeline::run(commands, base, cx, false)
    }

    /// The fields a pipeline outputs (as `finish` chooses them), without the pointer.
    pub(in crate::compile) fn output_fields(&self) -> Vec<String> {
        if let Some(d) = &self.display {
            d.clone()
        } else if self.stats > 0 {
            self.column_names()
                .into_iter()
                .filter(|n| !n.starts_with("__"))
                .collect()
        } else if !self.shown.is_empty() {
            self.shown.clone()
        } else {
            let mut out: Vec<String> = vec![TS.into(), MSG.into(), "@logStream".into(), LOG.into()];
            out.extend(self.added.iter().cloned());
            out
        }
    }

    pub(in crate::compile) fn build(
        &mut self,
        f: impl FnOnce(LogicalPlanBuilder) -> datafusion::common::Result<LogicalPlanBuilder>,
    ) -> Result<(), QueryError> {
        let plan = std::mem::replace(&mut self.plan, LogicalPlan::default());
        let b = f(LogicalPlanBuilder::from(plan))?;
        self.plan = b.build()?;
        Ok(())
    }

    pub(in crate::compile) fn column_names(&self) -> Vec<String> {
        self.plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Adds (or replaces) columns, keeping every other column.
    pub(in crate::compile) fn with_columns(
        &mut self,
        cols: Vec<(String, T)>,
    ) -> Result<(), QueryError> {
        if cols.is_empty() {
            return Ok(());
        }
        let mut exprs: Vec<Expr> = Vec::new();
        let mut replaced = vec![false; cols.len()];
        for name in self.column_names() {
            match cols.iter().rposition(|(n, _)| *n == name) {
                Some(i) => {
                    if !replaced[i] {
                        exprs.push(cols[i].1.e.clone().alias(&name));
                        replaced[i] = true;
                    }
                }
                None => exprs.push(ident(&name)),
            }
        }
        for (i, (name, x)) in cols.iter().enumerate() {
            // Later duplicates of a name win.
            if !replaced[i] && cols.iter().rposition(|(n, _)| n == name) == Some(i) {
                exprs.push(x.e.clone().alias(name));
            }
        }
        for (name, x) in &cols {
            self.fields.insert(name.clone(), x.ty);
            self.numbers.remove(name);
        }
        self.build(|b| b.project(exprs))
    }

    pub(in crate::compile) fn drop_columns(&mut self, names: &[&str]) -> Result<(), QueryError> {
        let keep: Vec<Expr> = self
            .column_names()
            .into_iter()
            .filter(|n| !names.contains(&n.as_str()))
            .map(|n| ident(&n))
            .collect();
        for n in names {
            self.fields.remove(*n);
            self.numbers.remove(*n);
        }
        self.build(|b| b.project(keep))
    }

    /// The longest dotted prefix of `name` that is a JSON-valued column, and the rest.
    pub(in crate::compile) fn json_base(&self, name: &str) -> Option<(String, String)> {
        name.match_indices('.').rev().find_map(|(at, _)| {
            let base = &name[..at];
            (self.fields.get(base) == Some(&Ty::Json))
                .then(|| (base.to_string(), name[at + 1..].to_string()))
        })
    }

    pub(in crate::compile) fn tmp(&mut self, what: &str) -> String {
        self.next_tmp += 1;
        format!("__{what}{}", self.next_tmp)
    }

    /// Makes every field the expressions read a column: discovered fields are extracted from
    /// JSON messages (one pass per row for all of them) before the first `stats`.
    pub(in crate::compile) fn ensure_fields<'e>(
        &mut self,
        exprs: impl IntoIterator<Item = &'e Ast>,
    ) -> Result<(), QueryError> {
        let mut wanted: Vec<String> = Vec::new();
        for e in exprs {
            collect_fields(e, &mut wanted);
        }
        self.ensure_names(wanted)
    }

    pub(in crate::compile) fn ensure_names(
        &mut self,
        mut wanted: Vec<String>,
    ) -> Result<(), QueryError> {
        wanted.retain(|n| !self.fields.contains_key(n));
        let mut uniq: Vec<String> = Vec::new();
        for w in wanted {
            if !uniq.contains(&w) {
                uniq.push(w);
            }
        }
        // `js.a.b` where `js` holds JSON text (from jsonParse or unnest): a member of it.
        let mut members = Vec::new();
        uniq.retain(|name| match self.json_base(name) {
            Some((base, path)) => {
                members.push((
                    name.clone(),
                    t(JsonUdf::member(ident(&base), &path), Ty::Json),
                ));
                false
            }
            None => true,
        });
        self.with_columns(members)?;
        if uniq.is_empty() {
            return Ok(());
        }
        if self.stats > 0 || !self.fields.contains_key(MSG) {
            // After stats only its outputs exist; unknown fields are absent.
            let cols = uniq
                .into_iter()
                .map(|n| (n, t(lit(ScalarValue::Utf8(None)), Ty::Any)))
                .collect();
            return self.with_columns(cols);
        }
        // Fields that segments store as columns are read from them (the table computes them
        // from the message for segments that do not); the rest are extracted here.
        let names = self.column_names();
        let (stored, uniq): (Vec<String>, Vec<String>) = uniq
            .into_iter()
            .partition(|n| names.contains(&format!("{FIELD_PREFIX}{n}")));
        let stored: Vec<(String, T)> = stored
            .into_iter()
            .map(|n| {
                let e = ident(format!("{FIELD_PREFIX}{n}"));
                (n, t(e, Ty::Any))
            })
            .collect();
        let names_of_stored: Vec<String> = stored.iter().map(|(n, _)| n.clone()).collect();
        self.with_columns(stored)?;
        for n in names_of_stored {
            let number = format!("{NUMBER_PREFIX}{n}");
            if names.contains(&number) {
                self.numbers.insert(n, number);
            }
        }
        if uniq.is_empty() {
            return Ok(());
        }
        self.extracted.extend(uniq.iter().cloned());
        let tmp = self.tmp("json");
        let extract = JsonFields::call(ident(MSG), &uniq);
        self.with_columns(vec![(tmp.clone(), t(extract, Ty::Any))])?;
        let cols = uniq
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.clone(),
                    t(f::get_field(ident(&tmp), i.to_string()), Ty::Any),
                )
            })
            .collect();
        self.with_columns(cols)?;
        self.drop_columns(&[&tmp])
    }

    /// The fields the commands after `index` read, or None when they may read any field.
    pub(in crate::compile) fn read_later(&self, index: usize) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for c in &self.commands[index + 1..] {
            if !commands::reads(c, &mut out) {
                return None;
            }
        }
        Some(out)
    }

    /// After a command that makes its own rows (`pattern`, `diff`, `relevantfields`): these
    /// are the fields; with `order`, rows go by its first field descending, then its second
    /// ascending (unless a later sort decides, the caller passes None).
    pub(in crate::compile) fn result_fields(
        &mut self,
        fields: &[(&str, Ty)],
        order: Option<(&str, &str)>,
    ) -> Result<(), QueryError> {
        self.fields = fields.iter().map(|(n, ty)| (n.to_string(), *ty)).collect();
        self.numbers.clear();
        if let Some((most, name)) = order {
            let order = vec![
                ident(most).sort(false, false),
                ident(name).sort(true, false),
            ];
            self.build(|b| b.sort(order.clone()))?;
            self.order = Some(order);
        }
        Ok(())
    }

    /// Makes a field a command adds part of the output (after those shown so far).
    pub(in crate::compile) fn show(&mut self, name: &str) {
        if let Some(d) = &mut self.display {
            if !d.iter().any(|n| n == name) {
                d.push(name.to_string());
            }
        } else if self.stats == 0 {
            let list = if self.shown.is_empty() {
                &mut self.added
            } else {
                &mut self.shown
            };
            if !list.iter().any(|n| n == name) {
                list.push(name.to_string());
            }
        }
    }

    /// A field as a value (extracted first if it is a discovered one).
    pub(in crate::compile) fn field_value(&mut self, name: &str) -> Result<T, QueryError> {
        self.ensure_names(vec![name.to_string()])?;
        Ok(self.field(name))
    }

    /// The order rows are in now: the query's sort, newest first, or the stats key order.
    pub(in crate::compile) fn row_order(&mut self) -> Result<Vec<SortExpr>, QueryError> {
        self.default_order()?;
        Ok(self.order.clone().unwrap_or_default())
    }

    /// The fields known so far that are neither system (`@...`) nor hidden (`__...`), sorted.
    pub(in crate::compile) fn user_fields(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .fields
            .keys()
            .filter(|n| !n.starts_with('@') && !n.starts_with("__"))
            .cloned()
            .collect();
        all.sort();
        all
    }

    pub(in crate::compile) fn finish(
        mut self,
        api_limit: Option<usize>,
    ) -> Result<CompiledQuery, QueryError> {
        let aggregated = self.stats > 0;
        if !aggregated {
            self.default_order()?;
        }
        let cap = match (self.explicit_limit, api_limit) {
            (Some(q), Some(a)) => q.min(a),
            (Some(q), None) => q,
            (None, Some(a)) => a,
            (None, None) => DEFAULT_LIMIT,
        };
        let fields = self.output_fields();
        let mut proj: Vec<Expr> = Vec::new();
        let mut seen = Vec::new();
        for name in &fields {
            if seen.contains(name) {
                continue;
            }
            seen.push(name.clone());
            if self.fields.contains_key(name) {
                proj.push(ident(name));
            } else {
                proj.push(lit(ScalarValue::Utf8(None)).alias(name));
            }
        }
        let with_ptr = !aggregated && self.fields.contains_key(SEQ);
        if with_ptr {
            proj.push(ident(LOG).alias(PTR_LOG));
            proj.push(millis(ident(TS)).alias(PTR_TS));
            proj.push(ident(SEQ).alias(PTR_SEQ));
        }
        self.build(|b| b.limit(0, Some(cap))?.project(proj))?;
        Ok(CompiledQuery {
            plan: self.plan,
            fields: seen,
            with_ptr,
            counters: self.cx.counters.clone(),
            counts_matched: self.matched_counted,
        })
    }

    // ------------------------------------------------------------ expressions
}
