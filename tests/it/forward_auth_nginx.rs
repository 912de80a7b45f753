//! Debian's nginx in front of the gate: `auth_request` to the forward-auth
//! listener, `error_page` fetching the gate's page by reference, the agent's
//! challenge and attest passed through; configured from
//! config/forward-auth/nginx.conf itself (support::forward_auth).
//! Every test starts its own gate, application and nginx on loopback ports.

use crate::support::forward_auth::{self as fa, Kind};

#[tokio::test(flavor = "current_thread")]
async fn clean_device_attested_through_it_reaches_the_app() {
    fa::clean_device_attested_through_the_proxy_reaches_the_app(Kind::Nginx).await;
}

#[tokio::test(flavor = "current_thread")]
async fn kaspersky_device_gets_the_gates_denial_page() {
    fa::kaspersky_device_gets_the_gates_denial_page(Kind::Nginx).await;
}

#[tokio::test(flavor = "current_thread")]
async fn device_without_a_posture_gets_the_enrolment_page() {
    fa::device_without_a_posture_gets_the_enrolment_page(Kind::Nginx).await;
}

#[tokio::test(flavor = "current_thread")]
async fn no_client_certificate_gets_the_no_certificate_page() {
    fa::no_client_certificate_gets_the_no_certificate_page(Kind::Nginx).await;
}

#[tokio::test(flavor = "current_thread")]
async fn forged_certificate_header_from_the_client_is_ignored() {
    fa::forged_certificate_header_from_the_client_is_ignored(Kind::Nginx).await;
}

#[tokio::test(flavor = "current_thread")]
async fn untrusted_address_is_refused_by_the_forward_auth_listener() {
    fa::untrusted_address_is_refused_by_the_forward_auth_listener(Kind::Nginx).await;
}

#[tokio::test(flavor = "current_thread")]
async fn encoded_dot_dot_does_not_reach_another_routes_segment() {
    fa::encoded_dot_dot_does_not_reach_another_routes_segment(Kind::Nginx).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_warned_device_sees_the_warning_header() {
    fa::a_warned_device_sees_the_warning_header(Kind::Nginx).await;
}
