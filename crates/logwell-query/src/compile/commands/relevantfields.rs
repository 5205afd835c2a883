//! `relevantfields [f, ...] where cond`: which fields distinguish matching events.

use crate::compile::*;

impl Pipeline<'_> {
    /// `relevantfields [f, ...] where cond`: per field, how differently it is distributed in the
    /// events that meet the condition and in the others, on a 0-1 scale. Numeric fields compare
    /// medians (`|m1 - m0| / (|m1| + |m0|)`); the others compare value shares (total variation
    /// distance), naming the values whose share moved most. No fields: every field earlier
    /// commands or the condition read (discovered JSON fields are not known before).
    pub(in crate::compile) fn relevant_fields(
        &mut self,
        fields: &[String],
        condition: &Ast,
    ) -> Result<(), QueryError> {
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
}
