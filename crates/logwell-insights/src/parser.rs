//! From text to AST: pest does the syntax, a Pratt parser the operator precedence.

use crate::ast::*;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;
use std::sync::OnceLock;

#[derive(pest_derive::Parser)]
#[grammar = "../../../grammar/insights.pest"]
struct InsightsParser;

/// Why a query does not parse: where (1-based line and column, 0-based character offsets as
/// MalformedQueryException reports them) and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub start_offset: usize,
    pub end_offset: usize,
    pub message: String,
}

fn rule_name(r: &Rule) -> String {
    let s = format!("{r:?}");
    let s = s.strip_prefix("kw_").map(|k| format!("'{k}'")).unwrap_or(s);
    s.strip_suffix("_cmd")
        .map(|c| format!("a '{c}' command"))
        .unwrap_or(s)
        .replace('_', " ")
}

impl From<pest::error::Error<Rule>> for ParseError {
    fn from(e: pest::error::Error<Rule>) -> Self {
        let (line, column) = match e.line_col {
            pest::error::LineColLocation::Pos(p) | pest::error::LineColLocation::Span(p, _) => p,
        };
        let (start_offset, end_offset) = match e.location {
            pest::error::InputLocation::Pos(p) => (p, p),
            pest::error::InputLocation::Span(s) => s,
        };
        let message = match &e.variant {
            pest::error::ErrorVariant::ParsingError { positives, .. } => {
                let mut names: Vec<String> = positives.iter().map(rule_name).collect();
                names.dedup();
                if names.is_empty() {
                    "unexpected input".to_string()
                } else {
                    format!("expected {}", names.join(", "))
                }
            }
            pest::error::ErrorVariant::CustomError { message } => message.clone(),
        };
        ParseError {
            line,
            column,
            start_offset,
            end_offset,
            message,
        }
    }
}

fn error_at(pair: &Pair<Rule>, message: String) -> ParseError {
    let (line, column) = pair.line_col();
    let span = pair.as_span();
    ParseError {
        line,
        column,
        start_offset: span.start(),
        end_offset: span.end(),
        message,
    }
}

fn pratt() -> &'static PrattParser<Rule> {
    static P: OnceLock<PrattParser<Rule>> = OnceLock::new();
    P.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::op_or, Assoc::Left))
            .op(Op::infix(Rule::op_and, Assoc::Left))
            .op(Op::prefix(Rule::op_not))
            .op(Op::infix(Rule::op_eq, Assoc::Left)
                | Op::infix(Rule::op_ne, Assoc::Left)
                | Op::infix(Rule::op_lt, Assoc::Left)
                | Op::infix(Rule::op_le, Assoc::Left)
                | Op::infix(Rule::op_gt, Assoc::Left)
                | Op::infix(Rule::op_ge, Assoc::Left)
                | Op::infix(Rule::op_regex_match, Assoc::Left)
                | Op::postfix(Rule::op_like)
                | Op::postfix(Rule::op_in))
            .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
            .op(Op::infix(Rule::op_mul, Assoc::Left)
                | Op::infix(Rule::op_div, Assoc::Left)
                | Op::infix(Rule::op_mod, Assoc::Left))
            .op(Op::infix(Rule::op_pow, Assoc::Right))
            .op(Op::prefix(Rule::op_neg))
    })
}

/// `table_field [as event_field]`: both names (the same when there is no `as`).
fn renamed(p: Pair<Rule>) -> (String, String) {
    let names: Vec<String> = p
        .into_inner()
        .filter(|p| p.as_rule() == Rule::name)
        .map(|n| field_name(n.into_inner().next().unwrap()))
        .collect();
    let event = names.get(1).unwrap_or(&names[0]).clone();
    (names[0].clone(), event)
}

/// The names of a `f, g, ...` list of fields.
fn field_list(p: Pair<Rule>) -> Vec<String> {
    p.into_inner()
        .map(|f| field_name(f.into_inner().next().unwrap()))
        .collect()
}

