//! Loading: compiled-in defaults < TOML file < `SWITCHYARD_*` environment variables, then
//! [`Config::validate`]. Also [`to_toml`], the inverse used by `switchyard print-config`.
//!
//! The environment is passed in as pairs rather than read inside, so tests inject variables
//! without touching the process environment. Variable names: `SWITCHYARD_` then the key path
//! with `__` between levels, any case (`SWITCHYARD_MQTT__MAX_INFLIGHT=10`). Values are read
//! like figment's `Env` does: "10" is an integer, "true" a boolean, "1.5" a float, anything
//! else a string ("30s", "1MB", "127.0.0.1:1883"), and durations and sizes accept both forms.
//! A string key whose value looks like a number or boolean needs TOML quotes inside the
//! variable: `SWITCHYARD_NODE__DATA_DIR='"2024"'`.
//! Every `SWITCHYARD_*` variable is configuration: one that names no key is an error, exactly
//! like a misspelt key in the file.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::error::{ConfigError, ENV_METADATA_NAME};
use crate::schema::Config;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SWITCHYARD_";
/// Separator between key levels in an environment variable name.
pub const ENV_SEPARATOR: &str = "__";
/// The file [`load`] reads when no path is given, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/switchyard.toml";

/// Loads the configuration: defaults, then the TOML file, then `SWITCHYARD_*` variables from
/// the process environment, then validation.
///
/// `path = None` reads [`DEFAULT_PATH`] if it exists and otherwise uses compiled-in defaults;
/// an explicit path that does not exist is [`ConfigError::NotFound`].
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let env = std::env::vars_os().filter_map(|(name, value)| {
        let name = name.into_string().ok()?;
        has_prefix(&name).then(|| (name, value.to_string_lossy().into_owned()))
    });
    load_from(path, env)
}

/// [`load`] with the environment given as `(name, value)` pairs; names without the
/// `SWITCHYARD_` prefix are ignored.
pub fn load_from(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(file) = resolve_path(path)? {
        figment = figment.merge(Toml::file_exact(file));
    }
    extract(figment.merge(EnvVars::new(env)))
}

/// Parses TOML text layered over the defaults (no file, no environment) and validates it.
pub fn from_toml_str(toml: &str) -> Result<Config, ConfigError> {
    extract(Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml)))
}

/// The file [`load`] would read for `path`: the path itself (which must exist), else
/// [`DEFAULT_PATH`] if present, else none.
pub fn resolve_path(path: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    match path {
        Some(path) if path.is_file() => Ok(Some(path.to_owned())),
        Some(path) => Err(ConfigError::NotFound(path.to_owned())),
        None => Ok(Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.is_file())),
    }
}

/// The configuration as TOML, every key present; [`from_toml_str`] reads it back to an equal
/// `Config`.
pub fn to_toml(config: &Config) -> String {
    // Every field is a string, number, bool or table, all of which TOML can hold.
    toml::to_string(config).unwrap_or_else(|e| format!("# cannot print configuration: {e}\n"))
}

fn extract(figment: Figment) -> Result<Config, ConfigError> {
    let config: Config = figment.extract()?;
    config.validate()?;
    Ok(config)
}

fn has_prefix(name: &str) -> bool {
    name.get(..ENV_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
}

/// A figment provider over given `SWITCHYARD_*` variables, mirroring figment's
/// `Env::prefixed(ENV_PREFIX).split(ENV_SEPARATOR)` but without reading the process
/// environment.
struct EnvVars {
    /// `(variable name, key path below the prefix, value)`.
    vars: Vec<(String, Vec<String>, String)>,
}

impl EnvVars {
    fn new(env: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars = env
            .into_iter()
            .filter(|(name, _)| has_prefix(name))
            .map(|(name, value)| {
                let path = name[ENV_PREFIX.len()..]
                    .split(ENV_SEPARATOR)
                    .map(|s| s.to_ascii_lowercase())
                    .collect();
                (name, path, value)
            })
            .collect();
        EnvVars { vars }
    }
}

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_METADATA_NAME).interpolater(|_, keys| {
            let upper: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
            format!("{ENV_PREFIX}{}", upper.join(ENV_SEPARATOR))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (name, path, value) in &self.vars {
            if path.iter().any(String::is_empty) {
                return Err(figment::Error::from(format!(
                    "environment variable {name}: empty key level; \
                     expected {ENV_PREFIX}SECTION{ENV_SEPARATOR}KEY"
                )));
            }
            let value = match value.parse::<Value>() {
                Ok(value) => value,
                Err(never) => match never {},
            };
            insert(&mut root, path, value).map_err(|prefix| {
                figment::Error::from(format!(
                    "environment variable {name}: {prefix} is set both as a value and as a \
                     table of keys by different variables"
                ))
            })?;
        }
        Ok(Profile::Default.collect(root))
    }
}

/// Inserts `value` at `path` below `dict`, creating tables on the way. `Err` carries the
/// dotted prefix where one variable sets a value and another sets keys below it.
fn insert(dict: &mut Dict, path: &[String], value: Value) -> Result<(), String> {
    match path {
        [] => Ok(()),
        [last] => match dict.get(last) {
            Some(Value::Dict(..)) => Err(last.clone()),
            _ => {
                dict.insert(last.clone(), value);
                Ok(())
            }
        },
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            match entry {
                Value::Dict(_, inner) => {
                    insert(inner, rest, value).map_err(|p| format!("{first}.{p}"))
                }
                _ => Err(first.clone()),
            }
        }
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
