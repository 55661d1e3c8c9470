//! Identities: client ids as clients send them, packet ids, and the bus's own session ids.

use bytestring::ByteString;
use std::fmt;
use std::num::NonZeroU16;

/// A client identifier as the client (or the gateway, when assigned) names itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(ByteString);

impl ClientId {
    /// Wraps an already-UTF-8 identifier. Any string is legal here; length and character rules
    /// are the gateway's business because they differ per protocol.
    pub fn new(s: impl Into<ByteString>) -> Self {
        ClientId(s.into())
    }
    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether the client sent no identifier.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ClientId {
    fn from(s: &str) -> Self {
        ClientId(ByteString::from(s))
    }
}

/// A non-zero packet identifier (MQTT-2.3.1-1: packet id 0 is not allowed).
pub type PacketId = NonZeroU16;

/// The bus's identity for one session, stable across reconnects of a persistent session and
/// never reused within a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}
