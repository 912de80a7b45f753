//! Forward-auth: the gate as the authorisation service of a proxy a site
//! already runs (nginx `auth_request`, Caddy `forward_auth`, Traefik
//! `forwardAuth`, Envoy's HTTP `ext_authz`). The proxy terminates the
//! device's TLS and asks the gate, on a listener of its own, whether the
//! original request may pass; the gate answers with the same enforcement
//! step as its own reverse proxy (`proxy::judge`), the same routes and
//! segments, the same stores, and the same pages.
//!
//! - **Who may ask** (`listen`): only the proxies of
//!   `[[forward_auth.proxy]]`, known by their address (plain HTTP, loopback
//!   only), by their client certificate (mutual TLS, `proxy_ca` and
//!   optionally `certificate_name`), or by being able to open the Unix
//!   socket. Anyone else gets 403, `Connection: close` and an audit event
//!   (`untrusted_proxy`); nothing they send is read beyond the request line.
//! - **The device's certificate** (`device`): read from the proxy's header
//!   in the proxy's encoding (`crate::cert_header`, never sniffed), then
//!   verified with the very verifier of the gate's own TLS front (client-CA
//!   bundle, CRLs, clientAuth EKU, at most three intermediates) and the
//!   CRLs again on every request. A proxy that forwards a certificate it
//!   did not verify (nginx `optional_no_ca`) cannot open the door with it:
//!   one that fails is judged as no certificate, its problem named with the
//!   TLS front's codes (`cert_expired`, `untrusted_chain`, ...).
//!   Verified certificates are remembered per proxy by their exact header
//!   bytes until a reload or their `notAfter`.
//! - **The original request** (`authz`): host and target from the proxy's
//!   headers (Envoy: the path after `/authz`), normalised exactly as the
//!   reverse proxy normalises its own requests (`proxy::Target::at`), so an
//!   encoded `..` cannot reach another route's segment.
//! - **The answer**: 200 with the identity and decision headers (every one
//!   of them, empty when not applicable, so a proxy that copies a listed
//!   header the gate left out cannot pass on the client's own copy); 401
//!   without a certificate; 403 for every other refusal (nginx takes no
//!   other status as a denial, Envoy allows only exactly 200). A refusal
//!   carries the gate's page as its body (Caddy, Traefik and Envoy show it
//!   as is), its reference in `X-Posture-Reference` and its code in
//!   `X-Posture-Reason`; the page is also kept (`pages`) for nginx, whose
//!   `error_page` fetches it from `/.well-known/posture-gate/denied/<ref>`.
//! - The posture endpoints (challenge, attest, ready) answer here too, with
//!   the device certificate from the proxy's header, so an agent can attest
//!   through the site's proxy.

pub(super) mod authz;
mod device;
mod listen;
mod pages;

pub(super) use device::{Doors, ForwardedCert};
pub(super) use listen::{bind, serve, Listener, ProxyPeer, Side};
pub(super) use pages::DeniedPages;

/// The authorisation endpoint.
pub const AUTHZ_PATH: &str = "/.well-known/posture-gate/authz";
/// The denial pages by reference, for nginx's `error_page`.
pub const DENIED_PREFIX: &str = "/.well-known/posture-gate/denied/";
