//! The live counters behind a query's statistics (`recordsMatched`...).

use super::*;

/// Live counters of one query, readable while it runs.
#[derive(Debug, Default)]
pub struct QueryCounters {
    pub scanned: AtomicU64,
    pub bytes: AtomicU64,
    pub matched: AtomicU64,
}

/// Which counter a [`CountTrue`] feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Events in the query's time range; a second, literal argument gives the bytes each counts
    /// for (groups differ).
    Scanned,
    /// Events that passed the query's filters.
    Matched,
}

/// `lw_count_scanned(pred, bytes_per_row)` and `lw_count_matched(pred)`: pass a boolean through
/// unchanged and count its true rows into one query's counters. Volatile, so the optimizer
/// neither folds nor moves them: they count exactly the rows reaching their place. Each query's
/// session registers its own pair by name ([`CountTrue::register`]).
#[derive(Debug)]
pub struct CountTrue {
    counters: Arc<QueryCounters>,
    counter: Counter,
    signature: Signature,
}

impl PartialEq for CountTrue {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.counters, &o.counters) && self.counter == o.counter
    }
}
impl Eq for CountTrue {}
impl Hash for CountTrue {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (Arc::as_ptr(&self.counters) as usize).hash(h);
        self.counter.hash(h);
    }
}

impl CountTrue {
    fn udf(counters: &Arc<QueryCounters>, counter: Counter) -> ScalarUDF {
        let args = match counter {
            Counter::Scanned => vec![DataType::Boolean, DataType::Int64],
            Counter::Matched => vec![DataType::Boolean],
        };
        ScalarUDF::from(CountTrue {
            counters: counters.clone(),
            counter,
            signature: Signature::exact(args, Volatility::Volatile),
        })
    }

    /// Registers the counters of the query `ctx` plans by name.
    pub fn register(ctx: &datafusion::prelude::SessionContext, counters: &Arc<QueryCounters>) {
        ctx.register_udf(CountTrue::udf(counters, Counter::Scanned));
        ctx.register_udf(CountTrue::udf(counters, Counter::Matched));
    }

    /// Counts the rows `predicate` keeps as scanned, `bytes_per_row` bytes each.
    pub fn scanned(counters: &Arc<QueryCounters>, predicate: Expr, bytes_per_row: u64) -> Expr {
        CountTrue::udf(counters, Counter::Scanned).call(vec![
            predicate,
            datafusion::logical_expr::lit(bytes_per_row as i64),
        ])
    }

    /// Counts the rows `predicate` keeps as matched.
    pub fn matched(counters: &Arc<QueryCounters>, predicate: Expr) -> Expr {
        CountTrue::udf(counters, Counter::Matched).call(vec![predicate])
    }
}

impl ScalarUDFImpl for CountTrue {
    fn name(&self) -> &str {
        match self.counter {
            Counter::Scanned => "lw_count_scanned",
            Counter::Matched => "lw_count_matched",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (trues, out) = match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Boolean(b)) => {
                let t = if b.unwrap_or(false) {
                    args.number_rows
                } else {
                    0
                };
                (t, args.args[0].clone())
            }
            ColumnarValue::Array(a) => {
                let Some(b) = a.as_any().downcast_ref::<BooleanArray>() else {
                    return exec_err!("lw_count expects booleans");
                };
                (b.true_count(), args.args[0].clone())
            }
            _ => return exec_err!("lw_count expects booleans"),
        };
        let c = &self.counters;
        match self.counter {
            Counter::Scanned => {
                let bytes_per_row = match args.args.get(1) {
                    Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(b)))) => *b as u64,
                    _ => return exec_err!("lw_count_scanned takes literal bytes per row"),
                };
                c.scanned.fetch_add(trues as u64, Ordering::Relaxed);
                c.bytes
                    .fetch_add(trues as u64 * bytes_per_row, Ordering::Relaxed);
            }
            Counter::Matched => {
                c.matched.fetch_add(trues as u64, Ordering::Relaxed);
            }
        }
        Ok(out)
    }
}
