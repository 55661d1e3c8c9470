//! The parsed form of a rule. Paths into values are kept as segments so that evaluation never
//! re-parses text.

/// A parsed rule statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// SELECT or FOREACH.
    pub kind: RuleKind,
    /// The FROM entries, as written (topic filters, `$events/…`).
    pub from: Vec<String>,
    /// The WHERE condition (whole message).
    pub condition: Option<Expr>,
}

/// The two statement forms.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// `SELECT fields`.
    Select(Vec<Field>),
    /// `FOREACH expr [AS name] [DO fields] [INCASE cond]`.
    Foreach {
        /// The array to iterate.
        over: Expr,
        /// The element's name (`item` by default).
        item: String,
        /// The DO fields; empty: each output is the input columns plus the element.
        fields: Vec<Field>,
        /// The INCASE filter per element.
        incase: Option<Expr>,
    },
}

/// One selected field.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// `*`: every column of the event.
    All,
    /// `expr [AS alias]`.
    Expr {
        /// The expression.
        expr: Expr,
        /// Where the value goes in the output: the alias path (`AS o.a` → `["o","a"]`), or, for
        /// an unaliased path expression, the path's keys, or else the expression's source text.
        target: Vec<String>,
    },
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    /// `.name` (or the first name).
    Key(String),
    /// `[i]`: 1-based index, negative from the end; or a key when the value is a map.
    Index(Box<Expr>),
    /// `[a..b]`: 1-based inclusive range.
    Range(Box<Expr>, Box<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+` (numbers, or concatenation when a side is a string).
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (always a float).
    Div,
    /// `div` (integer division).
    IntDiv,
    /// `mod`
    Mod,
    /// `=`
    Eq,
    /// `!=`, `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `=~`: the left topic matches the right topic filter.
    TopicMatch,
    /// `and`
    And,
    /// `or`
    Or,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal value.
    Lit(serde_json::Value),
    /// A path from a column or alias: `payload.a[1]`.
    Path(Vec<Seg>),
    /// Postfix path steps on another expression: `json_decode(x).a`.
    Sub(Box<Expr>, Vec<Seg>),
    /// `[a, b]`
    Array(Vec<Expr>),
    /// A function call (name lower-cased).
    Call(String, Vec<Expr>),
    /// A binary operation.
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// `not e`
    Not(Box<Expr>),
    /// `-e`
    Neg(Box<Expr>),
    /// `e [not] in (a, b)`.
    In(Box<Expr>, Vec<Expr>, bool),
    /// `CASE [subject] WHEN … THEN … [ELSE …] END`.
    Case {
        /// The simple-CASE subject (`CASE x WHEN 1 THEN …`), compared with each WHEN.
        subject: Option<Box<Expr>>,
        /// Conditions (or values) and results.
        whens: Vec<(Expr, Expr)>,
        /// The ELSE value (undefined when absent).
        otherwise: Option<Box<Expr>>,
    },
}
