//! The LwM2M gateway: LwM2M 1.0/1.1 devices over CoAP/UDP, managed over MQTT with EMQX 5's JSON
//! commands and events (docs/lwm2m.md), minus EMQX's known bugs (docs/lwm2m.md §4.13).
//!
//! Owns: the data formats ([`codec`]: TLV, text, opaque, LwM2M JSON, SenML JSON/CBOR), the object
//! database ([`objects`]), the registration data ([`register`]), the command/event translation
//! ([`command`]), one device's state machine ([`channel`], sans-I/O) and what the shared UDP
//! driver of `switchyard_coap_transport::demux` needs to know of LwM2M (`driver`: routing by
//! endpoint name to one task per device, only a Register creates one). The CoAP message layer
//! is `switchyard-coap-transport`; its socket and admission limits come from `switchyard_net`;
//! [`DESCRIPTOR`] is its entry in the binary's gateway table.
//! Must not know: any other gateway, or how the bus routes and stores.

pub mod channel;
pub mod codec;
pub mod command;
#[doc(hidden)]
pub mod fuzzing;
pub mod objects;
pub mod path;
pub mod register;
pub mod sim;

mod driver;
mod settings;

pub use channel::NAMESPACE;
pub use objects::ObjectDb;
pub use settings::{render, Lwm2mSettings, Translator, UpdateCondition};

use std::sync::Arc;
use switchyard_bus::BusHandle;
use switchyard_coap_transport::demux;
use switchyard_net::GatewayDescriptor;

/// The LwM2M gateway's entry in the gateway table: `[gateway.lwm2m]`, the CoAP demux's UDP
/// listener on 5783 and its DTLS listener on 5784 (off by default). The table serves it as
/// `demux::UdpDemux(Lwm2mGateway)`.
pub const DESCRIPTOR: GatewayDescriptor = GatewayDescriptor::new(
    "lwm2m",
    NAMESPACE.0,
    "LwM2M",
    &[demux::listener(5783), demux::dtls_listener(5784)],
);

/// What every device of the LwM2M gateway shares.
#[derive(Debug, Clone)]
pub struct Lwm2mGateway {
    /// The engine.
    pub bus: BusHandle,
    /// Protocol settings.
    pub settings: Arc<Lwm2mSettings>,
    /// Object definitions.
    pub objects: Arc<ObjectDb>,
}
