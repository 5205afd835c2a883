//! `pattern e`: events grouped by the template of their text.

use crate::compile::*;

impl Pipeline<'_> {
    /// `pattern e`: one row per pattern of `e`'s text, most frequent first; with `merge`,
    /// templates that differ in a few plain words are one pattern. With `profiled` (an
    /// `anomaly` follows), each row also keeps the hidden `__pattern_*` columns, including the
    /// time span of all the patterns' events (before any later filter drops some).
    pub(in crate::compile) fn pattern(
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
}

impl Pipeline<'_> {
    /// `pattern e` as a command: profiled when an `anomaly` follows, merged unless a `diff`
    /// compares it (by exact text) or this is `diff`'s own earlier range.
    pub(in crate::compile) fn pattern_command(
        &mut self,
        e: &Ast,
        index: usize,
    ) -> Result<(), QueryError> {
        let key_order = !self.sorted_after(index);
        let later = &self.commands[index + 1..];
        let profiled = later.iter().any(|c| matches!(c, Command::Anomaly));
        let merge = self.cx.merge_patterns && !later.iter().any(|c| matches!(c, Command::Diff(_)));
        self.pattern(e, key_order, profiled, merge)
    }
}
