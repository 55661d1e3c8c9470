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

/// Columns the message helper functions read (`topic()` reads `topic`, …).
const HELPER_COLUMNS: &[(&str, &[&str])] = &[
    ("topic", &["topic"]),
    ("clientid", &["clientid"]),
    ("username", &["username"]),
    ("payload", &["payload"]),
    ("qos", &["qos"]),
    ("flags", &["flags"]),
    ("flag", &["flags"]),
    ("peerhost", &["peerhost"]),
    ("clientip", &["peerhost"]),
    ("msgid", &["id"]),
];

impl Rule {
    /// The event columns the rule reads, so an event's columns can be built only as far as
    /// needed; `None` when it needs them all (`SELECT *`, or FOREACH without DO). Names of
    /// aliases may appear too (harmless: no column has them).
    pub fn columns_used(&self) -> Option<std::collections::BTreeSet<String>> {
        let mut out = std::collections::BTreeSet::new();
        match &self.kind {
            RuleKind::Select(fields) => fields_used(fields, &mut out)?,
            RuleKind::Foreach {
                over,
                fields,
                incase,
                ..
            } => {
                if fields.is_empty() {
                    return None;
                }
                expr_used(over, &mut out);
                fields_used(fields, &mut out)?;
                if let Some(c) = incase {
                    expr_used(c, &mut out);
                }
            }
        }
        if let Some(c) = &self.condition {
            expr_used(c, &mut out);
        }
        Some(out)
    }
}

fn fields_used(fields: &[Field], out: &mut std::collections::BTreeSet<String>) -> Option<()> {
    for f in fields {
        match f {
            Field::All => return None,
            Field::Expr { expr, .. } => expr_used(expr, out),
        }
    }
    Some(())
}

fn segs_used(segs: &[Seg], out: &mut std::collections::BTreeSet<String>) {
    for s in segs {
        match s {
            Seg::Key(_) => {}
            Seg::Index(e) => expr_used(e, out),
            Seg::Range(a, b) => {
                expr_used(a, out);
                expr_used(b, out);
            }
        }
    }
}

fn expr_used(e: &Expr, out: &mut std::collections::BTreeSet<String>) {
    match e {
        Expr::Lit(_) => {}
        Expr::Path(segs) => {
            if let Some(Seg::Key(k)) = segs.first() {
                out.insert(k.clone());
            }
            segs_used(segs, out);
        }
        Expr::Sub(base, segs) => {
            expr_used(base, out);
            segs_used(segs, out);
        }
        Expr::Array(items) => items.iter().for_each(|i| expr_used(i, out)),
        Expr::Call(name, args) => {
            if let Some((_, cols)) = HELPER_COLUMNS.iter().find(|(n, _)| n == name) {
                out.extend(cols.iter().map(|c| c.to_string()));
            }
            args.iter().for_each(|a| expr_used(a, out));
        }
        Expr::Bin(_, l, r) => {
            expr_used(l, out);
            expr_used(r, out);
        }
        Expr::Not(x) | Expr::Neg(x) => expr_used(x, out),
        Expr::In(x, list, _) => {
            expr_used(x, out);
            list.iter().for_each(|i| expr_used(i, out));
        }
        Expr::Case {
            subject,
            whens,
            otherwise,
        } => {
            if let Some(s) = subject {
                expr_used(s, out);
            }
            for (c, v) in whens {
                expr_used(c, out);
                expr_used(v, out);
            }
            if let Some(o) = otherwise {
                expr_used(o, out);
            }
        }
    }
}
