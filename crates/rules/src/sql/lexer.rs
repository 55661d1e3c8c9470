//! Rule SQL tokens. The lexer owns character-level concerns (quotes, numbers, comments,
//! keywords are case-insensitive) and gives every token the line and column where it starts, so
//! the parser can say where it gave up.

use super::{Pos, SqlError};

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name: column, function, alias or keyword (keywords are recognised by the parser,
    /// case-insensitively, so `value` or `end` can still be path segments where unambiguous).
    Ident(String),
    /// `'text'`: a string literal (`''` inside is one quote).
    Str(String),
    /// `"text"`: a FROM entry (topic filter or event) or a quoted name.
    DqStr(String),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// Punctuation and operators.
    Sym(&'static str),
    /// End of input.
    Eof,
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub tok: Tok,
    /// Where it starts.
    pub pos: Pos,
    /// Byte offset of its start in the source (used to name unaliased fields by their text).
    pub start: usize,
    /// Byte offset just past its end.
    pub end: usize,
}

// Longest first, so `<=` wins over `<`.
const SYMBOLS: &[&str] = &[
    "=~", "<=", ">=", "<>", "!=", "..", "=", "<", ">", "+", "-", "*", "/", "(", ")", "[", "]", ",",
    ".", "{", "}", ":",
];

/// Splits `src` into tokens; the last one is [`Tok::Eof`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, SqlError> {
    let mut out = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    let mut line = 1u32;
    let mut line_start = 0usize;
    let pos_at = |i: usize, line: u32, line_start: usize| Pos {
        line,
        column: src[line_start..i].chars().count() as u32 + 1,
    };
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            i += 1;
            line += 1;
            line_start = i;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // `--` starts a comment up to the end of the line (EMQX rule SQL).
        if src[i..].starts_with("--") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let pos = pos_at(i, line, line_start);
        let start = i;
        let tok = if c == b'\'' || c == b'"' {
            let (text, next, newlines, last_nl) = quoted(src, i, c).ok_or_else(|| SqlError {
                pos,
                message: "unterminated string".into(),
            })?;
            if newlines > 0 {
                line += newlines;
                line_start = last_nl + 1;
            }
            i = next;
            if c == b'\'' {
                Tok::Str(text)
            } else {
                Tok::DqStr(text)
            }
        } else if c.is_ascii_digit() {
            let (tok, next) = number(src, i).ok_or_else(|| SqlError {
                pos,
                message: "malformed number".into(),
            })?;
            i = next;
            tok
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            let word = src[i..j].to_string();
            i = j;
            Tok::Ident(word)
        } else if let Some(s) = SYMBOLS.iter().find(|s| src[i..].starts_with(**s)) {
            i += s.len();
            Tok::Sym(s)
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(SqlError {
                pos,
                message: format!("unexpected character '{ch}'"),
            });
        };
        out.push(Token {
            tok,
            pos,
            start,
            end: i,
        });
    }
    let pos = pos_at(src.len(), line, line_start);
    out.push(Token {
        tok: Tok::Eof,
        pos,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

/// A quoted text starting at `i` (the quote); a doubled quote or a backslash escapes the quote.
/// Returns the text, the index after the closing quote, how many newlines it held and the index
/// of the last one.
fn quoted(src: &str, i: usize, q: u8) -> Option<(String, usize, u32, usize)> {
    let bytes = src.as_bytes();
    let mut text = String::new();
    let mut j = i + 1;
    let mut newlines = 0;
    let mut last_nl = 0;
    let mut seg = j;
    while j < bytes.len() {
        let b = bytes[j];
        if b == b'\\' && j + 1 < bytes.len() && bytes[j + 1] == q {
            text.push_str(&src[seg..j]);
            text.push(q as char);
            j += 2;
            seg = j;
            continue;
        }
        if b == q {
            if j + 1 < bytes.len() && bytes[j + 1] == q {
                text.push_str(&src[seg..=j]);
                j += 2;
                seg = j;
                continue;
            }
            text.push_str(&src[seg..j]);
            return Some((text, j + 1, newlines, last_nl));
        }
        if b == b'\n' {
            newlines += 1;
            last_nl = j;
        }
        j += 1;
    }
    None
}

/// A number at `i`: digits, an optional fraction and exponent; `1..3` is a range, not `1.`.
fn number(src: &str, i: usize) -> Option<(Tok, usize)> {
    let bytes = src.as_bytes();
    let mut j = i;
    while j < bytes.len() && bytes[j].is_ascii_digit() {
        j += 1;
    }
    let mut float = false;
    if j + 1 < bytes.len() && bytes[j] == b'.' && bytes[j + 1].is_ascii_digit() {
        float = true;
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
    }
    if j < bytes.len() && (bytes[j] == b'e' || bytes[j] == b'E') {
        let mut k = j + 1;
        if k < bytes.len() && (bytes[k] == b'+' || bytes[k] == b'-') {
            k += 1;
        }
        if k < bytes.len() && bytes[k].is_ascii_digit() {
            float = true;
            j = k;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
        }
    }
    let text = &src[i..j];
    let tok = if float {
        Tok::Float(text.parse().ok()?)
    } else {
        match text.parse::<i64>() {
            Ok(n) => Tok::Int(n),
            Err(_) => Tok::Float(text.parse().ok()?),
        }
    };
    Some((tok, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s)
            .map(|v| v.into_iter().map(|t| t.tok).collect())
            .unwrap_or_default()
    }

    #[test]
    fn symbols_numbers_strings() {
        assert_eq!(
            toks("a.b[1..3] <= 'it''s' \"t/#\" 1.5e2 -- comment"),
            vec![
                Tok::Ident("a".into()),
                Tok::Sym("."),
                Tok::Ident("b".into()),
                Tok::Sym("["),
                Tok::Int(1),
                Tok::Sym(".."),
                Tok::Int(3),
                Tok::Sym("]"),
                Tok::Sym("<="),
                Tok::Str("it's".into()),
                Tok::DqStr("t/#".into()),
                Tok::Float(150.0),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn positions_count_lines_and_columns() {
        let t = tokenize("SELECT\n  x").unwrap_or_default();
        assert_eq!(t[1].pos, Pos { line: 2, column: 3 });
        let e = tokenize("SELECT 'abc").err();
        assert_eq!(e.map(|e| e.pos), Some(Pos { line: 1, column: 8 }));
        let e = tokenize("SELECT\n #").err();
        assert_eq!(e.map(|e| e.pos), Some(Pos { line: 2, column: 2 }));
    }
}
