//! Rule SQL: the statement forms EMQX accepts (`SELECT … FROM … [WHERE …]` and
//! `FOREACH … [DO …] [INCASE …] FROM … [WHERE …]`), parsed by hand into an [`ast::Rule`].
//!
//! Owns: the grammar, its error positions, and the check that every function named exists with
//! a usable number of arguments (EMQX finds unknown functions only when a message arrives;
//! refusing them at create time is a Switchyard choice, spec §8).
//! Must not know: how expressions are evaluated (`crate::eval`) or where events come from.

pub mod ast;
mod lexer;
mod parser;

pub use parser::parse;

use std::fmt;
use thiserror::Error;

/// A place in the SQL text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, counted in characters.
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a rule's SQL was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("syntax error at {pos}: {message}")]
pub struct SqlError {
    /// Where the parser gave up.
    pub pos: Pos,
    /// What it expected or found.
    pub message: String,
}
