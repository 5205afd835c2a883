//! `sort`, `limit` and the default newest-first order.

use crate::compile::*;

impl Pipeline<'_> {
    pub(in crate::compile) fn default_order(&mut self) -> Result<(), QueryError> {
        if self.order.is_some() || self.stats > 0 || !self.fields.contains_key(TS) {
            return Ok(());
        }
        let order = vec![ident(TS).sort(false, false), ident(SEQ).sort(false, false)];
        self.order = Some(order.clone());
        self.build(|b| b.sort(order))
    }

    pub(in crate::compile) fn sort(&mut self, keys: &[SortKey]) -> Result<(), QueryError> {
        self.ensure_fields(keys.iter().map(|k| &k.expr))?;
        // Sort keys become columns first: sorting on expressions over an aggregate's output
        // lost the order in DataFusion 55's sort planning.
        let mut order = Vec::new();
        let mut cols = Vec::new();
        for k in keys {
            let x = self.expr(&k.expr)?;
            let mut key = |this: &mut Self, e: Expr, ty: Ty| {
                let name = this.tmp("sort");
                cols.push((name.clone(), t(e, ty)));
                order.push(ident(&name).sort(k.ascending, false));
            };
            match x.ty {
                // Discovered values sort as numbers when they are numbers, else as text.
                Ty::Any | Ty::Json => {
                    key(self, num(x.clone()), Ty::Num);
                    key(self, text(x), Ty::Str);
                }
                _ => match &x.e {
                    Expr::Column(_) => order.push(x.e.sort(k.ascending, false)),
                    _ => key(self, x.e, x.ty),
                },
            }
        }
        self.with_columns(cols)?;
        self.order = Some(order.clone());
        self.build(|b| b.sort(order))
    }
}

impl Pipeline<'_> {
    /// `limit n` (rows in the current order, newest first by default); `limit any n` takes any.
    pub(in crate::compile) fn limit(&mut self, n: u64, any: bool) -> Result<(), QueryError> {
        if !any {
            self.default_order()?;
        }
        let n = n as usize;
        self.explicit_limit = Some(self.explicit_limit.map_or(n, |l| l.min(n)));
        self.build(|b| b.limit(0, Some(n)))
    }
}
