//! `outlier`: remove, clamp or mark values far outside the interquartile range.

use crate::compile::*;

impl Pipeline<'_> {
    /// `outlier`: values more than `param` interquartile ranges above the third quartile (or,
    /// with `use_lower`, below the first) are outliers; their rows are removed, or the values
    /// clamped to that bound; `mark` adds `_outlier` (true/false).
    pub(in crate::compile) fn outlier(
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
}
