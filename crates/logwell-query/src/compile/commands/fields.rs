//! `fields` and `display`: which fields each row shows, computed from expressions.

use crate::compile::*;

impl Pipeline<'_> {
    /// `expr as name` items: their names and compiled expressions.
    pub(in crate::compile) fn projections(
        &mut self,
        projs: &[Projection],
    ) -> Result<Vec<(String, T)>, QueryError> {
        self.ensure_fields(projs.iter().map(|p| &p.expr))?;
        projs
            .iter()
            .map(|p| Ok((p.name().to_string(), self.expr(&p.expr)?)))
            .collect()
    }
}

impl Pipeline<'_> {
    /// `fields a, b as c`: the fields shown (after those of earlier `fields` commands).
    pub(in crate::compile) fn fields_command(
        &mut self,
        projs: &[Projection],
    ) -> Result<(), QueryError> {
        let cols = self.projections(projs)?;
        for (name, _) in &cols {
            if !self.shown.contains(name) {
                self.shown.push(name.clone());
            }
        }
        let cols = cols
            .into_iter()
            .filter(|(n, x)| !is_same_column(n, &x.e))
            .collect();
        self.with_columns(cols)
    }

    /// `display a, b`: exactly these fields are the output, in this order.
    pub(in crate::compile) fn display(&mut self, projs: &[Projection]) -> Result<(), QueryError> {
        let cols = self.projections(projs)?;
        self.display = Some(cols.iter().map(|(n, _)| n.clone()).collect());
        let cols = cols
            .into_iter()
            .filter(|(n, x)| !is_same_column(n, &x.e))
            .collect();
        self.with_columns(cols)
    }
}

/// The fields `expr as name` items read.
pub(super) fn reads<'p>(projs: impl IntoIterator<Item = &'p Projection>, out: &mut Vec<String>) {
    projs.into_iter().for_each(|p| collect_fields(&p.expr, out))
}
