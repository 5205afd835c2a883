//! Insights expressions: fields, literals, operators, `like`/`=~`, `in` lists and subqueries;
//! function calls go to the registry in [`super::functions`].

use super::*;

impl Pipeline<'_> {
    pub(in crate::compile) fn field(&self, name: &str) -> T {
        match self.fields.get(name) {
            Some(ty) => T {
                number: self.numbers.get(name).map(|n| Box::new(ident(n))),
                ..t(ident(name), *ty)
            },
            None => t(lit(ScalarValue::Utf8(None)), Ty::Any),
        }
    }

    pub(in crate::compile) fn expr(&self, e: &Ast) -> Result<T, QueryError> {
        Ok(match e {
            Ast::Field(n) => self.field(n),
            Ast::Str(s) => t(lit(s.as_str()), Ty::Str),
            Ast::Int(i) => t(lit(*i), Ty::Num),
            Ast::Float(x) => t(lit(*x), Ty::Num),
            Ast::Bool(b) => t(lit(*b), Ty::Bool),
            Ast::Regex(_) => {
                return Err(malformed(
                    "a regular expression can only follow like, =~ or be a function's pattern",
                ))
            }
            Ast::Period { .. } => {
                return Err(malformed(
                    "a time period can only be an argument of bin(), datefloor() or dateceil()",
                ))
            }
            Ast::List(_) => return Err(malformed("a list can only follow in or not in")),
            Ast::Star => return Err(malformed("* can only be the argument of count()")),
            Ast::Unary { op, expr } => {
                let x = self.expr(expr)?;
                match op {
                    UnaryOp::Not => t(boolean(x).not(), Ty::Bool),
                    UnaryOp::Neg => t(num(x).neg(), Ty::Num),
                }
            }
            Ast::Binary { op, left, right } => self.binary(*op, left, right)?,
            Ast::Like {
                expr,
                pattern,
                negated,
            } => {
                let x = text(self.expr(expr)?);
                let m = match pattern.as_ref() {
                    // A substring test as `LIKE '%text%'`: arrow builds one substring finder
                    // per batch, where `strpos` sets up a search per row.
                    Ast::Str(s) => x.like(lit(format!("%{}%", like_escaped(s)))),
                    Ast::Regex(r) => regex_match(x, r)?,
                    other => f::strpos(x, text(self.expr(other)?)).gt(lit(0)),
                };
                t(if *negated { m.not() } else { m }, Ty::Bool)
            }
            Ast::InQuery {
                expr,
                query,
                negated,
            } => {
                let x = self.expr(expr)?;
                let sub = self.subquery(&query.commands, None)?;
                let out = sub.output_fields();
                if out.len() != 1 {
                    return Err(malformed(format!(
                        "a subquery must return exactly one field (it returns {}); end it with, e.g., | fields requestId",
                        out.len()
                    )));
                }
                let value = text(sub.field(&out[0]));
                let plan = LogicalPlanBuilder::from(sub.plan)
                    .project(vec![value.alias("__subquery")])?
                    .build()?;
                let subquery = Subquery {
                    subquery: Arc::new(plan),
                    outer_ref_columns: vec![],
                    spans: Default::default(),
                };
                t(
                    Expr::InSubquery(InSubquery::new(Box::new(text(x)), subquery, *negated)),
                    Ty::Bool,
                )
            }
            Ast::In {
                expr,
                list,
                negated,
            } => {
                let x = self.expr(expr)?;
                let items: Vec<T> = list
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Result<_, _>>()?;
                let numeric = items.iter().all(|i| i.ty == Ty::Num) && x.ty != Ty::Str;
                let (x, items) = if numeric {
                    (num(x), items.into_iter().map(num).collect::<Vec<_>>())
                } else {
                    (
                        text(x),
                        items
                            .into_iter()
                            .map(|i| match (&i.e, i.ty) {
                                (Expr::Literal(ScalarValue::Int64(Some(v)), _), _) => {
                                    lit(v.to_string())
                                }
                                (Expr::Literal(ScalarValue::Float64(Some(v)), _), _) => {
                                    lit(crate::format::number(*v))
                                }
                                _ => text(i),
                            })
                            .collect(),
                    )
                };
                t(x.in_list(items, *negated), Ty::Bool)
            }
            Ast::Call { name, args } => self.call(name, args)?,
        })
    }

    pub(in crate::compile) fn binary(
        &self,
        op: BinaryOp,
        l: &Ast,
        r: &Ast,
    ) -> Result<T, QueryError> {
        if op == BinaryOp::RegexMatch {
            let x = text(self.expr(l)?);
            return match r {
                Ast::Regex(re) => Ok(t(regex_match(x, re)?, Ty::Bool)),
                Ast::Str(s) => Ok(t(
                    regex_match(
                        x,
                        &logwell_insights::Regex {
                            pattern: s.clone(),
                            flags: String::new(),
                        },
                    )?,
                    Ty::Bool,
                )),
                _ => Err(malformed("=~ needs a regular expression on its right")),
            };
        }
        let a = self.expr(l)?;
        let b = self.expr(r)?;
        Ok(match op {
            BinaryOp::And => t(boolean(a).and(boolean(b)), Ty::Bool),
            BinaryOp::Or => t(boolean(a).or(boolean(b)), Ty::Bool),
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => t(compare(op, a, b), Ty::Bool),
            _ => arithmetic(op, a, b).expect("the other operators are arithmetic"),
        })
    }

    pub(in crate::compile) fn period_arg(
        &self,
        name: &str,
        a: &Ast,
    ) -> Result<(u64, PeriodUnit), QueryError> {
        match a {
            Ast::Period { value, unit } => Ok((*value, *unit)),
            _ => Err(malformed(format!(
                "{name}() needs a time period such as 5m"
            ))),
        }
    }

    pub(in crate::compile) fn timestamp(&self, name: &str) -> Result<Expr, QueryError> {
        if !self.fields.contains_key(TS) {
            return Err(malformed(format!(
                "{name}() reads @timestamp, which the previous stats did not keep"
            )));
        }
        Ok(ident(TS))
    }
}

