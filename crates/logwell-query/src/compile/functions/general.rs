//! General functions: presence, conditionals, type tests, sizes.

use super::{values, Function, Returns};
use crate::compile::*;

const NUM: Returns = Returns::Fixed(Ty::Num);

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        names: &["ispresent"],
        args: (1, 1),
        usage: "",
        returns: Returns::Fixed(Ty::Bool),
        doc: "Whether the field exists in the event.",
        build: values(|_, a| Ok(t(a[0].e.clone().is_not_null(), Ty::Bool))),
    },
    Function {
        names: &["coalesce"],
        args: (1, usize::MAX),
        usage: "",
        returns: Returns::Arguments,
        doc: "The first argument that has a value.",
        build: values(|_, a| {
            let ty = common_ty(&a);
            let es = a.into_iter().map(|x| coerce(x, ty)).collect();
            Ok(t(f::coalesce(es), ty))
        }),
    },
    Function {
        names: &["if"],
        args: (3, 3),
        usage: "a condition, a value if true, a value if false",
        returns: Returns::Arguments,
        doc: "The second argument when the first holds, else the third.",
        build: values(|_, a| {
            let ty = common_ty(&a[1..]);
            let e = when(boolean(a[0].clone()), coerce(a[1].clone(), ty))
                .otherwise(coerce(a[2].clone(), ty))?;
            Ok(t(e, ty))
        }),
    },
    Function {
        names: &["case"],
        args: (2, 21),
        usage: "condition, value pairs and optionally a default",
        returns: Returns::Arguments,
        doc: "The value after the first condition that holds, else the default.",
        build: values(case),
    },
    Function {
        names: &["isNumeric"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "1 when the value reads as a number, else 0.",
        build: values(|_, a| {
            let parsed = try_cast(text(a[0].clone()), DataType::Float64);
            Ok(t(int01(parsed.is_not_null()), Ty::Num))
        }),
    },
    Function {
        names: &["messageSize"],
        args: (1, 1),
        usage: "",
        returns: NUM,
        doc: "The size of the value in bytes (UTF-8).",
        build: values(|_, a| Ok(t(f::octet_length(text(a[0].clone())), Ty::Num))),
    },
];

fn case(_: &super::Call<'_, '_>, a: Vec<T>) -> Result<T, QueryError> {
    let values: Vec<T> = a
        .iter()
        .skip(1)
        .step_by(2)
        .cloned()
        .chain(if a.len() % 2 == 1 {
            a.last().cloned()
        } else {
            None
        })
        .collect();
    let ty = common_ty(&values);
    let mut builder: Option<datafusion::logical_expr::conditional_expressions::CaseBuilder> = None;
    let mut i = 0;
    while i + 1 < a.len() {
        let c = boolean(a[i].clone());
        let v = coerce(a[i + 1].clone(), ty);
        builder = Some(match builder {
            None => when(c, v),
            Some(mut b) => b.when(c, v),
        });
        i += 2;
    }
    let mut b = builder.expect("case takes at least 2 arguments");
    let e = if a.len() % 2 == 1 {
        b.otherwise(coerce(a[a.len() - 1].clone(), ty))?
    } else {
        b.end()?
    };
    Ok(t(e, ty))
}
