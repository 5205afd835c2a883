//! `join`: events joined with a subquery's rows on field equality.

use crate::compile::*;

impl Pipeline<'_> {
    /// `join type=... left=a right=b where a.f = b.f (subquery)`: every field of both sides
    /// is renamed `a.<field>` / `b.<field>`.
    pub(in crate::compile) fn join(&mut self, j: &Join, index: usize) -> Result<(), QueryError> {
        let mut wanted = Vec::new();
        for c in &self.commands[index + 1..] {
            commands::reads(c, &mut wanted);
        }
        for (a, b) in &j.on {
            wanted.push(a.clone());
            wanted.push(b.clone());
        }
        let side = |alias: &str| -> Vec<String> {
            let prefix = format!("{alias}.");
            wanted
                .iter()
                .filter_map(|w| w.strip_prefix(&prefix).map(str::to_string))
                .collect()
        };
        let (left_wanted, right_wanted) = (side(&j.left), side(&j.right));
        for (a, b) in &j.on {
            let ok = |x: &str, y: &str| {
                x.starts_with(&format!("{}.", j.left)) && y.starts_with(&format!("{}.", j.right))
            };
            if !ok(a, b) && !ok(b, a) {
                return Err(malformed(format!(
                    "join: each condition compares a {}.<field> with a {}.<field>",
                    j.left, j.right
                )));
            }
        }
        self.ensure_names(left_wanted)?;
        let mut right = self.subquery(&j.query.commands, None)?;
        right.ensure_names(right_wanted)?;
        let renamed = |p: &Pipeline, alias: &str| -> (Vec<Expr>, Vec<(String, Ty)>) {
            let mut exprs = Vec::new();
            let mut fields = Vec::new();
            for name in p.column_names() {
                if name.starts_with("__") {
                    continue;
                }
                let ty = p.fields.get(&name).copied().unwrap_or(Ty::Any);
                let new = format!("{alias}.{name}");
                exprs.push(ident(&name).alias(&new));
                fields.push((new, ty));
            }
            (exprs, fields)
        };
        let (left_exprs, left_fields) = renamed(self, &j.left);
        let (right_exprs, right_fields) = renamed(&right, &j.right);
        let right_plan = LogicalPlanBuilder::from(right.plan)
            .project(right_exprs)?
            .build()?;
        self.build(|b| b.project(left_exprs))?;
        let mut fields: HashMap<String, Ty> = left_fields.into_iter().collect();
        fields.extend(right_fields);
        let key = |name: &str| -> Result<Expr, QueryError> {
            match fields.get(name) {
                Some(ty) => Ok(text(t(ident(name), *ty))),
                None => Err(malformed(format!("join: unknown field {name}"))),
            }
        };
        let on =
            j.on.iter()
                .map(|(a, b)| Ok(key(a)?.eq(key(b)?)))
                .collect::<Result<Vec<_>, QueryError>>()?;
        let kind = if j.keep_unmatched {
            JoinType::Left
        } else {
            JoinType::Inner
        };
        self.build(|b| b.join_on(right_plan, kind, on))?;
        self.fields = fields;
        self.numbers.clear();
        self.order = None;
        self.shown.clear();
        self.display = None;
        Ok(())
    }
}
