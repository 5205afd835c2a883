//! `stats` (aggregates by keys, with `offset` for bins) and `countfrequent`.

use crate::compile::*;

impl Pipeline<'_> {
    pub(in crate::compile) fn stats(
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
        self.numbers.clear();
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
}

impl Pipeline<'_> {
    /// `countfrequent f, ...`: how many events have each combination, most frequent first.
    pub(in crate::compile) fn count_frequent(
        &mut self,
        names: &[String],
        index: usize,
    ) -> Result<(), QueryError> {
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
        if !self.sorted_after(index) {
            let mut order = vec![ident("_approxcount").sort(false, false)];
            order.extend(names.iter().map(|n| ident(n).sort(true, false)));
            self.build(|b| b.sort(order.clone()))?;
            self.order = Some(order);
        }
        Ok(())
    }
}
