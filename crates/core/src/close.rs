//! Why a connection ended: exactly one reason per connection, logged once and counted once.

/// The single reason a connection closed. Its [`CloseReason::as_str`] is the log field and the
/// metrics label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a normal DISCONNECT.
    ClientDisconnect,
    /// The client sent DISCONNECT asking for its will to be published (MQTT 5 reason 0x04).
    ClientDisconnectWithWill,
    /// The peer closed the socket without a DISCONNECT.
    PeerClosed,
    /// No packet within 1.5 × keepalive (MQTT-3.1.2-24).
    KeepaliveTimeout,
    /// Another connection took over this client id (MQTT-3.1.4-2).
    Takeover,
    /// The server is shutting down.
    ServerShutdown,
    /// An operator kicked the client.
    Kicked,
    /// The peer sent bytes that do not parse; the text names the rule broken.
    Malformed(String),
    /// The peer broke a protocol rule with a well-formed packet.
    ProtocolError(String),
    /// A packet larger than the configured maximum.
    PacketTooLarge,
    /// The handshake did not complete in time.
    ConnectTimeout,
    /// Authentication refused the client.
    NotAuthorized,
    /// Socket error.
    Io(String),
    /// Handling the client's input failed inside the server (a contained panic); the text says
    /// what failed. The client is closed so the task it shared with others can go on.
    InternalError(String),
}

impl CloseReason {
    /// Short stable label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseReason::ClientDisconnect => "client_disconnect",
            CloseReason::ClientDisconnectWithWill => "client_disconnect_with_will",
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::KeepaliveTimeout => "keepalive_timeout",
            CloseReason::Takeover => "takeover",
            CloseReason::ServerShutdown => "server_shutdown",
            CloseReason::Kicked => "kicked",
            CloseReason::Malformed(_) => "malformed_packet",
            CloseReason::ProtocolError(_) => "protocol_error",
            CloseReason::PacketTooLarge => "packet_too_large",
            CloseReason::ConnectTimeout => "connect_timeout",
            CloseReason::NotAuthorized => "not_authorized",
            CloseReason::Io(_) => "io_error",
            CloseReason::InternalError(_) => "internal_error",
        }
    }

    /// Whether the will message is published for this close (MQTT-3.1.2-8: every close except a
    /// normal DISCONNECT; MQTT 5 §3.14.2.1 reason 0x04 asks for it explicitly).
    pub fn publishes_will(&self) -> bool {
        !matches!(self, CloseReason::ClientDisconnect)
    }

    /// Extra detail for the log line, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            CloseReason::Malformed(s)
            | CloseReason::ProtocolError(s)
            | CloseReason::Io(s)
            | CloseReason::InternalError(s) => Some(s),
            _ => None,
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.detail() {
            Some(d) => write!(f, "{}: {}", self.as_str(), d),
            None => f.write_str(self.as_str()),
        }
    }
}
