//! `jq(program, value)`: runs a jq program with jaq (pure Rust) and returns the array of its
//! outputs, as EMQX's `jq/2` does. Programs are compiled per call; values cross over as JSON
//! text, which keeps us independent of jaq's value type.

use crate::eval::{bad, EvalError};
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{data, unwrap_valr, Compiler, Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;

/// Outputs past this are cut off: `jq('repeat(1)', …)` must not eat the node's memory.
const MAX_OUTPUTS: usize = 10_000;

pub(super) fn run(program: &str, input: &Value) -> Result<Value, EvalError> {
    // A JSON text as input is decoded first, as EMQX does with a payload.
    let input = match input {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| input.clone()),
        v => v.clone(),
    };
    let text = serde_json::to_string(&input).map_err(|e| bad(format!("jq: {e}")))?;
    let val = jaq_json::read::parse_single(text.as_bytes())
        .map_err(|e| bad(format!("jq: input: {e}")))?;
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(
            &arena,
            File {
                code: program,
                path: (),
            },
        )
        .map_err(|_| bad(format!("jq: cannot parse {program}")))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|_| bad(format!("jq: cannot compile {program}")))?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let mut out = Vec::new();
    for r in filter.id.run((ctx, val)).map(unwrap_valr).take(MAX_OUTPUTS) {
        let v = r.map_err(|e| bad(format!("jq: {e}")))?;
        let v: Value = serde_json::from_str(&v.to_string())
            .map_err(|e| bad(format!("jq: output is not JSON: {e}")))?;
        out.push(v);
    }
    Ok(Value::Array(out))
}
