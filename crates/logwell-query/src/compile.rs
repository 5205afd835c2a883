//! Insights AST -> DataFusion logical plan. Each command becomes plan nodes; functions become
//! DataFusion expressions or logwell UDFs. Field values discovered in JSON are strings, so
//! expressions carry a small static type to decide when to compare or add as numbers.

use crate::functions::TextFn;
use crate::udf::{
    AnomalyUdf, Captures, CountTrue, Counter, JsonFields, JsonOp, JsonUdf, ParseFields,
    PatternCluster, PatternProfile, QueryCounters, TimeFloor,
};
use crate::QueryError;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::JoinType;
use datafusion::common::{Column, ScalarValue};
use datafusion::functions::expr_fn as f;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::expr::ScalarFunction;
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

/// Static type of an expression: decides coercions, since discovered fields are strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Num,
    Bool,
    Time,
    /// A discovered field: text that may hold a number.
    Any,
    /// JSON text of a map or list (`jsonParse`); its members are reached with dots.
    Json,
}

/// JSON values compare, add and print like discovered values.
fn plain(x: T) -> T {
    match x.ty {
        Ty::Json => T {
            e: x.e,
            ty: Ty::Any,
        },
        _ => x,
    }
}

#[derive(Debug, Clone)]
struct T {
    e: Expr,
    ty: Ty,
}

fn t(e: Expr, ty: Ty) -> T {
    T { e, ty }
}

const TS: &str = "@timestamp";
const MSG: &str = "@message";
pub const SEQ: &str = "__seq";
pub const LOG: &str = "@log";
const DEFAULT_LIMIT: usize = 10_000;

fn malformed(msg: impl Into<String>) -> QueryError {
    QueryError::Malformed(msg.into())
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn millis(e: Expr) -> Expr {
    e.cast_to_type(DataType::Int64)
}

pub(crate) trait CastTo {
    fn cast_to_type(self, ty: DataType) -> Expr;
}
impl CastTo for Expr {
    fn cast_to_type(self, ty: DataType) -> Expr {
        Expr::Cast(datafusion::logical_expr::Cast::new(Box::new(self), ty))
    }
}

fn try_cast(e: Expr, ty: DataType) -> Expr {
    Expr::TryCast(datafusion::logical_expr::TryCast::new(Box::new(e), ty))
}

fn num(x: T) -> Expr {
    let x = plain(x);
    match x.ty {
        Ty::Num => x.e.cast_to_type(DataType::Float64),
        Ty::Time => millis(x.e).cast_to_type(DataType::Float64),
        Ty::Bool => x.e.cast_to_type(DataType::Float64),
        Ty::Str | Ty::Any | Ty::Json => try_cast(x.e, DataType::Float64),
    }
}

fn text(x: T) -> Expr {
    x.e.cast_to_type(DataType::Utf8)
}

fn boolean(x: T) -> Expr {
    let x = plain(x);
    match x.ty {
        Ty::Bool => x.e,
        Ty::Num => num(x).not_eq(lit(0.0)),
        Ty::Time => x.e.is_not_null(),
        Ty::Str | Ty::Any | Ty::Json => x.e.clone().is_not_null().and(x.e.not_eq(lit(""))),
    }
}

fn int01(b: Expr) -> Expr {
    b.cast_to_type(DataType::Int64)
}

fn period_ms(value: u64, unit: PeriodUnit) -> Option<i64> {
    // CloudWatch caps the value per unit: bin(300s) silently becomes 60s.
    let v = value as i64;
    Some(match unit {
        PeriodUnit::Millisecond => v.min(1000),
        PeriodUnit::Second => v.min(60) * 1000,
        PeriodUnit::Minute => v.min(60) * 60_000,
        PeriodUnit::Hour => v.min(24) * 3_600_000,
        PeriodUnit::Day => v * 86_400_000,
        PeriodUnit::Week => v * 7 * 86_400_000,
        _ => return None,
    })
}

fn calendar_unit(unit: PeriodUnit) -> &'static str {
    match unit {
        PeriodUnit::Month => "month",
        PeriodUnit::Quarter => "quarter",
        _ => "year",
    }
}

/// Floors a timestamp expression to a period.
fn time_floor(ts: Expr, value: u64, unit: PeriodUnit) -> Expr {
    match period_ms(value, unit) {
        // Floors downwards before 1970 too.
        Some(ms) if ms > 0 => TimeFloor::call(ts, ms),
        Some(_) => ts,
        None => f::date_trunc(lit(calendar_unit(unit)), ts).cast_to_type(ts_type()),
    }
}

