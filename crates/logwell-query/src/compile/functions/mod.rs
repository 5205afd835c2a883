//! Every Insights function and aggregate, declared once: its name (as the documentation spells
//! it; calls match it in any case), how many arguments it takes, what it returns, what it does,
//! and how it compiles. The compiler's calls, `stats`, the error messages and the generated list
//! in `testdata/queries/FUNCTIONS.md` all read this one table.
//!
//! Adding a function: one entry in the family file it belongs to, one case in
//! `testdata/queries/functions/` (see CONTRIBUTING.md).

use crate::compile::*;
use std::sync::LazyLock;

mod aggregate;
mod codec;
mod datetime;
mod general;
mod ip;
mod json;
mod numeric;
mod string;

/// An Insights function or aggregate.
pub struct Function {
    /// The name as CloudWatch documents it, then any other names it answers to.
    pub names: &'static [&'static str],
    /// Fewest and most arguments (`usize::MAX`: any number).
    pub args: (usize, usize),
    /// What the arguments are, for the message a wrong count gets (empty: nothing to add).
    pub usage: &'static str,
    pub returns: Returns,
    /// One line for the function list.
    pub doc: &'static str,
    pub(in crate::compile) build: Build,
}

/// What a function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// Always this type.
    Fixed(Ty),
    /// The common type of its value arguments (`coalesce`, `if`, `min`...).
    Arguments,
}

/// How a call compiles.
pub(in crate::compile) enum Build {
    /// From its arguments' compiled values; with `over_aggregates`, `stats` may also apply it to
    /// aggregates (`round(avg(x), 2)`).
    Values {
        build: fn(&Call<'_, '_>, Vec<T>) -> Result<T, QueryError>,
        over_aggregates: bool,
    },
    /// From its arguments' syntax: periods (`bin(5m)`) and literal patterns.
    Syntax(fn(&Call<'_, '_>) -> Result<T, QueryError>),
    /// An aggregate (only in `stats`): adds the DataFusion aggregates it needs to `aggs` (named
    /// by [`Call::agg_column`]) and returns its value over them.
    Aggregate(fn(&Call<'_, '_>, &mut Vec<Expr>) -> Result<T, QueryError>),
}

/// A function compiled from its arguments' values (not applicable to aggregates).
const fn values(build: fn(&Call<'_, '_>, Vec<T>) -> Result<T, QueryError>) -> Build {
    Build::Values {
        build,
        over_aggregates: false,
    }
}

/// A function of values that `stats` may also apply to aggregates.
const fn values_or_aggregates(build: fn(&Call<'_, '_>, Vec<T>) -> Result<T, QueryError>) -> Build {
    Build::Values {
        build,
        over_aggregates: true,
    }
}

impl Function {
    /// The name the documentation uses.
    pub fn name(&self) -> &'static str {
        self.names[0]
    }

    pub fn is_aggregate(&self) -> bool {
        matches!(self.build, Build::Aggregate(_))
    }

    /// The message for a call with `given` arguments, or None when the count is right.
    fn arity_error(&self, name: &str, given: usize) -> Option<QueryError> {
        let (min, max) = self.args;
        if (min..=max).contains(&given) {
            return None;
        }
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        let want = if min == max && min == 0 {
            "no arguments".to_string()
        } else if min == max {
            format!("{min} {}", plural(min))
        } else if max == usize::MAX {
            format!("at least {min} {}", plural(min))
        } else {
            format!("{min} to {max} arguments")
        };
        let usage = if self.usage.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.usage)
        };
        Some(malformed(format!(
            "{name}() takes {want}{usage}, {given} given"
        )))
    }
}

/// The function families, each declaring its functions in one list.
fn families() -> [&'static [Function]; 8] {
    [
        datetime::FUNCTIONS,
        general::FUNCTIONS,
        numeric::FUNCTIONS,
        string::FUNCTIONS,
        codec::FUNCTIONS,
        ip::FUNCTIONS,
        json::FUNCTIONS,
        aggregate::FUNCTIONS,
    ]
}

/// Every function and aggregate, family by family.
pub fn all() -> impl Iterator<Item = &'static Function> {
    families().into_iter().flatten()
}

static BY_NAME: LazyLock<HashMap<String, &'static Function>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for f in all() {
        for name in f.names {
            let previous = map.insert(name.to_ascii_lowercase(), f);
            assert!(previous.is_none(), "{name} is declared twice");
        }
    }
    map
});

/// The function a call names (in any case).
pub fn lookup(name: &str) -> Option<&'static Function> {
    BY_NAME.get(&name.to_ascii_lowercase()).copied()
}