/// The commands of a parenthesised subquery.
fn subquery(p: Pair<Rule>) -> Result<Query, ParseError> {
    let commands = p.into_inner().map(command).collect::<Result<_, _>>()?;
    Ok(Query { commands })
}

/// Parses an Insights query.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let mut pairs = InsightsParser::parse(Rule::query, text)?;
    let query = pairs
        .next()
        .expect("the query rule always produces one pair");
    let mut commands = Vec::new();
    for c in query.into_inner() {
        if c.as_rule() == Rule::EOI {
            continue;
        }
        commands.push(command(c)?);
    }
    Ok(Query { commands })
}

fn command(c: Pair<Rule>) -> Result<Command, ParseError> {
    let rule = c.as_rule();
    let whole = c.clone();
    let mut inner = c
        .into_inner()
        .filter(|p| !format!("{:?}", p.as_rule()).starts_with("kw_"));
    Ok(match rule {
        Rule::fields_cmd => Command::Fields(projections(inner.next().unwrap())?),
        Rule::display_cmd => Command::Display(projections(inner.next().unwrap())?),
        Rule::filter_cmd => Command::Filter(expr(inner.next().unwrap())?),
        Rule::stats_cmd => {
            let aggregates = projections(inner.next().unwrap())?;
            let by = match inner.next() {
                Some(list) => list
                    .into_inner()
                    .map(projection)
                    .collect::<Result<_, _>>()?,
                None => Vec::new(),
            };
            let offset = inner.next().map(period).transpose()?;
            Command::Stats {
                aggregates,
                by,
                offset,
            }
        }
        Rule::sort_cmd => Command::Sort(
            whole
                .into_inner()
                .filter(|p| p.as_rule() == Rule::sort_key)
                .map(|k| {
                    let mut parts = k.into_inner();
                    let e = expr(parts.next().unwrap())?;
                    let ascending = parts.next().is_some_and(|d| d.as_rule() == Rule::kw_asc);
                    Ok(SortKey { expr: e, ascending })
                })
                .collect::<Result<_, ParseError>>()?,
        ),
        Rule::limit_cmd => {
            let any = whole
                .clone()
                .into_inner()
                .any(|p| p.as_rule() == Rule::kw_any);
            let n_pair = inner.next().unwrap();
            let n: u64 = n_pair
                .as_str()
                .parse()
                .map_err(|_| error_at(&n_pair, "limit must be a whole number".into()))?;
            if n == 0 {
                return Err(error_at(&n_pair, "limit must be at least 1".into()));
            }
            Command::Limit { n, any }
        }
        Rule::parse_cmd => {
            let field = field_name(inner.next().unwrap().into_inner().next().unwrap());
            let logfmt = whole
                .clone()
                .into_inner()
                .any(|p| p.as_rule() == Rule::kw_logfmt);
            if logfmt {
                let names = name_list(inner.next());
                if names.len() != 1 {
                    return Err(error_at(
                        &whole,
                        "parse ... logfmt needs exactly one name after 'as' (the map)".into(),
                    ));
                }
                return Ok(Command::Parse {
                    field,
                    pattern: ParsePattern::Logfmt,
                    names,
                });
            }
            let pat = inner.next().unwrap();
            let pattern = match pat.as_rule() {
                Rule::string => ParsePattern::Glob(unquote(pat)),
                _ => ParsePattern::Regex(regex(pat)),
            };
            let names = name_list(inner.next());
            if let ParsePattern::Glob(g) = &pattern {
                let stars = g.matches('*').count();
                if stars != names.len() {
                    return Err(error_at(
                        &whole,
                        format!(
                            "parse pattern has {stars} '*' but {} names follow 'as'",
                            names.len()
                        ),
                    ));
                }
            }
            Command::Parse {
                field,
                pattern,
                names,
            }
        }
        Rule::dedup_cmd => Command::Dedup(
            inner
                .map(|f| field_name(f.into_inner().next().unwrap()))
                .collect(),
        ),
        Rule::unnest_cmd => {
            let field = field_name(inner.next().unwrap().into_inner().next().unwrap());
            let into = field_name(inner.next().unwrap().into_inner().next().unwrap());
            Command::Unnest { field, into }
        }
        Rule::expand_cmd => {
            let field = field_name(inner.next().unwrap().into_inner().next().unwrap());
            Command::Unnest {
                into: field.clone(),
                field,
            }
        }
        Rule::filter_index_cmd => Command::FilterIndex(expr(inner.next().unwrap())?),
        Rule::unmask_cmd => Command::Unmask(
            inner
                .next()
                .map(|f| field_name(f.into_inner().next().unwrap())),
        ),
        Rule::source_cmd => {
            let mut src = Source::default();
            for part in inner {
                match part.as_rule() {
                    Rule::string => src.names.push(unquote(part)),
                    Rule::source_name => src.names.push(part.as_str().to_string()),
                    Rule::log_groups => {
                        for arg in part.into_inner() {
                            let mut kv = arg.into_inner();
                            let key = kv.next().unwrap();
                            let value = kv.next().unwrap();
                            let values: Vec<String> = match value.as_rule() {
                                Rule::string => vec![unquote(value)],
                                _ => value
                                    .into_inner()
                                    .map(|item| match expr(item.clone()) {
                                        Ok(Expr::Str(s)) => Ok(s),
                                        _ => {
                                            Err(error_at(&item, "expected a quoted string".into()))
                                        }
                                    })
                                    .collect::<Result<_, _>>()?,
                            };
                            match key.as_str() {
                                "namePrefix" => src.prefixes.extend(values),
                                "names" | "logGroupNames" => src.names.extend(values),
                                "class" => src
                                    .classes
                                    .extend(values.into_iter().map(|c| c.to_ascii_uppercase())),
                                "accountIdentifiers" => {}
                                other => {
                                    return Err(error_at(
                                        &key,
                                        format!("unknown logGroups() argument {other}; expected namePrefix, names, class or accountIdentifiers"),
                                    ))
                                }
                            }
                        }
                    }
                    Rule::source_time => {
                        let text = part.as_str();
                        let value = part.into_inner().next().unwrap().as_str().to_string();
                        if text.to_ascii_uppercase().starts_with("START") {
                            src.start = Some(value);
                        } else {
                            src.end = Some(value);
                        }
                    }
                    _ => {}
                }
            }
            Command::Source(src)
        }
        Rule::pattern_cmd => Command::Pattern(expr(inner.next().unwrap())?),
        Rule::relevantfields_cmd => {
            let mut fields = Vec::new();
            let mut condition = None;
            for part in inner {
                match part.as_rule() {
                    Rule::field_list => fields = field_list(part),
                    Rule::expr => condition = Some(expr(part)?),
                    _ => {}
                }
            }
            Command::RelevantFields {
                fields,
                condition: condition.expect("the grammar requires a condition"),
            }
        }
        Rule::logcompare_cmd => Command::Diff(DiffPeriod::Shift(period(inner.next().unwrap())?)),
        Rule::anomaly_cmd => Command::Anomaly,
        Rule::diff_cmd => Command::Diff(match inner.next() {
            None => DiffPeriod::Previous,
            Some(p) => match p.as_str().to_ascii_lowercase().as_str() {
                "previousday" => DiffPeriod::Day,
                "previousweek" => DiffPeriod::Week,
                _ => DiffPeriod::Month,
            },
        }),
        Rule::join_cmd => {
            let mut join = Join {
                keep_unmatched: false,
                left: String::new(),
                right: String::new(),
                on: Vec::new(),
                query: Query {
                    commands: Vec::new(),
                },
            };
            for part in inner {
                match part.as_rule() {
                    Rule::join_opt => {
                        let mut kv = part.clone().into_inner();
                        let key = kv.next().unwrap().as_str().to_ascii_lowercase();
                        let value = kv.next().unwrap().as_str().to_string();
                        match key.as_str() {
                            "type" => match value.to_ascii_lowercase().as_str() {
                                "inner" => join.keep_unmatched = false,
                                "left" => join.keep_unmatched = true,
                                _ => {
                                    return Err(error_at(
                                        &part,
                                        format!("join type must be inner or left, not {value}"),
                                    ))
                                }
                            },
                            "left" => join.left = value,
                            _ => join.right = value,
                        }
                    }
                    Rule::join_cond => {
                        let mut f = part.into_inner().filter(|p| p.as_rule() == Rule::field);
                        let a = field_name(f.next().unwrap());
                        let b = field_name(f.next().unwrap());
                        join.on.push((a, b));
                    }
                    Rule::subquery => join.query = subquery(part)?,
                    _ => {}
                }
            }
            if join.left.is_empty() || join.right.is_empty() || join.left == join.right {
                return Err(error_at(
                    &whole,
                    "join needs two different names, left=<name> right=<name>".into(),
                ));
            }
            Command::Join(join)
        }
        Rule::accum_cmd | Rule::autoregress_cmd | Rule::sessionize_cmd => {
            let mut fields = Vec::new();
            let mut alias = None;
            let (mut from, mut to) = (1, 1);
            let mut maxspan = None;
            for part in inner {
                match part.as_rule() {
                    Rule::expr_field => fields.push(field_name(part.into_inner().next().unwrap())),
                    Rule::field_list => fields.extend(field_list(part)),
                    Rule::name => alias = Some(field_name(part.into_inner().next().unwrap())),
                    Rule::period => maxspan = Some(period(part)?),
                    Rule::lag_range => {
                        let mut n = part.clone().into_inner().map(|i| i.as_str().parse::<u64>());
                        let bad = || {
                            error_at(&part, "p= needs lags from 1 to 100, as p=1 or p=1-4".into())
                        };
                        from = n.next().and_then(|x| x.ok()).ok_or_else(bad)?;
                        to = match n.next() {
                            Some(x) => x.map_err(|_| bad())?,
                            None => from,
                        };
                        if from == 0 || to < from || to > 100 {
                            return Err(bad());
                        }
                    }
                    _ => {}
                }
            }
            match rule {
                Rule::accum_cmd => Command::Accum {
                    field: fields.remove(0),
                    alias,
                },
                Rule::autoregress_cmd => Command::Autoregress {
                    field: fields.remove(0),
                    alias,
                    from,
                    to,
                },
                _ => Command::Sessionize {
                    fields,
                    maxspan,
                    alias,
                },
            }
        }
        Rule::count_frequent_cmd => Command::CountFrequent(field_list(inner.next().unwrap())),
        Rule::filldown_cmd => Command::Filldown(inner.next().map(field_list).unwrap_or_default()),
        Rule::addtotals_cmd => {
            let (mut fieldname, mut row, mut col) = ("Total".to_string(), true, false);
            let mut fields = Vec::new();
            for part in inner {
                match part.as_rule() {
                    Rule::addtotals_opt => {
                        let mut kv = part.clone().into_inner();
                        let key = kv.next().unwrap().as_str().to_ascii_lowercase();
                        let value = kv.next().unwrap().as_str().to_string();
                        let flag = || match value.to_ascii_lowercase().as_str() {
                            "true" => Ok(true),
                            "false" => Ok(false),
                            _ => Err(error_at(&part, format!("{key}= takes true or false"))),
                        };
                        match key.as_str() {
                            "fieldname" => fieldname = value.clone(),
                            "row" => row = flag()?,
                            _ => col = flag()?,
                        }
                    }
                    Rule::field_list => fields = field_list(part),
                    _ => {}
                }
            }
            Command::AddTotals {
                fieldname,
                row,
                col,
                fields,
            }
        }
        Rule::fillmissing_cmd => Command::FillMissing(
            inner
                .filter(|p| p.as_rule() == Rule::fill_item)
                .map(|item| {
                    let mut parts = item.into_inner().filter(|p| p.as_rule() != Rule::kw_for);
                    let value = primary(parts.next().unwrap())?;
                    let field = field_name(parts.next().unwrap().into_inner().next().unwrap());
                    Ok((value, field))
                })
                .collect::<Result<_, ParseError>>()?,
        ),
        Rule::outlier_cmd | Rule::appendcols_cmd => {
            let (mut remove, mut param, mut use_lower, mut mark) = (false, 2.5, false, false);
            let (mut override_fields, mut max) = (false, 10_000u64);
            let mut fields = Vec::new();
            let mut query = None;
            for part in inner {
                match part.as_rule() {
                    Rule::option => {
                        let mut kv = part.clone().into_inner();
                        let key = kv.next().unwrap().as_str().to_ascii_lowercase();
                        let value = kv.next().unwrap().as_str().to_ascii_lowercase();
                        let bad = |what: &str| error_at(&part, format!("{key}= takes {what}"));
                        let flag = || match value.as_str() {
                            "true" => Ok(true),
                            "false" => Ok(false),
                            _ => Err(bad("true or false")),
                        };
                        let outlier = rule == Rule::outlier_cmd;
                        match key.as_str() {
                            "action" if outlier => {
                                remove = match value.as_str() {
                                    "remove" | "rm" => true,
                                    "transform" | "tf" => false,
                                    _ => return Err(bad("remove or transform")),
                                }
                            }
                            "param" if outlier => {
                                param = value
                                    .parse()
                                    .ok()
                                    .filter(|p: &f64| *p > 0.0)
                                    .ok_or_else(|| bad("a positive number"))?
                            }
                            "uselower" if outlier => use_lower = flag()?,
                            "mark" if outlier => mark = flag()?,
                            "override" if !outlier => override_fields = flag()?,
                            "max" if !outlier => {
                                max = value
                                    .parse()
                                    .ok()
                                    .filter(|m| (1..=100_000).contains(m))
                                    .ok_or_else(|| bad("a number from 1 to 100000"))?
                            }
                            _ => return Err(error_at(&part, format!("unknown option {key}="))),
                        }
                    }
                    Rule::expr_field => fields.push(field_name(part.into_inner().next().unwrap())),
                    Rule::subquery => query = Some(subquery(part)?),
                    _ => {}
                }
            }
            match query {
                Some(query) => Command::AppendCols {
                    override_fields,
                    max,
                    query,
                },
                None => Command::Outlier {
                    remove,
                    param,
                    use_lower,
                    mark,
                    fields,
                },
            }
        }
        Rule::cidrlookup_cmd => {
            let only_new = whole
                .clone()
                .into_inner()
                .any(|p| p.as_rule() == Rule::kw_outputnew);
            let mut table = String::new();
            let mut ip_field = String::new();
            let mut cidr_column = None;
            let mut output = Vec::new();
            for part in inner {
                match part.as_rule() {
                    Rule::lookup_name => table = part.as_str().to_string(),
                    Rule::expr_field => ip_field = field_name(part.into_inner().next().unwrap()),
                    Rule::name => cidr_column = Some(field_name(part.into_inner().next().unwrap())),
                    Rule::cidr_out => output.push(renamed(part)),
                    _ => {}
                }
            }
            Command::CidrLookup {
                table,
                ip_field,
                cidr_column,
                output,
                only_new,
            }
        }
        Rule::lookup_cmd => {
            let only_new = whole
                .clone()
                .into_inner()
                .any(|p| p.as_rule() == Rule::kw_outputnew);
            let mut lookup = Lookup {
                table: String::new(),
                keys: Vec::new(),
                output: Vec::new(),
                only_new,
            };
            for part in inner {
                match part.as_rule() {
                    Rule::lookup_name => lookup.table = part.as_str().to_string(),
                    Rule::lookup_key => lookup.keys.push(renamed(part)),
                    Rule::name_list => lookup.output = name_list(Some(part)),
                    _ => {}
                }
            }
            Command::Lookup(lookup)
        }
        other => unreachable!("grammar produced {other:?} as a command"),
    })
}

