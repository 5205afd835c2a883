//! `addtotals`: a row-total column and a column-totals row.

use crate::compile::*;

impl Pipeline<'_> {
    /// `addtotals`: a row total column over numeric fields, and with `col=true` a last row
    /// holding each column's total.
    pub(in crate::compile) fn add_totals(
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
}
