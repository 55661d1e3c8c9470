//! What the CoAP gateway tells the shared UDP driver (`switchyard_coap_transport::demux`): how a
//! request finds its client ([`ClientKey`]: the `clientid` query, else the source address), the
//! connection-mode precheck a request for no live client must pass on the socket task (no
//! password check there: a create's credentials are checked on the new client's own task), the
//! client task (login, mountpoint, session, then the [`Channel`] until it closes), and what a
//! client does with what reaches it.
//!
//! Server-initiated requests (docs/coap.md §3.10) go caller → client task (which knows the
//! client's address and connection state) → socket task, which sends them and resolves the
//! caller's reply from the transport's events ([`Uplink::request`]).

use crate::channel::{self, Channel, ClientKey};
use crate::requester::{self, Admin, AdminReply, RequestError};
use crate::transport::demux::{self, ClientChannel, ClientLink, DemuxGateway, Inbound, Uplink};
use crate::transport::wire::code;
use crate::transport::{error_response, Request, TransportConfig};
use crate::CoapGateway;
use coap_lite::Packet;
use std::sync::Arc;
use switchyard_bus::{durability_scope, ClientInfo, Metrics, Opened};
use switchyard_core::CloseReason;
use switchyard_net::clock::now;
use tracing::Instrument;

impl DemuxGateway for CoapGateway {
    type Key = ClientKey;
    type Local = Admin;
    type Channel = Channel;
    const PROTO: &'static str = "CoAP";

    fn transport_config(&self) -> TransportConfig {
        self.settings.transport.clone()
    }

    fn metrics(&self) -> &Metrics {
        self.bus.metrics()
    }

    fn route(&self, req: &Request) -> Result<ClientKey, Packet> {
        channel::route(self, req.peer, &req.packet)
    }

    fn may_create(&self, req: &Request) -> Result<(), Packet> {
        if self.settings.connection_required {
            channel::precheck_connection_mode(&req.packet)
        } else {
            Ok(())
        }
    }

    async fn run_client(&self, link: ClientLink<Self>, first: Request) {
        // Server-initiated requests find the client by its client id while its task lives.
        let listed = match (link.key(), link.sender()) {
            (ClientKey::Id(id), Some(tx)) => {
                self.requests.directory.insert(id, tx.clone());
                Some((id.clone(), tx))
            }
            _ => None,
        };
        let mut q = channel::request::query(&first.packet).unwrap_or_default();
        q.apply_peer(link.peer_identity());
        let info = channel::client_info(link.key(), &q, first.peer, self.settings.heartbeat);
        let span = tracing::info_span!("conn", peer = %first.peer, proto = "coap", client_id = %info.client_id);
        serve(self, link, info, first).instrument(span).await;
        if let Some((id, tx)) = listed {
            self.requests.directory.remove(&id, &tx);
        }
    }

    async fn handle(&self, ch: &mut Channel, msg: Inbound<Admin>, uplink: &Uplink) {
        match msg {
            Inbound::Request(r) => {
                // An HTTP authorization source answers here, on this client's own task.
                if let Some(query) = ch.authz_query(&r, now()) {
                    ch.accept_authz(query.run().await);
                }
                // A CON publish or an observe of a persistent session is answered only once the
                // state it created is durable.
                let ((), ticket) = durability_scope(|| ch.handle_request(*r, now()));
                if let Some(t) = ticket {
                    self.bus.wait_durable(t).await;
                }
            }
            Inbound::Outcome { id, outcome } => ch.handle_notify_outcome(id, outcome, now()),
            // A client sends no request of its own: server-initiated ones are resolved on the
            // socket task.
            Inbound::Response { .. } => {}
            Inbound::Local(admin) => admin_request(ch, admin, uplink).await,
        }
    }
}

/// One client from its first request until its channel closes; a refusal is answered, counted
/// and logged as refused.
async fn serve(
    gw: &CoapGateway,
    mut link: ClientLink<CoapGateway>,
    info: ClientInfo,
    first: Request,
) {
    let info = Arc::new(info);
    let identity = link.peer_identity().cloned();
    let (opened, prefix) = match admit(gw, &info, &first, identity.as_ref()).await {
        Ok(admitted) => admitted,
        Err((reply, reason)) => {
            link.uplink().reply(first.exchange, reply).await;
            gw.bus.connection_refused(&reason);
            return;
        }
    };
    let mut attachment = opened.attachment;
    attachment.report_connected();
    let control = attachment.control();
    let mut ch = Channel::new(gw.clone(), info, opened.session, attachment, prefix, now());
    ch.set_peer_identity(identity);
    if let Some(query) = ch.authz_query(&first, now()) {
        ch.accept_authz(query.run().await);
    }
    ch.handle_request(first, now());
    link.drive(gw, &mut ch, &control).await;
    ch.finish();
}

/// What a new client passes before its channel exists: its credentials (checked here, on its
/// own task), its mountpoint (the prefix returned), its session. `Err`: the reply and the close
/// reason of the refusal.
async fn admit(
    gw: &CoapGateway,
    info: &Arc<ClientInfo>,
    first: &Request,
    identity: Option<&switchyard_net::PeerIdentity>,
) -> Result<(Opened, String), (Packet, CloseReason)> {
    channel::login(gw, &first.packet, first.peer, identity, now())
        .await
        .map_err(|reply| (reply, CloseReason::NotAuthorized))?;
    let prefix = crate::settings::mount_prefix(
        &gw.settings.mountpoint,
        info.client_id.as_str(),
        info.username.as_deref(),
    )
    .map_err(|e| {
        // A client id or username with '/', '+' or '#' would escape the mountpoint.
        tracing::warn!(placeholder = e.placeholder(), error = %e,
            "client refused: mountpoint cannot be rendered for it");
        let reply = error_response(code::UNAUTHORIZED, &e.to_string());
        (reply, CloseReason::NotAuthorized)
    })?;
    let opened = demux::open_session(&gw.bus, info).await.map_err(|e| {
        let reply = error_response(code::SERVICE_UNAVAILABLE, "session refused");
        (reply, CloseReason::ProtocolError(e.to_string()))
    })?;
    Ok((opened, prefix))
}

/// docs/coap.md §3.10: only a connected client (in connection mode: one holding a token) is sent a
/// request, at the address it last spoke from.
async fn admin_request(ch: &Channel, admin: Admin, uplink: &Uplink) {
    let Admin { request, reply } = admin;
    if !ch.is_connected() || ch.close_reason().is_some() {
        let _ = reply.send(Err(RequestError::NotFound));
        return;
    }
    let packet = requester::packet(&request);
    // A stopped socket task drops the reply: the caller sees `Closed`.
    uplink
        .request(
            ch.peer(),
            packet,
            request.token,
            Box::new(AdminReply(reply)),
        )
        .await;
}
