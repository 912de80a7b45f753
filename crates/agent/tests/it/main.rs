//! Integration tests of the agent: the collectors against fixture trees,
//! the posture-agent binary against a real gate on loopback, and its tokens
//! against an independent JWS implementation. One test binary.

mod support;

mod collect;
mod docs;
mod e2e;
mod example_config;
mod interop;
mod page_command;
mod security;
mod service_files;
mod ux;
