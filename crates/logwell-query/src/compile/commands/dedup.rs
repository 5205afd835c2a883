//! `dedup f, ...`: the first row (in the current order) per combination of values.

use crate::compile::*;

impl Pipeline<'_> {
    pub(in crate::compile) fn dedup(&mut self, names: &[String]) -> Result<(), QueryError> {
        let asts: Vec<Ast> = names.iter().map(|n| Ast::Field(n.clone())).collect();
        self.ensure_fields(asts.iter())?;
        self.default_order()?;
        let order = self.order.clone().unwrap_or_default();
        let keys: Vec<Expr> = names.iter().map(|n| ident(n)).collect();
        let rn = self.tmp("rn");
        let window = datafusion::functions_window::expr_fn::row_number()
            .partition_by(keys.clone())
            .order_by(order.clone())
            .build()?;
        self.build(|b| b.window(vec![window.alias(&rn)]))?;
        let mut keep = ident(&rn).eq(lit(1u64));
        for k in keys {
            keep = keep.or(k.is_null());
        }
        self.build(|b| b.filter(keep))?;
        self.drop_columns(&[&rn])?;
        // Window evaluation reorders rows; restore the order.
        self.build(|b| b.sort(order))
    }
}
