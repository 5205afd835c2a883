//! Which JSON fields the sealed buffered batches a query read should keep once it has run, and
//! keeping them in the background (see `logwell_storage::buffered`).

use crate::compile::{FIELD_PREFIX, NUMBER_PREFIX};
use datafusion::logical_expr::LogicalPlan;
use logwell_storage::Engine;

/// JSON fields a query read, for the sealed buffered batches it read to keep.
pub(crate) struct FieldsToKeep {
    batches: Vec<logwell_storage::Buffered>,
    paths: Vec<String>,
}

impl FieldsToKeep {
    /// The JSON fields `paths` a query read and the sealed buffered batches of `groups` that
    /// do not keep them yet: once the query ends, the batches extract and keep those fields in
    /// the background, so that the next query over the last minutes reads them as columns (the
    /// table offers what batches keep) instead of parsing every message again. The query itself
    /// is neither delayed nor slowed: it extracts in its plan, after its filters.
    pub(crate) fn of(
        engine: &Engine,
        paths: Vec<String>,
        groups: &[String],
        range: (i64, i64),
    ) -> Option<FieldsToKeep> {
        if paths.is_empty() {
            return None;
        }
        let mut batches = Vec::new();
        for g in groups {
            if let Ok(snap) = engine.snapshot(g, range.0, range.1) {
                batches.extend(snap.buffered.into_iter().filter(|b| b.would_keep(&paths)));
            }
        }
        (!batches.is_empty()).then_some(FieldsToKeep { batches, paths })
    }

    /// Extracts and keeps them on one blocking thread, so that queries keep the other cores.
    /// Every path is tried as numbers (a text value turns its column to text at once).
    pub(crate) fn start(self) {
        tokio::task::spawn_blocking(move || {
            for b in &self.batches {
                b.keep(&self.paths, &self.paths);
            }
        });
    }
}

/// The JSON fields `plan` reads: extracted from messages, or as field columns (which the table
/// extracts for the batches and files that do not store them).
pub(crate) fn fields_read(plan: &LogicalPlan) -> Vec<String> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Expr;
    let mut paths: Vec<String> = Vec::new();
    let _ = plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                match e {
                    Expr::ScalarFunction(f) if f.func.name() == "lw_json" => {
                        for a in &f.args[1..] {
                            if let Expr::Literal(ScalarValue::Utf8(Some(p)), _) = a {
                                paths.push(p.clone());
                            }
                        }
                    }
                    Expr::Column(c) => {
                        let field = c.name.strip_prefix(FIELD_PREFIX);
                        if let Some(p) = field.or_else(|| c.name.strip_prefix(NUMBER_PREFIX)) {
                            paths.push(p.to_string());
                        }
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    paths.sort();
    paths.dedup();
    paths
}
