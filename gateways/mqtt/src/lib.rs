//! The MQTT gateway: MQTT 3.1, 3.1.1 and 5.0 on one port, the version read from CONNECT.
//!
//! Owns: the wire codec ([`codec`], no I/O), the per-connection protocol state machine
//! ([`Channel`], sans-I/O), the connection driver (one tokio task per connection: socket,
//! timers, outbox wakeups, batched writes) and what runs on each listener: plain TCP, TLS, and
//! WebSocket with or without TLS, on `switchyard_net`'s accept loop (connection limit, accept
//! pacing and back-off live there, as does TLS). [`DESCRIPTOR`] is its entry in the binary's
//! gateway table.
//! Must not know: any other gateway, or how the bus routes and stores. It speaks to the engine
//! only through [`switchyard_bus::BusHandle`].

pub mod codec;

mod channel;
mod driver;
#[doc(hidden)]
pub mod fuzzing;
mod listener;
mod settings;
mod ws;

pub use channel::{codes, Channel, ConnectDecision, NAMESPACE};
pub use driver::{run_connection, run_connection_as};
pub use settings::MqttSettings;

use std::sync::Arc;
use switchyard_bus::BusHandle;
use switchyard_net::{GatewayDescriptor, ListenerKind, ListenerSpec};

/// The MQTT broker's entry in the gateway table: four listeners, `[listeners.*]` in the
/// config. Not one of EMQX's gateways, so `/api/v5/gateways` does not list it.
pub const DESCRIPTOR: GatewayDescriptor = GatewayDescriptor::new(
    "mqtt",
    NAMESPACE.0,
    "MQTT",
    &[
        ListenerSpec::default_on(ListenerKind::Tcp, 1883),
        ListenerSpec::default_on(ListenerKind::Ws, 8083),
        ListenerSpec::default_on(ListenerKind::Ssl, 8883),
        ListenerSpec::default_on(ListenerKind::Wss, 8084),
    ],
)
.not_emqx_gateway();

/// What every connection of the MQTT gateway shares.
#[derive(Debug, Clone)]
pub struct MqttGateway {
    /// The engine.
    pub bus: BusHandle,
    /// Protocol settings.
    pub settings: Arc<MqttSettings>,
}