pub(in crate::compile) fn is_aggregate(name: &str) -> bool {
    lookup(name).is_some_and(Function::is_aggregate)
}

/// One call being compiled: the pipeline it reads, the name as written and the arguments.
pub(in crate::compile) struct Call<'c, 'a> {
    pub(in crate::compile) p: &'c Pipeline<'a>,
    pub(in crate::compile) name: &'c str,
    pub(in crate::compile) args: &'c [Ast],
}

impl Call<'_, '_> {
    /// Argument `i` as a time period (`5m`).
    pub(in crate::compile) fn period(&self, i: usize) -> Result<(u64, PeriodUnit), QueryError> {
        self.p.period_arg(self.name, &self.args[i])
    }

    /// Argument `i` as a value; `*` is only for `count`.
    pub(in crate::compile) fn value(&self, i: usize) -> Result<T, QueryError> {
        if self.args[i] == Ast::Star {
            return Err(malformed(format!(
                "{}(*) is not allowed; only count(*)",
                self.name
            )));
        }
        self.p.expr(&self.args[i])
    }

    /// `@timestamp`, which this function reads.
    pub(in crate::compile) fn timestamp(&self) -> Result<Expr, QueryError> {
        self.p.timestamp(self.name)
    }
}

/// Adds aggregate `a` to `aggs` and returns the column that will hold it.
pub(in crate::compile) fn agg_column(aggs: &mut Vec<Expr>, a: Expr) -> Expr {
    let col = format!("__agg{}", aggs.len());
    aggs.push(a.alias(&col));
    ident(col)
}

/// Checks a declared fixed type against what a build produced.
fn typed(f: &Function, x: T) -> T {
    if let Returns::Fixed(ty) = f.returns {
        debug_assert_eq!(x.ty, ty, "{}() is declared to return {ty:?}", f.name());
    }
    x
}

impl Pipeline<'_> {
    /// A function call outside `stats`.
    pub(in crate::compile) fn call(&self, name: &str, args: &[Ast]) -> Result<T, QueryError> {
        let Some(func) = lookup(name) else {
            return Err(malformed(format!("unknown function {name}()")));
        };
        if func.is_aggregate() {
            return Err(malformed(format!("{name}() can only be used in stats")));
        }
        if let Some(e) = func.arity_error(name, args.len()) {
            return Err(e);
        }
        let call = Call {
            p: self,
            name,
            args,
        };
        let x = match &func.build {
            Build::Values { build, .. } => {
                let values = args
                    .iter()
                    .map(|a| self.expr(a))
                    .collect::<Result<_, _>>()?;
                build(&call, values)?
            }
            Build::Syntax(build) => build(&call)?,
            Build::Aggregate(_) => unreachable!("refused above"),
        };
        Ok(typed(func, x))
    }
}

/// The text of a UTC-only time zone argument, refusing others.
pub(in crate::compile) fn utc_only(name: &str, tz: Option<&T>) -> Result<(), QueryError> {
    if let Some(tz) = tz {
        if !matches!(&tz.e, Expr::Literal(ScalarValue::Utf8(Some(z)), _) if z.eq_ignore_ascii_case("UTC") || z == "Z")
        {
            return Err(malformed(format!(
                "{name}(): only the UTC time zone is supported"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_declared_once_and_found_in_any_case() {
        let names: usize = all().map(|f| f.names.len()).sum();
        assert_eq!(BY_NAME.len(), names);
        assert!(lookup("TOUPPER").is_some());
        assert!(lookup("sortsfirst").is_some_and(Function::is_aggregate));
        assert!(lookup("frobnicate").is_none());
    }

    #[test]
    fn arity_messages_say_what_is_expected() {
        let strlen = lookup("strlen").unwrap();
        assert_eq!(
            strlen.arity_error("strlen", 2).unwrap().to_string(),
            "strlen() takes 1 argument, 2 given"
        );
        assert!(strlen.arity_error("strlen", 1).is_none());
        let pct = lookup("pct").unwrap();
        assert!(pct
            .arity_error("pct", 1)
            .unwrap()
            .to_string()
            .starts_with("pct() takes 2 arguments (a field and a percentile)"));
        assert!(lookup("concat").unwrap().arity_error("concat", 9).is_none());
    }
}

/// A call of one of logwell's own text functions ([`TextFn`]), its arguments as text.
fn text_fn(func: TextFn, a: Vec<T>, ty: Ty) -> Result<T, QueryError> {
    Ok(t(func.call(a.into_iter().map(text).collect()), ty))
}
