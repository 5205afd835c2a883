//! `diff [previous|day|week|month|timeshift p]`: patterns now against an earlier range.

use crate::compile::*;

impl<'a> Pipeline<'a> {
    /// `diff`: the patterns of the commands so far (an implicit `pattern @message` if there
    /// is none) in this time range and in an earlier one, side by side.
    pub(in crate::compile) fn diff(
        &mut self,
        period: &DiffPeriod,
        index: usize,
    ) -> Result<(), QueryError> {
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

    /// The commands `prefix` of this query again, over another time range (for `diff`).
    pub(in crate::compile) fn subquery_at(
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
}

/// The same instant one calendar month earlier (the day clamped to the month's length).
pub(in crate::compile) fn months_before(ms: i64) -> i64 {
    use chrono::Months;
    chrono::DateTime::from_timestamp_millis(ms)
        .and_then(|t| t.checked_sub_months(Months::new(1)))
        .map_or(ms - 30 * 86_400_000, |t| t.timestamp_millis())
}
