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
    /// Every label [`CloseReason::as_str`] returns, in [`CloseReason::index`] order, so metrics
    /// can keep one counter per reason in a plain array.
    pub const LABELS: [&'static str; 14] = [
        "client_disconnect",
        "client_disconnect_with_will",
        "peer_closed",
        "keepalive_timeout",
        "takeover",
        "server_shutdown",
        "kicked",
        "malformed_packet",
        "protocol_error",
        "packet_too_large",
        "connect_timeout",
        "not_authorized",
        "io_error",
        "internal_error",
    ];

    /// This reason's position in [`CloseReason::LABELS`].
    pub fn index(&self) -> usize {
        match self {
            CloseReason::ClientDisconnect => 0,
            CloseReason::ClientDisconnectWithWill => 1,
            CloseReason::PeerClosed => 2,
            CloseReason::KeepaliveTimeout => 3,
            CloseReason::Takeover => 4,
            CloseReason::ServerShutdown => 5,
            CloseReason::Kicked => 6,
            CloseReason::Malformed(_) => 7,
            CloseReason::ProtocolError(_) => 8,
            CloseReason::PacketTooLarge => 9,
            CloseReason::ConnectTimeout => 10,
            CloseReason::NotAuthorized => 11,
            CloseReason::Io(_) => 12,
            CloseReason::InternalError(_) => 13,
        }
    }

    /// Short stable label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        Self::LABELS[self.index()]
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

#[cfg(test)]
mod tests {
    use super::CloseReason;

    #[test]
    fn every_reason_has_its_own_label() {
        let all = [
            CloseReason::ClientDisconnect,
            CloseReason::ClientDisconnectWithWill,
            CloseReason::PeerClosed,
            CloseReason::KeepaliveTimeout,
            CloseReason::Takeover,
            CloseReason::ServerShutdown,
            CloseReason::Kicked,
            CloseReason::Malformed(String::new()),
            CloseReason::ProtocolError(String::new()),
            CloseReason::PacketTooLarge,
            CloseReason::ConnectTimeout,
            CloseReason::NotAuthorized,
            CloseReason::Io(String::new()),
            CloseReason::InternalError(String::new()),
        ];
        assert_eq!(all.len(), CloseReason::LABELS.len());
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(r.as_str(), CloseReason::LABELS[i]);
        }
    }
}