/// Field names an expression reads, in order of appearance.
pub(in crate::compile) fn collect_fields(e: &Ast, out: &mut Vec<String>) {
    match e {
        Ast::Field(n) => out.push(n.clone()),
        Ast::Call { args, .. } => args.iter().for_each(|a| collect_fields(a, out)),
        Ast::Unary { expr, .. } => collect_fields(expr, out),
        Ast::Binary { left, right, .. } => {
            collect_fields(left, out);
            collect_fields(right, out);
        }
        Ast::Like { expr, pattern, .. } => {
            collect_fields(expr, out);
            collect_fields(pattern, out);
        }
        Ast::In { expr, list, .. } => {
            collect_fields(expr, out);
            list.iter().for_each(|a| collect_fields(a, out));
        }
        // The subquery's fields are its own.
        Ast::InQuery { expr, .. } => collect_fields(expr, out),
        Ast::List(items) => items.iter().for_each(|a| collect_fields(a, out)),
        _ => {}
    }
}

/// `text` in a SQL `LIKE` pattern, matching itself only (`\\` escapes `%`, `_` and itself).
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Insights regexes: `/.../` with flags; `(?<name>...)` groups are accepted.
pub(in crate::compile) fn regex_text(pattern: &str, flags: &str) -> Result<String, QueryError> {
    let mut p = String::new();
    if !flags.is_empty() {
        p.push_str("(?");
        p.push_str(flags);
        p.push(')');
    }
    p.push_str(pattern);
    build_regex(&p, "").map(|r| r.as_str().to_string())
}

pub(in crate::compile) fn build_regex(
    pattern: &str,
    flags: &str,
) -> Result<regex::Regex, QueryError> {
    let full = if flags.is_empty() {
        pattern.to_string()
    } else {
        format!("(?{flags}){pattern}")
    };
    regex::RegexBuilder::new(&full)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| malformed(format!("invalid regular expression /{pattern}/: {e}")))
}

pub(in crate::compile) fn regex_match(
    x: Expr,
    r: &logwell_insights::Regex,
) -> Result<Expr, QueryError> {
    let p = regex_text(&r.pattern, &r.flags)?;
    Ok(f::regexp_like(x, lit(p), None))
}
