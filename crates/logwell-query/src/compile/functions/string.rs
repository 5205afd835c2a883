//! String functions.

use super::{values, Build, Call, Function, Returns};
use crate::compile::*;

const NUM: Returns = Returns::Fixed(Ty::Num);
const STR: Returns = Returns::Fixed(Ty::Str);

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        names: &["strlen"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The length in characters.",
        build: values(|_, a| {
            let n = f::character_length(s(&a[0])).cast_to_type(DataType::Int64);
            Ok(t(n, Ty::Num))
        }),
    },
    Function {
        names: &["toupper"],
        args: (1, 1),
        usage: "",
        returns: STR,
        doc: "Upper case.",
        build: values(|_, a| Ok(t(f::upper(s(&a[0])), Ty::Str))),
    },
    Function {
        names: &["tolower"],
        args: (1, 1),
        usage: "",
        returns: STR,
        doc: "Lower case.",
        build: values(|_, a| Ok(t(f::lower(s(&a[0])), Ty::Str))),
    },
    Function {
        names: &["trim"],
        args: (1, 2),
        usage: "text and optionally the characters to trim",
        returns: STR,
        doc: "Without leading and trailing white space (or the given characters).",
        build: values(|_, a| Ok(t(f::btrim(trim_args(&a)), Ty::Str))),
    },
    Function {
        names: &["ltrim"],
        args: (1, 2),
        usage: "text and optionally the characters to trim",
        returns: STR,
        doc: "Without leading white space (or the given characters).",
        build: values(|_, a| Ok(t(f::ltrim(trim_args(&a)), Ty::Str))),
    },
    Function {
        names: &["rtrim"],
        args: (1, 2),
        usage: "text and optionally the characters to trim",
        returns: STR,
        doc: "Without trailing white space (or the given characters).",
        build: values(|_, a| Ok(t(f::rtrim(trim_args(&a)), Ty::Str))),
    },
    Function {
        names: &["concat"],
        args: (1, usize::MAX),
        usage: "",
        returns: STR,
        doc: "The values joined as text.",
        build: values(|_, a| Ok(t(f::concat(a.iter().map(s).collect()), Ty::Str))),
    },
    Function {
        names: &["substr"],
        args: (2, 3),
        usage: "text, a start index from 0 and optionally a length",
        returns: STR,
        doc: "Part of the text, from a start index counted from 0.",
        build: values(|_, a| {
            // Insights counts from 0, SQL from 1.
            let start = try_cast(num(a[1].clone()), DataType::Int64) + lit(1i64);
            let e = match a.get(2) {
                Some(len) => {
                    f::substring(s(&a[0]), start, try_cast(num(len.clone()), DataType::Int64))
                }
                None => f::substr(s(&a[0]), start),
            };
            Ok(t(e, Ty::Str))
        }),
    },
    Function {
        names: &["replace"],
        args: (3, 3),
        usage: "text, what to replace and its replacement",
        returns: STR,
        doc: "Every occurrence of a string replaced.",
        build: values(|_, a| Ok(t(f::replace(s(&a[0]), s(&a[1]), s(&a[2])), Ty::Str))),
    },
    Function {
        names: &["regexReplace", "regex_replace"],
        args: (3, 3),
        usage: "text, a literal pattern and its replacement",
        returns: STR,
        doc: "Every match of a regular expression replaced.",
        build: Build::Syntax(regex_replace),
    },
    Function {
        names: &["strcontains"],
        args: (2, 3),
        usage: "text, what to look for and optionally true to ignore case",
        returns: NUM,
        doc: "1 when the text contains the string, else 0.",
        build: values(|_, a| {
            let ignore_case = a.get(2).is_some_and(|c| {
                matches!(
                    c.e,
                    Expr::Literal(ScalarValue::Boolean(Some(true)), _)
                        | Expr::Literal(ScalarValue::Int64(Some(1)), _)
                )
            });
            let (x, v) = if ignore_case {
                (f::lower(s(&a[0])), f::lower(s(&a[1])))
            } else {
                (s(&a[0]), s(&a[1]))
            };
            Ok(t(int01(f::strpos(x, v).gt(lit(0))), Ty::Num))
        }),
    },
    Function {
        names: &["startsWith"],
        args: (2, 2),
        usage: "",
        returns: NUM,
        doc: "1 when the text starts with the string, else 0.",
        build: values(|_, a| Ok(t(int01(f::starts_with(s(&a[0]), s(&a[1]))), Ty::Num))),
    },
    Function {
        names: &["endsWith"],
        args: (2, 2),
        usage: "",
        returns: NUM,
        doc: "1 when the text ends with the string, else 0.",
        build: values(|_, a| Ok(t(int01(f::ends_with(s(&a[0]), s(&a[1]))), Ty::Num))),
    },
    Function {
        names: &["isEmpty"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "1 when the value is missing or empty, else 0.",
        build: values(|_, a| {
            let x = s(&a[0]);
            Ok(t(int01(x.clone().is_null().or(x.eq(lit("")))), Ty::Num))
        }),
    },
    Function {
        names: &["isBlank"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "1 when the value is missing, empty or white space, else 0.",
        build: values(|_, a| {
            let x = s(&a[0]);
            let blank = x.clone().is_null().or(f::btrim(vec![x]).eq(lit("")));
            Ok(t(int01(blank), Ty::Num))
        }),
    },
    Function {
        names: &["split"],
        args: (2, 2),
        usage: "text and a delimiter",
        returns: Returns::Fixed(Ty::Json),
        doc: "The parts between delimiters, as a JSON list.",
        build: values(|_, a| Ok(t(TextFn::Split.call(vec![s(&a[0]), s(&a[1])]), Ty::Json))),
    },
];

fn s(x: &T) -> Expr {
    text(x.clone())
}

fn trim_args(a: &[T]) -> Vec<Expr> {
    a.iter().map(s).collect()
}

fn regex_replace(c: &Call<'_, '_>) -> Result<T, QueryError> {
    let x = text(c.p.expr(&c.args[0])?);
    let pat = match &c.args[1] {
        Ast::Str(p) => regex_text(p, "")?,
        Ast::Regex(r) => regex_text(&r.pattern, &r.flags)?,
        _ => return Err(malformed(format!("{}() needs a literal pattern", c.name))),
    };
    let rep = text(c.p.expr(&c.args[2])?);
    Ok(t(
        f::regexp_replace(x, lit(pat), rep, Some(lit("g"))),
        Ty::Str,
    ))
}
