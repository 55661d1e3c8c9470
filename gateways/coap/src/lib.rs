//! The CoAP gateway: publish/subscribe over CoAP (RFC 7252, RFC 7641 observe, RFC 7959
//! block-wise), wire-compatible with EMQX 5's CoAP gateway (docs/coap.md) minus its known bugs
//! (docs/coap.md §3.12).
//!
//! Owns: the per-client protocol state machine ([`Channel`], sans-I/O), what the shared UDP
//! driver of `switchyard_coap_transport::demux` needs to know of this protocol (`driver`: routing
//! by client identity, the connection-mode precheck, one task per client), and
//! [`CoapRequester`], the typed API for server-initiated requests (docs/coap.md §3.10). The CoAP
//! message layer is [`transport`] (the `switchyard-coap-transport` crate, which LwM2M uses too);
//! its socket and admission limits come from `switchyard_net`; [`DESCRIPTOR`] is its entry in the
//! binary's gateway table.
//! Must not know: any other gateway, or how the bus routes and stores. It speaks to the engine
//! only through [`switchyard_bus::BusHandle`].

pub mod channel;
#[doc(hidden)]
pub mod fuzzing;

mod driver;
mod requester;
mod settings;

pub use channel::{Channel, ClientKey, NAMESPACE};
/// The message types the transport speaks (re-exported so users need no second dependency).
pub use coap_lite;
pub use requester::{CoapRequester, Method, RequestError, ServerRequest, ServerResponse};
pub use settings::{CoapSettings, NotifyType, QosMode};
/// The CoAP transport this gateway speaks (its settings carry a
/// [`TransportConfig`](transport::TransportConfig)).
pub use switchyard_coap_transport as transport;

use std::sync::Arc;
use switchyard_bus::BusHandle;
use switchyard_net::GatewayDescriptor;

/// The CoAP gateway's entry in the gateway table: `[gateway.coap]`, the demux's UDP listener on
/// 5683 and its DTLS listener on 5684 (off by default). The table serves it as `switchyard_coap_transport::demux::UdpDemux(CoapGateway)`.
pub const DESCRIPTOR: GatewayDescriptor = GatewayDescriptor::new(
    "coap",
    NAMESPACE.0,
    "CoAP",
    &[
        transport::demux::listener(5683),
        transport::demux::dtls_listener(5684),
    ],
);

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
