//! Helpers for the fuzz harnesses of the CoAP-based gateways (doc-hidden; not an API): checks on
//! what the transport sends, shared by the CoAP and LwM2M harnesses, which both send through it;
//! a client's session open as the demux drivers do it ([`open_client`]); the socket task's side
//! of the demux that both channel harnesses drive ([`DemuxWorld`]); and the transport's own
//! target, `transport` (the body of the `coap_transport` cargo-fuzz target in `fuzz/`,
//! replayed over its committed seeds `fuzz/seeds/coap_transport/` by the unit test below, so
//! `cargo test` checks it on stable).
//!
//! Must not know: any gateway; these only panic on a broken transport invariant, and leave what
//! a gateway's outputs mean to its harness.

#[cfg(test)]
mod seeds;
mod transport;
mod world;

pub use transport::transport;
pub use world::{Client, DemuxWorld, Sent};

use crate::wire;
use coap_lite::Packet;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{
    Attachment, BusError, BusHandle, ClientInfo, ControlEvent, ControlEvents, OpenSession, Session,
};

/// Checks that a message we send is well formed and decodes back to itself.
pub fn assert_sendable(bytes: &[u8]) -> Packet {
    match wire::decode(bytes) {
        Ok(p) => {
            let again = p.to_bytes_unlimited().unwrap_or_default();
            assert_eq!(wire::decode(&again).ok().as_ref(), Some(&p));
            p
        }
        Err(e) => panic!("the transport sent a malformed message ({e}): {bytes:02x?}"),
    }
}

/// Opens the session of a new client as the demux drivers do (clean, no expiry, one message in
/// flight) and reports it connected; returns the session, its attachment and its control events.
/// While the open waits, a takeover it causes is served on `clients`: each client whose control
/// events (`control`) say `Takeover` leaves the map and goes to `taken_over`, which closes and
/// finishes it.
pub fn open_client<K: Clone + Eq + Hash, V>(
    rt: &tokio::runtime::Runtime,
    bus: &BusHandle,
    info: Arc<ClientInfo>,
    clients: &mut HashMap<K, V>,
    control: impl Fn(&V) -> &ControlEvents,
    mut taken_over: impl FnMut(V),
) -> Result<(Session, Attachment, ControlEvents), BusError> {
    let req = OpenSession {
        info,
        clean_start: true,
        expiry: Duration::ZERO,
        max_inflight: 1,
    };
    let opened = switchyard_bus::fuzzing::open_session(rt, bus, req, || {
        let taken: Vec<K> = clients
            .iter()
            .filter(|(_, v)| matches!(control(v).try_recv(), Some(ControlEvent::Takeover)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in taken {
            if let Some(v) = clients.remove(&k) {
                taken_over(v);
            }
        }
    })?;
    let mut attachment = opened.attachment;
    attachment.report_connected();
    let rx = attachment.control();
    Ok((opened.session, attachment, rx))
}

#[cfg(test)]
mod tests {
    use switchyard_bus::fuzzing::{replay_dir, seeds};

    #[test]
    fn coap_transport_seed_corpus_replays() {
        let dir = seeds(env!("CARGO_MANIFEST_DIR"), "coap_transport");
        let n = replay_dir(&dir, super::transport);
        assert!(n > 0, "no seeds in {}", dir.display());
    }
}