fn projections(p: Pair<Rule>) -> Result<Vec<Projection>, ParseError> {
    p.into_inner().map(projection).collect()
}

fn projection(p: Pair<Rule>) -> Result<Projection, ParseError> {
    let mut parts = p.into_inner();
    let e = parts.next().unwrap();
    let text = source_text(e.as_str());
    let expr = expr(e)?;
    let alias = parts
        .find(|p| p.as_rule() == Rule::name)
        .map(|n| field_name(n.into_inner().next().unwrap()));
    Ok(Projection { expr, alias, text })
}

/// A field's name without backticks (`@` kept in front).
/// The names of an `as a, b, c` list (none when there is no list).
fn name_list(list: Option<Pair<Rule>>) -> Vec<String> {
    list.map(|l| {
        l.into_inner()
            .map(|n| field_name(n.into_inner().next().unwrap()))
            .collect()
    })
    .unwrap_or_default()
}

fn field_name(p: Pair<Rule>) -> String {
    let mut out = String::new();
    let mut chars = p.as_str().chars();
    while let Some(c) = chars.next() {
        match c {
            // A quoted part is taken as written.
            '`' => chars
                .by_ref()
                .take_while(|n| *n != '`')
                .for_each(|n| out.push(n)),
            // `list[2]` is the path `list.2`.
            '[' => {
                out.push('.');
                chars
                    .by_ref()
                    .take_while(|n| *n != ']')
                    .for_each(|n| out.push(n));
            }
            c => out.push(c),
        }
    }
    out
}

