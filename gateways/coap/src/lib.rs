//! The CoAP gateway: publish/subscribe over CoAP (RFC 7252, RFC 7641 observe, RFC 7959
//! block-wise), wire-compatible with EMQX 5's CoAP gateway (docs/coap.md) minus its known bugs
//! (docs/coap.md §3.12).
//!
//! Owns: the reusable CoAP [`transport`] (message layer, dedup, retransmission, block-wise,
//! observe bookkeeping; LwM2M builds on it), the per-client protocol state machine
//! ([`Channel`], sans-I/O) and the UDP driver (one socket task demultiplexing to one task per
//! client identity), and [`CoapRequester`], the typed API for server-initiated requests
//! (docs/coap.md §3.10). Its socket and admission limits come from `switchyard_net`;
//! [`DESCRIPTOR`] is its entry in the binary's gateway table.
//! Must not know: any other gateway, or how the bus routes and stores. It speaks to the engine
//! only through [`switchyard_bus::BusHandle`].

pub mod channel;
pub mod transport;

mod driver;
mod requester;
mod settings;

pub use channel::{Channel, ClientKey, NAMESPACE};
/// The message types the transport speaks (re-exported so users need no second dependency).
pub use coap_lite;
pub use requester::{CoapRequester, Method, RequestError, ServerRequest, ServerResponse};
pub use settings::{CoapSettings, NotifyType, QosMode};

use std::sync::Arc;
use switchyard_bus::BusHandle;
use switchyard_net::{
    BoundListener, Gateway, GatewayDescriptor, ListenerKind, ListenerSpec, ServeError, ServeFuture,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The CoAP gateway's entry in the gateway table: `[gateway.coap]`, one UDP listener on 5683
/// (one socket: the transport's exchange state lives in its one socket task).
pub const DESCRIPTOR: GatewayDescriptor = GatewayDescriptor {
    name: "coap",
    namespace: NAMESPACE.0,
    proto_name: "CoAP",
    display_name: "CoAP",
    emqx_gateway: true,
    listeners: &[ListenerSpec::default_on(ListenerKind::Udp, 5683)],
};

/// What every client of the CoAP gateway shares.
#[derive(Debug, Clone)]
pub struct CoapGateway {
    /// The engine.
    pub bus: BusHandle,
    /// Protocol settings.
    pub settings: Arc<CoapSettings>,
    /// Server-initiated requests to this gateway's clients: share one across restarts.
    pub requests: CoapRequester,
}

impl Gateway for CoapGateway {
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
