//! Integration tests of the gate over real sockets and real clients (curl,
//! openssl, Chromium, testssl.sh), in one test binary: one link instead of
//! one per file keeps the 2-core build of the suite short.

mod support;

mod admin;
mod attest_reference;
mod audit_disk;
mod audit_log;
mod cli;
mod demo;
mod docs;
mod forward_auth;
mod forward_auth_caddy;
mod forward_auth_nginx;
mod fuzz_found;
mod gate_audit;
mod gate_certpage;
mod gate_curl;
mod gate_flood;
mod gate_hostile;
mod gate_limits;
mod gate_loosening;
mod gate_nonces;
mod gate_posture;
mod gate_proxy;
mod gate_proxy_protocol;
mod gate_reload;
mod gate_revocation;
mod gate_smuggling;
mod gate_testssl;
mod gate_tls;
mod gate_watch;
mod kubernetes;
mod nac;
mod nac_freeradius;
mod page;
mod page_chromium;
mod page_gate;
mod pki;
mod radius_coa;
mod report;
mod staged;
mod store_redis;
mod subject_exemption;
