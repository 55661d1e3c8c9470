//! The MQTT-SN gateway: MQTT-SN 1.2 over UDP, wire-compatible with EMQX 5's gateway
//! (docs/mqtt-sn.md, docs/gateways.md) without its known bugs (docs/mqtt-sn.md §2.17).
//!
//! Owns: the wire codec ([`codec`], no I/O), the per-client protocol state machine
//! ([`Channel`], sans-I/O: packets in, packets out, `now` passed in), the per-client driver
//! task, and the UDP listener that demultiplexes datagrams to clients by client id (so a new
//! source address or port for a known client id rebinds instead of creating a stranger), answers
//! the connectionless messages (SEARCHGW, QoS −1 PUBLISH, DISCONNECT before CONNECT) itself, and
//! sends ADVERTISE when broadcasting.
//! Must not know: any other gateway, or how the bus routes and stores; it speaks to the engine
//! only through [`switchyard_bus::BusHandle`], in its own client-id namespace [`NAMESPACE`].

pub mod codec;

mod channel;
mod driver;
mod listener;
mod recv;
mod registry;
mod settings;

pub use channel::{Channel, NAMESPACE};
pub use listener::{bind_udp, serve_udp, ListenerLimits};
pub use registry::{Predefined, TopicRegistry, FIRST_DYNAMIC_ID, MAX_PREDEFINED_ID};
pub use settings::MqttSnSettings;

use std::sync::Arc;
use switchyard_bus::BusHandle;

/// What every client of the MQTT-SN gateway shares.
#[derive(Debug, Clone)]
pub struct MqttSnGateway {
    /// The engine.
    pub bus: BusHandle,
    /// Protocol settings.
    pub settings: Arc<MqttSnSettings>,
}
