//! Text searches over split messages, tested before the messages are joined.
//!
//! A segment that stores its messages split (`message_template` and `message_vars`) is read
//! through a projection that joins them (`lw_message`). A filter right above it that searches
//! the message (`like`, a regex, `strpos`) needs, in any line it keeps, some pieces of text:
//! the literal runs of its pattern, cut at delimiters. `logwell_template::Search` tells from
//! a template (once per dictionary entry) and the variables whether a line holds them; this rule
//! hands the pieces to the projection, which then joins only the lines that hold them and leaves
//! the others empty. The filter still decides every row: on an empty message its search fails,
//! as it fails on the line, so the answer is the same and only the joins are saved (CLP's
//! search, Rodrigues et al., OSDI 2021).
//!
//! The rewrite is sound because the search is one of the filter's conjuncts: a row the
//! projection empties fails it, so no operator above sees that row.

use crate::udf::JoinMessage;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, LikeExpr, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::ChildrenPropertiesMode;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, ReplaceChildrenOptions};
use logwell_template::Piece;
use regex_syntax::hir::{Class, Hir, HirKind};
use std::collections::BTreeMap;
use std::sync::Arc;

/// New children with the same columns and partitions as the old.
const KEEP: ReplaceChildrenOptions = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);

/// The physical optimizer rule (run last, on the plan as it will execute).
#[derive(Debug, Default)]
pub struct SearchSplitMessages;

