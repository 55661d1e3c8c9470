//! The LwM2M gateway: LwM2M 1.0/1.1 devices over CoAP/UDP, managed over MQTT with EMQX 5's JSON
//! commands and events (docs/lwm2m.md), minus EMQX's known bugs (docs/lwm2m.md §4.13).
//!
//! Owns: the data formats ([`codec`]: TLV, text, opaque, LwM2M JSON, SenML JSON/CBOR), the object
//! database ([`objects`]), the registration data ([`register`]), the command/event translation
//! ([`command`]), one device's state machine ([`channel`], sans-I/O) and the UDP driver (one
//! socket task owning the CoAP [`Transport`](switchyard_coap::transport::Transport), routing by
//! endpoint name to one task per device).
//! Must not know: any other gateway, or how the bus routes and stores.

pub mod channel;
pub mod codec;
pub mod command;
pub mod objects;
pub mod path;
pub mod register;
pub mod sim;

mod driver;
mod settings;

pub use channel::NAMESPACE;
pub use driver::serve_udp;
pub use objects::ObjectDb;
pub use settings::{render, Lwm2mSettings, Translator, UpdateCondition};

use std::sync::Arc;
use switchyard_bus::BusHandle;

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
