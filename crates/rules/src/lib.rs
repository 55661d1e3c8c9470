//! The rule engine (EMQX's "data integration"): rule SQL over the bus's messages and client
//! events, and the actions that send what a rule selects on — republish, console, HTTP webhooks.
//!
//! Owns: the rule SQL parser and evaluator (`sql`, `eval`, `funcs`), `${…}` templates, the
//! rules, connectors and actions an operator defines, their metrics and status, and the sinks'
//! buffers and workers.
//! Must not know: any protocol or socket of a gateway. Events arrive through the bus's
//! protocol-free event tap (`switchyard_bus::EventTap`); what a client spoke is only the event's
//! `proto_name` column.

pub mod columns;
pub mod engine;
pub mod eval;
pub mod funcs;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod model;
pub mod republish;
pub mod sql;
pub mod template;

pub use engine::{ActionStat, RuleEngine, RuleStat, RulesError, TestError};
pub use eval::{run, EvalError, Outcome};
pub use sql::{parse, Pos, SqlError};
