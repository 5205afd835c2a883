//! JSON patterns: `{ SELECTOR OP VALUE }` joined with `&&`, `||` and parentheses.

use crate::{compile_regex, glob_match, PatternError};
use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cond(Selector, Test),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

pub type Selector = Vec<Step>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub enum Test {
    Compare(Op, Literal),
    IsNull,
    IsBool(bool),
    NotExists,
}

#[derive(Debug, Clone)]
pub enum Literal {
    /// A string, possibly with `*` wildcards; also kept as a number when it reads as one.
    Text {
        text: String,
        number: Option<f64>,
    },
    Regex(regex::Regex),
}

/// `$.a.b[0]` as text.
fn selector_text(sel: &Selector) -> String {
    let mut out = String::from("$");
    for step in sel {
        match step {
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn resolve<'v>(root: &'v Value, sel: &Selector) -> Option<&'v Value> {
    let mut v = Some(root);
    for step in sel {
        v = match (v, step) {
            (Some(Value::Object(m)), Step::Key(k)) => m.get(k),
            (Some(Value::Array(a)), Step::Index(i)) => a.get(*i),
            _ => None,
        };
    }
    v
}

impl Expr {
    /// The scalar values the pattern's selectors point at, keyed by selector text.
    pub fn extract(&self, root: &Value, out: &mut Vec<(String, String)>) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.extract(root, out);
                b.extract(root, out);
            }
            Expr::Cond(sel, _) => {
                let text = match resolve(root, sel) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                    _ => return,
                };
                let key = selector_text(sel);
                if !out.iter().any(|(k, _)| *k == key) {
                    out.push((key, text));
                }
            }
        }
    }

    pub fn eval(&self, root: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.eval(root) && b.eval(root),
            Expr::Or(a, b) => a.eval(root) || b.eval(root),
            Expr::Cond(sel, test) => test.eval(resolve(root, sel)),
        }
    }
}

impl Test {
    fn eval(&self, v: Option<&Value>) -> bool {
        match (self, v) {
            (Test::NotExists, v) => v.is_none(),
            (Test::IsNull, Some(Value::Null)) => true,
            (Test::IsBool(b), Some(Value::Bool(x))) => b == x,
            // A selector that points at an object or array never matches.
            (_, None | Some(Value::Object(_)) | Some(Value::Array(_))) => false,
            (Test::Compare(op, lit), Some(v)) => compare(*op, lit, v),
            _ => false,
        }
    }
}

/// A test on the flattened fields of an event (`a.b.0`, the text a query would extract) that
/// every event a JSON pattern matches passes: a cheap pre-filter over stored field columns,
/// after which the pattern itself still decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Necessary {
    /// No constraint.
    Any,
    And(Box<Necessary>, Box<Necessary>),
    Or(Box<Necessary>, Box<Necessary>),
    /// The field is present.
    Present(String),
    /// The field's text matches the glob (`*` wildcards); or it reads as a number equal to
    /// `equals`; or, with `any_number`, as any number (a number's text as the pattern sees it
    /// may be written differently in the event, `1E3` for `1000.0`).
    Text {
        path: String,
        glob: String,
        equals: Option<f64>,
        any_number: bool,
    },
    /// The field reads as a number `x` with `x op value`.
    Number {
        path: String,
        op: Op,
        value: f64,
    },
}

