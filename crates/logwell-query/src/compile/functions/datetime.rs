//! Date and time functions: bins, floors and ceilings, epoch conversions, the query's own times.

use super::{utc_only, values, Build, Call, Function, Returns};
use crate::compile::*;

const TIME: Returns = Returns::Fixed(Ty::Time);
const NUM: Returns = Returns::Fixed(Ty::Num);

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        names: &["bin"],
        args: (1, 1),
        usage: "a time period such as 5m",
        returns: TIME,
        doc: "@timestamp rounded down to the period (periods above a unit's range are capped).",
        build: Build::Syntax(bin),
    },
    Function {
        names: &["datefloor"],
        args: (2, 2),
        usage: "a timestamp and a period",
        returns: TIME,
        doc: "A timestamp rounded down to the period.",
        build: Build::Syntax(|c| {
            let ts = to_time(c.p.expr(&c.args[0])?);
            let (v, u) = c.period(1)?;
            Ok(t(time_floor(ts, v, u), Ty::Time))
        }),
    },
    Function {
        names: &["dateceil"],
        args: (2, 2),
        usage: "a timestamp and a period",
        returns: TIME,
        doc: "A timestamp rounded up to the period.",
        build: Build::Syntax(|c| {
            let ts = to_time(c.p.expr(&c.args[0])?);
            let (v, u) = c.period(1)?;
            Ok(t(time_ceil(ts, v, u), Ty::Time))
        }),
    },
    Function {
        names: &["fromMillis"],
        args: (1, 1),
        usage: "",
        returns: TIME,
        doc: "Epoch milliseconds as a timestamp.",
        build: values(|_, a| {
            let ms = try_cast(num(a[0].clone()), DataType::Int64);
            Ok(t(ms.cast_to_type(ts_type()), Ty::Time))
        }),
    },
    Function {
        names: &["toMillis"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "A timestamp as epoch milliseconds.",
        build: values(|_, a| Ok(t(millis(to_time(a[0].clone())), Ty::Num))),
    },
    Function {
        names: &["now"],
        args: (0, 0),
        usage: "",
        returns: NUM,
        doc: "The time the query started, in epoch seconds.",
        build: values(|c, _| Ok(t(lit(c.p.cx.now_ms / 1000), Ty::Num))),
    },
    Function {
        names: &["queryStartTime"],
        args: (0, 0),
        usage: "",
        returns: NUM,
        doc: "The start of the query's time range, epoch milliseconds.",
        build: values(|c, _| Ok(t(lit(c.p.cx.range.0), Ty::Num))),
    },
    Function {
        names: &["queryEndTime"],
        args: (0, 0),
        usage: "",
        returns: NUM,
        doc: "The end of the query's time range, epoch milliseconds.",
        build: values(|c, _| Ok(t(lit(c.p.cx.range.1), Ty::Num))),
    },
    Function {
        names: &["queryTimeRange"],
        args: (0, 0),
        usage: "",
        returns: NUM,
        doc: "The length of the query's time range, milliseconds.",
        build: values(|c, _| Ok(t(lit(c.p.cx.range.1 - c.p.cx.range.0), Ty::Num))),
    },
    Function {
        names: &["formatDate", "strftime"],
        args: (2, 3),
        usage: "a timestamp, a format and optionally the UTC time zone",
        returns: Returns::Fixed(Ty::Str),
        doc: "A timestamp as text in a strftime-style format (UTC).",
        build: values(|c, a| {
            utc_only(c.name, a.get(2))?;
            Ok(t(
                f::to_char(to_time(a[0].clone()), text(a[1].clone())),
                Ty::Str,
            ))
        }),
    },
    Function {
        names: &["parseDate"],
        args: (2, 3),
        usage: "text, a Java date pattern and optionally the UTC time zone",
        returns: NUM,
        doc: "Text read with a Java date pattern, as epoch milliseconds (UTC).",
        build: values(|c, a| {
            utc_only(c.name, a.get(2))?;
            let call = TextFn::ParseDate.call(vec![text(a[0].clone()), text(a[1].clone())]);
            Ok(t(call, Ty::Num))
        }),
    },
];

fn bin(c: &Call<'_, '_>) -> Result<T, QueryError> {
    let (v, u) = c.period(0)?;
    Ok(t(time_floor(c.timestamp()?, v, u), Ty::Time))
}
