//! Integration tests of the core: the attestation verifier against every
//! kind of bad token, the catalogue against real inventories, the config
//! loader against every kind of bad file. One test binary.

mod support;

mod attestation;
mod catalogue;
mod config;
mod decision;
mod enforce;
mod example_policy;
