//! `lookup` and `cidrlookup`: enrich events from lookup tables.

use crate::compile::*;

impl Pipeline<'_> {
    /// `lookup table key [as field], ... OUTPUT|OUTPUTNEW out, ...`: a left join with the
    /// table (its first row per key), adding the output fields to matching events.
    pub(in crate::compile) fn lookup(&mut self, l: &Lookup) -> Result<(), QueryError> {
        let table = self.cx.events.lookup(&l.table)?;
        let columns = column_names(&table);
        has_columns(
            &l.table,
            &columns,
            l.keys.iter().map(|(k, _)| k).chain(&l.output),
        )?;
        let mut wanted = Vec::new();
        reads(l, &mut wanted);
        self.ensure_names(wanted)?;
        // One row per key: a table listing a key twice must not duplicate events.
        let keys: Vec<String> = (0..l.keys.len()).map(|_| self.tmp("lookup_key")).collect();
        let outs: Vec<String> = (0..l.output.len())
            .map(|_| self.tmp("lookup_out"))
            .collect();
        let table = LogicalPlanBuilder::from(table)
            .aggregate(
                l.keys
                    .iter()
                    .zip(&keys)
                    .map(|((k, _), tmp)| ident(k).alias(tmp)),
                l.output
                    .iter()
                    .zip(&outs)
                    .map(|(o, tmp)| agg::first_value(ident(o), vec![]).alias(tmp)),
            )?
            .build()?;
        let on: Vec<Expr> = l
            .keys
            .iter()
            .zip(&keys)
            .map(|((_, field), tmp)| text(self.field(field)).eq(ident(tmp)))
            .collect();
        self.build(|b| b.join_on(table, JoinType::Left, on))?;
        let cols = l
            .output
            .iter()
            .zip(&outs)
            .map(|(name, tmp)| {
                let e = if l.only_new && self.fields.contains_key(name) {
                    f::coalesce(vec![text(self.field(name)), ident(tmp)])
                } else if self.fields.contains_key(name) {
                    // OUTPUT overwrites where the table has a match.
                    f::coalesce(vec![ident(tmp), text(self.field(name))])
                } else {
                    ident(tmp)
                };
                (name.clone(), t(e, Ty::Any))
            })
            .collect();
        self.with_columns(cols)?;
        for name in &l.output {
            self.show(name);
        }
        let temps: Vec<&str> = keys.iter().chain(&outs).map(String::as_str).collect();
        self.drop_columns(&temps)
    }

    /// `cidrlookup table ip [as cidrColumn] OUTPUT|OUTPUTNEW f [as g], ...`: enrich events from
    /// the table row whose CIDR range holds the IP address (the most specific one).
    pub(in crate::compile) fn cidr_lookup(
        &mut self,
        table_name: &str,
        ip_field: &str,
        cidr_column: Option<&str>,
        output: &[(String, String)],
        only_new: bool,
    ) -> Result<(), QueryError> {
        let table = self.cx.events.lookup(table_name)?;
        let columns = column_names(&table);
        let cidr = match cidr_column {
            Some(c) => c.to_string(),
            None if columns.iter().any(|c| c == "cidr") => "cidr".into(),
            None => columns.first().cloned().unwrap_or_default(),
        };
        has_columns(
            table_name,
            &columns,
            output.iter().map(|(f, _)| f).chain([&cidr]),
        )?;
        let mut wanted = Vec::new();
        cidr_reads(ip_field, output, only_new, &mut wanted);
        self.ensure_names(wanted)?;
        let order = self.order.clone().unwrap_or_default();
        let (row, range, bits, best) = (
            self.tmp("row"),
            self.tmp("cidr"),
            self.tmp("bits"),
            self.tmp("best"),
        );
        let outs: Vec<String> = output.iter().map(|_| self.tmp("cidr_out")).collect();
        let mut table_cols = vec![
            ident(&cidr).alias(&range),
            try_cast(
                f::split_part(ident(&cidr), lit("/"), lit(2i64)),
                DataType::Int64,
            )
            .alias(&bits),
        ];
        for ((f, _), tmp) in output.iter().zip(&outs) {
            table_cols.push(ident(f).alias(tmp));
        }
        let table = LogicalPlanBuilder::from(table)
            .project(table_cols)?
            .build()?;
        let number = datafusion::functions_window::expr_fn::row_number();
        self.build(|b| b.window(vec![number.alias(&row)]))?;
        let ip = text(self.field(ip_field));
        let inside = TextFn::IsIpInSubnet.call(vec![ip, ident(&range)]);
        self.build(|b| b.join_on(table, JoinType::Left, vec![inside]))?;
        let pick = datafusion::functions_window::expr_fn::row_number()
            .partition_by(vec![ident(&row)])
            .order_by(vec![ident(&bits).sort(false, true)])
            .build()?;
        self.build(|b| b.window(vec![pick.alias(&best)]))?;
        self.build(|b| b.filter(ident(&best).eq(lit(1u64))))?;
        let cols = output
            .iter()
            .zip(&outs)
            .map(|((_, event), tmp)| {
                let e = match (self.fields.contains_key(event), only_new) {
                    (true, true) => f::coalesce(vec![text(self.field(event)), ident(tmp)]),
                    (true, false) => f::coalesce(vec![ident(tmp), text(self.field(event))]),
                    (false, _) => ident(tmp),
                };
                (event.clone(), t(e, Ty::Any))
            })
            .collect();
        self.with_columns(cols)?;
        for (_, event) in output {
            self.show(event);
        }
        let mut temps: Vec<&str> = outs.iter().map(String::as_str).collect();
        temps.extend([row.as_str(), range.as_str(), bits.as_str(), best.as_str()]);
        self.drop_columns(&temps)?;
        if !order.is_empty() {
            self.build(|b| b.sort(order))?;
        }
        Ok(())
    }
}

/// `lookup` reads its key fields, and with OUTPUTNEW the fields it would fill.
pub(super) fn reads(l: &Lookup, out: &mut Vec<String>) {
    out.extend(l.keys.iter().map(|(_, f)| f.clone()));
    if l.only_new {
        out.extend(l.output.iter().cloned());
    }
}

/// `cidrlookup` reads the IP field, and with OUTPUTNEW the fields it would fill.
pub(super) fn cidr_reads(
    ip_field: &str,
    output: &[(String, String)],
    only_new: bool,
    out: &mut Vec<String>,
) {
    out.push(ip_field.to_string());
    if only_new {
        out.extend(output.iter().map(|(_, e)| e.clone()));
    }
}

fn column_names(table: &LogicalPlan) -> Vec<String> {
    table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// Refuses a query naming a column the lookup table does not have.
fn has_columns<'c>(
    table: &str,
    columns: &[String],
    wanted: impl IntoIterator<Item = &'c String>,
) -> Result<(), QueryError> {
    for c in wanted {
        if !columns.contains(c) {
            return Err(malformed(format!(
                "lookup table {table} has no field {c} (it has {})",
                columns.join(", ")
            )));
        }
    }
    Ok(())
}
