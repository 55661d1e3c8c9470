//! Helpers for the fuzz harnesses of the CoAP-based gateways (doc-hidden; not an API): checks on
//! what the transport sends, shared by the CoAP and LwM2M harnesses, which both send through it.
//!
//! Must not know: any gateway or harness; these only panic on a broken transport invariant.

use crate::wire;
use coap_lite::Packet;

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
