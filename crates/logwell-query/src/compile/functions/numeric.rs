//! Numeric functions. `abs`, `ceil`, `floor` and `round` also apply to aggregates in `stats`.

use super::{values, values_or_aggregates, Call, Function, Returns};
use crate::compile::*;

const NUM: Returns = Returns::Fixed(Ty::Num);

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        names: &["abs"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The absolute value.",
        build: values_or_aggregates(|_, a| Ok(t(f::abs(num(a[0].clone())), Ty::Num))),
    },
    Function {
        names: &["ceil"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "Rounded up to an integer.",
        build: values_or_aggregates(|_, a| Ok(t(f::ceil(num(a[0].clone())), Ty::Num))),
    },
    Function {
        names: &["floor"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "Rounded down to an integer.",
        build: values_or_aggregates(|_, a| Ok(t(f::floor(num(a[0].clone())), Ty::Num))),
    },
    Function {
        names: &["round"],
        args: (1, 2),
        usage: "a number and optionally the decimal places",
        returns: NUM,
        doc: "Rounded to the given decimal places (0 by default).",
        build: values_or_aggregates(round),
    },
    Function {
        names: &["sqrt"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The square root.",
        build: values(|_, a| Ok(t(f::sqrt(num(a[0].clone())), Ty::Num))),
    },
    Function {
        names: &["log"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The natural logarithm.",
        build: values(|_, a| Ok(t(f::ln(num(a[0].clone())), Ty::Num))),
    },
    Function {
        names: &["greatest"],
        args: (1, usize::MAX),
        usage: "",
        returns: NUM,
        doc: "The largest of the numbers.",
        build: values(|_, a| Ok(t(f::greatest(a.into_iter().map(num).collect()), Ty::Num))),
    },
    Function {
        names: &["least"],
        args: (1, usize::MAX),
        usage: "",
        returns: NUM,
        doc: "The smallest of the numbers.",
        build: values(|_, a| Ok(t(f::least(a.into_iter().map(num).collect()), Ty::Num))),
    },
    Function {
        names: &["toNumber", "toDouble"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The value as a number (none when it is not one).",
        build: values(|_, a| Ok(t(num(a[0].clone()), Ty::Num))),
    },
    Function {
        names: &["toInt"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The value truncated to a 32-bit integer (none when out of range).",
        build: values(|_, a| Ok(integer(a, DataType::Int32))),
    },
    Function {
        names: &["toLong"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The value truncated to a 64-bit integer.",
        build: values(|_, a| Ok(integer(a, DataType::Int64))),
    },
    Function {
        names: &["haversine"],
        args: (4, 4),
        usage: "lat1, lon1, lat2, lon2 in degrees",
        returns: NUM,
        doc: "The great-circle distance between two points, in kilometres.",
        build: values(haversine),
    },
];

fn round(_: &Call<'_, '_>, a: Vec<T>) -> Result<T, QueryError> {
    let x = num(a[0].clone());
    let d = a
        .get(1)
        .map(|d| try_cast(num(d.clone()), DataType::Int64))
        .unwrap_or(lit(0i64));
    Ok(t(f::round(vec![x, d]), Ty::Num))
}

fn integer(a: Vec<T>, ty: DataType) -> T {
    let truncated = f::trunc(vec![num(a[0].clone())]);
    t(
        try_cast(truncated, ty).cast_to_type(DataType::Int64),
        Ty::Num,
    )
}

fn haversine(_: &Call<'_, '_>, a: Vec<T>) -> Result<T, QueryError> {
    let rad = |x: &T| num(x.clone()) * lit(std::f64::consts::PI / 180.0);
    let (lat1, lon1, lat2, lon2) = (rad(&a[0]), rad(&a[1]), rad(&a[2]), rad(&a[3]));
    let dlat = (lat2.clone() - lat1.clone()) / lit(2.0);
    let dlon = (lon2 - lon1) / lit(2.0);
    let h = f::power(f::sin(dlat), lit(2.0))
        + f::cos(lat1) * f::cos(lat2) * f::power(f::sin(dlon), lit(2.0));
    // Mean Earth radius in km.
    Ok(t(lit(2.0 * 6371.0) * f::asin(f::sqrt(h)), Ty::Num))
}
