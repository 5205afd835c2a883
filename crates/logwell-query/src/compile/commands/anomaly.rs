//! `anomaly`: patterns whose events behave unusually.

use crate::compile::*;

impl Pipeline<'_> {
    /// `anomaly`: the patterns (of the `pattern` before it, else of @message) whose events
    /// behave unusually over the time span of the input (see [`crate::anomaly`]), newest first.
    pub(in crate::compile) fn anomaly(&mut self, index: usize) -> Result<(), QueryError> {
        let has_pattern = self.commands[..index]
            .iter()
            .any(|c| matches!(c, Command::Pattern(_)));
        if !has_pattern {
            if self.stats > 0 {
                return Err(malformed(
                    "anomaly looks for unusual patterns: use it after pattern, not after stats",
                ));
            }
            self.pattern(&Ast::Field(MSG.into()), false, true, self.cx.merge_patterns)?;
        }
        if !self.column_names().iter().any(|c| c == PATTERN_PROFILE) {
            return Err(malformed(
                "anomaly looks for unusual patterns: use it after pattern",
            ));
        }
        let finding = self.tmp("finding");
        let judged = AnomalyUdf::call(
            ident(PATTERN_PROFILE),
            ident(PATTERN_LO),
            ident(PATTERN_HI),
            ident(SEVERITY),
        );
        let mut columns: Vec<Expr> = self
            .column_names()
            .into_iter()
            .filter(|n| !n.starts_with("__") && self.fields.contains_key(n))
            .map(|n| ident(&n))
            .collect();
        columns.push(judged.alias(&finding));
        self.build(|b| b.project(columns))?;
        let part = |name: &str| f::get_field(ident(&finding), name);
        self.build(|b| b.filter(part("kinds").is_not_null()))?;
        self.with_columns(vec![
            (
                TS.to_string(),
                t(part("at").cast_to_type(ts_type()), Ty::Time),
            ),
            (ANOMALY_TYPE.to_string(), t(part("kinds"), Ty::Str)),
            (PRIORITY.to_string(), t(part("priority"), Ty::Str)),
            (DESCRIPTION.to_string(), t(part("description"), Ty::Str)),
        ])?;
        self.drop_columns(&[finding.as_str()])?;
        self.shown.clear();
        self.display = None;
        let fields: Vec<(String, Ty)> = self
            .column_names()
            .into_iter()
            .filter_map(|n| self.fields.get(&n).map(|ty| (n.clone(), *ty)))
            .collect();
        let sorted_later = self.sort_after.is_some_and(|s| s > index);
        let fields: Vec<(&str, Ty)> = fields.iter().map(|(n, ty)| (n.as_str(), *ty)).collect();
        self.result_fields(&fields, (!sorted_later).then_some((TS, PATTERN)))
    }
}
