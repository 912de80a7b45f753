//! # posture-gate
//!
//! The gate server: a TLS front that identifies devices by client
//! certificate, and the doors that admit them by their signed posture
//! attestation (`shared/spec/attestation-v1.md`), denying sensitive segments
//! to devices that report prohibited software such as Kaspersky. What a
//! decision is lives in `posture-core`; this crate reads requests, calls the
//! core's enforcement step, and writes answers.
//!
//! ## Map
//!
//! ```text
//! gate/    the server: TLS, connection limits, routing, the reverse proxy
//!          (the request path, top to bottom, in gate/proxy.rs), the posture
//!          endpoints, nonces, revocation, tunnels, reload
//! page/    the denial page and problem+json, in Dutch and English (askama)
//! audit/   the audit writer that the core's typed events go to
//! metrics  the counters of the admin listener's /metrics
//! pki      the development PKI behind `posture-gate pki` and `demo`
//! radius/  RADIUS CoA and Disconnect to switches and access points (issue 17)
//! report/  `posture-gate report`: where prohibited software is still in use,
//!          read in one pass from audit logs (plain, rotated, gzip'd)
//! store/   the stores the gate keeps postures and used nonces in: memory,
//!          or Redis shared by every replica (issue 15)
//! ```
//!
//! The `posture-gate` binary (src/bin/posture-gate) adds the commands:
//! `serve`, `check-config`, `verify`, `report`, `pki` and `demo` (the embedded demo).
//!
//! Directions of dependency: `gate` uses `page` and `audit`, both use
//! `posture_core`; nothing in `posture_core` knows this crate.

pub mod audit;
pub mod cert_header;
pub mod gate;
pub mod metrics;
pub mod page;
pub mod pki;
pub mod radius;
pub mod report;
pub mod store;
