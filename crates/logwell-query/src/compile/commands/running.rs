//! Commands computed over the rows in their order: `accum`, `autoregress`, `filldown`.

use crate::compile::*;

impl Pipeline<'_> {
    /// Adds window columns computed over the rows in their current order (from the first row
    /// to each row; `ignore_nulls` for last-value fills), then restores that order.
    pub(in crate::compile) fn running(
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

    /// `filldown [f, ...]`: a missing value takes the last value above it (every field but
    /// the system ones when none is named).
    pub(in crate::compile) fn filldown(&mut self, names: &[String]) -> Result<(), QueryError> {
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
}

impl Pipeline<'_> {
    /// `accum f [as g]`: the running sum of `f`.
    pub(in crate::compile) fn accum(
        &mut self,
        field: &str,
        alias: Option<&str>,
    ) -> Result<(), QueryError> {
        let x = self.field_value(field)?;
        let sum = Expr::WindowFunction(Box::new(WindowFunction::new(
            datafusion::functions_aggregate::sum::sum_udaf(),
            vec![num(x)],
        )));
        let out = alias.unwrap_or(field).to_string();
        self.running(vec![(out, sum, Ty::Num)], false)
    }

    /// `autoregress f [as g] [p=k[-m]]`: the values of `f` k (to m) rows earlier.
    pub(in crate::compile) fn autoregress(
        &mut self,
        field: &str,
        alias: Option<&str>,
        from: u64,
        to: u64,
    ) -> Result<(), QueryError> {
        let x = self.field_value(field)?;
        let cols = (from..=to)
            .map(|k| {
                let name = match alias {
                    Some(a) if from == to => a.to_string(),
                    Some(a) => format!("{a}_p{k}"),
                    None => format!("{field}_p{k}"),
                };
                let lag =
                    datafusion::functions_window::expr_fn::lag(x.e.clone(), Some(k as i64), None);
                (name, lag, x.ty)
            })
            .collect();
        self.running(cols, false)
    }
}
