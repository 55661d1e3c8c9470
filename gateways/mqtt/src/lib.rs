//! The MQTT gateway: MQTT 3.1, 3.1.1 and 5.0 on one port, the version read from CONNECT.
//!
//! Owns: the wire codec ([`codec`], no I/O), the per-connection protocol state machine
//! ([`Channel`], sans-I/O), the connection driver (one tokio task per connection: socket,
//! timers, outbox wakeups, batched writes) and the TCP listener (connection limit, accept
//! pacing, accept back-off), plain, over TLS, and over WebSocket with or without TLS.
//! Must not know: any other gateway, or how the bus routes and stores. It speaks to the engine
//! only through [`switchyard_bus::BusHandle`].

pub mod codec;

mod channel;
mod conn_rate;
mod driver;
mod listener;
mod settings;
pub mod tls;
mod tls_listener;
mod ws;

pub use channel::{codes, Channel, ConnectDecision, NAMESPACE};
pub use driver::{run_connection, run_connection_as};
pub use listener::{serve_tcp, serve_ws, ListenerLimits};
pub use settings::MqttSettings;
pub use tls_listener::{serve_tls, serve_wss, TlsListener};

use std::sync::Arc;
use switchyard_bus::BusHandle;

/// What every connection of the MQTT gateway shares.
#[derive(Debug, Clone)]
pub struct MqttGateway {
    /// The engine.
    pub bus: BusHandle,
    /// Protocol settings.
    pub settings: Arc<MqttSettings>,
}