impl Necessary {
    /// The field paths the condition tests, sorted, each once.
    pub fn paths(&self) -> Vec<String> {
        fn walk(n: &Necessary, out: &mut Vec<String>) {
            match n {
                Necessary::Any => {}
                Necessary::And(a, b) | Necessary::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Necessary::Present(path)
                | Necessary::Text { path, .. }
                | Necessary::Number { path, .. } => out.push(path.clone()),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out.sort();
        out.dedup();
        out
    }
}

/// The flattened field name of a selector, when it has one (keys with dots or wildcards do not).
fn field_path(sel: &Selector) -> Option<String> {
    // Field columns flatten objects only: a message that is an array has none.
    if matches!(sel.first(), Some(Step::Index(_))) {
        return None;
    }
    let mut parts = Vec::with_capacity(sel.len());
    for step in sel {
        match step {
            Step::Key(k) if k.is_empty() || k.contains(['.', '*']) => return None,
            Step::Key(k) => parts.push(k.clone()),
            Step::Index(i) => parts.push(i.to_string()),
        }
    }
    Some(parts.join("."))
}

impl Expr {
    /// What every matching event's fields satisfy (see [`Necessary`]).
    pub fn necessary(&self) -> Necessary {
        let both = |a: &Expr, b: &Expr| (Box::new(a.necessary()), Box::new(b.necessary()));
        match self {
            Expr::And(a, b) => {
                let (a, b) = both(a, b);
                Necessary::And(a, b)
            }
            Expr::Or(a, b) => {
                let (a, b) = both(a, b);
                Necessary::Or(a, b)
            }
            Expr::Cond(sel, test) => {
                let Some(path) = field_path(sel) else {
                    return Necessary::Any;
                };
                match test {
                    // Null values and absent fields both have no text.
                    Test::IsNull | Test::NotExists => Necessary::Any,
                    Test::IsBool(_) => Necessary::Present(path),
                    // Zero equals negative zero, which total-order float comparison tells apart:
                    // no numeric test against zero.
                    Test::Compare(
                        Op::Eq,
                        Literal::Text {
                            text,
                            number: Some(n),
                        },
                    ) if *n == 0.0 => Necessary::Text {
                        path,
                        glob: text.clone(),
                        equals: None,
                        any_number: true,
                    },
                    Test::Compare(
                        _,
                        Literal::Text {
                            number: Some(n), ..
                        },
                    ) if *n == 0.0 => Necessary::Present(path),
                    Test::Compare(Op::Eq, Literal::Text { text, number }) => Necessary::Text {
                        path,
                        glob: text.clone(),
                        equals: *number,
                        // Only a glob of number characters can match a number's text (`*.*`
                        // matches 1.0, written 1 in the event).
                        any_number: number.is_none()
                            && text
                                .chars()
                                .all(|c| c.is_ascii_digit() || ".eE+-*".contains(c)),
                    },
                    Test::Compare(
                        op,
                        Literal::Text {
                            number: Some(n), ..
                        },
                    ) if *op != Op::Ne => Necessary::Number {
                        path,
                        op: *op,
                        value: *n,
                    },
                    Test::Compare(..) => Necessary::Present(path),
                }
            }
        }
    }
}

fn compare(op: Op, lit: &Literal, v: &Value) -> bool {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return false,
    };
    match lit {
        Literal::Regex(r) => match op {
            Op::Eq => r.is_match(&text),
            Op::Ne => !r.is_match(&text),
            _ => false,
        },
        Literal::Text { text: want, number } => {
            if let (Some(want_n), Value::Number(n)) = (number, v) {
                let got = n.as_f64().unwrap_or(f64::NAN);
                return match op {
                    Op::Eq => got == *want_n,
                    Op::Ne => got != *want_n,
                    Op::Lt => got < *want_n,
                    Op::Le => got <= *want_n,
                    Op::Gt => got > *want_n,
                    Op::Ge => got >= *want_n,
                };
            }
            match op {
                Op::Eq => glob_match(want, &text),
                Op::Ne => !glob_match(want, &text),
                // Ordering needs numbers on both sides.
                _ => false,
            }
        }
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, what: &str) -> PatternError {
        PatternError::Syntax(format!(
            "{what} at character {} of the JSON pattern",
            self.pos + 1
        ))
    }
    fn ws(&mut self) {
        while self.s[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.s[self.pos..].chars().next().unwrap().len_utf8();
        }
    }
    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s[self.pos..].starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }
    fn eat_word(&mut self, word: &str) -> bool {
        self.ws();
        let rest = &self.s[self.pos..];
        if rest.len() >= word.len()
            && rest[..word.len()].eq_ignore_ascii_case(word)
            && !rest[word.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.primary()?;
        while self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, PatternError> {
        if self.eat("(") {
            let e = self.or()?;
            if !self.eat(")") {
                return Err(self.err("expected ')'"));
            }
            return Ok(e);
        }
        let sel = self.selector()?;
        let test = self.test()?;
        Ok(Expr::Cond(sel, test))
    }

    fn selector(&mut self) -> Result<Selector, PatternError> {
        self.ws();
        if !self.eat("$") {
            return Err(self.err("expected a selector starting with '$'"));
        }
        let mut steps = Vec::new();
        loop {
            let rest = &self.s[self.pos..];
            if let Some(r) = rest.strip_prefix('.') {
                let n = r
                    .find(|c: char| {
                        !(c.is_alphanumeric() || c == '_' || c == '-' || c == '@' || c == ':')
                    })
                    .unwrap_or(r.len());
                if n == 0 {
                    return Err(self.err("expected a field name after '.'"));
                }
                steps.push(Step::Key(r[..n].to_string()));
                self.pos += 1 + n;
            } else if let Some(r) = rest.strip_prefix('[') {
                let n = r.find(']').ok_or_else(|| self.err("expected ']'"))?;
                let i = r[..n]
                    .trim()
                    .parse()
                    .map_err(|_| self.err("expected an array index"))?;
                steps.push(Step::Index(i));
                self.pos += n + 2;
            } else {
                break;
            }
        }
        if steps.is_empty() {
            return Err(self.err("expected a field after '$'"));
        }
        Ok(steps)
    }

    fn test(&mut self) -> Result<Test, PatternError> {
        if self.eat_word("IS") {
            if self.eat_word("NULL") {
                return Ok(Test::IsNull);
            }
            if self.eat_word("TRUE") {
                return Ok(Test::IsBool(true));
            }
            if self.eat_word("FALSE") {
                return Ok(Test::IsBool(false));
            }
            return Err(self.err("expected NULL, TRUE or FALSE after IS"));
        }
        if self.eat_word("NOT") {
            if self.eat_word("EXISTS") {
                return Ok(Test::NotExists);
            }
            return Err(self.err("expected EXISTS after NOT"));
        }
        let op = if self.eat("!=") {
            Op::Ne
        } else if self.eat(">=") {
            Op::Ge
        } else if self.eat("<=") {
            Op::Le
        } else if self.eat("=") {
            Op::Eq
        } else if self.eat(">") {
            Op::Gt
        } else if self.eat("<") {
            Op::Lt
        } else {
            return Err(self.err("expected an operator (=, !=, <, <=, >, >=, IS, NOT EXISTS)"));
        };
        Ok(Test::Compare(op, self.literal()?))
    }

    fn literal(&mut self) -> Result<Literal, PatternError> {
        self.ws();
        let rest = &self.s[self.pos..];
        if let Some(r) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = r.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        self.pos += 1 + i + 1;
                        return Ok(Literal::Text {
                            text: out,
                            number: None,
                        });
                    }
                    c => out.push(c),
                }
            }
            return Err(self.err("unterminated string"));
        }
        if let Some(r) = rest.strip_prefix('%') {
            let n = r
                .find('%')
                .ok_or_else(|| self.err("unterminated %regex%"))?;
            let re = compile_regex(&r[..n])?;
            self.pos += n + 2;
            return Ok(Literal::Regex(re));
        }
        let n = rest
            .find(|c: char| c.is_whitespace() || c == ')' || c == '}' || c == '&' || c == '|')
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(self.err("expected a value"));
        }
        let text = rest[..n].to_string();
        self.pos += n;
        let number = text.parse::<f64>().ok();
        Ok(Literal::Text { text, number })
    }
}

pub fn parse(pattern: &str) -> Result<Expr, PatternError> {
    let inner = pattern
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .ok_or_else(|| PatternError::Syntax("a JSON pattern must be enclosed in { }".into()))?;
    let mut p = Parser { s: inner, pos: 0 };
    let e = p.or()?;
    p.ws();
    if p.pos != inner.len() {
        return Err(p.err("unexpected text"));
    }
    Ok(e)
}
