//! The LwM2M gateway: LwM2M 1.0/1.1 devices over CoAP/UDP, managed over MQTT with EMQX 5's JSON
//! commands and events (docs/lwm2m.md), minus EMQX's known bugs (docs/lwm2m.md §4.13).
//!
//! Owns: the data formats ([`codec`]: TLV, text, opaque, LwM2M JSON, SenML JSON/CBOR), the object
//! database ([`objects`]), the registration data ([`register`]), the command/event translation
//! ([`command`]), one device's state machine ([`channel`], sans-I/O) and the UDP driver (one
//! socket task owning the CoAP [`Transport`](switchyard_coap::transport::Transport), routing by
//! endpoint name to one task per device). Its socket and admission limits come from
//! `switchyard_net`; [`DESCRIPTOR`] is its entry in the binary's gateway table.
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
pub use objects::ObjectDb;
pub use settings::{render, Lwm2mSettings, Translator, UpdateCondition};

use std::sync::Arc;
use switchyard_bus::BusHandle;
use switchyard_net::{
    BoundListener, Gateway, GatewayDescriptor, ListenerKind, ListenerSpec, ServeError, ServeFuture,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The LwM2M gateway's entry in the gateway table: `[gateway.lwm2m]`, one UDP listener on 5783
/// (one socket: the CoAP transport's exchange state lives in its one socket task).
pub const DESCRIPTOR: GatewayDescriptor = GatewayDescriptor {
    name: "lwm2m",
    namespace: NAMESPACE.0,
    proto_name: "LwM2M",
    display_name: "LwM2M",
    emqx_gateway: true,
    listeners: &[ListenerSpec::default_on(ListenerKind::Udp, 5783)],
};

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

impl Gateway for Lwm2mGateway {
    fn serve(
        &self,
        listener: BoundListener,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<ServeFuture, ServeError> {
        if listener.kind != ListenerKind::Udp {
            return Err(ServeError::Unsupported {
                id: listener.id,
                kind: listener.kind,
            });
        }
        let (mut sockets, parts) = listener.into_datagram()?;
        // The descriptor asks for one socket; `into_datagram` guarantees at least one.
        let socket = sockets.swap_remove(0);
        let gw = self.clone();
        Ok(Box::pin(driver::serve_udp(
            socket,
            parts.id,
            gw,
            parts.limits,
            cancel,
            tracker,
        )))
    }
}
