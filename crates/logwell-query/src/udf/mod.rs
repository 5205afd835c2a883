//! The functions logwell adds to DataFusion, one file per family: JSON, `parse` captures, text
//! functions (IP, URL, hex, dates), the text of numeric field columns, collected values with
//! their percentiles and histograms, time floors,
//! patterns and anomalies, and the counters behind a query's statistics. Every function is
//! registered by name in each query's session, so a plan can name them: what configures one
//! (the JSON paths a query reads, a `parse` pattern and its names, a time period) is a literal
//! argument. Only the counters ([`CountTrue`]) belong to one query: its session registers its
//! own.

mod counters;
mod histogram;
mod json;
mod mask;
mod message;
mod number;
mod parse;
mod pattern;
mod text;
mod time;
mod values;

pub use counters::*;
pub use histogram::*;
pub use json::*;
pub use mask::*;
pub use message::*;
pub use number::*;
pub use parse::*;
pub use pattern::*;
pub use text::*;
pub use time::*;
pub use values::*;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, StringBuilder, StringViewBuilder, StructArray,
};
use arrow::datatypes::FieldRef;
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use logwell_fields::PathSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The volatility of the functions that parse a whole message into a struct of fields.
const ONCE_PER_ROW: Volatility = Volatility::Immutable;

/// Rows as strings, whatever string type DataFusion handed over.
fn strings(arg: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let array = arg.to_array(rows)?;
    Ok(match array.data_type() {
        DataType::Utf8 => array,
        _ => arrow::compute::cast(&array, &DataType::Utf8)?,
    })
}

/// Literal text arguments (paths, patterns, names) of a function that takes them as its
/// configuration.
fn literal_texts(args: &[ColumnarValue], function: &str) -> Result<Vec<String>> {
    args.iter()
        .map(|a| match a {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::Utf8View(Some(s))
                | ScalarValue::LargeUtf8(Some(s)),
            ) => Ok(s.clone()),
            _ => exec_err!("{function} takes literal text arguments"),
        })
        .collect()
}

/// A struct type of text fields named `names`, each of type `text` (Utf8 or Utf8View).
fn text_struct(names: &[String], text: &DataType) -> DataType {
    DataType::Struct(Fields::from(
        names
            .iter()
            .map(|n| Field::new(n, text.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// A struct column of text fields named `names`, from one builder per field.
fn struct_of<B: arrow::array::ArrayBuilder>(
    names: &[String],
    text: &DataType,
    builders: Vec<B>,
    rows: usize,
) -> Result<ColumnarValue> {
    if names.is_empty() {
        // Nothing is read, but the row count must still be right.
        return Ok(ColumnarValue::Array(Arc::new(
            StructArray::new_empty_fields(rows, None),
        )));
    }
    let DataType::Struct(fields) = text_struct(names, text) else {
        unreachable!("text_struct builds a struct")
    };
    let cols: Vec<ArrayRef> = builders.into_iter().map(|mut b| b.finish()).collect();
    Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
        fields, cols, None,
    )?)))
}

/// The stateless functions, registered by name in a query's session.
pub fn scalar_udfs() -> Vec<ScalarUDF> {
    let mut out: Vec<ScalarUDF> = TextFn::ALL.iter().map(|f| f.udf()).collect();
    out.extend([JsonOp::Parse, JsonOp::Member, JsonOp::Elements].map(JsonUdf::udf));
    out.extend([
        JsonFields::udf(),
        NumberText::udf(),
        JoinMessage::udf(),
        ParseFields::udf(),
        LogfmtUdf::udf(),
        Histogram::udf(),
        Percentile::udf(),
        TimeFloor::udf(),
        AnomalyUdf::udf(),
    ]);
    out
}

pub fn aggregate_udfs() -> Vec<AggregateUDF> {
    vec![
        PatternProfile::udaf(false),
        PatternProfile::udaf(true),
        CollectValues::udaf(),
    ]
}

pub fn window_udfs() -> Vec<datafusion::logical_expr::WindowUDF> {
    vec![PatternCluster::udwf()]
}

/// The stateless functions, built once (each query's session gets clones, which share them).
type Registered = (
    Vec<ScalarUDF>,
    Vec<AggregateUDF>,
    Vec<datafusion::logical_expr::WindowUDF>,
);
static REGISTERED: std::sync::LazyLock<Registered> =
    std::sync::LazyLock::new(|| (scalar_udfs(), aggregate_udfs(), window_udfs()));

/// Registers every stateless function in `ctx` by name.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    let (scalars, aggregates, windows) = &*REGISTERED;
    for f in scalars {
        ctx.register_udf(f.clone());
    }
    for f in aggregates {
        ctx.register_udaf(f.clone());
    }
    for f in windows {
        ctx.register_udwf(f.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_functions_have_distinct_names() {
        use datafusion::execution::FunctionRegistry;
        let ctx = datafusion::prelude::SessionContext::new();
        let before = ctx.udfs().len();
        register(&ctx);
        let names: Vec<String> = scalar_udfs().iter().map(|f| f.name().to_string()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(ctx.udfs().len() >= before + names.len() - 1);
        for n in &names {
            assert!(ctx.udf(n).is_ok(), "{n} is registered");
        }
        assert!(ctx.udaf("lw_pattern_profiles").is_ok());
        assert!(ctx.udwf("lw_pattern_cluster").is_ok());
    }
}
