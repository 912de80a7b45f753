//! # posture-core
//!
//! The enforcement core of posture-gate: everything that decides whether a
//! device may enter a segment, and nothing that talks to a network. Every
//! door (the reverse proxy, forward-auth for existing proxies, 802.1X through
//! FreeRADIUS) reads its own protocol, calls [`enforce`] once and writes its
//! own answer, so a device is judged the same way at every door and every
//! decision yields one typed audit event with one vocabulary of codes.
//!
//! ## Map
//!
//! ```text
//! attestation/  the wire contract (shared/spec/attestation-v1.md): JWS, x5c
//!               chain, claims, the verifier in the order of spec section 7,
//!               signing (the agent's side), Reason codes
//! catalogue/    prohibited software: built-in entries, normalisation, matcher
//! config/       the file model, validation with file:line:column, the
//!               compiled Snapshot
//! device        device identity from a certificate (fingerprint, subject, O, OU)
//! certificate   a presented client certificate that failed verification:
//!               its problem (and code) and unverified details
//! dn            distinguished names compared as X.500 does (exemptions by subject)
//! revocation    the CRLs' revoked (issuer, serial) pairs, checked on every
//!               request and attestation at every door
//! policy        (assessment, snapshot, segment, day) -> decision + findings
//! decision      Posture (what is remembered about a device), Outcome, Denial
//! enforce       the one step every door calls -> Judgement (outcome,
//!               reference, audit event)
//! store         PostureStore and NonceStore: the interfaces, and the
//!               in-memory implementations
//! code          one vocabulary of denial codes (audit, page, problem+json,
//!               metrics)
//! audit         the typed audit events (the writer lives with the server)
//! verdict       the verdict of spec section 5 (Serialize and Deserialize)
//! nonce         gate nonces: stateless HMAC issue and check (spec section 4)
//! lang, reasons the two languages, and every reason code in plain words
//! ```
//!
//! Directions of dependency: nothing here imports hyper, tokio's networking,
//! rustls' server side or askama (CI checks `cargo tree -p posture-core`).
//! Functions are pure over bytes and types, so they are tested without
//! sockets and fuzzed.

#![warn(missing_docs)]

pub mod attestation;
pub mod audit;
pub mod catalogue;
pub mod certificate;
pub mod code;
pub mod config;
pub mod decision;
pub mod device;
pub mod dn;
pub mod enforce;
pub mod lang;
pub mod nac;
pub mod nonce;
pub mod policy;
pub mod reasons;
pub mod revocation;
pub mod store;
pub mod verdict;
