//! Static types of compiled expressions and the coercions between them: fields discovered in
//! JSON are text, so an expression carries a small type that decides when to compare or add as
//! numbers.

use super::*;

/// Static type of an expression: decides coercions, since discovered fields are strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Num,
    Bool,
    Time,
    /// A discovered field: text that may hold a number.
    Any,
    /// JSON text of a map or list (`jsonParse`); its members are reached with dots.
    Json,
}

/// A compiled expression and its static type.
#[derive(Debug, Clone)]
pub(in crate::compile) struct T {
    pub(in crate::compile) e: Expr,
    pub(in crate::compile) ty: Ty,
    /// For a discovered field segments store: the column holding its value as a number (what
    /// `num` of its text gives), read instead of converting the text.
    pub(in crate::compile) number: Option<Box<Expr>>,
}
/// JSON values compare, add and print like discovered values.
pub(in crate::compile) fn plain(x: T) -> T {
    match x.ty {
        Ty::Json => T {
            e: x.e,
            ty: Ty::Any,
            number: None,
        },
        _ => x,
    }
}

pub(in crate::compile) fn t(e: Expr, ty: Ty) -> T {
    T {
        e,
        ty,
        number: None,
    }
}

pub(in crate::compile) fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

pub(in crate::compile) fn millis(e: Expr) -> Expr {
    e.cast_to_type(DataType::Int64)
}

pub(crate) trait CastTo {
    fn cast_to_type(self, ty: DataType) -> Expr;
}
impl CastTo for Expr {
    fn cast_to_type(self, ty: DataType) -> Expr {
        Expr::Cast(datafusion::logical_expr::Cast::new(Box::new(self), ty))
    }
}
pub(in crate::compile) fn try_cast(e: Expr, ty: DataType) -> Expr {
    Expr::TryCast(datafusion::logical_expr::TryCast::new(Box::new(e), ty))
}

pub(in crate::compile) fn num(x: T) -> Expr {
    let x = plain(x);
    if let Some(number) = x.number {
        return *number;
    }
    match x.ty {
        Ty::Num => x.e.cast_to_type(DataType::Float64),
        Ty::Time => millis(x.e).cast_to_type(DataType::Float64),
        Ty::Bool => x.e.cast_to_type(DataType::Float64),
        Ty::Str | Ty::Any | Ty::Json => try_cast(x.e, DataType::Float64),
    }
}

pub(in crate::compile) fn text(x: T) -> Expr {
    x.e.cast_to_type(DataType::Utf8)
}

pub(in crate::compile) fn boolean(x: T) -> Expr {
    let x = plain(x);
    match x.ty {
        Ty::Bool => x.e,
        Ty::Num => num(x).not_eq(lit(0.0)),
        Ty::Time => x.e.is_not_null(),
        Ty::Str | Ty::Any | Ty::Json => x.e.clone().is_not_null().and(x.e.not_eq(lit(""))),
    }
}

pub(in crate::compile) fn int01(b: Expr) -> Expr {
    b.cast_to_type(DataType::Int64)
}

pub(in crate::compile) fn to_time(x: T) -> Expr {
    match x.ty {
        Ty::Time => x.e,
        _ => try_cast(num(x), DataType::Int64).cast_to_type(ts_type()),
    }
}

pub(in crate::compile) fn common_ty(xs: &[T]) -> Ty {
    let first = xs.first().map(|x| x.ty).unwrap_or(Ty::Any);
    if xs.iter().all(|x| x.ty == first) {
        first
    } else if xs.iter().all(|x| matches!(x.ty, Ty::Num | Ty::Bool)) {
        Ty::Num
    } else {
        Ty::Str
    }
}

pub(in crate::compile) fn coerce(x: T, ty: Ty) -> Expr {
    if x.ty == ty {
        return match ty {
            Ty::Str | Ty::Any | Ty::Json => text(x),
            _ => x.e,
        };
    }
    match ty {
        Ty::Num => num(x),
        Ty::Bool => boolean(x),
        Ty::Time => to_time(x),
        Ty::Str | Ty::Any | Ty::Json => text(x),
    }
}

pub(in crate::compile) fn compare(op: BinaryOp, a: T, b: T) -> Expr {
    let cmp = |l: Expr, r: Expr| match op {
        BinaryOp::Eq => l.eq(r),
        BinaryOp::Ne => l.not_eq(r),
        BinaryOp::Lt => l.lt(r),
        BinaryOp::Le => l.lt_eq(r),
        BinaryOp::Gt => l.gt(r),
        _ => l.gt_eq(r),
    };
    let (a, b) = (plain(a), plain(b));
    match (a.ty, b.ty) {
        (Ty::Time, Ty::Time) => cmp(a.e, b.e),
        (Ty::Time, _) | (_, Ty::Time) => cmp(num(a), num(b)),
        (Ty::Num, _) | (_, Ty::Num) => cmp(num(a), num(b)),
        (Ty::Bool, _) | (_, Ty::Bool) => cmp(boolean(a), boolean(b)),
        (Ty::Any, Ty::Any) => {
            // Two discovered values: as numbers when both are numbers, else as text.
            let (na, nb) = (num(a.clone()), num(b.clone()));
            when(
                na.clone().is_not_null().and(nb.clone().is_not_null()),
                cmp(na, nb),
            )
            .otherwise(cmp(text(a), text(b)))
            .unwrap()
        }
        _ => cmp(text(a), text(b)),
    }
}

/// `a op b` for the arithmetic operators (as numbers; dividing by zero gives no value).
pub(in crate::compile) fn arithmetic(op: BinaryOp, a: T, b: T) -> Option<T> {
    let (a, b) = (num(a), num(b));
    Some(t(
        match op {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / f::nullif(b, lit(0.0)),
            BinaryOp::Mod => a % f::nullif(b, lit(0.0)),
            BinaryOp::Pow => f::power(a, b),
            _ => return None,
        },
        Ty::Num,
    ))
}

pub(in crate::compile) fn is_same_column(name: &str, e: &Expr) -> bool {
    matches!(e, Expr::Column(c) if c.name == name)
}
