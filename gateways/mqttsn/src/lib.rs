//! The MQTT-SN gateway: MQTT-SN 1.2 over UDP, wire-compatible with EMQX 5's gateway
//! (docs/mqtt-sn.md, docs/gateways.md) without its known bugs (docs/mqtt-sn.md §2.17).
//!
//! Owns: the wire codec ([`codec`], no I/O), the per-client protocol state machine
//! ([`Channel`], sans-I/O: packets in, packets out, `now` passed in), the per-client driver
//! task, and the UDP listener that demultiplexes datagrams to clients by client id (so a new
//! source address or port for a known client id rebinds instead of creating a stranger), answers
//! the connectionless messages (SEARCHGW, QoS −1 PUBLISH, DISCONNECT before CONNECT) itself, and
//! sends ADVERTISE when broadcasting. Its sockets and admission limits come from
//! `switchyard_net`; [`DESCRIPTOR`] is its entry in the binary's gateway table.
//! Must not know: any other gateway, or how the bus routes and stores; it speaks to the engine
//! only through [`switchyard_bus::BusHandle`], in its own client-id namespace [`NAMESPACE`].

pub mod codec;

mod channel;
mod driver;
#[doc(hidden)]
pub mod fuzzing;
mod listener;
mod recv;
mod registry;
mod settings;

pub use channel::{Channel, NAMESPACE};
pub use registry::{Predefined, TopicRegistry, FIRST_DYNAMIC_ID, MAX_PREDEFINED_ID};
pub use settings::MqttSnSettings;

use std::sync::Arc;
use switchyard_bus::BusHandle;
use switchyard_net::{GatewayDescriptor, ListenerKind, ListenerSpec};

/// The MQTT-SN gateway's entry in the gateway table: `[gateway.mqttsn]`, a UDP listener on 1884
/// and a DTLS listener on 1885 (off by default), each with one socket per core. Served through [`switchyard_net::Gateway`].
pub const DESCRIPTOR: GatewayDescriptor = GatewayDescriptor::new(
    "mqttsn",
    NAMESPACE.0,
    "MQTT-SN",
    &[
        ListenerSpec::default_on(ListenerKind::Udp, 1884).per_core(),
        ListenerSpec::default_on(ListenerKind::Dtls, 1885).per_core(),
    ],
);

/// What every client of the MQTT-SN gateway shares.
#[derive(Debug, Clone)]
pub struct MqttSnGateway {
    /// The engine.
    pub bus: BusHandle,
    /// Protocol settings.
    pub settings: Arc<MqttSnSettings>,
}
