//! What the gate's tests share: the test kit (TestGate, PKI, clients, token
//! builders), under the one name the tests use.
#![allow(unused_imports)]

pub use posture_testkit::*;
