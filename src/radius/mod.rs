//! RADIUS Change of Authorization (RFC 5176): what the gate sends a NAS
//! (switch, access point, WLC) when a device's posture changes the VLAN it
//! may be in.
//!
//! ```text
//! packet   the codec: CoA-Request / Disconnect-Request with their Request
//!          Authenticator and Message-Authenticator, and the checked decoding
//!          of the NAS's ACK or NAK (RFC 2865, 2868, 3579, 5176)
//! coa      the sender: one UDP exchange with a NAS, retransmitted a bounded
//!          number of times, that only believes an answer signed with the
//!          NAS's shared secret
//! ```
//!
//! The codec is our own (about the size of the RFC's packet diagrams) rather
//! than a RADIUS crate: neither Rust crate computes the Message-Authenticator
//! of a CoA packet, and a dictionary is not needed for the dozen attributes a
//! CoA carries.

pub mod coa;
pub mod packet;

pub use coa::{send, Change, CoaError, Nas, Outcome, Session};
