//! JSON functions: parse a value to reach its members, stringify it, test JSON lists.

use super::{text_fn, values, Function, Returns};
use crate::compile::*;

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        names: &["jsonParse"],
        args: (1, 1),
        usage: "",
        returns: Returns::Fixed(Ty::Json),
        doc: "JSON text as a map or list whose members are reached with dots.",
        build: values(|_, a| {
            Ok(t(
                JsonUdf::call(JsonOp::Parse, text(a[0].clone())),
                Ty::Json,
            ))
        }),
    },
    Function {
        names: &["jsonStringify"],
        args: (1, 1),
        usage: "",
        returns: Returns::Fixed(Ty::Str),
        doc: "A parsed map or list as JSON text.",
        build: values(|_, a| Ok(t(text(a[0].clone()), Ty::Str))),
    },
    Function {
        names: &["jsonArraySize"],
        args: (1, 1),
        usage: "",
        returns: Returns::Fixed(Ty::Num),
        doc: "The number of elements of a JSON list.",
        build: values(|_, a| text_fn(TextFn::JsonArraySize, a, Ty::Num)),
    },
    Function {
        names: &["jsonArrayContains"],
        args: (2, 2),
        usage: "a JSON list and a value",
        returns: Returns::Fixed(Ty::Bool),
        doc: "Whether a JSON list holds the value.",
        build: values(|_, a| text_fn(TextFn::JsonArrayContains, a, Ty::Bool)),
    },
];