impl PhysicalOptimizerRule for SearchSplitMessages {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let mut wanted = BTreeMap::new();
            required(filter.predicate(), &mut wanted);
            if wanted.is_empty() {
                return Ok(Transformed::no(node));
            }
            match with_pieces(filter.input(), &wanted)? {
                Some(input) => Ok(Transformed::yes(
                    node.clone().replace_children(vec![input], KEEP)?,
                )),
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "SearchSplitMessages"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Text columns (by index) to the pieces every row `predicate` keeps holds in them.
fn required(predicate: &Arc<dyn PhysicalExpr>, out: &mut BTreeMap<usize, Vec<Piece>>) {
    let e = predicate.as_ref();
    if let Some(b) = e.downcast_ref::<BinaryExpr>() {
        match b.op() {
            Operator::And => {
                required(b.left(), out);
                required(b.right(), out);
            }
            Operator::RegexMatch | Operator::RegexIMatch => {
                if let (Some(c), Some(p)) = (column(b.left()), text(b.right())) {
                    let caseless = *b.op() == Operator::RegexIMatch;
                    add(out, c, regex_pieces(&p, caseless));
                }
            }
            // strpos(x, 'text') > 0
            Operator::Gt => {
                if let (Some(f), Some(ScalarValue::Int64(Some(0)) | ScalarValue::Int32(Some(0)))) = (
                    b.left().downcast_ref::<ScalarFunctionExpr>(),
                    literal(b.right()),
                ) {
                    if let [x, t] = f.args() {
                        if let (true, Some(c), Some(t)) = (f.name() == "strpos", column(x), text(t))
                        {
                            add(out, c, literal_pieces(&t, false));
                        }
                    }
                }
            }
            _ => {}
        }
    } else if let Some(l) = e.downcast_ref::<LikeExpr>() {
        if let (false, Some(c), Some(p)) = (l.negated(), column(l.expr()), text(l.pattern())) {
            add(out, c, like_pieces(&p, l.case_insensitive()));
        }
    } else if let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() {
        match (f.name(), f.args()) {
            // Counts the rows its argument keeps, and keeps the same rows.
            ("lw_count_matched", [inner]) => required(inner, out),
            ("regexp_like", [x, p]) => {
                if let (Some(c), Some(p)) = (column(x), text(p)) {
                    add(out, c, regex_pieces(&p, false));
                }
            }
            _ => {}
        }
    }
}

fn add(out: &mut BTreeMap<usize, Vec<Piece>>, column: usize, pieces: Vec<Piece>) {
    if !pieces.is_empty() {
        out.entry(column).or_default().extend(pieces);
    }
}

/// The column `e` reads, as it is or cast to another text type.
fn column(e: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    if let Some(c) = e.downcast_ref::<CastExpr>() {
        let text = matches!(
            c.cast_type(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        );
        return text.then(|| column(c.expr())).flatten();
    }
    e.downcast_ref::<Column>().map(Column::index)
}

fn literal(e: &Arc<dyn PhysicalExpr>) -> Option<&ScalarValue> {
    e.downcast_ref::<Literal>().map(Literal::value)
}

fn text(e: &Arc<dyn PhysicalExpr>) -> Option<String> {
    match literal(e)? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The pieces of literal `text`.
fn literal_pieces(text: &str, caseless: bool) -> Vec<Piece> {
    logwell_template::pieces(text)
        .map(|p| Piece {
            text: p.to_string(),
            caseless,
        })
        .collect()
}

/// The pieces of the literal runs of a SQL `LIKE` pattern (`%` and `_` are wildcards, `\\`
/// makes the next character literal, as arrow reads it and as `like 'text'` is compiled).
/// `ILIKE` compares lowercased text, where the Kelvin sign is a `k` and `İ` holds an `i`, and
/// other letters beyond ASCII have cases the pieces' ASCII search would miss: its pieces
/// holding those are left out.
fn like_pieces(pattern: &str, caseless: bool) -> Vec<Piece> {
    let mut runs = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' | '_' => runs.push(String::new()),
            '\\' => runs.last_mut().expect("a run").extend(chars.next()),
            c => runs.last_mut().expect("a run").push(c),
        }
    }
    let plain = |c: char| c.is_ascii() && !matches!(c.to_ascii_lowercase(), 'i' | 'k');
    runs.iter()
        .flat_map(|run| literal_pieces(run, caseless))
        .filter(|p| !caseless || p.text.chars().all(plain))
        .collect()
}

/// The pieces every match of `pattern` holds: the literal runs that every match passes
/// through (top-level concatenations, groups and repetitions of at least one), where a
/// case-insensitive letter is one of its two ASCII cases. A pattern that does not parse, or
/// whose matches share no literal text (an alternation at the top), needs none.
fn regex_pieces(pattern: &str, caseless: bool) -> Vec<Piece> {
    let mut parser = regex_syntax::ParserBuilder::new()
        .case_insensitive(caseless)
        .build();
    let mut out = Vec::new();
    if let Ok(hir) = parser.parse(pattern) {
        hir_pieces(&hir, &mut out);
    }
    out
}

fn hir_pieces(hir: &Hir, out: &mut Vec<Piece>) {
    match hir.kind() {
        HirKind::Concat(parts) => {
            let mut run = Run::default();
            for part in parts {
                if !run.push(part) {
                    run.end(out);
                    hir_pieces(part, out);
                }
            }
            run.end(out);
        }
        HirKind::Capture(c) => hir_pieces(&c.sub, out),
        HirKind::Repetition(r) if r.min >= 1 => hir_pieces(&r.sub, out),
        HirKind::Literal(_) | HirKind::Class(_) => {
            let mut run = Run::default();
            if run.push(hir) {
                run.end(out);
            }
        }
        _ => {}
    }
}

/// Consecutive literal text of a regex.
#[derive(Default)]
struct Run {
    bytes: Vec<u8>,
    caseless: bool,
}

impl Run {
    /// Adds `hir` if it is literal text (or one ASCII letter in either case).
    fn push(&mut self, hir: &Hir) -> bool {
        match hir.kind() {
            HirKind::Literal(l) => {
                self.bytes.extend_from_slice(&l.0);
                true
            }
            HirKind::Class(c) => match either_case(c) {
                Some(b) => {
                    self.bytes.push(b);
                    self.caseless = true;
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn end(&mut self, out: &mut Vec<Piece>) {
        // Text that is not UTF-8 (a bytes regex) is left out: fewer pieces only let more
        // lines through to the filter.
        if let Ok(text) = std::str::from_utf8(&self.bytes) {
            out.extend(literal_pieces(text, self.caseless));
        }
        self.bytes.clear();
        self.caseless = false;
    }
}

/// The lowercase letter a class of exactly its two ASCII cases stands for (`[Ee]`, as `(?i)e`
/// becomes; `(?i)k` also matches the Kelvin sign, so it is not one).
fn either_case(class: &Class) -> Option<u8> {
    let (a, b) = match class {
        Class::Unicode(u) => match u.ranges() {
            [x, y] if x.start() == x.end() && y.start() == y.end() => (x.start(), y.start()),
            _ => return None,
        },
        Class::Bytes(bs) => match bs.ranges() {
            [x, y] if x.start() == x.end() && y.start() == y.end() => {
                (x.start() as char, y.start() as char)
            }
            _ => return None,
        },
    };
    let lower = a.to_ascii_lowercase();
    (a.is_ascii_uppercase() && b == lower).then_some(lower as u8)
}

/// `plan` with the pieces `wanted` (by output column) handed to the joins that produce those
/// columns, through operators that pass rows and columns on unchanged; `None` if there is none.
fn with_pieces(
    plan: &Arc<dyn ExecutionPlan>,
    wanted: &BTreeMap<usize, Vec<Piece>>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let same_columns = plan.downcast_ref::<RepartitionExec>().is_some()
        || plan.downcast_ref::<CoalescePartitionsExec>().is_some()
        || plan.downcast_ref::<UnionExec>().is_some();
    if same_columns {
        let mut changed = false;
        let mut children = Vec::new();
        for child in plan.children() {
            match with_pieces(child, wanted)? {
                Some(c) => {
                    changed = true;
                    children.push(c);
                }
                None => children.push(child.clone()),
            }
        }
        return match changed {
            true => Ok(Some(plan.clone().replace_children(children, KEEP)?)),
            false => Ok(None),
        };
    }
    let Some(projection) = plan.downcast_ref::<ProjectionExec>() else {
        return Ok(None);
    };
    let mut exprs: Vec<ProjectionExpr> = projection.expr().to_vec();
    let mut below = BTreeMap::new();
    let mut changed = false;
    for (&i, pieces) in wanted {
        let Some(out) = exprs.get_mut(i) else {
            continue;
        };
        if let Some(c) = out.expr.downcast_ref::<Column>() {
            below.insert(c.index(), pieces.clone());
        } else if let Some(f) =
            ScalarFunctionExpr::try_downcast_func::<JoinMessage>(out.expr.as_ref())
        {
            if f.args().len() == 2 {
                let mut args = f.args().to_vec();
                for p in pieces {
                    args.push(Arc::new(Literal::new(ScalarValue::Utf8(Some(
                        p.text.clone(),
                    )))));
                    args.push(Arc::new(Literal::new(ScalarValue::Boolean(Some(
                        p.caseless,
                    )))));
                }
                out.expr = Arc::new(ScalarFunctionExpr::new(
                    f.name(),
                    Arc::new(f.fun().clone()),
                    args,
                    f.return_field(&projection.input().schema())?,
                    Arc::new(f.config_options().clone()),
                ));
                changed = true;
            }
        }
    }
    let mut input = projection.input().clone();
    if !below.is_empty() {
        if let Some(i) = with_pieces(&input, &below)? {
            input = i;
            changed = true;
        }
    }
    match changed {
        true => Ok(Some(Arc::new(ProjectionExec::try_new(exprs, input)?))),
        false => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(pieces: Vec<Piece>) -> Vec<(String, bool)> {
        pieces.into_iter().map(|p| (p.text, p.caseless)).collect()
    }

    fn exact(texts: &[&str]) -> Vec<(String, bool)> {
        texts.iter().map(|t| (t.to_string(), false)).collect()
    }

    #[test]
    fn regexes_need_their_literal_runs() {
        assert_eq!(texts(regex_pieces("ERROR", false)), exact(&["ERROR"]));
        assert_eq!(
            texts(regex_pieces("u-0012[0-9]", false)),
            exact(&["u-0012"])
        );
        assert_eq!(
            texts(regex_pieces("disk sda1 full", false)),
            exact(&["disk", "sda1", "full"])
        );
        assert_eq!(
            texts(regex_pieces("in 4. ms", false)),
            exact(&["in", "4", "ms"])
        );
        assert_eq!(
            texts(regex_pieces("^WARN (user) u-0+$", false)),
            exact(&["WARN", "user", "u-", "0"])
        );
        assert_eq!(texts(regex_pieces(r"10\.0\.3", false)), exact(&["10.0.3"]));
        assert_eq!(
            texts(regex_pieces("(?i)error", false)),
            vec![("error".to_string(), true)]
        );
        assert_eq!(
            texts(regex_pieces("error", true)),
            vec![("error".to_string(), true)]
        );
        // (?i)k and (?i)s also match the Kelvin and long s signs: they end a run.
        assert_eq!(
            texts(regex_pieces("(?i)risky", false)),
            vec![("ri".to_string(), true), ("y".to_string(), true)]
        );
        for none in ["full|refused", ".*", "a?", "(x|y)z*", "[ab]", "[^a]"] {
            assert!(regex_pieces(none, false).is_empty(), "{none}");
        }
        assert!(regex_pieces("(unclosed", false).is_empty());
    }

    #[test]
    fn like_patterns_need_their_literal_runs() {
        assert_eq!(texts(like_pieces("%ERROR%", false)), exact(&["ERROR"]));
        assert_eq!(
            texts(like_pieces("a_b%c d=e", false)),
            exact(&["a", "b", "c", "d", "e"])
        );
        assert_eq!(texts(like_pieces("%100\\%%", false)), exact(&["100%"]));
        assert_eq!(texts(like_pieces("%r\\_n%", false)), exact(&["r_n"]));
        assert_eq!(texts(like_pieces("%", false)), exact(&[]));
        assert_eq!(
            texts(like_pieces("%x%", true)),
            vec![("x".to_string(), true)]
        );
        // "in" and "café" may match beyond ASCII under ILIKE.
        assert_eq!(
            texts(like_pieces("%error in%café%", true)),
            vec![("error".to_string(), true)]
        );
    }
}
