//! `fillmissing`: a row for every empty bin after `stats ... by bin(p)`.

use crate::compile::*;

impl Pipeline<'_> {
    /// `fillmissing [with v for f, ...]`: after `stats ... by bin(p)`, a row for every bin of
    /// the time range that has none, its other fields missing or set to the given values.
    pub(in crate::compile) fn fill_missing(
        &mut self,
        fills: &[(Ast, String)],
        index: usize,
    ) -> Result<(), QueryError> {
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
}
