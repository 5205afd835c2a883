//! The one dispatch from an Insights command to the file that compiles it, and the one place
//! that asks each command which fields it reads.

use crate::compile::*;

mod addtotals;
mod anomaly;
mod appendcols;
mod dedup;
mod diff;
mod fields;
mod fillmissing;
mod filter;
mod join;
mod lookup;
mod outlier;
mod parse;
mod pattern;
mod relevantfields;
mod running;
mod sessionize;
mod sort;
mod stats;
mod unnest;

impl Pipeline<'_> {
    /// Compiles the command at `index` of this pipeline onto the plan.
    pub(in crate::compile) fn command(
        &mut self,
        cmd: &Command,
        index: usize,
    ) -> Result<(), QueryError> {
        match cmd {
            Command::Fields(projs) => self.fields_command(projs),
            Command::Display(projs) => self.display(projs),
            // No field indexes yet: filterIndex gives the same rows as filter, from a full scan.
            Command::Filter(e) | Command::FilterIndex(e) => self.filter(e, index),
            Command::Stats {
                aggregates,
                by,
                offset,
            } => {
                // Key order is only a default: when a later sort decides, skip the extra sort.
                let key_order = !self.sorted_after(index);
                self.stats(aggregates, by, offset.as_ref(), key_order)
            }
            Command::Pattern(e) => self.pattern_command(e, index),
            Command::Anomaly => self.anomaly(index),
            Command::Diff(period) => self.diff(period, index),
            Command::Join(j) => self.join(j, index),
            Command::Lookup(l) => self.lookup(l),
            Command::Accum { field, alias } => self.accum(field, alias.as_deref()),
            Command::Autoregress {
                field,
                alias,
                from,
                to,
            } => self.autoregress(field, alias.as_deref(), *from, *to),
            Command::CountFrequent(names) => self.count_frequent(names, index),
            Command::Filldown(names) => self.filldown(names),
            Command::Sessionize {
                fields,
                maxspan,
                alias,
            } => self.sessionize(fields, maxspan.as_ref(), alias.as_deref()),
            Command::AddTotals {
                fieldname,
                row,
                col,
                fields,
            } => self.add_totals(fieldname, *row, *col, fields),
            Command::FillMissing(fills) => self.fill_missing(fills, index),
            Command::RelevantFields { fields, condition } => {
                self.relevant_fields(fields, condition)
            }
            Command::Outlier {
                remove,
                param,
                use_lower,
                mark,
                fields,
            } => self.outlier(*remove, *param, *use_lower, *mark, fields),
            Command::AppendCols {
                override_fields,
                max,
                query,
            } => self.append_cols(*override_fields, *max, query),
            Command::CidrLookup {
                table,
                ip_field,
                cidr_column,
                output,
                only_new,
            } => self.cidr_lookup(table, ip_field, cidr_column.as_deref(), output, *only_new),
            Command::Sort(keys) => self.sort(keys),
            Command::Limit { n, any } => self.limit(*n, *any),
            Command::Parse {
                field,
                pattern,
                names,
            } => self.parse(field, pattern, names, index),
            Command::Dedup(names) => self.dedup(names),
            Command::Unnest { field, into } => self.unnest(field, into),
            // Nothing is masked (no data-protection policies yet), so there is nothing to unmask.
            Command::Unmask(_) => Ok(()),
            // Resolved by the caller before compiling: it chose the groups of `base`.
            Command::Source(_) => Ok(()),
        }
    }

    /// Whether a `sort` after the command at `index` decides the final order.
    pub(in crate::compile) fn sorted_after(&self, index: usize) -> bool {
        self.sort_after.is_some_and(|s| s > index)
    }
}

/// Adds the field names `c` reads to `out`; false when it may read any field (so every field
/// must exist for it).
pub(in crate::compile) fn reads(c: &Command, out: &mut Vec<String>) -> bool {
    let names = |out: &mut Vec<String>, names: &[String]| {
        out.extend(names.iter().cloned());
        !names.is_empty()
    };
    match c {
        Command::Fields(ps) | Command::Display(ps) => fields::reads(ps, out),
        Command::Filter(e) | Command::FilterIndex(e) | Command::Pattern(e) => {
            collect_fields(e, out)
        }
        Command::Stats { aggregates, by, .. } => fields::reads(aggregates.iter().chain(by), out),
        Command::Sort(keys) => keys.iter().for_each(|k| collect_fields(&k.expr, out)),
        Command::Parse { field, .. } | Command::Unnest { field, .. } => out.push(field.clone()),
        Command::Accum { field, .. } | Command::Autoregress { field, .. } => {
            out.push(field.clone())
        }
        Command::Dedup(names) | Command::CountFrequent(names) => out.extend(names.iter().cloned()),
        Command::Lookup(l) => lookup::reads(l, out),
        Command::CidrLookup {
            ip_field,
            output,
            only_new,
            ..
        } => lookup::cidr_reads(ip_field, output, *only_new, out),
        Command::Sessionize { fields, .. } | Command::Outlier { fields, .. } => {
            out.extend(fields.iter().cloned())
        }
        Command::FillMissing(fills) => fills.iter().for_each(|(v, f)| {
            collect_fields(v, out);
            out.push(f.clone());
        }),
        // With no fields named, these read every field there is.
        Command::Filldown(fields) | Command::AddTotals { fields, .. } => return names(out, fields),
        Command::RelevantFields { fields, condition } => {
            collect_fields(condition, out);
            return names(out, fields);
        }
        Command::Join(_) => return false,
        Command::Diff(_)
        | Command::Anomaly
        | Command::AppendCols { .. }
        | Command::Limit { .. }
        | Command::Unmask(_)
        | Command::Source(_) => {}
    }
    true
}
