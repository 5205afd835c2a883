//! `parse FIELD "glob" as a, b`, `parse FIELD /regex/` and `parse FIELD logfmt as m`.

use crate::compile::*;

impl Pipeline<'_> {
    pub(in crate::compile) fn parse(
        &mut self,
        field: &str,
        pattern: &ParsePattern,
        names: &[String],
        index: usize,
    ) -> Result<(), QueryError> {
        let src = Ast::Field(field.to_string());
        self.ensure_fields([&src])?;
        let input = self.expr(&src)?;
        if let ParsePattern::Logfmt = pattern {
            let map = crate::udf::LogfmtUdf::call(text(input));
            return self.with_columns(vec![(names[0].clone(), t(map, Ty::Json))]);
        }
        let (regex, names): (Captures, Vec<String>) = match pattern {
            ParsePattern::Logfmt => unreachable!(),
            ParsePattern::Glob(glob) => {
                let stars = glob.matches('*').count();
                if names.len() != stars {
                    return Err(malformed(format!(
                        "parse: the pattern has {stars} '*' but {} names follow 'as'",
                        names.len()
                    )));
                }
                let parts = glob.split('*').map(str::to_string).collect();
                (Captures::Glob(parts), names.to_vec())
            }
            ParsePattern::Regex(r) => {
                let re = build_regex(&r.pattern, &r.flags)?;
                let groups: Vec<String> = re
                    .capture_names()
                    .skip(1)
                    .enumerate()
                    .map(|(i, n)| {
                        n.map(str::to_string)
                            .unwrap_or_else(|| format!("__unnamed{i}"))
                    })
                    .collect();
                if !groups.iter().any(|g| !g.starts_with("__unnamed")) {
                    return Err(malformed(
                        "parse: a regular expression needs named groups such as (?<name>...)",
                    ));
                }
                (Captures::Regex(re), groups)
            }
        };
        // Captures no later command reads are matched but not built (a 14-field parse of which
        // a query reads three builds three columns).
        let names: Vec<String> = match self.read_later(index) {
            Some(reads) => names
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    let read = reads.iter().any(|r| {
                        *r == n
                            || r.strip_prefix(n.as_str())
                                .is_some_and(|x| x.starts_with('.'))
                    });
                    if read {
                        n
                    } else {
                        format!("__unused{i}")
                    }
                })
                .collect(),
            None => names,
        };
        let tmp = self.tmp("parse");
        let call = ParseFields::call(text(input), &regex, &names);
        self.with_columns(vec![(tmp.clone(), t(call, Ty::Any))])?;
        let cols = names
            .iter()
            .filter(|n| !n.starts_with("__"))
            .map(|n| (n.clone(), t(f::get_field(ident(&tmp), n.as_str()), Ty::Any)))
            .collect();
        self.with_columns(cols)?;
        self.drop_columns(&[&tmp])
    }
}
