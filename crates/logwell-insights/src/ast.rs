//! The typed syntax tree of an Insights query.

/// A whole query: commands in pipeline order.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub commands: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Fields(Vec<Projection>),
    Display(Vec<Projection>),
    Filter(Expr),
    Stats {
        aggregates: Vec<Projection>,
        by: Vec<Projection>,
        /// `by bin(...) offset <period>`: bins shifted by this period.
        offset: Option<Expr>,
    },
    Sort(Vec<SortKey>),
    Limit {
        n: u64,
        any: bool,
    },
    Parse {
        field: String,
        pattern: ParsePattern,
        names: Vec<String>,
    },
    Dedup(Vec<String>),
    /// `filterIndex expr`: a filter that may be answered from a field index.
    FilterIndex(Expr),
    /// `unnest field into name` (and `expand field`, where `into` is the field itself): one row
    /// per element of a list.
    Unnest {
        field: String,
        into: String,
    },
    /// `unmask [field]`.
    Unmask(Option<String>),
    /// `SOURCE ...`: the log groups to read, by exact name or name prefix.
    Source(Source),
    /// `pattern expr`: rows clustered by the pattern of a text.
    Pattern(Expr),
    /// `diff [previousDay|previousWeek|previousMonth]`.
    Diff(DiffPeriod),
    /// `anomaly`: the patterns (of an earlier `pattern`, else of @message) that look unusual.
    Anomaly,
    Join(Join),
    Lookup(Lookup),
    /// `accum f [as out]`.
    Accum {
        field: String,
        alias: Option<String>,
    },
    /// `autoregress f [as alias] [p=from[-to]]`.
    Autoregress {
        field: String,
        alias: Option<String>,
        from: u64,
        to: u64,
    },
    /// `countFrequent f, ...`.
    CountFrequent(Vec<String>),
    /// `filldown [f, ...]` (empty: every field).
    Filldown(Vec<String>),
    /// `sessionize f, ... [maxspan p] [as out]`.
    Sessionize {
        fields: Vec<String>,
        maxspan: Option<Expr>,
        alias: Option<String>,
    },
    /// `addtotals [fieldname=N] [row=b] [col=b] [f, ...]` (no fields: every numeric field).
    AddTotals {
        fieldname: String,
        row: bool,
        col: bool,
        fields: Vec<String>,
    },
    /// `fillmissing [with value for field, ...]`.
    FillMissing(Vec<(Expr, String)>),
    /// `outlier [action=remove|transform] [param=n] [uselower=b] [mark=b] f ...`.
    Outlier {
        remove: bool,
        param: f64,
        use_lower: bool,
        mark: bool,
        fields: Vec<String>,
    },
    /// `appendcols [override=b] [max=n] (subquery)`.
    AppendCols {
        override_fields: bool,
        max: u64,
        query: Query,
    },
    /// `relevantfields [f, ...] where cond` (no fields: every known field).
    RelevantFields {
        fields: Vec<String>,
        condition: Expr,
    },
    /// `cidrlookup table ipField [as cidrColumn] OUTPUT|OUTPUTNEW f [as g], ...`.
    CidrLookup {
        table: String,
        ip_field: String,
        cidr_column: Option<String>,
        /// `(table field, event field)`.
        output: Vec<(String, String)>,
        only_new: bool,
    },
}

/// `lookup table key [as field], ... OUTPUT|OUTPUTNEW out, ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    pub table: String,
    /// `(table field, event field)` pairs that must be equal.
    pub keys: Vec<(String, String)>,
    /// Table fields added to matching events.
    pub output: Vec<String>,
    /// `OUTPUTNEW`: only where the event has no value for the field yet (`OUTPUT` overwrites).
    pub only_new: bool,
}

/// What `diff` compares the query's time range with.
#[derive(Debug, Clone, PartialEq)]
pub enum DiffPeriod {
    /// The equally long range just before.
    Previous,
    Day,
    Week,
    Month,
    /// `logcompare timeshift <period>`: the range shifted back by this period.
    Shift(Expr),
}

/// `join type=inner|left left=a right=b where a.f = b.f (subquery)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// `type=left`: left rows without a match are kept.
    pub keep_unmatched: bool,
    pub left: String,
    pub right: String,
    /// Equalities as written, each `(a.f, b.f)` (either side may name either alias).
    pub on: Vec<(String, String)>,
    pub query: Query,
}

/// The log groups a `SOURCE` command selects.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Source {
    pub names: Vec<String>,
    pub prefixes: Vec<String>,
    /// `class: [...]`, upper-case (`STANDARD`, `INFREQUENT_ACCESS`); empty means STANDARD.
    pub classes: Vec<String>,
    /// `START=` and `END=` as written (`-3600s`, `0s`, or an ISO instant).
    pub start: Option<String>,
    pub end: Option<String>,
}

/// `expr [as alias]`; `text` is the expression's source text, which names the column when there
/// is no alias (as `count(*)` or `bin(5m)` do in CloudWatch results).
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub expr: Expr,
    pub alias: Option<String>,
    pub text: String,
}

impl Projection {
    /// The name of the column this projection produces.
    pub fn name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    /// `asc` given explicitly; CloudWatch sorts descending when no direction is given.
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParsePattern {
    /// A glob: each `*` captures, in order, into the `as` names.
    Glob(String),
    /// A regex whose named groups become fields.
    Regex(Regex),
    /// `logfmt`: `k=v k2="v 2"` pairs into one map, named by the single `as` name.
    Logfmt,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Regex {
    pub pattern: String,
    pub flags: String,
}

/// Time period units, as `bin()`, `datefloor()` and friends take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodUnit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    RegexMatch,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A field reference: `@message`, `user.id`, `` `foo-bar` ``.
    Field(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Regex(Regex),
    Period {
        value: u64,
        unit: PeriodUnit,
    },
    List(Vec<Expr>),
    /// `*` as in `count(*)`.
    Star,
    Call {
        name: String,
        args: Vec<Expr>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `expr [not] like "substring"` or `expr [not] like /regex/`.
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `expr [not] in (subquery)`: membership in the subquery's single output field.
    InQuery {
        expr: Box<Expr>,
        query: Box<Query>,
        negated: bool,
    },
}
