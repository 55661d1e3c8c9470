//! Value types with units: [`Duration`] ("30s", "2h") and [`ByteSize`] ("1MB", "64KB"),
//! the `off` serde adapter for durations that can be switched off, and the socket address
//! deserializer used by every `bind` key.
//!
//! Invariants: parsing never overflows (checked arithmetic, "too large" errors instead);
//! `Display` is the canonical spelling and parses back to the same value.
//!
//! Grammar (no compound values; "1m30s" is rejected — write "90s"):
//! - duration: `<digits>[unit]`, unit one of `ms`, `s`, `m`, `h`, `d` (lowercase); no unit
//!   means seconds. A bare TOML integer is seconds too.
//! - size: `<digits>[unit]`, unit one of `B`, `KB`, `MB`, `GB` (any case, powers of 1024); no
//!   unit means bytes. A bare TOML integer is bytes too.
//!
//! Whitespace between number and unit is allowed ("30 s"); signs and fractions are not.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a duration key accepts, for error messages.
const DURATION_EXPECTED: &str =
    "a duration like \"500ms\", \"30s\", \"1m\", \"2h\", \"1d\" or an integer number of seconds";
/// What an off-able duration key accepts, for error messages.
const OFF_DURATION_EXPECTED: &str = "a duration like \"30s\", \"1m\", \"2h\", an integer \
     number of seconds, or \"off\" / \"infinity\" / \"disabled\" / 0 to switch it off";
/// What a size key accepts, for error messages.
const SIZE_EXPECTED: &str =
    "a size like \"512B\", \"64KB\", \"1MB\", \"1GB\" or an integer number of bytes";
/// What a `bind` key accepts, for error messages.
const SOCKET_ADDR_EXPECTED: &str =
    "an IP:port socket address like \"0.0.0.0:1883\" or \"[::]:1883\"";

/// Why a duration or size string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The string was empty or only whitespace.
    #[error("empty value")]
    Empty,
    /// The string did not start with a digit (signs and fractions are not accepted).
    #[error("{0:?} must start with a whole number")]
    NoNumber(String),
    /// The suffix is not a known unit.
    #[error("{value:?} has unknown unit {unit:?} (allowed: {allowed})")]
    UnknownUnit {
        /// The whole input.
        value: String,
        /// The unrecognised suffix.
        unit: String,
        /// The units this kind of value accepts.
        allowed: &'static str,
    },
    /// The value does not fit in 64 bits (milliseconds for durations, bytes for sizes).
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Splits `"30 s"` into `(30, "s")`. Digits only: no sign, no fraction.
fn split_number(input: &str) -> Result<(u64, &str), UnitError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(UnitError::Empty);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return Err(UnitError::NoNumber(s.to_owned()));
    }
    let (digits, unit) = s.split_at(digits_end);
    let n = digits
        .parse::<u64>()
        .map_err(|_| UnitError::TooLarge(s.to_owned()))?;
    Ok((n, unit.trim_start()))
}

/// A configured span of time with millisecond resolution.
///
/// Parses from "500ms", "30s", "1m", "2h", "1d", "90" (seconds) or a bare integer of seconds;
/// displays and serializes in the largest unit that divides it exactly ("2h", "90s", "0s").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    millis: u64,
}

impl Duration {
    /// Zero length.
    pub const ZERO: Duration = Duration { millis: 0 };

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration { millis }
    }

    /// A duration of `secs` seconds, saturating at the largest representable duration.
    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            millis: secs.saturating_mul(1000),
        }
    }

    /// Whole milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// Whole seconds, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.millis / 1000
    }

    /// True for a zero-length duration.
    pub const fn is_zero(self) -> bool {
        self.millis == 0
    }

    /// The same span as a [`std::time::Duration`].
    pub const fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.as_std()
    }
}

/// Duration units, largest first so `Display` picks the largest exact one.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl FromStr for Duration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, unit) = split_number(s)?;
        let factor = match unit {
            "" => 1_000,
            _ => DURATION_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, factor)| *factor)
                .ok_or_else(|| UnitError::UnknownUnit {
                    value: s.trim().to_owned(),
                    unit: unit.to_owned(),
                    allowed: "ms, s, m, h, d",
                })?,
        };
        n.checked_mul(factor)
            .map(Duration::from_millis)
            .ok_or_else(|| UnitError::TooLarge(s.trim().to_owned()))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return f.write_str("0s");
        }
        for (name, factor) in DURATION_UNITS {
            if self.millis % factor == 0 {
                return write!(f, "{}{}", self.millis / factor, name);
            }
        }
        write!(f, "{}ms", self.millis)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Without `off_allowed` the visitor never yields `None`; zero stays zero.
        let d = deserializer.deserialize_any(DurationVisitor { off_allowed: false })?;
        Ok(d.unwrap_or(Duration::ZERO))
    }
}

