//! Switchyard's configuration: the schema (serde structs mirroring `config/switchyard.toml`),
//! loading (compiled-in defaults < TOML file < `SWITCHYARD_*` environment variables, via
//! figment), validation, and printing back to TOML.
//!
//! This crate owns the shape and the meaning of every key and nothing else: it must not know
//! tokio or any protocol behaviour. Invariants:
//! - every table is `#[serde(deny_unknown_fields, default)]`: a misspelt key is an error that
//!   names it, and a file holds only the keys it changes;
//! - `Config::default()` is the documented default and equals the shipped
//!   `config/switchyard.toml` (tested);
//! - `from_toml_str(&to_toml(&c)) == Ok(c)` for every valid `c` (tested for the defaults);
//! - a loaded `Config` has passed [`Config::validate`].
//!
//! Units: durations are [`Duration`] ("30s", "2h", or integer seconds), sizes [`ByteSize`]
//! ("1MB", or integer bytes); a duration that can be switched off is `Option<Duration>`,
//! `None` = off, written "off" (also read from "infinity", "disabled" and 0).
//!
//! ```
//! let config = switchyard_config::from_toml_str("[mqtt]\nmax_inflight = 10").unwrap();
//! assert_eq!(config.mqtt.max_inflight, 10);
//! assert_eq!(config.listeners.tcp.default.bind.port(), 1883);
//! assert_eq!(config.mqtt.retry_interval, None); // off
//! ```

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod load;
mod schema;
pub mod units;
mod validate;

pub use error::{ConfigError, Issue};
pub use load::{
    from_toml_str, load, load_from, resolve_path, to_toml, DEFAULT_PATH, ENV_PREFIX, ENV_SEPARATOR,
};
pub use schema::*;
pub use units::{ByteSize, Duration, UnitError};