fn time_ceil(ts: Expr, value: u64, unit: PeriodUnit) -> Expr {
    let floor = time_floor(ts.clone(), value, unit);
    let up = match period_ms(value, unit) {
        Some(ms) => (millis(floor.clone()) + lit(ms)).cast_to_type(ts_type()),
        None => {
            let months: i32 = match unit {
                PeriodUnit::Month => 1,
                PeriodUnit::Quarter => 3,
                _ => 12,
            };
            floor.clone() + lit(ScalarValue::IntervalYearMonth(Some(months)))
        }
    };
    when(floor.clone().eq(ts), floor).otherwise(up).unwrap()
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

/// A period as an interval to add to timestamps (not capped, unlike `bin`'s).
fn interval(value: u64, unit: PeriodUnit) -> ScalarValue {
    let v = value as i64;
    let ms = match unit {
        PeriodUnit::Millisecond => v,
        PeriodUnit::Second => v * 1000,
        PeriodUnit::Minute => v * 60_000,
        PeriodUnit::Hour => v * 3_600_000,
        PeriodUnit::Day => v * 86_400_000,
        PeriodUnit::Week => v * 7 * 86_400_000,
        PeriodUnit::Month => return ScalarValue::IntervalYearMonth(Some(v as i32)),
        PeriodUnit::Quarter => return ScalarValue::IntervalYearMonth(Some(3 * v as i32)),
        PeriodUnit::Year => return ScalarValue::IntervalYearMonth(Some(12 * v as i32)),
    };
    ScalarValue::new_interval_mdn(0, 0, ms * 1_000_000)
}

/// Whether an expression is a `bin(...)` call.
fn is_bin(e: &Ast) -> bool {
    matches!(e, Ast::Call { name, .. } if name.eq_ignore_ascii_case("bin"))
}

/// The same instant one calendar month earlier (the day clamped to the month's length).
fn months_before(ms: i64) -> i64 {
    use chrono::Months;
    chrono::DateTime::from_timestamp_millis(ms)
        .and_then(|t| t.checked_sub_months(Months::new(1)))
        .map_or(ms - 30 * 86_400_000, |t| t.timestamp_millis())
}

/// Every field name a command reads.
fn command_fields(c: &Command, out: &mut Vec<String>) {
    match c {
        Command::Fields(ps) | Command::Display(ps) => {
            ps.iter().for_each(|p| collect_fields(&p.expr, out))
        }
        Command::Filter(e) | Command::FilterIndex(e) | Command::Pattern(e) => {
            collect_fields(e, out)
        }
        Command::Stats { aggregates, by, .. } => aggregates
            .iter()
            .chain(by)
            .for_each(|p| collect_fields(&p.expr, out)),
        Command::Sort(keys) => keys.iter().for_each(|k| collect_fields(&k.expr, out)),
        Command::Parse { field, .. } | Command::Unnest { field, .. } => out.push(field.clone()),
        Command::Dedup(names) => out.extend(names.iter().cloned()),
        Command::Lookup(l) => out.extend(l.keys.iter().map(|(_, f)| f.clone())),
        _ => {}
    }
}

/// Hidden columns holding discovered fields that segments store as columns (`__field:level`).
pub const FIELD_PREFIX: &str = "__field:";

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
    let context = Context {
        events,
        counters,
        now_ms,
        range,
        nested: false,
        merge_patterns: true,
    };
    Pipeline::run(&query.commands, base, context, true)?.finish(api_limit)
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
    fn run(
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
    fn subquery(
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
    fn output_fields(&self) -> Vec<String> {
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

    fn build(
        &mut self,
        f: impl FnOnce(LogicalPlanBuilder) -> datafusion::common::Result<LogicalPlanBuilder>,
    ) -> Result<(), QueryError> {
        let plan = std::mem::replace(&mut self.plan, LogicalPlan::default());
        let b = f(LogicalPlanBuilder::from(plan))?;
        self.plan = b.build()?;
        Ok(())
    }

    fn column_names(&self) -> Vec<String> {
        self.plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Adds (or replaces) columns, keeping every other column.
    fn with_columns(&mut self, cols: Vec<(String, T)>) -> Result<(), QueryError> {
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
        }
        self.build(|b| b.project(exprs))
    }

    fn drop_columns(&mut self, names: &[&str]) -> Result<(), QueryError> {
        let keep: Vec<Expr> = self
            .column_names()
            .into_iter()
            .filter(|n| !names.contains(&n.as_str()))
            .map(|n| ident(&n))
            .collect();
        for n in names {
            self.fields.remove(*n);
        }
        self.build(|b| b.project(keep))
    }

    /// The longest dotted prefix of `name` that is a JSON-valued column, and the rest.
    fn json_base(&self, name: &str) -> Option<(String, String)> {
        name.match_indices('.').rev().find_map(|(at, _)| {
            let base = &name[..at];
            (self.fields.get(base) == Some(&Ty::Json))
                .then(|| (base.to_string(), name[at + 1..].to_string()))
        })
    }

    fn tmp(&mut self, what: &str) -> String {
        self.next_tmp += 1;
        format!("__{what}{}", self.next_tmp)
    }

    /// Makes every field the expressions read a column: discovered fields are extracted from
    /// JSON messages (one pass per row for all of them) before the first `stats`.
    fn ensure_fields<'e>(
        &mut self,
        exprs: impl IntoIterator<Item = &'e Ast>,
    ) -> Result<(), QueryError> {
        let mut wanted: Vec<String> = Vec::new();
        for e in exprs {
            collect_fields(e, &mut wanted);
        }
        self.ensure_names(wanted)
    }

    fn ensure_names(&mut self, mut wanted: Vec<String>) -> Result<(), QueryError> {
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
        let stored = stored
            .into_iter()
            .map(|n| {
                let e = ident(format!("{FIELD_PREFIX}{n}"));
                (n, t(e, Ty::Any))
            })
            .collect();
        self.with_columns(stored)?;
        if uniq.is_empty() {
            return Ok(());
        }
        let tmp = self.tmp("json");
        let udf = Arc::new(JsonFields::udf(uniq.clone()));
        let extract = Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![ident(MSG)]));
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

    fn command(&mut self, cmd: &Command, index: usize) -> Result<(), QueryError> {
        match cmd {
            Command::Fields(projs) => {
                let cols = self.projections(projs)?;
                for (name, _) in &cols {
                    if !self.shown.contains(name) {
                        self.shown.push(name.clone());
                    }
                }
                let cols = cols
                    .into_iter()
                    .filter(|(n, x)| !is_same_column(n, &x.e))
                    .collect();
                self.with_columns(cols)
            }
            Command::Display(projs) => {
                let cols = self.projections(projs)?;
                self.display = Some(cols.iter().map(|(n, _)| n.clone()).collect());
                let cols = cols
                    .into_iter()
                    .filter(|(n, x)| !is_same_column(n, &x.e))
                    .collect();
                self.with_columns(cols)
            }
            // No field indexes yet: filterIndex gives the same rows as filter, from a full scan.
            Command::Filter(e) | Command::FilterIndex(e) => {
                self.ensure_fields([e])?;
                let pred = boolean(self.expr(e)?);
                let pred = if self.count_at_filter == Some(index) {
                    self.matched_counted = true;
                    CountTrue::call(&self.cx.counters, Counter::Matched, pred)
                } else {
                    pred
                };
                self.build(|b| b.filter(pred))
            }
            Command::Stats {
                aggregates,
                by,
                offset,
            } => {
                // Key order is only a default: when a later sort decides, skip the extra sort.
                let sorted_later = self.sort_after.is_some_and(|s| s > index);
                self.stats(aggregates, by, offset.as_ref(), !sorted_later)
            }
            Command::Pattern(e) => {
                let sorted_later = self.sort_after.is_some_and(|s| s > index);
                let later = &self.commands[index + 1..];
                let profiled = later.iter().any(|c| matches!(c, Command::Anomaly));
                let merge =
                    self.cx.merge_patterns && !later.iter().any(|c| matches!(c, Command::Diff(_)));
                self.pattern(e, !sorted_later, profiled, merge)
            }
            Command::Anomaly => self.anomaly(index),
            Command::Diff(period) => self.diff(period, index),
            Command::Join(j) => self.join(j, index),
            Command::Lookup(l) => self.lookup(l),
            Command::Accum { field, alias } => {
                let x = self.field_value(field)?;
                let sum = Expr::WindowFunction(Box::new(WindowFunction::new(
                    datafusion::functions_aggregate::sum::sum_udaf(),
                    vec![num(x)],
                )));
                let out = alias.clone().unwrap_or_else(|| field.clone());
                self.running(vec![(out, sum, Ty::Num)], false)
            }
            Command::Autoregress {
                field,
                alias,
                from,
                to,
            } => {
                let x = self.field_value(field)?;
                let cols = (*from..=*to)
                    .map(|k| {
                        let name = match alias {
                            Some(a) if from == to => a.clone(),
                            Some(a) => format!("{a}_p{k}"),
                            None => format!("{field}_p{k}"),
                        };
                        let lag = datafusion::functions_window::expr_fn::lag(
                            x.e.clone(),
                            Some(k as i64),
                            None,
                        );
                        (name, lag, x.ty)
                    })
                    .collect();
                self.running(cols, false)
            }
            Command::CountFrequent(names) => {
                let count = Projection {
                    expr: Ast::Call {
                        name: "count".into(),
                        args: vec![Ast::Star],
                    },
                    alias: Some("_approxcount".into()),
                    text: "count(*)".into(),
                };
                let by: Vec<Projection> = names
                    .iter()
                    .map(|n| Projection {
                        expr: Ast::Field(n.clone()),
                        alias: None,
                        text: n.clone(),
                    })
                    .collect();
                self.stats(&[count], &by, None, false)?;
                if !self.sort_after.is_some_and(|s| s > index) {
                    let mut order = vec![ident("_approxcount").sort(false, false)];
                    order.extend(names.iter().map(|n| ident(n).sort(true, false)));
                    self.build(|b| b.sort(order.clone()))?;
                    self.order = Some(order);
                }
                Ok(())
            }
            Command::Filldown(names) => self.filldown(names),
            Command::Sessionize {
                fields,
                maxspan,
                alias,
            } => self.sessionize(fields, maxspan.as_ref(), alias.as_deref()),
            Command::AddTotals {
                fieldname,
                row,
                col,
                fields,
            } => self.add_totals(fieldname, *row, *col, fields),
            Command::FillMissing(fills) => self.fill_missing(fills, index),
            Command::RelevantFields { fields, condition } => {
                self.relevant_fields(fields, condition)
            }
            Command::Outlier {
                remove,
                param,
                use_lower,
                mark,
                fields,
            } => self.outlier(*remove, *param, *use_lower, *mark, fields),
            Command::AppendCols {
                override_fields,
                max,
                query,
            } => self.append_cols(*override_fields, *max, query),
            Command::CidrLookup {
                table,
                ip_field,
                cidr_column,
                output,
                only_new,
            } => self.cidr_lookup(table, ip_field, cidr_column.as_deref(), output, *only_new),
            Command::Sort(keys) => self.sort(keys),
            Command::Limit { n, any } => {
                if !*any {
                    self.default_order()?;
                }
                let n = *n as usize;
                self.explicit_limit = Some(self.explicit_limit.map_or(n, |l| l.min(n)));
                self.build(|b| b.limit(0, Some(n)))
            }
            Command::Parse {
                field,
                pattern,
                names,
            } => self.parse(field, pattern, names, index),
            Command::Dedup(names) => self.dedup(names),
            Command::Unnest { field, into } => self.unnest(field, into),
            // Nothing is masked (no data-protection policies yet), so there is nothing to unmask.
            Command::Unmask(_) => Ok(()),
            // Resolved by the caller before compiling: it chose the groups of `base`.
            Command::Source(_) => Ok(()),
        }
    }

    /// `expr as name` items: their names and compiled expressions.
    fn projections(&mut self, projs: &[Projection]) -> Result<Vec<(String, T)>, QueryError> {
        self.ensure_fields(projs.iter().map(|p| &p.expr))?;
        projs
            .iter()
            .map(|p| Ok((p.name().to_string(), self.expr(&p.expr)?)))
            .collect()
    }

    fn default_order(&mut self) -> Result<(), QueryError> {
        if self.order.is_some() || self.stats > 0 || !self.fields.contains_key(TS) {
            return Ok(());
        }
        let order = vec![ident(TS).sort(false, false), ident(SEQ).sort(false, false)];
        self.order = Some(order.clone());
        self.build(|b| b.sort(order))
    }

    fn sort(&mut self, keys: &[SortKey]) -> Result<(), QueryError> {
        self.ensure_fields(keys.iter().map(|k| &k.expr))?;
        // Sort keys become columns first: sorting on expressions over an aggregate's output
        // lost the order in DataFusion 55's sort planning.
        let mut order = Vec::new();
        let mut cols = Vec::new();
        for k in keys {
            let x = self.expr(&k.expr)?;
            let mut key = |this: &mut Self, e: Expr, ty: Ty| {
                let name = this.tmp("sort");
                cols.push((name.clone(), t(e, ty)));
                order.push(ident(&name).sort(k.ascending, false));
            };
            match x.ty {
                // Discovered values sort as numbers when they are numbers, else as text.
                Ty::Any | Ty::Json => {
                    key(self, num(x.clone()), Ty::Num);
                    key(self, text(x), Ty::Str);
                }
                _ => match &x.e {
                    Expr::Column(_) => order.push(x.e.sort(k.ascending, false)),
                    _ => key(self, x.e, x.ty),
                },
            }
        }
        self.with_columns(cols)?;
        self.order = Some(order.clone());
        self.build(|b| b.sort(order))
    }

    /// The fields the commands after `index` read, or None when they may read any field.
    fn read_later(&self, index: usize) -> Option<Vec<String>> {
        let later = &self.commands[index + 1..];
        if later.iter().any(|c| matches!(c, Command::Join(_))) {
            return None;
        }
        let mut out = Vec::new();
        for c in later {
            command_fields(c, &mut out);
        }
        Some(out)
    }

    fn parse(
        &mut self,
        field: &str,
        pattern: &ParsePattern,
        names: &[String],
        index: usize,
    ) -> Result<(), QueryError> {
        let src = Ast::Field(field.to_string());
        self.ensure_fields([&src])?;
        let input = self.expr(&src)?;
        if let ParsePattern::Logfmt = pattern {
            let map = crate::udf::LogfmtUdf::call(text(input));
            return self.with_columns(vec![(names[0].clone(), t(map, Ty::Json))]);
        }
        let (regex, names): (Captures, Vec<String>) = match pattern {
            ParsePattern::Logfmt => unreachable!(),
            ParsePattern::Glob(glob) => {
                let stars = glob.matches('*').count();
                if names.len() != stars {
                    return Err(malformed(format!(
                        "parse: the pattern has {stars} '*' but {} names follow 'as'",
                        names.len()
                    )));
                }
                let parts = glob.split('*').map(str::to_string).collect();
                (Captures::Glob(parts), names.to_vec())
            }
            ParsePattern::Regex(r) => {
                let re = build_regex(&r.pattern, &r.flags)?;
                let groups: Vec<String> = re
                    .capture_names()
                    .skip(1)
                    .enumerate()
                    .map(|(i, n)| {
                        n.map(str::to_string)
                            .unwrap_or_else(|| format!("__unnamed{i}"))
                    })
                    .collect();
                if !groups.iter().any(|g| !g.starts_with("__unnamed")) {
                    return Err(malformed(
                        "parse: a regular expression needs named groups such as (?<name>...)",
                    ));
                }
                (Captures::Regex(re), groups)
            }
        };
        // Captures no later command reads are matched but not built (a 14-field parse of which
        // a query reads three builds three columns).
        let names: Vec<String> = match self.read_later(index) {
            Some(reads) => names
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    let read = reads.iter().any(|r| {
                        *r == n
                            || r.strip_prefix(n.as_str())
                                .is_some_and(|x| x.starts_with('.'))
                    });
                    if read {
                        n
                    } else {
                        format!("__unused{i}")
                    }
                })
                .collect(),
            None => names,
        };
        let tmp = self.tmp("parse");
        let udf = Arc::new(ParseFields::udf(regex, names.clone()));
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![text(input)]));
        self.with_columns(vec![(tmp.clone(), t(call, Ty::Any))])?;
        let cols = names
            .iter()
            .filter(|n| !n.starts_with("__"))
            .map(|n| (n.clone(), t(f::get_field(ident(&tmp), n.as_str()), Ty::Any)))
            .collect();
        self.with_columns(cols)?;
        self.drop_columns(&[&tmp])
    }

    fn unnest(&mut self, field: &str, into: &str) -> Result<(), QueryError> {
        let src = Ast::Field(field.to_string());
        self.ensure_fields([&src])?;
        let x = self.expr(&src)?;
        let list = self.tmp("unnest");
        let elements = JsonUdf::call(JsonOp::Elements, text(x));
        self.with_columns(vec![(list.clone(), t(elements, Ty::Json))])?;
        // An event without the list gives no rows (a non-list value is a one-element list).
        let options = datafusion::common::UnnestOptions::new().with_preserve_nulls(false);
        self.build(|b| b.unnest_column_with_options(Column::from_name(&list), options))?;
        self.with_columns(vec![(into.to_string(), t(ident(&list), Ty::Json))])?;
        self.drop_columns(&[&list])
    }

    fn dedup(&mut self, names: &[String]) -> Result<(), QueryError> {
        let asts: Vec<Ast> = names.iter().map(|n| Ast::Field(n.clone())).collect();
        self.ensure_fields(asts.iter())?;
        self.default_order()?;
        let order = self.order.clone().unwrap_or_default();
        let keys: Vec<Expr> = names.iter().map(|n| ident(n)).collect();
        let rn = self.tmp("rn");
        let window = datafusion::functions_window::expr_fn::row_number()
            .partition_by(keys.clone())
            .order_by(order.clone())
            .build()?;
        self.build(|b| b.window(vec![window.alias(&rn)]))?;
        let mut keep = ident(&rn).eq(lit(1u64));
        for k in keys {
            keep = keep.or(k.is_null());
        }
        self.build(|b| b.filter(keep))?;
        self.drop_columns(&[&rn])?;
        // Window evaluation reorders rows; restore the order.
        self.build(|b| b.sort(order))
    }

    fn stats(
        &mut self,
        aggregates: &[Projection],
        by: &[Projection],
        offset: Option<&Ast>,
        key_order: bool,
    ) -> Result<(), QueryError> {
        let shift = match offset {
            Some(o) => {
                if !by.iter().any(|p| is_bin(&p.expr)) {
                    return Err(malformed(
                        "offset needs a bin() key: stats ... by bin(5m) offset 1h",
                    ));
                }
                let (v, u) = self.period_arg("offset", o)?;
                Some(interval(v, u))
            }
            None => None,
        };
        // Aliases of this stats' own aggregates are not fields to discover.
        let mut wanted = Vec::new();
        for p in aggregates.iter().chain(by) {
            collect_fields(&p.expr, &mut wanted);
        }
        wanted.retain(|n| {
            !aggregates
                .iter()
                .any(|p| p.alias.as_deref() == Some(n.as_str()))
        });
        self.ensure_names(wanted)?;
        let mut group_exprs = Vec::new();
        let mut key_cols = Vec::new();
        for p in by {
            let mut x = self.expr(&p.expr)?;
            if let (Some(s), true) = (&shift, is_bin(&p.expr)) {
                // Bins move by the offset, so a range lines up with the one before it.
                x.e = x.e + lit(s.clone());
            }
            let name = p.name().to_string();
            group_exprs.push(x.e.alias(&name));
            key_cols.push((name, x.ty));
        }
        let mut aggs: Vec<Expr> = Vec::new();
        let mut outs = Vec::new();
        for p in aggregates {
            let x = self.agg_expr(&p.expr, &mut aggs, &outs)?;
            outs.push((p.name().to_string(), x));
        }
        if aggs.is_empty() {
            return Err(malformed(
                "stats needs at least one aggregate function such as count(*)",
            ));
        }
        self.build(|b| b.aggregate(group_exprs, aggs))?;
        self.stats += 1;
        self.order = None;
        let mut proj = Vec::new();
        let mut fields = HashMap::new();
        for (name, ty) in &key_cols {
            proj.push(ident(name));
            fields.insert(name.clone(), *ty);
        }
        for (name, x) in outs {
            if !fields.contains_key(&name) {
                proj.push(x.e.alias(&name));
                fields.insert(name, x.ty);
            }
        }
        self.fields = fields;
        self.shown.clear();
        self.display = None;
        self.build(|b| b.project(proj))?;
        // Rows in key order unless the query sorts them.
        let order: Vec<SortExpr> = key_cols
            .iter()
            .map(|(n, _)| ident(n).sort(true, false))
            .collect();
        if key_order && !order.is_empty() {
            self.build(|b| b.sort(order.clone()))?;
            self.order = Some(order);
        }
        self.bins = match by {
            [p] if is_bin(&p.expr) => match &p.expr {
                Ast::Call { args, .. } => match args.first() {
                    Some(Ast::Period { value, unit }) => period_ms(*value, *unit).map(|ms| {
                        let shift = match shift {
                            Some(ScalarValue::IntervalMonthDayNano(Some(i))) => {
                                i.nanoseconds / 1_000_000
                            }
                            _ => 0,
                        };
                        (p.name().to_string(), ms, shift)
                    }),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        Ok(())
    }

    /// `pattern e`: one row per pattern of `e`'s text, most frequent first; with `merge`,
    /// templates that differ in a few plain words are one pattern. With `profiled` (an
    /// `anomaly` follows), each row also keeps the hidden `__pattern_*` columns, including the
    /// time span of all the patterns' events (before any later filter drops some).
    fn pattern(
        &mut self,
        e: &Ast,
        key_order: bool,
        profiled: bool,
        merge: bool,
    ) -> Result<(), QueryError> {
        self.ensure_fields([e])?;
        let x = self.expr(e)?;
        let (tmp, line) = (self.tmp("pattern"), self.tmp("pattern_text"));
        let template = TextFn::Pattern.call(vec![ident(&line)]);
        self.with_columns(vec![(line.clone(), t(text(x), Ty::Str))])?;
        self.with_columns(vec![(tmp.clone(), t(template, Ty::Str))])?;
        self.build(|b| b.filter(ident(&tmp).is_not_null()))?;
        let mut aggregates = vec![agg::count(lit(1i64)).alias(SAMPLE_COUNT)];
        let mut hidden = Vec::new();
        if profiled {
            if self.fields.get(TS) != Some(&Ty::Time) {
                return Err(malformed(
                    "anomaly needs @timestamp: pattern must come before stats",
                ));
            }
            let ts = millis(ident(TS));
            aggregates.extend([
                agg::min(ts.clone()).alias(PATTERN_FIRST),
                agg::max(ts.clone()).alias(PATTERN_LAST),
                PatternProfile::call(ts, ident(&line)).alias(PATTERN_PROFILE),
            ]);
            hidden = vec![
                ident(PATTERN_FIRST),
                ident(PATTERN_LAST),
                ident(PATTERN_PROFILE),
            ];
        }
        self.build(|b| b.aggregate(vec![ident(&tmp).alias(PATTERN)], aggregates))?;
        if merge {
            // Templates that differ in a few plain words become one pattern with `<*>` there.
            let merged = self.tmp("merged");
            let cluster = PatternCluster::call(ident(PATTERN), ident(SAMPLE_COUNT)).alias(&merged);
            self.build(|b| b.window(vec![cluster]))?;
            let mut regrouped = vec![agg::sum(ident(SAMPLE_COUNT)).alias(SAMPLE_COUNT)];
            if profiled {
                regrouped.extend([
                    agg::min(ident(PATTERN_FIRST)).alias(PATTERN_FIRST),
                    agg::max(ident(PATTERN_LAST)).alias(PATTERN_LAST),
                    PatternProfile::merge(ident(PATTERN_PROFILE)).alias(PATTERN_PROFILE),
                ]);
            }
            self.build(|b| b.aggregate(vec![ident(&merged).alias(PATTERN)], regrouped))?;
        }
        if profiled {
            // The time span of every pattern's events, for anomaly's halves and tenths.
            let window = |f: Arc<datafusion::logical_expr::AggregateUDF>, col: &str| {
                Expr::WindowFunction(Box::new(WindowFunction::new(f, vec![ident(col)])))
            };
            self.build(|b| {
                b.window(vec![
                    window(
                        datafusion::functions_aggregate::min_max::min_udaf(),
                        PATTERN_FIRST,
                    )
                    .alias(PATTERN_LO),
                    window(
                        datafusion::functions_aggregate::min_max::max_udaf(),
                        PATTERN_LAST,
                    )
                    .alias(PATTERN_HI),
                ])
            })?;
            hidden.extend([ident(PATTERN_LO), ident(PATTERN_HI)]);
        }
        let total = self.tmp("total");
        let sum = Expr::WindowFunction(Box::new(WindowFunction::new(
            datafusion::functions_aggregate::sum::sum_udaf(),
            vec![ident(SAMPLE_COUNT)],
        )));
        self.build(|b| b.window(vec![sum.alias(&total)]))?;
        let ratio = ident(SAMPLE_COUNT).cast_to_type(DataType::Float64)
            / ident(&total).cast_to_type(DataType::Float64);
        let mut columns = vec![
            ident(PATTERN),
            ratio.alias(RATIO),
            ident(SAMPLE_COUNT),
            TextFn::Severity.call(vec![ident(PATTERN)]).alias(SEVERITY),
        ];
        columns.extend(hidden);
        self.build(|b| b.project(columns))?;
        self.stats += 1;
        self.order = None;
        self.shown.clear();
        self.display = None;
        self.result_fields(
            &[
                (PATTERN, Ty::Str),
                (RATIO, Ty::Num),
                (SAMPLE_COUNT, Ty::Num),
                (SEVERITY, Ty::Str),
            ],
            key_order.then_some((SAMPLE_COUNT, PATTERN)),
        )
    }

    /// `diff`: the patterns of the commands so far (an implicit `pattern @message` if there
    /// is none) in this time range and in an earlier one, side by side.
    fn diff(&mut self, period: &DiffPeriod, index: usize) -> Result<(), QueryError> {
        const DAY: i64 = 86_400_000;
        let (lo, hi) = self.cx.range;
        let earlier = match period {
            DiffPeriod::Previous => {
                let len = hi - lo + 1;
                (lo - len, hi - len)
            }
            DiffPeriod::Day => (lo - DAY, hi - DAY),
            DiffPeriod::Week => (lo - 7 * DAY, hi - 7 * DAY),
            DiffPeriod::Month => (months_before(lo), months_before(hi)),
            DiffPeriod::Shift(p) => {
                let (v, u) = self.period_arg("timeshift", p)?;
                match interval(v, u) {
                    ScalarValue::IntervalMonthDayNano(Some(i)) => {
                        let ms = i.nanoseconds / 1_000_000;
                        (lo - ms, hi - ms)
                    }
                    _ => return Err(malformed("timeshift must be in milliseconds to weeks")),
                }
            }
        };
        let prefix = self.commands[..index].to_vec();
        let has_pattern = prefix.iter().any(|c| matches!(c, Command::Pattern(_)));
        if !has_pattern {
            if self.stats > 0 {
                return Err(malformed(
                    "diff compares patterns: use it after pattern, not after stats",
                ));
            }
            self.pattern(&Ast::Field(MSG.into()), false, false, false)?;
        }
        self.cx.merge_patterns = false;
        let before = self.subquery_at(&prefix, earlier);
        self.cx.merge_patterns = true;
        let mut before = before?;
        if !has_pattern {
            before.pattern(&Ast::Field(MSG.into()), false, false, false)?;
        }
        let (prev_pattern, prev_count) = (self.tmp("prev_pattern"), self.tmp("prev_count"));
        let before = LogicalPlanBuilder::from(before.plan)
            .project(vec![
                ident(PATTERN).alias(&prev_pattern),
                ident(SAMPLE_COUNT).alias(&prev_count),
            ])?
            .build()?;
        self.build(|b| {
            b.join_on(
                before,
                JoinType::Full,
                vec![ident(PATTERN).eq(ident(&prev_pattern))],
            )
        })?;
        let now = f::coalesce(vec![ident(SAMPLE_COUNT), lit(0i64)]);
        let then = f::coalesce(vec![ident(&prev_count), lit(0i64)]);
        let change = when(ident(&prev_count).is_null(), lit("NEW"))
            .when(ident(SAMPLE_COUNT).is_null(), lit("GONE"))
            .when(now.clone().gt(then.clone()), lit("INCREASED"))
            .when(now.clone().lt(then.clone()), lit("DECREASED"))
            .otherwise(lit("UNCHANGED"))?;
        let pattern = f::coalesce(vec![ident(PATTERN), ident(&prev_pattern)]);
        let percent = (now.clone() - then.clone()).cast_to_type(DataType::Float64) * lit(100.0)
            / f::nullif(then.clone().cast_to_type(DataType::Float64), lit(0.0));
        self.build(|b| {
            b.project(vec![
                pattern.clone().alias(PATTERN),
                now.alias(SAMPLE_COUNT),
                then.alias(PREVIOUS_COUNT),
                change.alias(CHANGE),
                percent.alias(PERCENT_CHANGE),
                TextFn::Severity.call(vec![pattern]).alias(SEVERITY),
            ])
        })?;
        let most_first = !self.sort_after.is_some_and(|s| s > index);
        self.result_fields(
            &[
                (PATTERN, Ty::Str),
                (SAMPLE_COUNT, Ty::Num),
                (PREVIOUS_COUNT, Ty::Num),
                (CHANGE, Ty::Str),
                (PERCENT_CHANGE, Ty::Num),
                (SEVERITY, Ty::Str),
            ],
            most_first.then_some((SAMPLE_COUNT, PATTERN)),
        )
    }

    /// `anomaly`: the patterns (of the `pattern` before it, else of @message) whose events
    /// behave unusually over the time span of the input (see [`crate::anomaly`]), newest first.
    fn anomaly(&mut self, index: usize) -> Result<(), QueryError> {
        let has_pattern = self.commands[..index]
            .iter()
            .any(|c| matches!(c, Command::Pattern(_)));
        if !has_pattern {
            if self.stats > 0 {
                return Err(malformed(
                    "anomaly looks for unusual patterns: use it after pattern, not after stats",
                ));
            }
            self.pattern(&Ast::Field(MSG.into()), false, true, self.cx.merge_patterns)?;
        }
        if !self.column_names().iter().any(|c| c == PATTERN_PROFILE) {
            return Err(malformed(
                "anomaly looks for unusual patterns: use it after pattern",
            ));
        }
        let finding = self.tmp("finding");
        let judged = AnomalyUdf::call(
            ident(PATTERN_PROFILE),
            ident(PATTERN_LO),
            ident(PATTERN_HI),
            ident(SEVERITY),
        );
        let mut columns: Vec<Expr> = self
            .column_names()
            .into_iter()
            .filter(|n| !n.starts_with("__") && self.fields.contains_key(n))
            .map(|n| ident(&n))
            .collect();
        columns.push(judged.alias(&finding));
        self.build(|b| b.project(columns))?;
        let part = |name: &str| f::get_field(ident(&finding), name);
        self.build(|b| b.filter(part("kinds").is_not_null()))?;
        self.with_columns(vec![
            (
                TS.to_string(),
                t(part("at").cast_to_type(ts_type()), Ty::Time),
            ),
            (ANOMALY_TYPE.to_string(), t(part("kinds"), Ty::Str)),
            (PRIORITY.to_string(), t(part("priority"), Ty::Str)),
            (DESCRIPTION.to_string(), t(part("description"), Ty::Str)),
        ])?;
        self.drop_columns(&[finding.as_str()])?;
        self.shown.clear();
        self.display = None;
        let fields: Vec<(String, Ty)> = self
            .column_names()
            .into_iter()
            .filter_map(|n| self.fields.get(&n).map(|ty| (n.clone(), *ty)))
            .collect();
        let sorted_later = self.sort_after.is_some_and(|s| s > index);
        let fields: Vec<(&str, Ty)> = fields.iter().map(|(n, ty)| (n.as_str(), *ty)).collect();
        self.result_fields(&fields, (!sorted_later).then_some((TS, PATTERN)))
    }

    /// After a command that makes its own rows (`pattern`, `diff`, `relevantfields`): these
    /// are the fields; with `order`, rows go by its first field descending, then its second
    /// ascending (unless a later sort decides, the caller passes None).
    fn result_fields(
        &mut self,
        fields: &[(&str, Ty)],
        order: Option<(&str, &str)>,
    ) -> Result<(), QueryError> {
        self.fields = fields.iter().map(|(n, ty)| (n.to_string(), *ty)).collect();
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

    /// The commands `prefix` of this query again, over another time range (for `diff`).
    fn subquery_at(
        &self,
        prefix: &[Command],
        range: (i64, i64),
    ) -> Result<Pipeline<'a>, QueryError> {
        let source = match prefix.first() {
            Some(Command::Source(s)) => Some(s),
            _ => None,
        };
        let base = self.cx.events.plan(source, Some(range))?;
        let mut cx = self.cx.clone();
        cx.range = range;
        Pipeline::run(prefix, base, cx, false)
    }

    /// Makes a field a command adds part of the output (after those shown so far).
    fn show(&mut self, name: &str) {
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
    fn field_value(&mut self, name: &str) -> Result<T, QueryError> {
        self.ensure_names(vec![name.to_string()])?;
        Ok(self.field(name))
    }

    /// The order rows are in now: the query's sort, newest first, or the stats key order.
    fn row_order(&mut self) -> Result<Vec<SortExpr>, QueryError> {
        self.default_order()?;
        Ok(self.order.clone().unwrap_or_default())
    }

    /// Adds window columns computed over the rows in their current order (from the first row
    /// to each row; `ignore_nulls` for last-value fills), then restores that order.
    fn running(
        &mut self,
        cols: Vec<(String, Expr, Ty)>,
        ignore_nulls: bool,
    ) -> Result<(), QueryError> {
        use datafusion::logical_expr::expr::NullTreatment;
        use datafusion::logical_expr::{WindowFrame, WindowFrameBound, WindowFrameUnits};
        let order = self.row_order()?;
        let frame = WindowFrame::new_bounds(
            WindowFrameUnits::Rows,
            WindowFrameBound::Preceding(ScalarValue::UInt64(None)),
            WindowFrameBound::CurrentRow,
        );
        let mut windows = Vec::new();
        let mut outs = Vec::new();
        for (name, e, ty) in cols {
            let tmp = self.tmp("window");
            let mut w = e.order_by(order.clone()).window_frame(frame.clone());
            if ignore_nulls {
                w = w.null_treatment(NullTreatment::IgnoreNulls);
            }
            let w = w.build()?;
            windows.push(w.alias(&tmp));
            outs.push((name, tmp, ty));
        }
        self.build(|b| b.window(windows))?;
        let cols = outs
            .iter()
            .map(|(n, tmp, ty)| (n.clone(), t(ident(tmp), *ty)))
            .collect();
        self.with_columns(cols)?;
        for (n, _, _) in &outs {
            self.show(n);
        }
        let temps: Vec<&str> = outs.iter().map(|(_, tmp, _)| tmp.as_str()).collect();
        self.drop_columns(&temps)?;
        // Window evaluation reorders rows.
        if !order.is_empty() {
            self.build(|b| b.sort(order))?;
        }
        Ok(())
    }

    /// The fields known so far that are neither system (`@...`) nor hidden (`__...`), sorted.
    fn user_fields(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .fields
            .keys()
            .filter(|n| !n.starts_with('@') && !n.starts_with("__"))
            .cloned()
            .collect();
        all.sort();
        all
    }

    /// `filldown [f, ...]`: a missing value takes the last value above it (every field but
    /// the system ones when none is named).
    fn filldown(&mut self, names: &[String]) -> Result<(), QueryError> {
        let names: Vec<String> = if names.is_empty() {
            self.user_fields()
        } else {
            names.to_vec()
        };
        let mut cols = Vec::new();
        for n in &names {
            let x = self.field_value(n)?;
            let last = datafusion::functions_window::expr_fn::last_value(x.e.clone());
            cols.push((n.clone(), last, x.ty));
        }
        self.running(cols, true)
    }

    /// `sessionize f, ... [maxspan p] [as out]`: events of one identity belong to one session
    /// until a gap longer than `maxspan` (30m by default); the id is the identity values and
    /// the session's number, `alice:1`.
    fn sessionize(
        &mut self,
        fields: &[String],
        maxspan: Option<&Ast>,
        alias: Option<&str>,
    ) -> Result<(), QueryError> {
        let ts = self.timestamp("sessionize")?;
        let gap = match maxspan {
            Some(p) => {
                let (v, u) = self.period_arg("maxspan", p)?;
                match interval(v, u) {
                    ScalarValue::IntervalMonthDayNano(Some(i)) => i.nanoseconds / 1_000_000,
                    _ => return Err(malformed("maxspan must be in milliseconds to weeks")),
                }
            }
            None => 30 * 60_000,
        };
        self.ensure_names(fields.to_vec())?;
        let keys: Vec<Expr> = fields.iter().map(|f| text(self.field(f))).collect();
        let order = vec![ts.clone().sort(true, false), ident(SEQ).sort(true, false)];
        let prev = self.tmp("prev");
        let lag = datafusion::functions_window::expr_fn::lag(millis(ts.clone()), Some(1), None)
            .partition_by(keys.clone())
            .order_by(order.clone())
            .build()?;
        self.build(|b| b.window(vec![lag.alias(&prev)]))?;
        let starts = self.tmp("starts");
        let new_session = when(
            ident(&prev)
                .is_null()
                .or((millis(ts.clone()) - ident(&prev)).gt(lit(gap))),
            lit(1i64),
        )
        .otherwise(lit(0i64))?;
        self.with_columns(vec![(starts.clone(), t(new_session, Ty::Num))])?;
        let number = self.tmp("session");
        let sum = Expr::WindowFunction(Box::new(WindowFunction::new(
            datafusion::functions_aggregate::sum::sum_udaf(),
            vec![ident(&starts)],
        )))
        .partition_by(keys.clone())
        .order_by(order)
        .window_frame(datafusion::logical_expr::WindowFrame::new_bounds(
            datafusion::logical_expr::WindowFrameUnits::Rows,
            datafusion::logical_expr::WindowFrameBound::Preceding(ScalarValue::UInt64(None)),
            datafusion::logical_expr::WindowFrameBound::CurrentRow,
        ))
        .build()?;
        self.build(|b| b.window(vec![sum.alias(&number)]))?;
        let mut parts: Vec<Expr> = keys
            .into_iter()
            .map(|k| f::coalesce(vec![k, lit("")]))
            .collect();
        parts.push(ident(&number).cast_to_type(DataType::Utf8));
        let id = f::concat_ws(lit(":"), parts);
        let out = alias.unwrap_or("session_id").to_string();
        self.with_columns(vec![(out.clone(), t(id, Ty::Str))])?;
        self.show(&out);
        self.drop_columns(&[&prev, &starts, &number])?;
        let order = self.row_order()?;
        if !order.is_empty() {
            self.build(|b| b.sort(order))?;
        }
        Ok(())
    }

    /// `addtotals`: a row total column over numeric fields, and with `col=true` a last row
    /// holding each column's total.
    fn add_totals(
        &mut self,
        fieldname: &str,
        row: bool,
        col: bool,
        fields: &[String],
    ) -> Result<(), QueryError> {
        let fields: Vec<String> = if fields.is_empty() {
            self.output_fields()
                .into_iter()
                .filter(|n| !n.starts_with('@') && self.fields.get(n) == Some(&Ty::Num))
                .collect()
        } else {
            fields.to_vec()
        };
        self.ensure_names(fields.clone())?;
        // Totalled fields become numbers, so that the summary row types line up.
        let as_numbers: Vec<(String, T)> = fields
            .iter()
            .map(|n| (n.clone(), t(num(self.field(n)), Ty::Num)))
            .collect();
        self.with_columns(as_numbers)?;
        let mut summed = fields.clone();
        if row {
            let total = fields
                .iter()
                .map(|n| f::coalesce(vec![ident(n), lit(0.0)]))
                .reduce(|a, b| a + b)
                .unwrap_or(lit(0.0));
            self.with_columns(vec![(fieldname.to_string(), t(total, Ty::Num))])?;
            self.show(fieldname);
            summed.push(fieldname.to_string());
        }
        if !col {
            return Ok(());
        }
        let order = self.order.clone().unwrap_or_default();
        let summary = self.tmp("summary");
        let schema = self.plan.schema().clone();
        let sums: Vec<Expr> = summed.iter().map(|n| agg::sum(ident(n)).alias(n)).collect();
        let mut row_exprs = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let name = field.name();
            let e = if summed.contains(name) {
                ident(name)
            } else {
                lit(ScalarValue::try_from(field.data_type())?)
            };
            let _ = i;
            row_exprs.push(e.alias(name));
        }
        row_exprs.push(lit(1i64).alias(&summary));
        let totals = LogicalPlanBuilder::from(self.plan.clone())
            .aggregate(Vec::<Expr>::new(), sums)?
            .project(row_exprs)?
            .build()?;
        self.with_columns(vec![(summary.clone(), t(lit(0i64), Ty::Num))])?;
        self.build(|b| b.union(totals))?;
        let mut sort = vec![ident(&summary).sort(true, false)];
        sort.extend(order);
        self.build(|b| b.sort(sort))?;
        self.drop_columns(&[&summary])
    }

    /// `fillmissing [with v for f, ...]`: after `stats ... by bin(p)`, a row for every bin of
    /// the time range that has none, its other fields missing or set to the given values.
    fn fill_missing(&mut self, fills: &[(Ast, String)], index: usize) -> Result<(), QueryError> {
        let Some((key, period, shift)) = self.bins.clone() else {
            return Err(malformed(
                "fillmissing follows stats ... by bin(period) with the bin as the only key",
            ));
        };
        let (lo, hi) = self.cx.range;
        let first = (lo - shift).div_euclid(period) * period + shift;
        let count = (hi - first) / period + 1;
        if count > 100_000 {
            return Err(malformed(format!(
                "fillmissing would add {count} bins; at most 100000 (use a larger bin)"
            )));
        }
        let bins: Vec<Vec<Expr>> = (0..count)
            .map(|i| {
                vec![lit(ScalarValue::TimestampMillisecond(
                    Some(first + i * period),
                    None,
                ))]
            })
            .collect();
        let all = self.tmp("bin");
        let values = LogicalPlanBuilder::values(bins)?.build()?;
        let first_col = values.schema().field(0).name().clone();
        let values = LogicalPlanBuilder::from(values)
            .project(vec![ident(first_col).alias(&all)])?
            .build()?;
        let current = std::mem::replace(&mut self.plan, values);
        self.build(|b| b.join_on(current, JoinType::Left, vec![ident(&all).eq(ident(&key))]))?;
        let mut cols = vec![(key.clone(), t(ident(&all), Ty::Time))];
        for (value, field) in fills {
            let v = self.expr(value)?;
            let ty = self.fields.get(field).copied().unwrap_or(Ty::Any);
            let e = match ty {
                Ty::Num => f::coalesce(vec![num(self.field(field)), num(v)]),
                _ => f::coalesce(vec![text(self.field(field)), text(v)]),
            };
            cols.push((field.clone(), t(e, ty)));
        }
        self.with_columns(cols)?;
        self.drop_columns(&[&all])?;
        if !self.sort_after.is_some_and(|s| s > index) {
            let order = vec![ident(&key).sort(true, false)];
            self.build(|b| b.sort(order.clone()))?;
            self.order = Some(order);
        }
        Ok(())
    }

    /// `outlier`: values more than `param` interquartile ranges above the third quartile (or,
    /// with `use_lower`, below the first) are outliers; their rows are removed, or the values
    /// clamped to that bound; `mark` adds `_outlier` (true/false).
    fn outlier(
        &mut self,
        remove: bool,
        param: f64,
        use_lower: bool,
        mark: bool,
        fields: &[String],
    ) -> Result<(), QueryError> {
        self.ensure_names(fields.to_vec())?;
        let as_numbers: Vec<(String, T)> = fields
            .iter()
            .map(|n| (n.clone(), t(num(self.field(n)), Ty::Num)))
            .collect();
        self.with_columns(as_numbers)?;
        let order = self.order.clone().unwrap_or_default();
        let mut quartiles = Vec::new();
        let mut bounds = Vec::new();
        for f in fields {
            let (q1, q3) = (self.tmp("q1"), self.tmp("q3"));
            for (name, p) in [(&q1, 0.25), (&q3, 0.75)] {
                quartiles
                    .push(agg::percentile_cont(ident(f).sort(true, false), lit(p)).alias(name));
            }
            let iqr = ident(&q3) - ident(&q1);
            let hi = ident(&q3) + lit(param) * iqr.clone();
            let lo = ident(&q1) - lit(param) * iqr;
            bounds.push((f.clone(), q1, q3, hi, lo));
        }
        let stats = LogicalPlanBuilder::from(self.plan.clone())
            .aggregate(Vec::<Expr>::new(), quartiles)?
            .build()?;
        self.build(|b| b.cross_join(stats))?;
        let mut any: Option<Expr> = None;
        for (f, _, _, hi, lo) in &bounds {
            let mut out = ident(f).gt(hi.clone());
            if use_lower {
                out = out.or(ident(f).lt(lo.clone()));
            }
            let out = f::coalesce(vec![out, lit(false)]);
            any = Some(match any {
                Some(a) => a.or(out),
                None => out,
            });
        }
        let any = any.unwrap_or(lit(false));
        if mark {
            self.with_columns(vec![("_outlier".into(), t(any.clone(), Ty::Bool))])?;
            self.show("_outlier");
        }
        if remove {
            self.build(|b| b.filter(any.not()))?;
        } else {
            let clamped = bounds
                .iter()
                .map(|(f, _, _, hi, lo)| {
                    let mut e = when(ident(f).gt(hi.clone()), hi.clone());
                    if use_lower {
                        e = e.when(ident(f).lt(lo.clone()), lo.clone());
                    }
                    Ok((f.clone(), t(e.otherwise(ident(f))?, Ty::Num)))
                })
                .collect::<Result<Vec<_>, QueryError>>()?;
            self.with_columns(clamped)?;
        }
        let temps: Vec<String> = bounds
            .iter()
            .flat_map(|(_, q1, q3, _, _)| [q1.clone(), q3.clone()])
            .collect();
        self.drop_columns(&temps.iter().map(String::as_str).collect::<Vec<_>>())?;
        if !order.is_empty() {
            self.build(|b| b.sort(order))?;
        }
        Ok(())
    }

    /// `relevantfields [f, ...] where cond`: per field, how differently it is distributed in the
    /// events that meet the condition and in the others, on a 0-1 scale. Numeric fields compare
    /// medians (`|m1 - m0| / (|m1| + |m0|)`); the others compare value shares (total variation
    /// distance), naming the values whose share moved most. No fields: every field earlier
    /// commands or the condition read (discovered JSON fields are not known before).
    fn relevant_fields(&mut self, fields: &[String], condition: &Ast) -> Result<(), QueryError> {
        const NAME: &str = "@fieldName";
        const SCORE: &str = "@relevanceScore";
        const TOP: &str = "@topRelevanceContributors";
        const COND_MEDIAN: &str = "@conditionalMedian";
        const BASE_MEDIAN: &str = "@baselineMedian";
        self.ensure_fields([condition])?;
        let names: Vec<String> = if fields.is_empty() {
            self.user_fields()
        } else {
            fields.to_vec()
        };
        if names.is_empty() {
            return Err(malformed(
                "relevantfields has no fields to compare: name them (relevantfields a, b where ...) or define them first with fields or parse",
            ));
        }
        self.ensure_names(names.clone())?;
        let flag = self.tmp("meets");
        let meets = f::coalesce(vec![boolean(self.expr(condition)?), lit(false)]);
        self.with_columns(vec![(flag.clone(), t(meets, Ty::Bool))])?;
        let base = self.plan.clone();
        let one_if = |c: Expr| when(c, lit(1i64)).otherwise(lit(0i64));
        let by_shift = vec![
            ident("__shift").sort(false, false),
            ident("__value").sort(true, false),
        ];
        let mut rows: Option<LogicalPlanBuilder> = None;
        for name in &names {
            let value = text(self.field(name));
            let x = try_cast(value.clone(), DataType::Float64);
            let median = |cond: Expr| {
                agg::percentile_cont(
                    when(cond, x.clone())
                        .end()
                        .unwrap_or(lit(ScalarValue::Float64(None)))
                        .sort(true, false),
                    lit(0.5),
                )
            };
            let numbers = LogicalPlanBuilder::from(base.clone())
                .aggregate(
                    Vec::<Expr>::new(),
                    vec![
                        agg::count(value.clone()).alias("__present"),
                        agg::count(x.clone()).alias("__numeric"),
                        median(ident(&flag)).alias("__m1"),
                        median(ident(&flag).not()).alias("__m0"),
                    ],
                )?
                .build()?;
            let share = |c: &str, n: &str| {
                ident(c).cast_to_type(DataType::Float64)
                    / f::nullif(ident(n).cast_to_type(DataType::Float64), lit(0.0))
            };
            let total = |c: &str| {
                Expr::WindowFunction(Box::new(WindowFunction::new(
                    datafusion::functions_aggregate::sum::sum_udaf(),
                    vec![ident(c)],
                )))
            };
            let shift = f::abs(
                f::coalesce(vec![share("__c1", "__n1"), lit(0.0)])
                    - f::coalesce(vec![share("__c0", "__n0"), lit(0.0)]),
            );
            let values = LogicalPlanBuilder::from(base.clone())
                .filter(value.clone().is_not_null())?
                .aggregate(
                    vec![value.clone().alias("__value")],
                    vec![
                        agg::sum(one_if(ident(&flag))?).alias("__c1"),
                        agg::sum(one_if(ident(&flag).not())?).alias("__c0"),
                    ],
                )?
                .window(vec![
                    total("__c1").alias("__n1"),
                    total("__c0").alias("__n0"),
                ])?
                .project(vec![ident("__value"), shift.alias("__shift")])?
                .window(vec![datafusion::functions_window::expr_fn::row_number()
                    .order_by(by_shift.clone())
                    .build()?
                    .alias("__rank")])?
                .aggregate(
                    Vec::<Expr>::new(),
                    vec![
                        (agg::sum(ident("__shift")) / lit(2.0)).alias("__tvd"),
                        // The three values whose share moved most.
                        datafusion::functions_aggregate::string_agg::string_agg(
                            when(ident("__rank").lt_eq(lit(3u64)), ident("__value")).end()?,
                            lit(", "),
                        )
                        .order_by(by_shift.clone())
                        .build()?
                        .alias("__top"),
                    ],
                )?
                .build()?;
            let numeric = ident("__present")
                .gt(lit(0i64))
                .and(ident("__numeric").eq(ident("__present")));
            let median_score = f::coalesce(vec![
                f::abs(ident("__m1") - ident("__m0"))
                    / f::nullif(f::abs(ident("__m1")) + f::abs(ident("__m0")), lit(0.0)),
                lit(0.0),
            ]);
            let top = ident("__top");
            let row = LogicalPlanBuilder::from(numbers)
                .cross_join(values)?
                .project(vec![
                    lit(name.as_str()).alias(NAME),
                    when(numeric.clone(), median_score)
                        .otherwise(f::coalesce(vec![ident("__tvd"), lit(0.0)]))?
                        .alias(SCORE),
                    when(numeric.clone(), lit(ScalarValue::Utf8(None)))
                        .otherwise(top)?
                        .alias(TOP),
                    when(numeric.clone(), ident("__m1"))
                        .end()?
                        .alias(COND_MEDIAN),
                    when(numeric, ident("__m0")).end()?.alias(BASE_MEDIAN),
                ])?
                .build()?;
            rows = Some(match rows {
                None => LogicalPlanBuilder::from(row),
                Some(b) => b.union(row)?,
            });
        }
        let rows = rows.expect("at least one field").build()?;
        self.plan = rows;
        self.stats += 1;
        self.shown.clear();
        self.display = None;
        self.result_fields(
            &[
                (NAME, Ty::Str),
                (SCORE, Ty::Num),
                (TOP, Ty::Str),
                (COND_MEDIAN, Ty::Num),
                (BASE_MEDIAN, Ty::Num),
            ],
            Some((SCORE, NAME)),
        )
    }

    /// `appendcols (subquery)`: the subquery's fields joined row by row (first with first),
    /// keeping existing values unless `override_fields`.
    fn append_cols(
        &mut self,
        override_fields: bool,
        max: u64,
        query: &Query,
    ) -> Result<(), QueryError> {
        let mut sub = self.subquery(&query.commands, None)?;
        let sub_fields = sub.output_fields();
        let sub_order = sub.row_order()?;
        let (rn, sub_rn) = (self.tmp("rn"), self.tmp("sub_rn"));
        let number = |order: Vec<SortExpr>| {
            let rn = datafusion::functions_window::expr_fn::row_number();
            if order.is_empty() {
                Ok(rn)
            } else {
                rn.order_by(order).build()
            }
        };
        let mut sub_cols = vec![ident(&sub_rn)];
        let mut renamed = Vec::new();
        for f in &sub_fields {
            let tmp = self.tmp("sub");
            let ty = sub.fields.get(f).copied().unwrap_or(Ty::Any);
            sub_cols.push(sub.field(f).e.alias(&tmp));
            renamed.push((f.clone(), tmp, ty));
        }
        let sub_plan = LogicalPlanBuilder::from(sub.plan)
            .window(vec![number(sub_order)?.alias(&sub_rn)])?
            .filter(ident(&sub_rn).lt_eq(lit(max)))?
            .project(sub_cols)?
            .build()?;
        let order = self.row_order()?;
        self.build(|b| b.window(vec![number(order)?.alias(&rn)]))?;
        self.build(|b| {
            b.join_on(
                sub_plan,
                JoinType::Left,
                vec![ident(&rn).eq(ident(&sub_rn))],
            )
        })?;
        let cols = renamed
            .iter()
            .map(|(f, tmp, ty)| {
                let e = match (self.fields.get(f), override_fields) {
                    (Some(_), true) => f::coalesce(vec![ident(tmp), ident(f)]),
                    (Some(_), false) => f::coalesce(vec![ident(f), ident(tmp)]),
                    (None, _) => ident(tmp),
                };
                (f.clone(), t(e, *ty))
            })
            .collect();
        self.with_columns(cols)?;
        for (f, _, _) in &renamed {
            self.show(f);
        }
        let order = vec![ident(&rn).sort(true, false)];
        self.build(|b| b.sort(order))?;
        let mut temps: Vec<&str> = renamed.iter().map(|(_, tmp, _)| tmp.as_str()).collect();
        temps.push(&rn);
        temps.push(&sub_rn);
        self.drop_columns(&temps)
    }

    /// `cidrlookup table ip [as cidrColumn] OUTPUT|OUTPUTNEW f [as g], ...`: enrich events from
    /// the table row whose CIDR range holds the IP address (the most specific one).
    fn cidr_lookup(
        &mut self,
        table_name: &str,
        ip_field: &str,
        cidr_column: Option<&str>,
        output: &[(String, String)],
        only_new: bool,
    ) -> Result<(), QueryError> {
        let table = self.cx.events.lookup(table_name)?;
        let columns: Vec<String> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let cidr = match cidr_column {
            Some(c) => c.to_string(),
            None if columns.iter().any(|c| c == "cidr") => "cidr".into(),
            None => columns.first().cloned().unwrap_or_default(),
        };
        for c in output.iter().map(|(f, _)| f).chain([&cidr]) {
            if !columns.contains(c) {
                return Err(malformed(format!(
                    "lookup table {table_name} has no field {c} (it has {})",
                    columns.join(", ")
                )));
            }
        }
        let mut wanted = vec![ip_field.to_string()];
        if only_new {
            wanted.extend(output.iter().map(|(_, e)| e.clone()));
        }
        self.ensure_names(wanted)?;
        let order = self.order.clone().unwrap_or_default();
        let (row, range, bits, best) = (
            self.tmp("row"),
            self.tmp("cidr"),
            self.tmp("bits"),
            self.tmp("best"),
        );
        let outs: Vec<String> = output.iter().map(|_| self.tmp("cidr_out")).collect();
        let mut table_cols = vec![
            ident(&cidr).alias(&range),
            try_cast(
                f::split_part(ident(&cidr), lit("/"), lit(2i64)),
                DataType::Int64,
            )
            .alias(&bits),
        ];
        for ((f, _), tmp) in output.iter().zip(&outs) {
            table_cols.push(ident(f).alias(tmp));
        }
        let table = LogicalPlanBuilder::from(table)
            .project(table_cols)?
            .build()?;
        let number = datafusion::functions_window::expr_fn::row_number();
        self.build(|b| b.window(vec![number.alias(&row)]))?;
        let ip = text(self.field(ip_field));
        let inside = TextFn::IsIpInSubnet.call(vec![ip, ident(&range)]);
        self.build(|b| b.join_on(table, JoinType::Left, vec![inside]))?;
        let pick = datafusion::functions_window::expr_fn::row_number()
            .partition_by(vec![ident(&row)])
            .order_by(vec![ident(&bits).sort(false, true)])
            .build()?;
        self.build(|b| b.window(vec![pick.alias(&best)]))?;
        self.build(|b| b.filter(ident(&best).eq(lit(1u64))))?;
        let cols = output
            .iter()
            .zip(&outs)
            .map(|((_, event), tmp)| {
                let e = match (self.fields.contains_key(event), only_new) {
                    (true, true) => f::coalesce(vec![text(self.field(event)), ident(tmp)]),
                    (true, false) => f::coalesce(vec![ident(tmp), text(self.field(event))]),
                    (false, _) => ident(tmp),
                };
                (event.clone(), t(e, Ty::Any))
            })
            .collect();
        self.with_columns(cols)?;
        for (_, event) in output {
            self.show(event);
        }
        let mut temps: Vec<&str> = outs.iter().map(String::as_str).collect();
        temps.extend([row.as_str(), range.as_str(), bits.as_str(), best.as_str()]);
        self.drop_columns(&temps)?;
        if !order.is_empty() {
            self.build(|b| b.sort(order))?;
        }
        Ok(())
    }

    /// `lookup table key [as field], ... OUTPUT|OUTPUTNEW out, ...`: a left join with the
    /// table (its first row per key), adding the output fields to matching events.
    fn lookup(&mut self, l: &Lookup) -> Result<(), QueryError> {
        let table = self.cx.events.lookup(&l.table)?;
        let columns: Vec<String> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for c in l.keys.iter().map(|(k, _)| k).chain(&l.output) {
            if !columns.contains(c) {
                return Err(malformed(format!(
                    "lookup table {} has no field {c} (it has {})",
                    l.table,
                    columns.join(", ")
                )));
            }
        }
        let mut wanted: Vec<String> = l.keys.iter().map(|(_, f)| f.clone()).collect();
        if l.only_new {
            wanted.extend(l.output.iter().cloned());
        }
        self.ensure_names(wanted)?;
        // One row per key: a table listing a key twice must not duplicate events.
        let keys: Vec<String> = (0..l.keys.len()).map(|_| self.tmp("lookup_key")).collect();
        let outs: Vec<String> = (0..l.output.len())
            .map(|_| self.tmp("lookup_out"))
            .collect();
        let table = LogicalPlanBuilder::from(table)
            .aggregate(
                l.keys
                    .iter()
                    .zip(&keys)
                    .map(|((k, _), tmp)| ident(k).alias(tmp)),
                l.output
                    .iter()
                    .zip(&outs)
                    .map(|(o, tmp)| agg::first_value(ident(o), vec![]).alias(tmp)),
            )?
            .build()?;
        let on: Vec<Expr> = l
            .keys
            .iter()
            .zip(&keys)
            .map(|((_, field), tmp)| text(self.field(field)).eq(ident(tmp)))
            .collect();
        self.build(|b| b.join_on(table, JoinType::Left, on))?;
        let cols = l
            .output
            .iter()
            .zip(&outs)
            .map(|(name, tmp)| {
                let e = if l.only_new && self.fields.contains_key(name) {
                    f::coalesce(vec![text(self.field(name)), ident(tmp)])
                } else if self.fields.contains_key(name) {
                    // OUTPUT overwrites where the table has a match.
                    f::coalesce(vec![ident(tmp), text(self.field(name))])
                } else {
                    ident(tmp)
                };
                (name.clone(), t(e, Ty::Any))
            })
            .collect();
        self.with_columns(cols)?;
        for name in &l.output {
            self.show(name);
        }
        let temps: Vec<&str> = keys.iter().chain(&outs).map(String::as_str).collect();
        self.drop_columns(&temps)
    }

    /// `join type=... left=a right=b where a.f = b.f (subquery)`: every field of both sides
    /// is renamed `a.<field>` / `b.<field>`.
    fn join(&mut self, j: &Join, index: usize) -> Result<(), QueryError> {
        let mut wanted = Vec::new();
        for c in &self.commands[index + 1..] {
            command_fields(c, &mut wanted);
        }
        for (a, b) in &j.on {
            wanted.push(a.clone());
            wanted.push(b.clone());
        }
        let side = |alias: &str| -> Vec<String> {
            let prefix = format!("{alias}.");
            wanted
                .iter()
                .filter_map(|w| w.strip_prefix(&prefix).map(str::to_string))
                .collect()
        };
        let (left_wanted, right_wanted) = (side(&j.left), side(&j.right));
        for (a, b) in &j.on {
            let ok = |x: &str, y: &str| {
                x.starts_with(&format!("{}.", j.left)) && y.starts_with(&format!("{}.", j.right))
            };
            if !ok(a, b) && !ok(b, a) {
                return Err(malformed(format!(
                    "join: each condition compares a {}.<field> with a {}.<field>",
                    j.left, j.right
                )));
            }
        }
        self.ensure_names(left_wanted)?;
        let mut right = self.subquery(&j.query.commands, None)?;
        right.ensure_names(right_wanted)?;
        let renamed = |p: &Pipeline, alias: &str| -> (Vec<Expr>, Vec<(String, Ty)>) {
            let mut exprs = Vec::new();
            let mut fields = Vec::new();
            for name in p.column_names() {
                if name.starts_with("__") {
                    continue;
                }
                let ty = p.fields.get(&name).copied().unwrap_or(Ty::Any);
                let new = format!("{alias}.{name}");
                exprs.push(ident(&name).alias(&new));
                fields.push((new, ty));
            }
            (exprs, fields)
        };
        let (left_exprs, left_fields) = renamed(self, &j.left);
        let (right_exprs, right_fields) = renamed(&right, &j.right);
        let right_plan = LogicalPlanBuilder::from(right.plan)
            .project(right_exprs)?
            .build()?;
        self.build(|b| b.project(left_exprs))?;
        let mut fields: HashMap<String, Ty> = left_fields.into_iter().collect();
        fields.extend(right_fields);
        let key = |name: &str| -> Result<Expr, QueryError> {
            match fields.get(name) {
                Some(ty) => Ok(text(t(ident(name), *ty))),
                None => Err(malformed(format!("join: unknown field {name}"))),
            }
        };
        let on =
            j.on.iter()
                .map(|(a, b)| Ok(key(a)?.eq(key(b)?)))
                .collect::<Result<Vec<_>, QueryError>>()?;
        let kind = if j.keep_unmatched {
            JoinType::Left
        } else {
            JoinType::Inner
        };
        self.build(|b| b.join_on(right_plan, kind, on))?;
        self.fields = fields;
        self.order = None;
        self.shown.clear();
        self.display = None;
        Ok(())
    }

    fn finish(mut self, api_limit: Option<usize>) -> Result<CompiledQuery, QueryError> {
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

    fn field(&self, name: &str) -> T {
        match self.fields.get(name) {
            Some(ty) => t(ident(name), *ty),
            None => t(lit(ScalarValue::Utf8(None)), Ty::Any),
        }
    }

    fn expr(&self, e: &Ast) -> Result<T, QueryError> {
        Ok(match e {
            Ast::Field(n) => self.field(n),
            Ast::Str(s) => t(lit(s.as_str()), Ty::Str),
            Ast::Int(i) => t(lit(*i), Ty::Num),
            Ast::Float(x) => t(lit(*x), Ty::Num),
            Ast::Bool(b) => t(lit(*b), Ty::Bool),
            Ast::Regex(_) => {
                return Err(malformed(
                    "a regular expression can only follow like, =~ or be a function's pattern",
                ))
            }
            Ast::Period { .. } => {
                return Err(malformed(
                    "a time period can only be an argument of bin(), datefloor() or dateceil()",
                ))
            }
            Ast::List(_) => return Err(malformed("a list can only follow in or not in")),
            Ast::Star => return Err(malformed("* can only be the argument of count()")),
            Ast::Unary { op, expr } => {
                let x = self.expr(expr)?;
                match op {
                    UnaryOp::Not => t(boolean(x).not(), Ty::Bool),
                    UnaryOp::Neg => t(num(x).neg(), Ty::Num),
                }
            }
            Ast::Binary { op, left, right } => self.binary(*op, left, right)?,
            Ast::Like {
                expr,
                pattern,
                negated,
            } => {
                let x = text(self.expr(expr)?);
                let m = match pattern.as_ref() {
                    Ast::Str(s) => f::strpos(x, lit(s.as_str())).gt(lit(0)),
                    Ast::Regex(r) => regex_match(x, r)?,
                    other => f::strpos(x, text(self.expr(other)?)).gt(lit(0)),
                };
                t(if *negated { m.not() } else { m }, Ty::Bool)
            }
            Ast::InQuery {
                expr,
                query,
                negated,
            } => {
                let x = self.expr(expr)?;
                let sub = self.subquery(&query.commands, None)?;
                let out = sub.output_fields();
                if out.len() != 1 {
                    return Err(malformed(format!(
                        "a subquery must return exactly one field (it returns {}); end it with, e.g., | fields requestId",
                        out.len()
                    )));
                }
                let value = text(sub.field(&out[0]));
                let plan = LogicalPlanBuilder::from(sub.plan)
                    .project(vec![value.alias("__subquery")])?
                    .build()?;
                let subquery = Subquery {
                    subquery: Arc::new(plan),
                    outer_ref_columns: vec![],
                    spans: Default::default(),
                };
                t(
                    Expr::InSubquery(InSubquery::new(Box::new(text(x)), subquery, *negated)),
                    Ty::Bool,
                )
            }
            Ast::In {
                expr,
                list,
                negated,
            } => {
                let x = self.expr(expr)?;
                let items: Vec<T> = list
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Result<_, _>>()?;
                let numeric = items.iter().all(|i| i.ty == Ty::Num) && x.ty != Ty::Str;
                let (x, items) = if numeric {
                    (num(x), items.into_iter().map(num).collect::<Vec<_>>())
                } else {
                    (
                        text(x),
                        items
                            .into_iter()
                            .map(|i| match (&i.e, i.ty) {
                                (Expr::Literal(ScalarValue::Int64(Some(v)), _), _) => {
                                    lit(v.to_string())
                                }
                                (Expr::Literal(ScalarValue::Float64(Some(v)), _), _) => {
                                    lit(crate::format::number(*v))
                                }
                                _ => text(i),
                            })
                            .collect(),
                    )
                };
                t(x.in_list(items, *negated), Ty::Bool)
            }
            Ast::Call { name, args } => self.call(name, args)?,
        })
    }

    fn binary(&self, op: BinaryOp, l: &Ast, r: &Ast) -> Result<T, QueryError> {
        if op == BinaryOp::RegexMatch {
            let x = text(self.expr(l)?);
            return match r {
                Ast::Regex(re) => Ok(t(regex_match(x, re)?, Ty::Bool)),
                Ast::Str(s) => Ok(t(
                    regex_match(
                        x,
                        &logwell_insights::Regex {
                            pattern: s.clone(),
                            flags: String::new(),
                        },
                    )?,
                    Ty::Bool,
                )),
                _ => Err(malformed("=~ needs a regular expression on its right")),
            };
        }
        let a = self.expr(l)?;
        let b = self.expr(r)?;
        Ok(match op {
            BinaryOp::And => t(boolean(a).and(boolean(b)), Ty::Bool),
            BinaryOp::Or => t(boolean(a).or(boolean(b)), Ty::Bool),
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => t(compare(op, a, b), Ty::Bool),
            _ => arithmetic(op, a, b).expect("the other operators are arithmetic"),
        })
    }

    fn args(&self, name: &str, args: &[Ast], min: usize, max: usize) -> Result<Vec<T>, QueryError> {
        if args.len() < min || args.len() > max {
            let want = if min == max {
                format!("{min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(malformed(format!(
                "{name}() takes {want} argument(s), {} given",
                args.len()
            )));
        }
        args.iter().map(|a| self.expr(a)).collect()
    }

    fn period_arg(&self, name: &str, a: &Ast) -> Result<(u64, PeriodUnit), QueryError> {
        match a {
            Ast::Period { value, unit } => Ok((*value, *unit)),
            _ => Err(malformed(format!(
                "{name}() needs a time period such as 5m"
            ))),
        }
    }

    fn timestamp(&self, name: &str) -> Result<Expr, QueryError> {
        if !self.fields.contains_key(TS) {
            return Err(malformed(format!(
                "{name}() reads @timestamp, which the previous stats did not keep"
            )));
        }
        Ok(ident(TS))
    }

    fn call(&self, name: &str, args: &[Ast]) -> Result<T, QueryError> {
        let lname = name.to_ascii_lowercase();
        if is_aggregate(&lname) {
            return Err(malformed(format!("{name}() can only be used in stats")));
        }
        let s = |x: &T| text(x.clone());
        Ok(match lname.as_str() {
            // ---- datetime
            "bin" => {
                if args.len() != 1 {
                    return Err(malformed(
                        "bin() takes 1 argument, a time period such as 5m",
                    ));
                }
                let (v, u) = self.period_arg(name, &args[0])?;
                t(time_floor(self.timestamp(name)?, v, u), Ty::Time)
            }
            "datefloor" | "dateceil" => {
                if args.len() != 2 {
                    return Err(malformed(format!(
                        "{name}() takes 2 arguments: a timestamp and a period"
                    )));
                }
                let ts = self.expr(&args[0])?;
                let ts = to_time(ts);
                let (v, u) = self.period_arg(name, &args[1])?;
                if lname == "datefloor" {
                    t(time_floor(ts, v, u), Ty::Time)
                } else {
                    t(time_ceil(ts, v, u), Ty::Time)
                }
            }
            "frommillis" => {
                let a = self.args(name, args, 1, 1)?;
                t(
                    try_cast(num(a[0].clone()), DataType::Int64).cast_to_type(ts_type()),
                    Ty::Time,
                )
            }
            "tomillis" => {
                let a = self.args(name, args, 1, 1)?;
                t(millis(to_time(a[0].clone())), Ty::Num)
            }
            "now" => {
                self.args(name, args, 0, 0)?;
                t(lit(self.cx.now_ms / 1000), Ty::Num)
            }
            "querystarttime" => {
                self.args(name, args, 0, 0)?;
                t(lit(self.cx.range.0), Ty::Num)
            }
            "queryendtime" => {
                self.args(name, args, 0, 0)?;
                t(lit(self.cx.range.1), Ty::Num)
            }
            "querytimerange" => {
                self.args(name, args, 0, 0)?;
                t(lit(self.cx.range.1 - self.cx.range.0), Ty::Num)
            }
            // ---- general
            "ispresent" => {
                let a = self.args(name, args, 1, 1)?;
                t(a[0].e.clone().is_not_null(), Ty::Bool)
            }
            "coalesce" => {
                let a = self.args(name, args, 1, usize::MAX)?;
                let ty = common_ty(&a);
                let es = a.into_iter().map(|x| coerce(x, ty)).collect();
                t(f::coalesce(es), ty)
            }
            "if" => {
                let a = self.args(name, args, 3, 3)?;
                let ty = common_ty(&a[1..]);
                t(
                    when(boolean(a[0].clone()), coerce(a[1].clone(), ty))
                        .otherwise(coerce(a[2].clone(), ty))?,
                    ty,
                )
            }
            "case" => {
                let a = self.args(name, args, 2, 21)?;
                let values: Vec<T> = a
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .cloned()
                    .chain(if a.len() % 2 == 1 {
                        a.last().cloned()
                    } else {
                        None
                    })
                    .collect();
                let ty = common_ty(&values);
                let mut builder: Option<
                    datafusion::logical_expr::conditional_expressions::CaseBuilder,
                > = None;
                let mut i = 0;
                while i + 1 < a.len() {
                    let c = boolean(a[i].clone());
                    let v = coerce(a[i + 1].clone(), ty);
                    builder = Some(match builder {
                        None => when(c, v),
                        Some(mut b) => b.when(c, v),
                    });
                    i += 2;
                }
                let mut b = builder.unwrap();
                let e = if a.len() % 2 == 1 {
                    b.otherwise(coerce(a[a.len() - 1].clone(), ty))?
                } else {
                    b.end()?
                };
                t(e, ty)
            }
            "isnumeric" => {
                let a = self.args(name, args, 1, 1)?;
                t(
                    int01(try_cast(s(&a[0]), DataType::Float64).is_not_null()),
                    Ty::Num,
                )
            }
            "messagesize" => {
                let a = self.args(name, args, 1, 1)?;
                t(f::octet_length(s(&a[0])), Ty::Num)
            }
            // ---- numeric
            "abs" | "ceil" | "floor" | "sqrt" | "log" => {
                let a = self.args(name, args, 1, 1)?;
                let x = num(a[0].clone());
                t(
                    match lname.as_str() {
                        "abs" => f::abs(x),
                        "ceil" => f::ceil(x),
                        "floor" => f::floor(x),
                        "sqrt" => f::sqrt(x),
                        _ => f::ln(x),
                    },
                    Ty::Num,
                )
            }
            "round" => {
                let a = self.args(name, args, 1, 2)?;
                let x = num(a[0].clone());
                let d = a
                    .get(1)
                    .map(|d| try_cast(num(d.clone()), DataType::Int64))
                    .unwrap_or(lit(0i64));
                t(f::round(vec![x, d]), Ty::Num)
            }
            "greatest" | "least" => {
                let a = self.args(name, args, 1, usize::MAX)?;
                let xs = a.into_iter().map(num).collect();
                t(
                    if lname == "greatest" {
                        f::greatest(xs)
                    } else {
                        f::least(xs)
                    },
                    Ty::Num,
                )
            }
            "tonumber" | "todouble" => {
                let a = self.args(name, args, 1, 1)?;
                t(num(a[0].clone()), Ty::Num)
            }
            "toint" | "tolong" => {
                let a = self.args(name, args, 1, 1)?;
                let ty = if lname == "toint" {
                    DataType::Int32
                } else {
                    DataType::Int64
                };
                t(
                    try_cast(f::trunc(vec![num(a[0].clone())]), ty).cast_to_type(DataType::Int64),
                    Ty::Num,
                )
            }
            // ---- string
            "strlen" => {
                let a = self.args(name, args, 1, 1)?;
                t(
                    f::character_length(s(&a[0])).cast_to_type(DataType::Int64),
                    Ty::Num,
                )
            }
            "toupper" => t(f::upper(s(&self.args(name, args, 1, 1)?[0])), Ty::Str),
            "tolower" => t(f::lower(s(&self.args(name, args, 1, 1)?[0])), Ty::Str),
            "trim" | "ltrim" | "rtrim" => {
                let a = self.args(name, args, 1, 2)?;
                let mut v = vec![s(&a[0])];
                if let Some(c) = a.get(1) {
                    v.push(s(c));
                }
                t(
                    match lname.as_str() {
                        "trim" => f::btrim(v),
                        "ltrim" => f::ltrim(v),
                        _ => f::rtrim(v),
                    },
                    Ty::Str,
                )
            }
            "concat" => {
                let a = self.args(name, args, 1, usize::MAX)?;
                t(f::concat(a.iter().map(s).collect()), Ty::Str)
            }
            "substr" => {
                let a = self.args(name, args, 2, 3)?;
                // Insights counts from 0, SQL from 1.
                let start = try_cast(num(a[1].clone()), DataType::Int64) + lit(1i64);
                let e = match a.get(2) {
                    Some(len) => {
                        f::substring(s(&a[0]), start, try_cast(num(len.clone()), DataType::Int64))
                    }
                    None => f::substr(s(&a[0]), start),
                };
                t(e, Ty::Str)
            }
            "replace" => {
                let a = self.args(name, args, 3, 3)?;
                t(f::replace(s(&a[0]), s(&a[1]), s(&a[2])), Ty::Str)
            }
            "regexreplace" | "regex_replace" => {
                if args.len() != 3 {
                    return Err(malformed(format!("{name}() takes 3 arguments")));
                }
                let x = s(&self.expr(&args[0])?);
                let pat = match &args[1] {
                    Ast::Str(p) => regex_text(p, "")?,
                    Ast::Regex(r) => regex_text(&r.pattern, &r.flags)?,
                    _ => return Err(malformed(format!("{name}() needs a literal pattern"))),
                };
                let rep = s(&self.expr(&args[2])?);
                t(f::regexp_replace(x, lit(pat), rep, Some(lit("g"))), Ty::Str)
            }
            "strcontains" => {
                let a = self.args(name, args, 2, 3)?;
                let (x, v) = if a.get(2).is_some_and(|c| {
                    matches!(
                        c.e,
                        Expr::Literal(ScalarValue::Boolean(Some(true)), _)
                            | Expr::Literal(ScalarValue::Int64(Some(1)), _)
                    )
                }) {
                    (f::lower(s(&a[0])), f::lower(s(&a[1])))
                } else {
                    (s(&a[0]), s(&a[1]))
                };
                t(int01(f::strpos(x, v).gt(lit(0))), Ty::Num)
            }
            "startswith" => {
                let a = self.args(name, args, 2, 2)?;
                t(int01(f::starts_with(s(&a[0]), s(&a[1]))), Ty::Num)
            }
            "endswith" => {
                let a = self.args(name, args, 2, 2)?;
                t(int01(f::ends_with(s(&a[0]), s(&a[1]))), Ty::Num)
            }
            "isempty" => {
                let a = self.args(name, args, 1, 1)?;
                let x = s(&a[0]);
                t(int01(x.clone().is_null().or(x.eq(lit("")))), Ty::Num)
            }
            "isblank" => {
                let a = self.args(name, args, 1, 1)?;
                let x = s(&a[0]);
                t(
                    int01(x.clone().is_null().or(f::btrim(vec![x]).eq(lit("")))),
                    Ty::Num,
                )
            }
            "haversine" => {
                let a = self.args(name, args, 4, 4)?;
                let rad = |x: &T| num(x.clone()) * lit(std::f64::consts::PI / 180.0);
                let (lat1, lon1, lat2, lon2) = (rad(&a[0]), rad(&a[1]), rad(&a[2]), rad(&a[3]));
                let dlat = (lat2.clone() - lat1.clone()) / lit(2.0);
                let dlon = (lon2 - lon1) / lit(2.0);
                let h = f::power(f::sin(dlat), lit(2.0))
                    + f::cos(lat1) * f::cos(lat2) * f::power(f::sin(dlon), lit(2.0));
                // Mean Earth radius in km.
                t(lit(2.0 * 6371.0) * f::asin(f::sqrt(h)), Ty::Num)
            }
            "formatdate" | "strftime" => {
                let a = self.args(name, args, 2, 3)?;
                if let Some(tz) = a.get(2) {
                    if !matches!(&tz.e, Expr::Literal(ScalarValue::Utf8(Some(z)), _) if z.eq_ignore_ascii_case("UTC") || z == "Z")
                    {
                        return Err(malformed(format!(
                            "{name}(): only the UTC time zone is supported"
                        )));
                    }
                }
                t(f::to_char(to_time(a[0].clone()), s(&a[1])), Ty::Str)
            }
            "jsonparse" => {
                let a = self.args(name, args, 1, 1)?;
                t(JsonUdf::call(JsonOp::Parse, s(&a[0])), Ty::Json)
            }
            "jsonstringify" => {
                let a = self.args(name, args, 1, 1)?;
                t(s(&a[0]), Ty::Str)
            }
            "md5" => t(f::md5(s(&self.args(name, args, 1, 1)?[0])), Ty::Str),
            "sha256" => {
                let a = self.args(name, args, 1, 1)?;
                t(f::encode(f::sha256(s(&a[0])), lit("hex")), Ty::Str)
            }
            "base64encode" => {
                let a = self.args(name, args, 1, 1)?;
                t(f::encode(s(&a[0]), lit("base64pad")), Ty::Str)
            }
            "base64decode" => {
                let a = self.args(name, args, 1, 1)?;
                t(
                    f::decode(s(&a[0]), lit("base64pad")).cast_to_type(DataType::Utf8),
                    Ty::Str,
                )
            }
            "parsedate" => {
                let a = self.args(name, args, 2, 3)?;
                if let Some(tz) = a.get(2) {
                    if !matches!(&tz.e, Expr::Literal(ScalarValue::Utf8(Some(z)), _) if z.eq_ignore_ascii_case("UTC") || z == "Z")
                    {
                        return Err(malformed(format!(
                            "{name}(): only the UTC time zone is supported"
                        )));
                    }
                }
                t(TextFn::ParseDate.call(vec![s(&a[0]), s(&a[1])]), Ty::Num)
            }
            other => match crate::functions::TextFn::lookup(other) {
                Some((func, n)) => {
                    let a = self.args(name, args, n, n)?;
                    let ty = if func.returns_json() {
                        Ty::Json
                    } else if func.returns_bool() {
                        Ty::Bool
                    } else if func.returns_number() {
                        Ty::Num
                    } else {
                        Ty::Str
                    };
                    t(func.call(a.iter().map(s).collect()), ty)
                }
                None => return Err(malformed(format!("unknown function {name}()"))),
            },
        })
    }

    /// An expression inside `stats`: aggregate calls become aggregate columns (added to `aggs`),
    /// and arithmetic over them stays an expression over those columns.
    /// `prior` holds the aggregates this stats named before `e`: their aliases can be used, as
    /// in `max(a) as hi, min(a) as lo, hi - lo as spread`.
    fn agg_expr(
        &self,
        e: &Ast,
        aggs: &mut Vec<Expr>,
        prior: &[(String, T)],
    ) -> Result<T, QueryError> {
        let uses = |e: &Ast| uses_aggregates(e, prior);
        match e {
            Ast::Field(n) if prior.iter().any(|(p, _)| p == n) => {
                Ok(prior.iter().rev().find(|(p, _)| p == n).unwrap().1.clone())
            }
            Ast::Call { name, args } if name.eq_ignore_ascii_case("rate") => {
                self.rate(name, args, aggs)
            }
            Ast::Call { name, args } if name.eq_ignore_ascii_case("histogram") => {
                let buckets = match args.get(1) {
                    Some(Ast::Int(n)) if (1..=1000).contains(n) && args.len() == 2 => *n as usize,
                    _ => {
                        return Err(malformed(format!(
                            "{name}() takes 2 arguments: a numeric field and a number of buckets from 1 to 1000"
                        )))
                    }
                };
                let x = num(self.expr(&args[0])?);
                let col = format!("__agg{}", aggs.len());
                aggs.push(agg::array_agg(x).alias(&col));
                Ok(t(crate::udf::Histogram::call(ident(col), buckets), Ty::Json))
            }
            Ast::Call { name, args } if is_aggregate(&name.to_ascii_lowercase()) => {
                let (a, ty) = self.aggregate(name, args)?;
                let col = format!("__agg{}", aggs.len());
                aggs.push(a.alias(&col));
                Ok(t(ident(&col), ty))
            }
            Ast::Binary { op, left, right } if uses(e) => {
                let a = self.agg_expr(left, aggs, prior)?;
                let b = self.agg_expr(right, aggs, prior)?;
                arithmetic(*op, a, b).ok_or_else(|| {
                    malformed("stats expressions combine aggregates with arithmetic only")
                })
            }
            Ast::Unary { op: UnaryOp::Neg, expr } if uses(e) => {
                Ok(t(num(self.agg_expr(expr, aggs, prior)?).neg(), Ty::Num))
            }
            Ast::Call { name, args } if uses(e) => {
                // A scalar function over aggregates, e.g. round(avg(x), 2).
                let mut inner = Vec::new();
                for a in args {
                    inner.push(self.agg_expr(a, aggs, prior)?);
                }
                let lname = name.to_ascii_lowercase();
                match lname.as_str() {
                    "round" => {
                        let d = inner.get(1).map(|d| try_cast(num(d.clone()), DataType::Int64)).unwrap_or(lit(0i64));
                        Ok(t(f::round(vec![num(inner[0].clone()), d]), Ty::Num))
                    }
                    "abs" => Ok(t(f::abs(num(inner[0].clone())), Ty::Num)),
                    "ceil" => Ok(t(f::ceil(num(inner[0].clone())), Ty::Num)),
                    "floor" => Ok(t(f::floor(num(inner[0].clone())), Ty::Num)),
                    _ => Err(malformed(format!("{name}() cannot take an aggregate in stats"))),
                }
            }
            Ast::Int(_) | Ast::Float(_) => self.expr(e),
            Ast::Call { name, .. } => Err(malformed(format!(
                "{name}() is not an aggregate function; stats takes count, count_distinct, sum, avg, min, max, stddev, pct, earliest, latest, sortsFirst or sortsLast"
            ))),
            _ => Err(malformed(
                "each stats item must be an aggregate function such as count(*), avg(x) or pct(x, 95)",
            )),
        }
    }

    /// `rate(x, interval)`: how much `x` changed per `interval`, from its first to its last
    /// value (by `@timestamp`) in each group; no value when they are at the same instant.
    fn rate(&self, name: &str, args: &[Ast], aggs: &mut Vec<Expr>) -> Result<T, QueryError> {
        if args.len() != 2 {
            return Err(malformed(format!(
                "{name}() takes 2 arguments: a numeric field and an interval such as 1s"
            )));
        }
        let x = num(self.expr(&args[0])?);
        let (v, u) = self.period_arg(name, &args[1])?;
        let per = match interval(v, u) {
            ScalarValue::IntervalMonthDayNano(Some(i)) => i.nanoseconds as f64 / 1e6,
            _ => {
                return Err(malformed(format!(
                    "{name}(): the interval must be in milliseconds to weeks"
                )))
            }
        };
        let ts = self.timestamp(name)?;
        // Rows without the value sort before the others, so first/last pick present values.
        // (An aggregate FILTER clause gave wrong first/last values when partial aggregates
        // from several partitions merged, in DataFusion 55.)
        let present = x.clone().is_not_null();
        let first = vec![
            present.clone().sort(false, false),
            ts.clone().sort(true, false),
        ];
        let last = vec![
            present.clone().sort(true, false),
            ts.clone().sort(true, false),
        ];
        let ts_present = when(present, millis(ts)).end()?;
        let parts = [
            agg::first_value(x.clone(), first),
            agg::last_value(x, last),
            agg::min(ts_present.clone()),
            agg::max(ts_present),
        ];
        let mut cols = Vec::new();
        for a in parts {
            let col = format!("__agg{}", aggs.len());
            aggs.push(a.alias(&col));
            cols.push(ident(col));
        }
        let span = (cols[3].clone() - cols[2].clone()).cast_to_type(DataType::Float64);
        let change = cols[1].clone() - cols[0].clone();
        Ok(t(change / f::nullif(span, lit(0.0)) * lit(per), Ty::Num))
    }

    fn aggregate(&self, name: &str, args: &[Ast]) -> Result<(Expr, Ty), QueryError> {
        let lname = name.to_ascii_lowercase();
        let one = |this: &Self| -> Result<T, QueryError> {
            if args.len() != 1 {
                return Err(malformed(format!(
                    "{name}() takes 1 argument, {} given",
                    args.len()
                )));
            }
            if args[0] == Ast::Star {
                return Err(malformed(format!(
                    "{name}(*) is not allowed; only count(*)"
                )));
            }
            this.expr(&args[0])
        };
        Ok(match lname.as_str() {
            "count" => match args {
                [] | [Ast::Star] => (agg::count(lit(1i64)), Ty::Num),
                [a] => (agg::count(self.expr(a)?.e), Ty::Num),
                _ => return Err(malformed("count() takes at most 1 argument")),
            },
            // Per `bin` when grouped by one, as every aggregate is.
            "count_over_time" => match args {
                [] | [Ast::Star] => (agg::count(lit(1i64)), Ty::Num),
                [a] => (agg::count(self.expr(a)?.e), Ty::Num),
                _ => return Err(malformed("count_over_time() takes 1 argument")),
            },
            "sum_over_time" => (agg::sum(num(one(self)?)), Ty::Num),
            "count_distinct" => {
                let x = one(self)?;
                (agg::count_distinct(x.e), Ty::Num)
            }
            "sum" => (agg::sum(num(one(self)?)), Ty::Num),
            "avg" => (agg::avg(num(one(self)?)), Ty::Num),
            "stddev" => (agg::stddev(num(one(self)?)), Ty::Num),
            "min" | "max" | "sortsfirst" | "sortslast" => {
                let x = one(self)?;
                let (e, ty) = match x.ty {
                    Ty::Any | Ty::Json | Ty::Num | Ty::Bool => (num(x), Ty::Num),
                    ty => (x.e, ty),
                };
                let a = if lname == "min" || lname == "sortsfirst" {
                    agg::min(e)
                } else {
                    agg::max(e)
                };
                (a, ty)
            }
            "earliest" | "latest" => {
                let x = one(self)?;
                let ts = self.timestamp(name)?;
                let order = vec![ts.sort(true, false)];
                let a = if lname == "earliest" {
                    agg::first_value(x.e, order)
                } else {
                    agg::last_value(x.e, order)
                };
                (a, x.ty)
            }
            "pct" | "percentile" => {
                if args.len() != 2 {
                    return Err(malformed(format!(
                        "{name}() takes 2 arguments: a field and a percentile"
                    )));
                }
                let x = self.expr(&args[0])?;
                let p = match &args[1] {
                    Ast::Int(i) => *i as f64,
                    Ast::Float(f) => *f,
                    _ => {
                        return Err(malformed(format!(
                            "{name}(): the percentile must be a number from 0 to 100"
                        )))
                    }
                };
                if !(0.0..=100.0).contains(&p) {
                    return Err(malformed(format!(
                        "{name}(): the percentile must be from 0 to 100"
                    )));
                }
                (
                    agg::percentile_cont(num(x).sort(true, false), lit(p / 100.0)),
                    Ty::Num,
                )
            }
            _ => return Err(malformed(format!("unknown aggregate function {name}()"))),
        })
    }
}

/// `a op b` for the arithmetic operators (as numbers; dividing by zero gives no value).
fn arithmetic(op: BinaryOp, a: T, b: T) -> Option<T> {
    let (a, b) = (num(a), num(b));
    Some(t(
        match op {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / f::nullif(b, lit(0.0)),
            BinaryOp::Mod => a % f::nullif(b, lit(0.0)),
            BinaryOp::Pow => f::power(a, b),
            _ => return None,
        },
        Ty::Num,
    ))
}

fn is_same_column(name: &str, e: &Expr) -> bool {
    matches!(e, Expr::Column(c) if c.name == name)
}

fn is_aggregate(lname: &str) -> bool {
    matches!(
        lname,
        "count"
            | "count_distinct"
            | "sum"
            | "avg"
            | "min"
            | "max"
            | "stddev"
            | "pct"
            | "percentile"
            | "earliest"
            | "latest"
            | "sortsfirst"
            | "sortslast"
            | "count_over_time"
            | "sum_over_time"
            | "rate"
            | "histogram"
    )
}

/// Whether `e` reads an aggregate: calls one, or names an earlier aggregate of the same stats.
fn uses_aggregates(e: &Ast, prior: &[(String, T)]) -> bool {
    match e {
        Ast::Field(n) => prior.iter().any(|(p, _)| p == n),
        Ast::Call { name, args } => {
            is_aggregate(&name.to_ascii_lowercase())
                || args.iter().any(|a| uses_aggregates(a, prior))
        }
        Ast::Binary { left, right, .. } => {
            uses_aggregates(left, prior) || uses_aggregates(right, prior)
        }
        Ast::Unary { expr, .. } => uses_aggregates(expr, prior),
        _ => false,
    }
}

/// Field names an expression reads, in order of appearance.
fn collect_fields(e: &Ast, out: &mut Vec<String>) {
    match e {
        Ast::Field(n) => out.push(n.clone()),
        Ast::Call { args, .. } => args.iter().for_each(|a| collect_fields(a, out)),
        Ast::Unary { expr, .. } => collect_fields(expr, out),
        Ast::Binary { left, right, .. } => {
            collect_fields(left, out);
            collect_fields(right, out);
        }
        Ast::Like { expr, pattern, .. } => {
            collect_fields(expr, out);
            collect_fields(pattern, out);
        }
        Ast::In { expr, list, .. } => {
            collect_fields(expr, out);
            list.iter().for_each(|a| collect_fields(a, out));
        }
        // The subquery's fields are its own.
        Ast::InQuery { expr, .. } => collect_fields(expr, out),
        Ast::List(items) => items.iter().for_each(|a| collect_fields(a, out)),
        _ => {}
    }
}

fn to_time(x: T) -> Expr {
    match x.ty {
        Ty::Time => x.e,
        _ => try_cast(num(x), DataType::Int64).cast_to_type(ts_type()),
    }
}

fn common_ty(xs: &[T]) -> Ty {
    let first = xs.first().map(|x| x.ty).unwrap_or(Ty::Any);
    if xs.iter().all(|x| x.ty == first) {
        first
    } else if xs.iter().all(|x| matches!(x.ty, Ty::Num | Ty::Bool)) {
        Ty::Num
    } else {
        Ty::Str
    }
}

fn coerce(x: T, ty: Ty) -> Expr {
    if x.ty == ty {
        return match ty {
            Ty::Str | Ty::Any | Ty::Json => text(x),
            _ => x.e,
        };
    }
    match ty {
        Ty::Num => num(x),
        Ty::Bool => boolean(x),
        Ty::Time => to_time(x),
        Ty::Str | Ty::Any | Ty::Json => text(x),
    }
}

fn compare(op: BinaryOp, a: T, b: T) -> Expr {
    let cmp = |l: Expr, r: Expr| match op {
        BinaryOp::Eq => l.eq(r),
        BinaryOp::Ne => l.not_eq(r),
        BinaryOp::Lt => l.lt(r),
        BinaryOp::Le => l.lt_eq(r),
        BinaryOp::Gt => l.gt(r),
        _ => l.gt_eq(r),
    };
    let (a, b) = (plain(a), plain(b));
    match (a.ty, b.ty) {
        (Ty::Time, Ty::Time) => cmp(a.e, b.e),
        (Ty::Time, _) | (_, Ty::Time) => cmp(num(a), num(b)),
        (Ty::Num, _) | (_, Ty::Num) => cmp(num(a), num(b)),
        (Ty::Bool, _) | (_, Ty::Bool) => cmp(boolean(a), boolean(b)),
        (Ty::Any, Ty::Any) => {
            // Two discovered values: as numbers when both are numbers, else as text.
            let (na, nb) = (num(a.clone()), num(b.clone()));
            when(
                na.clone().is_not_null().and(nb.clone().is_not_null()),
                cmp(na, nb),
            )
            .otherwise(cmp(text(a), text(b)))
            .unwrap()
        }
        _ => cmp(text(a), text(b)),
    }
}

/// Insights regexes: `/.../` with flags; `(?<name>...)` groups are accepted.
fn regex_text(pattern: &str, flags: &str) -> Result<String, QueryError> {
    let mut p = String::new();
    if !flags.is_empty() {
        p.push_str("(?");
        p.push_str(flags);
        p.push(')');
    }
    p.push_str(pattern);
    build_regex(&p, "").map(|r| r.as_str().to_string())
}

fn build_regex(pattern: &str, flags: &str) -> Result<regex::Regex, QueryError> {
    let full = if flags.is_empty() {
        pattern.to_string()
    } else {
        format!("(?{flags}){pattern}")
    };
    regex::RegexBuilder::new(&full)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| malformed(format!("invalid regular expression /{pattern}/: {e}")))
}

fn regex_match(x: Expr, r: &logwell_insights::Regex) -> Result<Expr, QueryError> {
    let p = regex_text(&r.pattern, &r.flags)?;
    Ok(f::regexp_like(x, lit(p), None))
}
