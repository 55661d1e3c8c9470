//! Starts the rule engine (`switchyard-rules`) for this node: the rules, connectors and
//! actions of the config file, then those made through the API (kept in the API-state store).
//!
//! Owns: turning the config file's tables into the engine's JSON bodies, and naming the config
//! key of a bad one in the start-up error.

use anyhow::Context;
use serde_json::Value;
use std::sync::Arc;
use switchyard_bus::BusHandle;
use switchyard_config::Config;
use switchyard_rules::RuleEngine;
use switchyard_state::SharedState;
use tokio_util::sync::CancellationToken;

/// The engine, loaded and listening on `bus`.
pub fn open(
    config: &Config,
    bus: &BusHandle,
    state: &SharedState,
    cancel: CancellationToken,
) -> anyhow::Result<Arc<RuleEngine>> {
    let engine = RuleEngine::new(
        bus.clone(),
        &config.node.name,
        Some(state.clone()),
        config.rule_engine.ignore_sys_message,
        cancel,
    );
    let rules = config
        .rule_engine
        .rules
        .iter()
        .map(|(id, r)| (id.clone(), serde_json::to_value(r).unwrap_or(Value::Null)))
        .collect();
    let connectors = config
        .connectors
        .http
        .iter()
        .map(|(n, c)| (n.clone(), serde_json::to_value(c).unwrap_or(Value::Null)))
        .collect();
    let actions = config
        .actions
        .http
        .iter()
        .map(|(n, a)| (n.clone(), serde_json::to_value(a).unwrap_or(Value::Null)))
        .collect();
    engine
        .load(rules, connectors, actions)
        .context("[rule_engine], [connectors] or [actions]")?;
    engine.attach();
    Ok(engine)
}
