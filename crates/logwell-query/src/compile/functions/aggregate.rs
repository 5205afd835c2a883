//! Aggregate functions (only in `stats`), and how a `stats` item combines them: arithmetic over
//! aggregates, earlier aggregates by alias, and scalar functions such as `round(avg(x), 2)`.

use super::{agg_column, lookup, Build, Call, Function, Returns};
use crate::compile::*;

const NUM: Returns = Returns::Fixed(Ty::Num);

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        names: &["count"],
        args: (0, 1),
        usage: "",
        returns: NUM,
        doc: "The number of events (`count(*)`), or of events where the field has a value.",
        build: Build::Aggregate(count),
    },
    Function {
        names: &["count_distinct"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The number of distinct values of the field.",
        build: Build::Aggregate(|c, aggs| {
            let x = c.value(0)?;
            Ok(t(agg_column(aggs, agg::count_distinct(x.e)), Ty::Num))
        }),
    },
    Function {
        names: &["sum"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The sum of the values.",
        build: Build::Aggregate(|c, aggs| numeric(c, aggs, agg::sum)),
    },
    Function {
        names: &["avg"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The mean of the values.",
        build: Build::Aggregate(|c, aggs| numeric(c, aggs, agg::avg)),
    },
    Function {
        names: &["min"],
        args: (1, 1),
        usage: "",
        returns: Returns::Arguments,
        doc: "The smallest value (numbers as numbers, timestamps as timestamps).",
        build: Build::Aggregate(|c, aggs| extreme(c, aggs, agg::min)),
    },
    Function {
        names: &["max"],
        args: (1, 1),
        usage: "",
        returns: Returns::Arguments,
        doc: "The largest value (numbers as numbers, timestamps as timestamps).",
        build: Build::Aggregate(|c, aggs| extreme(c, aggs, agg::max)),
    },
    Function {
        names: &["stddev"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The sample standard deviation of the values.",
        build: Build::Aggregate(|c, aggs| numeric(c, aggs, agg::stddev)),
    },
    Function {
        names: &["pct", "percentile"],
        args: (2, 2),
        usage: "a field and a percentile",
        returns: NUM,
        doc: "The value at a percentile from 0 to 100 (interpolated).",
        build: Build::Aggregate(percentile),
    },
    Function {
        names: &["earliest"],
        args: (1, 1),
        usage: "",
        returns: Returns::Arguments,
        doc: "The value of the event with the earliest @timestamp.",
        build: Build::Aggregate(|c, aggs| by_time(c, aggs, true)),
    },
    Function {
        names: &["latest"],
        args: (1, 1),
        usage: "",
        returns: Returns::Arguments,
        doc: "The value of the event with the latest @timestamp.",
        build: Build::Aggregate(|c, aggs| by_time(c, aggs, false)),
    },
    Function {
        names: &["sortsFirst"],
        args: (1, 1),
        usage: "",
        returns: Returns::Arguments,
        doc: "The value that sorts first.",
        build: Build::Aggregate(|c, aggs| extreme(c, aggs, agg::min)),
    },
    Function {
        names: &["sortsLast"],
        args: (1, 1),
        usage: "",
        returns: Returns::Arguments,
        doc: "The value that sorts last.",
        build: Build::Aggregate(|c, aggs| extreme(c, aggs, agg::max)),
    },
    Function {
        names: &["count_over_time", "countOverTime"],
        args: (0, 1),
        usage: "",
        returns: NUM,
        doc: "The number of events per bin (as count, per `bin` key).",
        build: Build::Aggregate(count),
    },
    Function {
        names: &["sum_over_time", "sumOverTime"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The sum of the values per bin (as sum, per `bin` key).",
        build: Build::Aggregate(|c, aggs| numeric(c, aggs, agg::sum)),
    },
    Function {
        names: &["rate"],
        args: (2, 2),
        usage: "a numeric field and an interval such as 1s",
        returns: NUM,
        doc: "How much the value changed per interval, from its first to its last value.",
        build: Build::Aggregate(rate),
    },
    Function {
        names: &["histogram"],
        args: (2, 2),
        usage: "a numeric field and a number of buckets from 1 to 1000",
        returns: Returns::Fixed(Ty::Json),
        doc: "Equal-width buckets of the values and their counts, as JSON.",
        build: Build::Aggregate(histogram),
    },
];

fn count(c: &Call<'_, '_>, aggs: &mut Vec<Expr>) -> Result<T, QueryError> {
    let a = match c.args {
        [] | [Ast::Star] => agg::count(lit(1i64)),
        [a] => agg::count(c.p.expr(a)?.e),
        _ => unreachable!("the arity is checked first"),
    };
    Ok(t(agg_column(aggs, a), Ty::Num))
}

fn numeric(
    c: &Call<'_, '_>,
    aggs: &mut Vec<Expr>,
    aggregate: fn(Expr) -> Expr,
) -> Result<T, QueryError> {
    let x = num(c.value(0)?);
    Ok(t(agg_column(aggs, aggregate(x)), Ty::Num))
}

/// `min`/`max`: discovered values compare as numbers; text and timestamps as themselves.
fn extreme(
    c: &Call<'_, '_>,
    aggs: &mut Vec<Expr>,
    aggregate: fn(Expr) -> Expr,
) -> Result<T, QueryError> {
    let x = c.value(0)?;
    let (e, ty) = match x.ty {
        Ty::Any | Ty::Json | Ty::Num | Ty::Bool => (num(x), Ty::Num),
        ty => (x.e, ty),
    };
    Ok(t(agg_column(aggs, aggregate(e)), ty))
}

fn by_time(c: &Call<'_, '_>, aggs: &mut Vec<Expr>, earliest: bool) -> Result<T, QueryError> {
    let x = c.value(0)?;
    let order = vec![c.timestamp()?.sort(true, false)];
    let a = if earliest {
        agg::first_value(x.e, order)
    } else {
        agg::last_value(x.e, order)
    };
    Ok(t(agg_column(aggs, a), x.ty))
}

fn percentile(c: &Call<'_, '_>, aggs: &mut Vec<Expr>) -> Result<T, QueryError> {
    let x = c.p.expr(&c.args[0])?;
    let p = match &c.args[1] {
        Ast::Int(i) => *i as f64,
        Ast::Float(f) => *f,
        _ => {
            return Err(malformed(format!(
                "{}(): the percentile must be a number from 0 to 100",
                c.name
            )))
        }
    };
    if !(0.0..=100.0).contains(&p) {
        return Err(malformed(format!(
            "{}(): the percentile must be from 0 to 100",
            c.name
        )));
    }
    let values = agg_column(aggs, crate::udf::CollectValues::call(num(x)));
    Ok(t(crate::udf::Percentile::call(values, p / 100.0), Ty::Num))
}

/// `rate(x, interval)`: how much `x` changed per `interval`, from its first to its last
/// value (by `@timestamp`) in each group; no value when they are at the same instant.
fn rate(c: &Call<'_, '_>, aggs: &mut Vec<Expr>) -> Result<T, QueryError> {
    let x = num(c.p.expr(&c.args[0])?);
    let (v, u) = c.period(1)?;
    let per = match interval(v, u) {
        ScalarValue::IntervalMonthDayNano(Some(i)) => i.nanoseconds as f64 / 1e6,
        _ => {
            return Err(malformed(format!(
                "{}(): the interval must be in milliseconds to weeks",
                c.name
            )))
        }
    };
    let ts = c.timestamp()?;
    // Rows without the value sort before the others, so first/last pick present values.
    // (An aggregate FILTER clause gave wrong first/last values when partial aggregates
    // from several partitions merged, in DataFusion 55.)
    let present = x.clone().is_not_null();
    let first = vec![
        present.clone().sort(false, false),
        ts.clone().sort(true, false),
    ];
    let last = vec![
        present.clone().sort(true, false),
        ts.clone().sort(true, false),
    ];
    let ts_present = when(present, millis(ts)).end()?;
    let parts = [
        agg::first_value(x.clone(), first),
        agg::last_value(x, last),
        agg::min(ts_present.clone()),
        agg::max(ts_present),
    ];
    let cols: Vec<Expr> = parts.into_iter().map(|a| agg_column(aggs, a)).collect();
    let span = (cols[3].clone() - cols[2].clone()).cast_to_type(DataType::Float64);
    let change = cols[1].clone() - cols[0].clone();
    Ok(t(change / f::nullif(span, lit(0.0)) * lit(per), Ty::Num))
}

fn histogram(c: &Call<'_, '_>, aggs: &mut Vec<Expr>) -> Result<T, QueryError> {
    let buckets = match &c.args[1] {
        Ast::Int(n) if (1..=1000).contains(n) => *n as usize,
        _ => {
            return Err(malformed(format!(
                "{}() takes 2 arguments: a numeric field and a number of buckets from 1 to 1000",
                c.name
            )))
        }
    };
    let x = num(c.p.expr(&c.args[0])?);
    let values = agg_column(aggs, crate::udf::CollectValues::call(x));
    Ok(t(crate::udf::Histogram::call(values, buckets), Ty::Json))
}

/// Whether `e` reads an aggregate: calls one, or names an earlier aggregate of the same stats.
pub(in crate::compile) fn uses_aggregates(e: &Ast, prior: &[(String, T)]) -> bool {
    match e {
        Ast::Field(n) => prior.iter().any(|(p, _)| p == n),
        Ast::Call { name, args } => {
            super::is_aggregate(name) || args.iter().any(|a| uses_aggregates(a, prior))
        }
        Ast::Binary { left, right, .. } => {
            uses_aggregates(left, prior) || uses_aggregates(right, prior)
        }
        Ast::Unary { expr, .. } => uses_aggregates(expr, prior),
        _ => false,
    }
}

impl Pipeline<'_> {
    /// An expression inside `stats`: aggregate calls become aggregate columns (added to
    /// `aggs`), and arithmetic over them stays an expression over those columns. `prior` holds
    /// the aggregates this stats named before `e`: their aliases can be used, as in
    /// `max(a) as hi, min(a) as lo, hi - lo as spread`.
    pub(in crate::compile) fn agg_expr(
        &self,
        e: &Ast,
        aggs: &mut Vec<Expr>,
        prior: &[(String, T)],
    ) -> Result<T, QueryError> {
        let uses = |e: &Ast| uses_aggregates(e, prior);
        match e {
            Ast::Field(n) if prior.iter().any(|(p, _)| p == n) => {
                Ok(prior.iter().rev().find(|(p, _)| p == n).unwrap().1.clone())
            }
            Ast::Call { name, args } => {
                let func = lookup(name);
                if let Some(func) = func.filter(|f| f.is_aggregate() || uses(e)) {
                    if let Some(err) = func.arity_error(name, args.len()) {
                        return Err(err);
                    }
                }
                let call = Call { p: self, name, args };
                match func.map(|f| &f.build) {
                    Some(Build::Aggregate(build)) => build(&call, aggs),
                    // A scalar function over aggregates, e.g. round(avg(x), 2).
                    Some(Build::Values {
                        build,
                        over_aggregates: true,
                    }) if uses(e) => {
                        let mut inner = Vec::new();
                        for a in args {
                            inner.push(self.agg_expr(a, aggs, prior)?);
                        }
                        build(&call, inner)
                    }
                    _ if uses(e) => Err(malformed(format!(
                        "{name}() cannot take an aggregate in stats"
                    ))),
                    _ => Err(malformed(format!(
                        "{name}() is not an aggregate function; stats takes {}",
                        aggregate_names()
                    ))),
                }
            }
            Ast::Binary { op, left, right } if uses(e) => {
                let a = self.agg_expr(left, aggs, prior)?;
                let b = self.agg_expr(right, aggs, prior)?;
                arithmetic(*op, a, b).ok_or_else(|| {
                    malformed("stats expressions combine aggregates with arithmetic only")
                })
            }
            Ast::Unary {
                op: UnaryOp::Neg,
                expr,
            } if uses(e) => Ok(t(num(self.agg_expr(expr, aggs, prior)?).neg(), Ty::Num)),
            Ast::Int(_) | Ast::Float(_) => self.expr(e),
            _ => Err(malformed(
                "each stats item must be an aggregate function such as count(*), avg(x) or pct(x, 95)",
            )),
        }
    }
}

/// "count, count_distinct, ... or histogram": every aggregate by its documented name.
fn aggregate_names() -> String {
    let names: Vec<&str> = FUNCTIONS.iter().map(Function::name).collect();
    match names.split_last() {
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}