fn unquote(p: Pair<Rule>) -> String {
    let inner = p.into_inner().next().map(|i| i.as_str()).unwrap_or("");
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn regex(p: Pair<Rule>) -> Regex {
    let mut parts = p.into_inner();
    let pattern = parts
        .next()
        .map(|b| b.as_str().replace("\\/", "/"))
        .unwrap_or_default();
    let flags = parts
        .next()
        .map(|f| f.as_str().to_string())
        .unwrap_or_default();
    Regex { pattern, flags }
}

fn period(p: Pair<Rule>) -> Result<Expr, ParseError> {
    let whole = p.clone();
    let mut parts = p.into_inner();
    let value: u64 = parts
        .next()
        .unwrap()
        .as_str()
        .parse()
        .map_err(|_| error_at(&whole, "period value is too large".into()))?;
    let unit_text = parts.next().unwrap().as_str().to_ascii_lowercase();
    let unit = match unit_text.as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => PeriodUnit::Millisecond,
        "s" | "sec" | "secs" | "second" | "seconds" => PeriodUnit::Second,
        "m" | "min" | "mins" | "minute" | "minutes" => PeriodUnit::Minute,
        "h" | "hr" | "hrs" | "hour" | "hours" => PeriodUnit::Hour,
        "d" | "day" | "days" => PeriodUnit::Day,
        "w" | "week" | "weeks" => PeriodUnit::Week,
        "mo" | "mon" | "mons" | "month" | "months" => PeriodUnit::Month,
        "q" | "qtr" | "qtrs" | "quarter" | "quarters" => PeriodUnit::Quarter,
        _ => PeriodUnit::Year,
    };
    Ok(Expr::Period { value, unit })
}

