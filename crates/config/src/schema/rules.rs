//! `[rule_engine]`, `[connectors.<type>.<name>]` and `[actions.<type>.<name>]`: rules and
//! sinks defined in the config file, with the keys of EMQX's data-integration API
//! (specs/emqx-data-integration-api.md §9), so an EMQX config translates key for key.
//!
//! The rule engine (`switchyard-rules`) checks these at start-up like an API body: a bad SQL
//! statement (with its line and column), an unknown key inside a connector or an action, or an
//! action naming a missing connector stops the node with the key's path. Objects made through
//! `/api/v5` with the same id take precedence.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[rule_engine]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleEngineConfig {
    /// Whether `SELECT … FROM "#"` skips `$SYS/…` messages. Default true.
    pub ignore_sys_message: bool,
    /// `[rule_engine.rules.<id>]`: rules by id.
    pub rules: BTreeMap<String, RuleConfig>,
}

impl Default for RuleEngineConfig {
    fn default() -> Self {
        RuleEngineConfig {
            ignore_sys_message: true,
            rules: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// `[rule_engine.rules.<id>]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule SQL. Required.
    pub sql: String,
    /// Actions: `"http:<name>"` strings or `{function = "republish", args = {…}}` /
    /// `{function = "console"}` tables. Default none.
    #[serde(default)]
    pub actions: Vec<toml::Value>,
    /// Whether the rule runs. Default true.
    #[serde(default = "yes")]
    pub enable: bool,
    /// Display name. Default "".
    #[serde(default)]
    pub name: String,
    /// Description. Default "".
    #[serde(default)]
    pub description: String,
}

/// `[connectors.<type>.<name>]`: only `http` today. Each is a table of the connector's keys
/// (`url`, `headers`, `connect_timeout`, `pool_size`, `ssl`, `resource_opts`, …), checked by the
/// rule engine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorsConfig {
    /// `[connectors.http.<name>]`: webhook connectors.
    pub http: BTreeMap<String, toml::Table>,
}

/// `[actions.<type>.<name>]`: only `http` today (`connector`, `parameters`,
/// `resource_opts`, `enable`, …), checked by the rule engine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// `[actions.http.<name>]`: webhook actions.
    pub http: BTreeMap<String, toml::Table>,
}
