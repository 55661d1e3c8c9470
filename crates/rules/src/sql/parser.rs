//! A recursive-descent parser over the lexer's tokens. Precedence, loosest first: `or`, `and`,
//! `not`, comparisons (`= != <> < <= > >= =~ in`), `+ -`, `* / div mod`, unary minus, postfix
//! paths (`.key`, `[i]`, `[a..b]`).

use super::ast::{BinOp, Expr, Field, Rule, RuleKind, Seg};
use super::lexer::{tokenize, Tok, Token};
use super::SqlError;
use serde_json::Value;

/// Nesting deeper than this is refused: a hostile rule must not overflow the stack.
const MAX_DEPTH: usize = 64;

const RESERVED: &[&str] = &[
    "select", "from", "where", "foreach", "do", "incase", "as", "and", "or", "not", "case", "when",
    "then", "else", "end", "div", "mod", "in",
];

/// Parses one rule statement.
pub fn parse(src: &str) -> Result<Rule, SqlError> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        depth: 0,
    };
    let rule = p.statement()?;
    if !matches!(p.peek(), Tok::Eof) {
        return Err(p.error("unexpected text after the statement"));
    }
    Ok(rule)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn tok(&self) -> &Token {
        // The lexer always ends with Eof and `bump` never moves past it.
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek(&self) -> &Tok {
        &self.tok().tok
    }

    fn bump(&mut self) -> Token {
        let t = self.tok().clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn error(&self, what: &str) -> SqlError {
        let t = self.tok();
        let found = match &t.tok {
            Tok::Eof => "end of input".to_string(),
            _ => format!("'{}'", &self.src[t.start..t.end]),
        };
        SqlError {
            pos: t.pos,
            message: format!("{what}, found {found}"),
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.bump();
        }
        yes
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SqlError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {}", kw.to_uppercase())))
        }
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(x) if *x == s)
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        let yes = self.is_sym(s);
        if yes {
            self.bump();
        }
        yes
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), SqlError> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{s}'")))
        }
    }

    fn statement(&mut self) -> Result<Rule, SqlError> {
        let kind = if self.eat_kw("select") {
            RuleKind::Select(self.fields()?)
        } else if self.eat_kw("foreach") {
            let over = self.expr()?;
            let item = if self.eat_kw("as") {
                self.name()?
            } else {
                "item".to_string()
            };
            let fields = if self.eat_kw("do") {
                self.fields()?
            } else {
                Vec::new()
            };
            let incase = if self.eat_kw("incase") {
                Some(self.expr()?)
            } else {
                None
            };
            RuleKind::Foreach {
                over,
                item,
                fields,
                incase,
            }
        } else {
            return Err(self.error("expected SELECT or FOREACH"));
        };
        self.expect_kw("from")?;
        let mut from = Vec::new();
        loop {
            match self.peek().clone() {
                Tok::DqStr(s) if !s.is_empty() => {
                    self.bump();
                    from.push(s);
                }
                _ => return Err(self.error("expected a double-quoted topic filter or event")),
            }
            if !self.eat_sym(",") {
                break;
            }
        }
        let condition = if self.eat_kw("where") {
            Some(self.expr()?)
        } else {
            None
        };
        Ok(Rule {
            kind,
            from,
            condition,
        })
    }

    fn fields(&mut self) -> Result<Vec<Field>, SqlError> {
        let mut out = Vec::new();
        loop {
            if self.eat_sym("*") {
                out.push(Field::All);
            } else {
                let first = self.tok().start;
                let expr = self.expr()?;
                let last = self.toks[self.i.saturating_sub(1)].end;
                let target = if self.eat_kw("as") {
                    let mut path = vec![self.name()?];
                    while self.eat_sym(".") {
                        path.push(self.name()?);
                    }
                    path
                } else {
                    default_target(&expr, self.src.get(first..last).unwrap_or_default())
                };
                out.push(Field::Expr { expr, target });
            }
            if !self.eat_sym(",") {
                return Ok(out);
            }
        }
    }

    /// A name after AS or `.`: an identifier (keywords too), or a quoted name.
    fn name(&mut self) -> Result<String, SqlError> {
        match self.peek().clone() {
            Tok::Ident(w) | Tok::Str(w) | Tok::DqStr(w) => {
                self.bump();
                Ok(w)
            }
            _ => Err(self.error("expected a name")),
        }
    }

    fn expr(&mut self) -> Result<Expr, SqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("expression nested too deeply"));
        }
        let e = self.or();
        self.depth -= 1;
        e
    }

    fn or(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.and()?;
        while self.eat_kw("or") {
            let r = self.and()?;
            l = Expr::Bin(BinOp::Or, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.not()?;
        while self.eat_kw("and") {
            let r = self.not()?;
            l = Expr::Bin(BinOp::And, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn not(&mut self) -> Result<Expr, SqlError> {
        if self.eat_kw("not") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error("expression nested too deeply"));
            }
            let e = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, SqlError> {
        let l = self.additive()?;
        let op = match self.peek() {
            Tok::Sym("=") => BinOp::Eq,
            Tok::Sym("!=") | Tok::Sym("<>") => BinOp::Ne,
            Tok::Sym("<") => BinOp::Lt,
            Tok::Sym("<=") => BinOp::Le,
            Tok::Sym(">") => BinOp::Gt,
            Tok::Sym(">=") => BinOp::Ge,
            Tok::Sym("=~") => BinOp::TopicMatch,
            _ => {
                let negated = self.is_kw("not")
                    && matches!(self.toks.get(self.i + 1).map(|t| &t.tok),
                        Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("in"));
                if negated {
                    self.bump();
                }
                if self.eat_kw("in") {
                    self.expect_sym("(")?;
                    let list = self.args(")")?;
                    return Ok(Expr::In(Box::new(l), list, negated));
                }
                return Ok(l);
            }
        };
        self.bump();
        let r = self.additive()?;
        Ok(Expr::Bin(op, Box::new(l), Box::new(r)))
    }

    fn additive(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.multiplicative()?;
        loop {
            let op = if self.eat_sym("+") {
                BinOp::Add
            } else if self.eat_sym("-") {
                BinOp::Sub
            } else {
                return Ok(l);
            };
            let r = self.multiplicative()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.unary()?;
        loop {
            let op = if self.eat_sym("*") {
                BinOp::Mul
            } else if self.eat_sym("/") {
                BinOp::Div
            } else if self.eat_kw("div") {
                BinOp::IntDiv
            } else if self.eat_kw("mod") {
                BinOp::Mod
            } else {
                return Ok(l);
            };
            let r = self.unary()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }

    fn unary(&mut self) -> Result<Expr, SqlError> {
        if self.eat_sym("-") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error("expression nested too deeply"));
            }
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(match e {
                Expr::Lit(Value::Number(n)) if n.as_i64().is_some() => {
                    Expr::Lit(Value::from(n.as_i64().unwrap_or(0).saturating_neg()))
                }
                other => Expr::Neg(Box::new(other)),
            });
        }
        let base = self.primary()?;
        self.postfix(base)
    }

    fn postfix(&mut self, base: Expr) -> Result<Expr, SqlError> {
        let mut segs = Vec::new();
        loop {
            if self.eat_sym(".") {
                segs.push(Seg::Key(self.name()?));
            } else if self.eat_sym("[") {
                let a = self.expr()?;
                if self.eat_sym("..") {
                    let b = self.expr()?;
                    self.expect_sym("]")?;
                    segs.push(Seg::Range(Box::new(a), Box::new(b)));
                } else {
                    self.expect_sym("]")?;
                    segs.push(Seg::Index(Box::new(a)));
                }
            } else {
                break;
            }
        }
        Ok(match base {
            _ if segs.is_empty() => base,
            Expr::Path(mut p) => {
                p.extend(segs);
                Expr::Path(p)
            }
            other => Expr::Sub(Box::new(other), segs),
        })
    }

    fn primary(&mut self) -> Result<Expr, SqlError> {
        let t = self.tok().clone();
        match t.tok {
            Tok::Int(n) => {
                self.bump();
                Ok(Expr::Lit(Value::from(n)))
            }
            Tok::Float(f) => {
                self.bump();
                Ok(Expr::Lit(
                    serde_json::Number::from_f64(f)
                        .map(Value::Number)
                        .unwrap_or(Value::Null),
                ))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::Lit(Value::String(s)))
            }
            // A double-quoted text outside FROM is read as a string, as EMQX's parser does.
            Tok::DqStr(s) => {
                self.bump();
                Ok(Expr::Lit(Value::String(s)))
            }
            Tok::Sym("(") => {
                self.bump();
                let e = self.expr()?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Tok::Sym("[") => {
                self.bump();
                Ok(Expr::Array(self.args("]")?))
            }
            Tok::Ident(w) => self.ident(w, t.pos),
            _ => Err(self.error("expected an expression")),
        }
    }

    fn ident(&mut self, w: String, pos: super::Pos) -> Result<Expr, SqlError> {
        let lower = w.to_ascii_lowercase();
        match lower.as_str() {
            "true" | "false" => {
                self.bump();
                return Ok(Expr::Lit(Value::Bool(lower == "true")));
            }
            "null" | "undefined"
                if !matches!(
                    self.toks.get(self.i + 1).map(|t| &t.tok),
                    Some(Tok::Sym("("))
                ) =>
            {
                self.bump();
                return Ok(Expr::Lit(Value::Null));
            }
            "case" => {
                self.bump();
                return self.case();
            }
            _ if RESERVED.contains(&lower.as_str()) => {
                return Err(self.error("expected an expression"))
            }
            _ => {}
        }
        self.bump();
        if self.eat_sym("(") {
            let args = self.args(")")?;
            if let Err(why) = crate::funcs::check(&lower, args.len()) {
                return Err(SqlError { pos, message: why });
            }
            return Ok(Expr::Call(lower, args));
        }
        Ok(Expr::Path(vec![Seg::Key(w)]))
    }

    /// Comma-separated expressions up to `close` (already past the opener).
    fn args(&mut self, close: &str) -> Result<Vec<Expr>, SqlError> {
        let mut out = Vec::new();
        if self.eat_sym(close) {
            return Ok(out);
        }
        loop {
            out.push(self.expr()?);
            if self.eat_sym(close) {
                return Ok(out);
            }
            self.expect_sym(",")?;
        }
    }

    fn case(&mut self) -> Result<Expr, SqlError> {
        let subject = if self.is_kw("when") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        let mut whens = Vec::new();
        while self.eat_kw("when") {
            let c = self.expr()?;
            self.expect_kw("then")?;
            let v = self.expr()?;
            whens.push((c, v));
        }
        if whens.is_empty() {
            return Err(self.error("expected WHEN"));
        }
        let otherwise = if self.eat_kw("else") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_kw("end")?;
        Ok(Expr::Case {
            subject,
            whens,
            otherwise,
        })
    }
}

/// Where an unaliased field lands: a plain path keeps its keys (`payload.a` →
/// `{"payload": {"a": …}}`, as EMQX nests it), anything else is named by its source text.
fn default_target(expr: &Expr, text: &str) -> Vec<String> {
    if let Expr::Path(segs) = expr {
        let keys: Option<Vec<String>> = segs
            .iter()
            .map(|s| match s {
                Seg::Key(k) => Some(k.clone()),
                _ => None,
            })
            .collect();
        if let Some(keys) = keys {
            return keys;
        }
    }
    vec![text.trim().to_string()]
}
