//! The accessors every connection-oriented channel offers its driver alike: who the client is,
//! its session, its control events, why it closes, and what it has to send.
//!
//! Owns: [`session_accessors!`](crate::session_accessors), one definition of those accessors.
//! Must not know: any protocol. The macro only reads fields the channel names by convention
//! (`info`, `session`, `attachment`, `close`, `outbound`) and is generic over the packet type.
//!
//! Why a macro rather than an embedded struct: the accessors sit on the per-packet path of the
//! busiest driver, so they must stay plain field reads the compiler inlines (no dynamic dispatch, no
//! extra indirection), and the channels' many steps keep addressing those fields directly.

/// What the macro's expansion names from other crates, so a gateway needs no import for it.
#[doc(hidden)]
pub mod __private {
    pub use switchyard_core::CloseReason;
}

/// Writes, inside a channel's `impl`, the six accessors its driver uses: `info`, `session`,
/// `control`, `close_reason`, `take_outbound` and `has_outbound`. The channel must have the
/// fields `info: Option<Arc<ClientInfo>>`, `session: Option<Session>`,
/// `attachment: Option<Attachment>`, `close: Option<CloseReason>` and `outbound: Vec<$packet>`.
///
/// ```ignore
/// impl Channel {
///     switchyard_bus::session_accessors!(Packet);
/// }
/// ```
#[macro_export]
macro_rules! session_accessors {
    ($packet:ty) => {
        /// The connected client, once the protocol accepted it.
        #[inline]
        pub fn info(&self) -> ::core::option::Option<&::std::sync::Arc<$crate::ClientInfo>> {
            self.info.as_ref()
        }

        /// The session, while connected.
        #[inline]
        pub fn session(&self) -> ::core::option::Option<&$crate::Session> {
            self.session.as_ref()
        }

        /// The session's control events (takeover, kick), once it is open.
        #[inline]
        pub fn control(&self) -> ::core::option::Option<$crate::ControlEvents> {
            self.attachment.as_ref().map($crate::Attachment::control)
        }

        /// Whether the channel has decided to close, and why.
        #[inline]
        pub fn close_reason(
            &self,
        ) -> ::core::option::Option<&$crate::accessors::__private::CloseReason> {
            self.close.as_ref()
        }

        /// Packets to send, in order.
        #[inline]
        pub fn take_outbound(&mut self) -> ::std::vec::Vec<$packet> {
            ::std::mem::take(&mut self.outbound)
        }

        /// Whether packets wait to be sent.
        #[inline]
        pub fn has_outbound(&self) -> bool {
            !self.outbound.is_empty()
        }
    };
}
