//! What the LwM2M gateway tells the shared UDP driver (`switchyard_coap_transport::demux`):
//! registration-interface requests are routed by endpoint name, so a device that registers again
//! from a new address reaches its existing channel, which takes the new address; only a Register
//! creates a device (an Update or De-register of an unknown endpoint gets 4.04); the device
//! task parses and authenticates the Register on its own task, opens the session and runs the
//! [`Channel`]; commands go out as the device task's own CoAP requests, and their responses and
//! outcomes (ACK, RST, timeout) come back to it by command id.

use crate::channel::{self, login_failed, Channel};
use crate::register::{query_map, Registration};
use crate::Lwm2mGateway;
use std::convert::Infallible;
use std::sync::Arc;
use switchyard_bus::{ClientInfo, Metrics, Opened};
use switchyard_coap_transport::coap_lite::Packet;
use switchyard_coap_transport::demux::{
    self, ClientChannel, ClientLink, DemuxGateway, Inbound, Uplink,
};
use switchyard_coap_transport::wire::{self, code};
use switchyard_coap_transport::{error_response, Request, TransportConfig};
use switchyard_core::CloseReason;
use switchyard_net::clock::now;
use tracing::Instrument;

impl DemuxGateway for Lwm2mGateway {
    type Key = String;
    type Local = Infallible;
    type Channel = Channel;
    const PROTO: &'static str = "LwM2M";

    fn transport_config(&self) -> TransportConfig {
        self.settings.transport.clone()
    }

    fn metrics(&self) -> &Metrics {
        self.bus.metrics()
    }

    fn route(&self, req: &Request) -> Result<String, Packet> {
        endpoint(&req.packet)
    }

    fn may_create(&self, req: &Request) -> Result<(), Packet> {
        if is_register(&req.packet) {
            Ok(())
        } else {
            // Update/De-register of an endpoint that is not registered (docs/lwm2m.md §4.2).
            Err(error_response(code::NOT_FOUND, "not registered"))
        }
    }

    async fn run_client(&self, link: ClientLink<Self>, first: Request) {
        let span = tracing::info_span!("conn", peer = %first.peer, proto = "lwm2m", client_id = %link.key());
        serve(self, link, first).instrument(span).await
    }

    async fn handle(&self, ch: &mut Channel, msg: Inbound<Infallible>, _: &Uplink) {
        match msg {
            Inbound::Request(r) => ch.handle_request(*r, now()),
            Inbound::Response { id, packet } => ch.handle_response(id, *packet, now()),
            Inbound::Outcome { id, outcome } => ch.handle_outcome(id, outcome, now()),
            Inbound::Local(never) => match never {},
        }
    }
}

/// The endpoint a registration-interface request is for: `POST /rd?ep=…` or `/rd/{ep}`.
fn endpoint(p: &Packet) -> Result<String, Packet> {
    let path = wire::uri_path(p).map_err(|_| error_response(code::BAD_REQUEST, "invalid URI"))?;
    match (wire::code_of(p), path.as_slice()) {
        (code::POST, [rd]) if rd == "rd" => {
            let q = wire::uri_query(p).unwrap_or_default();
            match query_map(&q).get("ep").filter(|e| !e.is_empty()) {
                Some(ep) => Ok(ep.clone()),
                None => Err(login_failed("invalid queries")),
            }
        }
        (_, [rd, ep]) if rd == "rd" => Ok(ep.clone()),
        _ => Err(error_response(code::NOT_FOUND, "not found")),
    }
}

/// Whether a request is a Register (`POST /rd`), the one request that creates a device.
fn is_register(p: &Packet) -> bool {
    wire::code_of(p) == code::POST
        && wire::uri_path(p).is_ok_and(|path| matches!(path.as_slice(), [rd] if rd == "rd"))
}

/// A Register that did not become a device: the reply, and the close reason when it counts as
/// a refused connection (its credentials or its mountpoint).
type Refusal = (Packet, Option<CloseReason>);

/// One device from its Register until its channel closes.
async fn serve(gw: &Lwm2mGateway, mut link: ClientLink<Lwm2mGateway>, first: Request) {
    let identity = link.peer_identity().cloned();
    let (reg, info, prefix, opened) = match admit(gw, &first, identity).await {
        Ok(admitted) => admitted,
        Err((reply, counted)) => {
            link.uplink().reply(first.exchange, reply).await;
            match counted {
                Some(reason) => gw.bus.connection_refused(&reason),
                None => tracing::debug!("registration refused"),
            }
            return;
        }
    };
    let mut attachment = opened.attachment;
    attachment.report_connected();
    let control = attachment.control();
    let mut ch = Channel::new(
        gw.clone(),
        info,
        opened.session,
        attachment,
        reg,
        prefix,
        now(),
    );
    if let Err(reason) = ch.start(&first.exchange, now()) {
        ch.fail(reason);
        let reply = login_failed("invalid endpoint name");
        link.uplink().reply(first.exchange, reply).await;
    }
    link.drive(gw, &mut ch, &control).await;
    ch.finish();
}

/// What a Register passes before its device exists, on the device's own task: it parses, its
/// credentials, its mountpoint (the prefix returned), its session.
async fn admit(
    gw: &Lwm2mGateway,
    first: &Request,
    identity: Option<switchyard_net::PeerIdentity>,
) -> Result<(Registration, Arc<ClientInfo>, String, Opened), Refusal> {
    let query = wire::uri_query(&first.packet).unwrap_or_default();
    let mut reg = Registration::parse(&query, &first.packet.payload)
        .map_err(|reason| (login_failed(reason), None))?;
    reg.peer = identity;
    channel::check_network(gw, &reg, first.peer).await;
    channel::authenticate(gw, &reg, first.peer, now())
        .map_err(|reason| (login_failed(reason), Some(CloseReason::NotAuthorized)))?;
    let info = Arc::new(channel::client_info(&reg, first.peer));
    let prefix = channel::mount_prefix(gw, &reg, &info).map_err(|e| {
        tracing::warn!(endpoint = reg.ep, placeholder = e.placeholder(), error = %e,
            "Register refused: mountpoint cannot be rendered for this device");
        (
            login_failed("not_authorized"),
            Some(CloseReason::NotAuthorized),
        )
    })?;
    let opened = demux::open_session(&gw.bus, &info).await.map_err(|e| {
        tracing::debug!(error = %e, "session refused");
        (login_failed("session_open_failed"), None)
    })?;
    Ok((reg, info, prefix, opened))
}
