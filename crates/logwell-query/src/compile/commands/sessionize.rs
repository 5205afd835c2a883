//! `sessionize f, ... [maxspan p] [as out]`: session ids from gaps in time.

use crate::compile::*;

impl Pipeline<'_> {
    /// `sessionize f, ... [maxspan p] [as out]`: events of one identity belong to one session
    /// until a gap longer than `maxspan` (30m by default); the id is the identity values and
    /// the session's number, `alice:1`.
    pub(in crate::compile) fn sessionize(
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
}
