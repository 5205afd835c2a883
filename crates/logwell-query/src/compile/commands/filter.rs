//! `filter e` (and `filterIndex e`, the same rows from a full scan): the rows where `e` holds.

use crate::compile::*;

impl Pipeline<'_> {
    /// The last filter before the first `stats` counts the rows it keeps (`recordsMatched`).
    pub(in crate::compile) fn filter(&mut self, e: &Ast, index: usize) -> Result<(), QueryError> {
        self.ensure_fields([e])?;
        let pred = boolean(self.expr(e)?);
        let pred = if self.count_at_filter == Some(index) {
            self.matched_counted = true;
            CountTrue::matched(&self.cx.counters, pred)
        } else {
            pred
        };
        self.build(|b| b.filter(pred))
    }
}
