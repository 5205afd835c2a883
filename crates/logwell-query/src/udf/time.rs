//! `lw_time_floor`: timestamps floored to fixed periods (`bin`, `datefloor`).

use super::*;

/// `lw_time_floor(ts, ms)`: a millisecond timestamp floored to a multiple of a fixed period (`bin`,
/// `datefloor`), in one pass: a multiplication by the period's inverse, corrected to the exact
/// integer floor.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeFloor {
    signature: Signature,
}

/// The multiple of `ms` at or below `t` (also below zero).
pub fn floor_to(t: i64, ms: i64) -> i64 {
    floor_with_inverse(t, ms, 1.0 / ms as f64)
}

/// [`floor_to`] with `inverse = 1 / ms` computed once: the float quotient, truncated, is off by
/// at most one step (rounding, or truncation towards zero below zero), which the remainder
/// corrects. Integer division, or a call to `floor`, costs several times more per row.
#[inline]
fn floor_with_inverse(t: i64, ms: i64, inverse: f64) -> i64 {
    // Wrapping: nonsense far outside the timestamp range gives nonsense, not a panic.
    let mut q = (t as f64 * inverse) as i64;
    let r = t.wrapping_sub(q.wrapping_mul(ms));
    q -= i64::from(r < 0);
    q += i64::from(r >= ms);
    q.wrapping_mul(ms)
}

impl TimeFloor {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(TimeFloor {
            signature: Signature::any(2, Volatility::Immutable),
        })
    }

    /// `lw_time_floor(ts, ms)`: `ts` floored to a multiple of `ms` (a literal).
    pub fn call(ts: Expr, ms: i64) -> Expr {
        TimeFloor::udf().call(vec![ts, datafusion::logical_expr::lit(ms)])
    }
}

impl ScalarUDFImpl for TimeFloor {
    fn name(&self) -> &str {
        "lw_time_floor"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(
            arrow::datatypes::TimeUnit::Millisecond,
            None,
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use arrow::datatypes::TimestampMillisecondType as Ms;
        let ts = args.args[0].to_array(args.number_rows)?;
        let ts = match ts.data_type() {
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None) => ts,
            _ => arrow::compute::cast(
                &ts,
                &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
            )?,
        };
        let ms = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(ms))) if *ms > 0 => *ms,
            _ => return exec_err!("lw_time_floor takes a positive literal period in ms"),
        };
        let inverse = 1.0 / ms as f64;
        let out = ts
            .as_primitive::<Ms>()
            .unary::<_, Ms>(|t| floor_with_inverse(t, ms, inverse));
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_floor_is_the_exact_euclidean_floor() {
        for ms in [1, 7, 1000, 60_000, 300_000, 3_600_000, 86_400_000] {
            for t in [
                0,
                1,
                -1,
                ms - 1,
                ms,
                -ms,
                -ms - 1,
                1_795_634_895_157,
                1_795_634_895_157 / ms * ms,
                1_795_634_895_157 / ms * ms - 1,
                -1_795_634_895_157,
                (1 << 53) - 1,
            ] {
                assert_eq!(floor_to(t, ms), t.div_euclid(ms) * ms, "{t} {ms}");
            }
        }
    }
}
