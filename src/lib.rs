//! # posture-gate
//!
//! A gate in front of internal apps and network segments that admits a device
//! only when it proves who it is (a client certificate, mutual TLS) and what it
//! runs (a signed posture attestation, `shared/spec/attestation-v1.md`), and
//! denies sensitive segments to devices that report prohibited software such
//! as Kaspersky.
//!
//! ## Module map
//!
//! ```text
//! attestation/  the wire contract: JWS, x5c chain, claims, verify (spec §7 order)
//! catalogue/    prohibited software: built-in entries, normalisation, matcher
//! config/       the file model, validation with file:line:column, the Snapshot
//! device        device identity from a certificate (fingerprint, subject, O, OU)
//! policy        (verified posture, snapshot, now) -> decisions + findings
//! decision      the transport-free decision every enforcement point calls
//! verdict       the verdict JSON of spec §5: Decision, Finding, Verdict
//! pki           development PKI (rcgen)
//! test_support  signing helpers for tests, benches and demos
//! gate/         the server: TLS, routing, proxy, posture cache, nonces, reload
//! page/         the denial page and problem+json, in Dutch and English
//! agent/        the endpoint agent: collectors (agent_attest: the mTLS client)
//! audit         one typed audit event per decision
//! demo          the embedded demo behind `posture-gate demo`
//! ```
//!
//! Directions of dependency: `attestation`, `catalogue`, `policy` and
//! `decision` never import `gate`, `page`, hyper or tokio. They are pure
//! functions over bytes and types, so every enforcement point (reverse proxy,
//! forward-auth, 802.1X) shares one decision and tests need no sockets.

pub mod agent;
pub mod agent_attest;
pub mod attestation;
pub mod audit;
pub mod catalogue;
pub mod config;
pub mod decision;
pub mod demo;
pub mod device;
pub mod gate;
pub mod page;
pub mod pki;
pub mod policy;
pub mod test_support;
pub mod verdict;
