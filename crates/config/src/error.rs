//! [`ConfigError`]: everything that can stop a configuration from loading, each problem
//! located by its dotted key path (`mqtt.max_inflight`) and, where known, the file or
//! environment variable the bad value came from.

use std::fmt;
use std::path::PathBuf;

use figment::error::{Kind, OneOf};

/// Metadata name of the environment provider in `load`; its interpolater turns a key path
/// into the variable name.
pub(crate) const ENV_METADATA_NAME: &str = "environment variable";

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted key path such as "mqtt.max_inflight"; empty for a whole-file problem
    /// (TOML syntax).
    pub key: String,
    /// What is wrong, and what was expected.
    pub message: String,
    /// Where the value came from ("TOML file config/switchyard.toml", "environment variable
    /// SWITCHYARD_MQTT__MAX_INFLIGHT"), when known.
    pub origin: Option<String>,
}

impl Issue {
    /// A problem with `key` found after extraction, by validation.
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            key: key.into(),
            message: message.into(),
            origin: None,
        }
    }

    /// Converts one figment error (not its chain) into an issue.
    fn from_figment(error: &figment::Error) -> Self {
        let mut path = error.path.clone();
        let message = match &error.kind {
            // figment's path ends with the unknown field for nested tables but not at the top
            // level; name the field itself either way.
            Kind::UnknownField(field, expected) => {
                if path.last() != Some(field) {
                    path.push(field.clone());
                }
                format!("unknown key, expected {}", OneOf(expected))
            }
            Kind::UnknownVariant(found, expected) => {
                format!("unknown value {found:?}, expected {}", OneOf(expected))
            }
            Kind::InvalidType(found, expected) => {
                format!(
                    "invalid type: found {found}, expected {}",
                    friendly(expected)
                )
            }
            Kind::InvalidValue(found, expected) => {
                format!("invalid value {found}, expected {}", friendly(expected))
            }
            // TOML syntax errors end with a newline; the origin follows on the same line.
            other => other.to_string().trim_end().to_owned(),
        };
        let origin = error
            .metadata
            .as_ref()
            .map(|md| match (&md.source, &error.profile) {
                (Some(source), _) => format!("{} {}", md.name, source),
                // Only our environment provider interpolates a key into a useful name.
                (None, Some(profile)) if md.name == ENV_METADATA_NAME && !path.is_empty() => {
                    format!("{} {}", md.name, md.interpolate(profile, &path))
                }
                (None, _) => md.name.to_string(),
            });
        Issue {
            key: path.join("."),
            message,
            origin,
        }
    }
}

/// serde names integer types ("u16"); say the range instead.
fn friendly(expected: &str) -> String {
    match expected {
        "u8" => "an integer 0..=255".to_owned(),
        "u16" => "an integer 0..=65535".to_owned(),
        "u32" => "an integer 0..=4294967295".to_owned(),
        "u64" => "an integer 0..=18446744073709551615".to_owned(),
        "f64" => "a number".to_owned(),
        other => other.to_owned(),
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(origin) = &self.origin {
            write!(f, " (in {origin})")?;
        }
        Ok(())
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file named explicitly does not exist.
    #[error("config file {} not found", .0.display())]
    NotFound(PathBuf),
    /// Some file or environment value could not be read into the schema: TOML syntax, an
    /// unknown key, a value of the wrong type or form.
    #[error("invalid configuration:{}", IssueList(.0))]
    Parse(Vec<Issue>),
    /// Every value was well-formed but some are out of range or contradict each other.
    #[error("invalid configuration:{}", IssueList(.0))]
    Invalid(Vec<Issue>),
}

impl ConfigError {
    /// The individual problems (empty for [`ConfigError::NotFound`]).
    pub fn issues(&self) -> &[Issue] {
        match self {
            ConfigError::NotFound(_) => &[],
            ConfigError::Parse(issues) | ConfigError::Invalid(issues) => issues,
        }
    }
}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        ConfigError::Parse(error.into_iter().map(|e| Issue::from_figment(&e)).collect())
    }
}

/// Formats issues after "invalid configuration:": inline when there is one, one per line
/// otherwise.
struct IssueList<'a>(&'a [Issue]);

impl fmt::Display for IssueList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, " {one}"),
            many => many.iter().try_for_each(|issue| write!(f, "\n  {issue}")),
        }
    }
}
