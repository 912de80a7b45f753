//! What the gate's tests share: the test kit (TestGate, PKI, clients, token
//! builders), under the one name the tests use.

pub use posture_testkit::*;

pub mod forward_auth;
