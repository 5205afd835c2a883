//! `appendcols (subquery)`: a subquery's fields joined row by row.

use crate::compile::*;

impl Pipeline<'_> {
    /// `appendcols (subquery)`: the subquery's fields joined row by row (first with first),
    /// keeping existing values unless `override_fields`.
    pub(in crate::compile) fn append_cols(
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
}
