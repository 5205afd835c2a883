//! Periods (`5m`, `1d`, `1mo`): flooring and ceiling timestamps to them, intervals.

use super::*;

pub(in crate::compile) fn period_ms(value: u64, unit: PeriodUnit) -> Option<i64> {
    // CloudWatch caps the value per unit: bin(300s) silently becomes 60s.
    let v = value as i64;
    Some(match unit {
        PeriodUnit::Millisecond => v.min(1000),
        PeriodUnit::Second => v.min(60) * 1000,
        PeriodUnit::Minute => v.min(60) * 60_000,
        PeriodUnit::Hour => v.min(24) * 3_600_000,
        PeriodUnit::Day => v * 86_400_000,
        PeriodUnit::Week => v * 7 * 86_400_000,
        _ => return None,
    })
}

pub(in crate::compile) fn calendar_unit(unit: PeriodUnit) -> &'static str {
    match unit {
        PeriodUnit::Month => "month",
        PeriodUnit::Quarter => "quarter",
        _ => "year",
    }
}

/// Floors a timestamp expression to a period.
pub(in crate::compile) fn time_floor(ts: Expr, value: u64, unit: PeriodUnit) -> Expr {
    match period_ms(value, unit) {
        // Floors downwards before 1970 too.
        Some(ms) if ms > 0 => TimeFloor::call(ts, ms),
        Some(_) => ts,
        None => f::date_trunc(lit(calendar_unit(unit)), ts).cast_to_type(ts_type()),
    }
}

pub(in crate::compile) fn time_ceil(ts: Expr, value: u64, unit: PeriodUnit) -> Expr {
    let floor = time_floor(ts.clone(), value, unit);
    let up = match period_ms(value, unit) {
        Some(ms) => (millis(floor.clone()) + lit(ms)).cast_to_type(ts_type()),
        None => {
            let months: i32 = match unit {
                PeriodUnit::Month => 1,
                PeriodUnit::Quarter => 3,
                _ => 12,
            };
            floor.clone() + lit(ScalarValue::IntervalYearMonth(Some(months)))
        }
    };
    when(floor.clone().eq(ts), floor).otherwise(up).unwrap()
}

/// A period as an interval to add to timestamps (not capped, unlike `bin`'s).
pub(in crate::compile) fn interval(value: u64, unit: PeriodUnit) -> ScalarValue {
    let v = value as i64;
    let ms = match unit {
        PeriodUnit::Millisecond => v,
        PeriodUnit::Second => v * 1000,
        PeriodUnit::Minute => v * 60_000,
        PeriodUnit::Hour => v * 3_600_000,
        PeriodUnit::Day => v * 86_400_000,
        PeriodUnit::Week => v * 7 * 86_400_000,
        PeriodUnit::Month => return ScalarValue::IntervalYearMonth(Some(v as i32)),
        PeriodUnit::Quarter => return ScalarValue::IntervalYearMonth(Some(3 * v as i32)),
        PeriodUnit::Year => return ScalarValue::IntervalYearMonth(Some(12 * v as i32)),
    };
    ScalarValue::new_interval_mdn(0, 0, ms * 1_000_000)
}

/// Whether an expression is a `bin(...)` call.
pub(in crate::compile) fn is_bin(e: &Ast) -> bool {
    matches!(e, Ast::Call { name, .. } if name.eq_ignore_ascii_case("bin"))
}