fn primary(p: Pair<Rule>) -> Result<Expr, ParseError> {
    Ok(match p.as_rule() {
        Rule::expr => expr(p)?,
        Rule::field => Expr::Field(field_name(p)),
        Rule::string => Expr::Str(unquote(p)),
        Rule::regex => Expr::Regex(regex(p)),
        Rule::period => period(p)?,
        Rule::boolean => Expr::Bool(p.as_str().eq_ignore_ascii_case("true")),
        Rule::star => Expr::Star,
        Rule::number => {
            let s = p.as_str();
            match s.parse::<i64>() {
                Ok(i) => Expr::Int(i),
                Err(_) => Expr::Float(
                    s.parse()
                        .map_err(|_| error_at(&p, format!("bad number '{s}'")))?,
                ),
            }
        }
        Rule::list => Expr::List(p.into_inner().map(expr).collect::<Result<_, _>>()?),
        Rule::call => {
            let mut parts = p.into_inner();
            let name = parts.next().unwrap().as_str().to_string();
            let args = parts.map(|a| {
                if a.as_rule() == Rule::star {
                    Ok(Expr::Star)
                } else {
                    expr(a)
                }
            });
            Expr::Call {
                name,
                args: args.collect::<Result<_, _>>()?,
            }
        }
        other => unreachable!("grammar produced {other:?} as a primary"),
    })
}

