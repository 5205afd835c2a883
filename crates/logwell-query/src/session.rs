//! The DataFusion session every query starts from: configuration, optimizer rules, functions.

use crate::{bin_count, keyed_group, split_search, udf, QueryConfig};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;

/// The session queries start from: logwell's configuration, optimizer rules and functions.
pub(crate) fn session(query: &QueryConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
    let mut config = SessionConfig::new()
        .with_target_partitions(query.target_partitions)
        .with_information_schema(false);
    // Sorts reserve this much to merge their spill files; keep it a small part of the pool
    // so that small pools still sort (by spilling) instead of failing.
    config.options_mut().execution.sort_spill_reservation_bytes =
        (query.memory_limit / 16).min(10 << 20);
    // This rule moves each `get_field(struct, f)` towards the scan, through the projection
    // that parses a message into that struct: the message would then be parsed once per
    // field read. Event tables have no struct columns for it to help with.
    config
        .options_mut()
        .optimizer
        .enable_leaf_expression_pushdown = false;
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    // DataFusion 55's final plan check takes a column that a filter fixed to one literal
    // for unordered once several partitions are merged, where sorting already counted it
    // as ordered; it then refuses valid plans (a row_number window over
    // `stats ... by k | filter k = "v"` on several buffered batches). Orderings are still
    // enforced by the sorting rules; only that second check is left out.
    //
    // Text searches hand their pieces to the joins of split messages before projections
    // are pushed into the scans, where those joins could no longer be reached. Counts by
    // time bin are counted in runs, last, on the plan as it will run (see `bin_count`).
    // Groups by a text field read as a dictionary are found while the cast to text is still
    // a projection of its own (see `keyed_group`).
    let mut rules: Vec<_> = Vec::new();
    let mut searched = false;
    for rule in state.physical_optimizers() {
        if rule.name() == "ProjectionPushdown" && !searched {
            rules.push(Arc::new(split_search::SearchSplitMessages) as _);
            rules.push(Arc::new(keyed_group::GroupByKeys) as _);
            searched = true;
        }
        if rule.name() != "SanityCheckPlan" {
            rules.push(rule.clone());
        }
    }
    rules.push(Arc::new(bin_count::CountByTimeBin) as _);
    let state = datafusion::execution::SessionStateBuilder::new_from_existing(state)
        .with_physical_optimizer_rules(rules)
        .build();
    let ctx = SessionContext::new_with_state(state);
    udf::register(&ctx);
    ctx.state()
}
