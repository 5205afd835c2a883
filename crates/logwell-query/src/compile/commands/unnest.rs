//! `unnest list into item`: one row per element of a JSON list.

use crate::compile::*;

impl Pipeline<'_> {
    pub(in crate::compile) fn unnest(&mut self, field: &str, into: &str) -> Result<(), QueryError> {
        let src = Ast::Field(field.to_string());
        self.ensure_fields([&src])?;
        let x = self.expr(&src)?;
        let list = self.tmp("unnest");
        let elements = JsonUdf::call(JsonOp::Elements, text(x));
        self.with_columns(vec![(list.clone(), t(elements, Ty::Json))])?;
        // An event without the list gives no rows (a non-list value is a one-element list).
        let options = datafusion::common::UnnestOptions::new().with_preserve_nulls(false);
        self.build(|b| b.unnest_column_with_options(Column::from_name(&list), options))?;
        self.with_columns(vec![(into.to_string(), t(ident(&list), Ty::Json))])?;
        self.drop_columns(&[&list])
    }
}
