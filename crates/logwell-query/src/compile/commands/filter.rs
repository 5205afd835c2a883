//! `filter e` (and `filterIndex e`, the same rows from a full scan): the rows where `e` holds.

use crate::compile::*;

impl Pipeline<'_> {
    /// The last filter before the first `stats` counts the rows it keeps (`recordsMatched`).
    pub(in crate::compile) fn filter(&mut self, e: &Ast, index: usize) -> Result<(), QueryError> {
        self.ensure_fields([e])?;
        let pred = cheap_first(boolean(self.expr(e)?), &self.extracted);
        let pred = if self.count_at_filter == Some(index) {
            self.matched_counted = true;
            CountTrue::matched(&self.cx.counters, pred)
        } else {
            pred
        };
        self.build(|b| b.filter(pred))
    }
}

/// `pred`'s conjuncts, cheapest first: DataFusion evaluates the right of an AND only on the rows
/// its left kept, so a test of a stored column or a text search of the message should spare
/// the rows it rejects a JSON extraction (fields in `extracted`: fresh data, where fields are
/// not columns yet) or a parse. AND commutes, so the rows kept are the same.
fn cheap_first(pred: Expr, extracted: &[String]) -> Expr {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
    let cost = |e: &Expr| {
        let calls = |test: fn(&str) -> bool| {
            e.exists(|x| {
                Ok(match x {
                    Expr::ScalarFunction(f) => test(f.name()),
                    Expr::Like(_) => test("like"),
                    _ => false,
                })
            })
            .unwrap_or(true)
        };
        let reads_extracted = e
            .column_refs()
            .iter()
            .any(|c| extracted.iter().any(|x| *x == c.name));
        if reads_extracted || calls(|n| n.starts_with("lw_json") || n.starts_with("lw_parse")) {
            2
        } else if calls(|n| matches!(n, "regexp_like" | "like" | "strpos" | "contains")) {
            1
        } else {
            0
        }
    };
    let mut parts = split_conjunction_owned(pred);
    if parts.len() < 2 {
        return conjunction(parts).expect("one conjunct");
    }
    parts.sort_by_key(|p| cost(p));
    conjunction(parts).expect("conjuncts")
}