/// Visits a duration; with `off_allowed`, 0 and the off words yield `None`.
struct DurationVisitor {
    off_allowed: bool,
}

impl DurationVisitor {
    fn expected(&self) -> &'static str {
        if self.off_allowed {
            OFF_DURATION_EXPECTED
        } else {
            DURATION_EXPECTED
        }
    }

    fn finish<E: de::Error>(&self, d: Duration) -> Result<Option<Duration>, E> {
        match self.off_allowed && d.is_zero() {
            true => Ok(None),
            false => Ok(Some(d)),
        }
    }
}

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Self::Value, E> {
        let millis = secs
            .checked_mul(1000)
            .ok_or_else(|| E::custom(format!("{secs} seconds is too large")))?;
        self.finish(Duration::from_millis(millis))
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Self::Value, E> {
        match u64::try_from(secs) {
            Ok(secs) => self.visit_u64(secs),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(secs), &self.expected())),
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        if self.off_allowed && is_off_word(s) {
            return Ok(None);
        }
        match s.parse::<Duration>() {
            Ok(d) => self.finish(d),
            Err(e) => Err(E::custom(format!(
                "invalid duration: {e}; expected {}",
                self.expected()
            ))),
        }
    }
}

/// Words that switch an off-able duration off. "infinity" is EMQX's spelling, "disabled" too.
fn is_off_word(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "off" | "infinity" | "disabled"
    )
}

/// Serde adapter for `Option<Duration>` keys that can be switched off.
///
/// `None` means off. It reads from "off", "infinity", "disabled", 0 or "0s" and is written
/// as "off"; `Some(d)` reads and writes like [`Duration`]. Use with
/// `#[serde(with = "crate::units::off")]`.
pub mod off {
    use super::{Duration, DurationVisitor};
    use serde::{Deserializer, Serializer};

    /// Writes `None` as "off", `Some(d)` as `d`'s canonical string.
    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.collect_str(d),
            None => s.serialize_str("off"),
        }
    }

    /// Reads a duration, mapping 0 and the off words to `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        d.deserialize_any(DurationVisitor { off_allowed: true })
    }
}

/// A configured number of bytes.
///
/// Parses from "512B", "64KB", "1MB", "1GB" (powers of 1024, any case) or a bare integer of
/// bytes; displays and serializes in the largest unit that divides it exactly ("1MB", "1000B").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// One kibibyte, written "KB".
    pub const KB: u64 = 1024;
    /// One mebibyte, written "MB".
    pub const MB: u64 = 1024 * 1024;
    /// One gibibyte, written "GB".
    pub const GB: u64 = 1024 * 1024 * 1024;

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The number of bytes as `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Size units, largest first so `Display` picks the largest exact one.
const SIZE_UNITS: [(&str, u64); 4] = [
    ("GB", ByteSize::GB),
    ("MB", ByteSize::MB),
    ("KB", ByteSize::KB),
    ("B", 1),
];

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, unit) = split_number(s)?;
        let factor = match unit {
            "" => 1,
            _ => SIZE_UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|(_, factor)| *factor)
                .ok_or_else(|| UnitError::UnknownUnit {
                    value: s.trim().to_owned(),
                    unit: unit.to_owned(),
                    allowed: "B, KB, MB, GB",
                })?,
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| UnitError::TooLarge(s.trim().to_owned()))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0B");
        }
        for (name, factor) in SIZE_UNITS {
            if self.0 % factor == 0 {
                return write!(f, "{}{}", self.0 / factor, name);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl<'de> Visitor<'de> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SIZE_EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(bytes))
    }

    fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
        u64::try_from(bytes)
            .map(ByteSize)
            .map_err(|_| E::invalid_value(Unexpected::Signed(bytes), &SIZE_EXPECTED))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
        s.parse::<ByteSize>()
            .map_err(|e| E::custom(format!("invalid size: {e}; expected {SIZE_EXPECTED}")))
    }
}

/// Deserializes a `bind` key, naming the expected form on error (serde's own message for
/// `SocketAddr` says only "invalid socket address syntax").
pub(crate) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    struct AddrVisitor;

    impl<'de> Visitor<'de> for AddrVisitor {
        type Value = SocketAddr;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(SOCKET_ADDR_EXPECTED)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<SocketAddr, E> {
            s.trim()
                .parse()
                .map_err(|_| E::invalid_value(Unexpected::Str(s), &SOCKET_ADDR_EXPECTED))
        }
    }

    d.deserialize_str(AddrVisitor)
}

#[cfg(test)]
#[path = "units_tests.rs"]
mod tests;