fn expr(p: Pair<Rule>) -> Result<Expr, ParseError> {
    climb(p.into_inner())
}

fn climb(pairs: Pairs<Rule>) -> Result<Expr, ParseError> {
    pratt()
        .map_primary(primary)
        .map_prefix(|op, rhs| {
            let op = if op.as_rule() == Rule::op_not {
                UnaryOp::Not
            } else {
                UnaryOp::Neg
            };
            Ok(Expr::Unary {
                op,
                expr: Box::new(rhs?),
            })
        })
        .map_postfix(|lhs, op| {
            let negated = op.clone().into_inner().any(|p| p.as_rule() == Rule::kw_not);
            let rule = op.as_rule();
            let operand = op
                .into_inner()
                .find(|p| !matches!(p.as_rule(), Rule::kw_not | Rule::kw_like | Rule::kw_in));
            let operand = operand.expect("like/in carry an operand");
            Ok(match rule {
                Rule::op_like => Expr::Like {
                    expr: Box::new(lhs?),
                    pattern: Box::new(primary(operand)?),
                    negated,
                },
                _ if operand.as_rule() == Rule::subquery => Expr::InQuery {
                    expr: Box::new(lhs?),
                    query: Box::new(subquery(operand)?),
                    negated,
                },
                _ => {
                    let list = match primary(operand)? {
                        Expr::List(items) => items,
                        other => vec![other],
                    };
                    Expr::In {
                        expr: Box::new(lhs?),
                        list,
                        negated,
                    }
                }
            })
        })
        .map_infix(|lhs, op, rhs| {
            let op = match op.as_rule() {
                Rule::op_or => BinaryOp::Or,
                Rule::op_and => BinaryOp::And,
                Rule::op_eq => BinaryOp::Eq,
                Rule::op_ne => BinaryOp::Ne,
                Rule::op_lt => BinaryOp::Lt,
                Rule::op_le => BinaryOp::Le,
                Rule::op_gt => BinaryOp::Gt,
                Rule::op_ge => BinaryOp::Ge,
                Rule::op_regex_match => BinaryOp::RegexMatch,
                Rule::op_add => BinaryOp::Add,
                Rule::op_sub => BinaryOp::Sub,
                Rule::op_mul => BinaryOp::Mul,
                Rule::op_div => BinaryOp::Div,
                Rule::op_mod => BinaryOp::Mod,
                _ => BinaryOp::Pow,
            };
            Ok(Expr::Binary {
                op,
                left: Box::new(lhs?),
                right: Box::new(rhs?),
            })
        })
        .parse(pairs)
}

/// An expression's source text as a column name: comments dropped (a `#` outside quotes, regexes
/// and backticks runs to the end of its line), whitespace runs collapsed.
fn source_text(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut quote: Option<char> = None;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '#' => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push(' ');
                        break;
                    }
                }
            }
            None => {
                if matches!(c, '"' | '\'' | '`' | '/') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
