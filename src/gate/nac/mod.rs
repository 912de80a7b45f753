//! 802.1X through FreeRADIUS (issue 17): the decision API `rlm_rest` asks
//! after EAP-TLS, the accounting that tells the gate a device's sessions,
//! and (in `change`) the RADIUS CoA sent when an attestation changes the
//! VLAN a device may have. One request, top to bottom, in [`handle`].
//!
//! - **Who may ask**: the RADIUS servers of `[[nac.radius]]`, by the same
//!   rule as forward-auth's proxies (address, mutual TLS certificate, or
//!   the Unix socket); anyone else gets 403 and an audit event.
//! - **The device**: FreeRADIUS has verified the EAP-TLS chain; it names
//!   the certificate by `TLS-Client-Cert-Issuer` and `-Serial`. The issuer
//!   must be one of the gate's client CAs (`posture_core::nac::Issuers`),
//!   the CRLs are checked for it, and the device identity is the one the
//!   gate learnt when that certificate attested (through any door).
//! - **The decision**: the core's enforcement step for every segment with
//!   a VLAN, most sensitive first (`enforce::place`); the first it may
//!   enter gives the VLAN. Otherwise `quarantine_vlan`, or, without one,
//!   a reject (401, which `rlm_rest` in post-auth turns into
//!   Access-Reject). Every decision is one audit event, `"enforcement":
//!   "nac"`, naming the RADIUS server (`proxy`) and the NAS (`route_host`).
//! - **The reply**: the attributes as `rlm_rest` reads them, each in the
//!   object form with `do_xlat: false`, since rlm_rest would otherwise
//!   expand (or drop) a value with a `%` in it.

mod change;

pub(super) use change::{after_attestation, Lanes};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::forward::authz::stranger;
use super::forward::ProxyPeer;
use super::respond::{page_response, Body};
use super::tls::TlsError;
use super::{unix_now, Live, Shared};
use posture_core::audit::{AuditEvent, DecisionEvent, Enforcement};
use posture_core::code::Code;
use posture_core::config::snapshot::{ForwardAuthListen, NacSettings, TrustedPeer};
use posture_core::decision::{self, Outcome};
use posture_core::enforce::{self, Attestor, Case, Client, Door};
use posture_core::nac::rest::{self, AcctStatus, NacRequest};
use posture_core::nac::{self as core_nac, CertKey, Issuers, NasSession};
use posture_core::store::NacStore;
use posture_core::verdict::Decision;

pub const POST_AUTH_PATH: &str = "/.well-known/posture-gate/nac/post-auth";
pub const ACCOUNTING_PATH: &str = "/.well-known/posture-gate/nac/accounting";

/// How long a session is kept without a word from its NAS: a day, longer
/// than any accounting interim interval.
const SESSION_LIFETIME: i64 = 24 * 3600;
/// The shortest Session-Timeout sent: a posture about to age out still
/// gives the device a minute, not a re-authentication storm.
const MIN_SESSION_TIMEOUT: i64 = 60;

/// The 802.1X side of one config (a reload builds a new one).
pub(in crate::gate) struct NacDoor {
    /// The listener's mutual TLS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The client CAs by the name FreeRADIUS writes.
    issuers: Issuers,
}

impl NacDoor {
    pub fn new(
        settings: &NacSettings,
        client_cas: &[rustls_pki_types::CertificateDer<'static>],
    ) -> Result<NacDoor, TlsError> {
        let tls = settings
            .tls
            .as_ref()
            .map(super::tls::proxy_server_config)
            .transpose()?;
        Ok(NacDoor {
            tls,
            issuers: Issuers::from_cas(client_cas),
        })
    }
}

pub(super) async fn handle(
    req: Request<Incoming>,
    peer: &ProxyPeer,
    shared: &Arc<Shared>,
) -> Response<Body> {
    let live = shared.live.load_full();
    let (Some(settings), Some(door)) = (live.settings.nac.as_ref(), live.nac.as_ref()) else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "802.1X decisions are not configured\n",
        );
    };

    // A socket bound as Unix (or TCP) stays so until a restart.
    if peer.addr.is_none() != matches!(settings.listen, ForwardAuthListen::Unix(_)) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "[nac] listen changed: restart the gate\n",
        );
    }

    // 1. Which RADIUS server: by address, certificate or socket.
    let Some(radius) = settings
        .radius
        .iter()
        .find(|r| peer.is(&r.from, r.certificate_name.as_deref()))
    else {
        return stranger(&shared.audit, peer, &req, Enforcement::Nac);
    };

    // 2. Which endpoint, and its body.
    let path = req.uri().path().to_string();
    if req.method() != Method::POST || !matches!(path.as_str(), POST_AUTH_PATH | ACCOUNTING_PATH) {
        return text(StatusCode::NOT_FOUND, "not an 802.1X endpoint\n");
    }
    let body = match read_body(req, &live).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let request = match rest::parse(&body) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(radius = radius.name, "unreadable rlm_rest request: {e}");
            return text(StatusCode::BAD_REQUEST, "not an rlm_rest JSON body\n");
        }
    };
    let now = unix_now();
    let at = Asked {
        live: &live,
        shared,
        settings,
        door,
        radius,
        request: &request,
        now,
    };
    match path.as_str() {
        POST_AUTH_PATH => at.post_auth().await,
        _ => at.accounting().await,
    }
}

/// One request of a RADIUS server, with what it is judged by.
struct Asked<'a> {
    live: &'a Arc<Live>,
    shared: &'a Arc<Shared>,
    settings: &'a NacSettings,
    door: &'a NacDoor,
    radius: &'a TrustedPeer,
    request: &'a NacRequest,
    now: i64,
}

impl Asked<'_> {
    /// The NAS the request is about: its NAS-IP-Address (or IPv6), never
    /// the RADIUS server's own address, which no CoA should go to.
    fn nas(&self) -> Option<IpAddr> {
        self.request.nas_ip
    }

    /// The session this request is about, placed in `vlan`; `None` without
    /// a NAS address to send a CoA to.
    fn session(&self, vlan: Option<u16>) -> Option<NasSession> {
        let r = self.request;
        Some(NasSession {
            nas: self.nas()?,
            nas_port: r.nas_port,
            acct_session_id: r.acct_session_id.clone(),
            calling_station_id: r.calling_station_id.clone(),
            user_name: r.user_name.clone(),
            vlan,
        })
    }

    /// How the NAS is named in audit events: NAS-Identifier, else its address.
    fn nas_name(&self) -> String {
        self.request
            .nas_identifier
            .clone()
            .or_else(|| self.nas().map(|ip| ip.to_string()))
            .unwrap_or_else(|| "unknown NAS".to_string())
    }

    /// The decision after EAP-TLS.
    async fn post_auth(&self) -> Response<Body> {
        let r = self.request;
        let live = self.live;
        let nas_name = self.nas_name();
        let source = SocketAddr::new(self.nas().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), 0);
        let segments = core_nac::vlan_segments(&live.snapshot);

        // The certificate, by issuer and serial.
        let (Some(issuer), Some(serial)) = (&r.cert_issuer, &r.cert_serial) else {
            return self.refuse(
                Code::NoCertificate,
                &nas_name,
                source,
                &segments,
                &"no TLS client certificate in the request",
                "",
            );
        };
        let id = match self.door.issuers.cert_id(issuer, serial) {
            Ok(id) => id,
            Err(e) => {
                return self.refuse(Code::CertUntrusted, &nas_name, source, &segments, &e, "")
            }
        };
        let revocation = live.revocations.status(std::slice::from_ref(&id), self.now);
        let device = match self.shared.nac.device(&CertKey::of(&id)).await {
            Ok(Some(device)) => device,
            Ok(None) => {
                // Quarantined (or rejected) until it attests; its session is
                // kept under the certificate, so the attestation can move it.
                let pending = core_nac::pending_key(&CertKey::of(&id));
                if let Some(session) = self.session(self.settings.quarantine_vlan) {
                    let until = self.now + SESSION_LIFETIME;
                    if let Err(e) = self.shared.nac.put_session(&pending, session, until).await {
                        tracing::warn!(nas = nas_name, "the session could not be remembered: {e}");
                    }
                }
                let class = core_nac::class_of(&pending);
                let why = &"this certificate never attested";
                return self.refuse(Code::NoPosture, &nas_name, source, &segments, why, &class);
            }
            Err(e) => {
                return self.refuse(
                    Code::PostureStoreUnavailable,
                    &nas_name,
                    source,
                    &segments,
                    &e,
                    "",
                );
            }
        };

        // The judgement, most sensitive segment first.
        let judgement = enforce::place(
            Case {
                snapshot: &live.snapshot,
                postures: &self.shared.postures,
                client: Client {
                    identity: Some(&device),
                    certificate: None,
                    revocation,
                    rejected: None,
                },
                door: Door {
                    enforcement: Enforcement::Nac,
                    source,
                    proxy: Some(&self.radius.name),
                    route_host: &nas_name,
                    route_prefix: "",
                },
                segment: segments.last().copied().unwrap_or(0),
                token: None,
                attestor: Attestor {
                    verifier: &live.verifier,
                    issuer: &live.nonces,
                    nonces: &self.shared.used_nonces,
                },
                now: self.now,
            },
            &segments,
        )
        .await;
        // No placement without a record (`on_audit_failure = "deny"`).
        let recorded = self.shared.audit.emit(&judgement.decision_event()).await;
        if !recorded && self.shared.audit.refuses() {
            let why = &"the audit log cannot record the decision";
            return self.refuse(
                Code::AuditUnavailable,
                &nas_name,
                source,
                &segments,
                why,
                "",
            );
        }
        let vlan = match &judgement.outcome {
            Outcome::Allow | Outcome::Warn(_) => live
                .snapshot
                .segment_index(judgement.segment())
                .and_then(|i| live.snapshot.segments[i].vlan),
            Outcome::Deny(_) => self.settings.quarantine_vlan,
        };
        let reference = judgement.reference.as_deref();
        let message = match (&judgement.outcome, vlan) {
            (Outcome::Deny(d), Some(_)) => {
                format!(
                    "posture-gate: quarantined ({}), reference {}",
                    d.code(),
                    reference.unwrap_or_default()
                )
            }
            (Outcome::Deny(d), None) => {
                format!(
                    "posture-gate: refused ({}), reference {}",
                    d.code(),
                    reference.unwrap_or_default()
                )
            }
            (Outcome::Warn(_), _) => format!(
                "posture-gate: allowed to {} with a warning, reference {}",
                judgement.segment(),
                reference.unwrap_or_default()
            ),
            (Outcome::Allow, _) => format!("posture-gate: allowed to {}", judgement.segment()),
        };
        // A session the gate cannot find again could never be moved out of a
        // VLAN by CoA: such a device gets no more than quarantine.
        let admitted = !matches!(judgement.outcome, Outcome::Deny(_));
        let remembered = match self.session(vlan) {
            Some(session) => {
                let until = self.now + SESSION_LIFETIME;
                self.shared
                    .nac
                    .put_session(&device.fingerprint, session, until)
                    .await
                    .map_err(|e| e.to_string())
            }
            None => Err("no NAS-IP-Address or NAS-IPv6-Address in the request".to_string()),
        };
        let (vlan, message, placed) = match remembered {
            Ok(()) => (vlan, message, admitted),
            Err(e) if admitted => {
                tracing::warn!(
                    nas = nas_name,
                    "the session could not be remembered, quarantined instead: {e}"
                );
                let quarantine = self.settings.quarantine_vlan;
                let reference = reference.unwrap_or_default();
                let message = format!(
                    "posture-gate: quarantined (session not recorded), reference {reference}"
                );
                (quarantine, message, false)
            }
            Err(e) => {
                tracing::warn!(nas = nas_name, "the session could not be remembered: {e}");
                (vlan, message, false)
            }
        };
        // An allowed placement holds as long as the posture it was judged
        // by: the NAS asks again then (RFC 2865 Session-Timeout with
        // Termination-Action RADIUS-Request), so a posture that ages out or
        // a certificate revoked since never keeps the VLAN.
        let holds_for = match judgement.posture.as_deref() {
            Some(posture) if placed && vlan.is_some() => {
                Some((posture.valid_until - self.now).clamp(MIN_SESSION_TIMEOUT, SESSION_LIFETIME))
            }
            _ => None,
        };
        match vlan {
            Some(vlan) => accept(
                vlan,
                &message,
                &core_nac::class_of(&device.fingerprint),
                holds_for,
            ),
            None => reject(&message),
        }
    }

    /// A refusal before any posture could be judged: the quarantine VLAN
    /// or a reject, with a decision event of its own code.
    fn refuse(
        &self,
        code: Code,
        nas_name: &str,
        source: SocketAddr,
        segments: &[usize],
        why: &dyn std::fmt::Display,
        class: &str,
    ) -> Response<Body> {
        let reference = decision::new_reference();
        tracing::info!(radius = self.radius.name, nas = nas_name, reference, %code, "802.1X refused: {why}");
        // Judged for the least sensitive segment with a VLAN: the most the
        // device could have had.
        let segment = segments
            .last()
            .and_then(|&i| self.live.snapshot.segments.get(i))
            .map_or("", |s| s.name.as_str());
        self.shared
            .audit
            .emit_detached(&AuditEvent::Decision(DecisionEvent {
                reference: Some(&reference),
                enforcement: Enforcement::Nac,
                device: None,
                source,
                proxy: Some(&self.radius.name),
                route_host: nas_name,
                route_prefix: "",
                segment,
                decision: Decision::Deny,
                reason: Some(code),
                findings: &[],
                unmet: &[],
            }));
        match self.settings.quarantine_vlan {
            Some(vlan) => accept(
                vlan,
                &format!("posture-gate: quarantined ({code}), reference {reference}"),
                class,
                None,
            ),
            None => reject(&format!(
                "posture-gate: refused ({code}), reference {reference}"
            )),
        }
    }

    /// Accounting: the sessions of the device its Class names.
    async fn accounting(&self) -> Response<Body> {
        let r = self.request;
        let Some(fingerprint) = r.class.as_deref().and_then(core_nac::fingerprint_of_class) else {
            // Not a session the gate placed (another service's, or a NAS
            // that does not echo Class): nothing to keep.
            tracing::debug!(
                radius = self.radius.name,
                "accounting without the gate's Class, ignored"
            );
            return no_content();
        };
        let nac = &self.shared.nac;
        let Some(mut session) = self.session(None) else {
            tracing::warn!(
                radius = self.radius.name,
                "accounting without a NAS address, ignored"
            );
            return no_content();
        };
        let result = match r.acct_status {
            Some(AcctStatus::Start | AcctStatus::InterimUpdate) => {
                // The VLAN is the one post-auth gave this session.
                if let Ok(known) = nac.sessions(&fingerprint, self.now).await {
                    session.vlan = known.iter().find(|k| k.same(&session)).and_then(|k| k.vlan);
                }
                nac.put_session(&fingerprint, session, self.now + SESSION_LIFETIME)
                    .await
            }
            Some(AcctStatus::Stop) => nac.end_session(&fingerprint, &session).await,
            Some(AcctStatus::Other) | None => Ok(()),
        };
        match result {
            Ok(()) => no_content(),
            // FreeRADIUS then sends no Accounting-Response and the NAS
            // retransmits: the session is not lost.
            Err(e) => {
                tracing::warn!(radius = self.radius.name, "accounting not recorded: {e}");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the session store is unavailable\n",
                )
            }
        }
    }
}

/// Reads the request body: at most `rest::MAX_BODY_BYTES`, within
/// `body_timeout`.
async fn read_body(req: Request<Incoming>, live: &Live) -> Result<Bytes, Response<Body>> {
    let limited = Limited::new(req.into_body(), rest::MAX_BODY_BYTES);
    match tokio::time::timeout(live.settings.body_timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        )),
        Err(_) => Err(text(StatusCode::REQUEST_TIMEOUT, "request body too slow\n")),
    }
}

/// One reply attribute in `rlm_rest`'s object form, never expanded.
fn literal(value: &str) -> serde_json::Value {
    serde_json::json!({ "value": value, "do_xlat": false })
}

/// 200: Access-Accept into `vlan` (RFC 3580 tunnel attributes), for at
/// most `holds_for` seconds when given.
fn accept(vlan: u16, message: &str, class: &str, holds_for: Option<i64>) -> Response<Body> {
    let mut reply = serde_json::json!({
        "Tunnel-Type": literal("VLAN"),
        "Tunnel-Medium-Type": literal("IEEE-802"),
        "Tunnel-Private-Group-Id": literal(&vlan.to_string()),
        "Reply-Message": literal(message),
    });
    if !class.is_empty() {
        reply["Class"] = literal(class);
    }
    if let Some(seconds) = holds_for {
        reply["Session-Timeout"] = literal(&seconds.to_string());
        reply["Termination-Action"] = literal("RADIUS-Request");
    }
    json(StatusCode::OK, &reply)
}

/// 401: in post-auth, `rlm_rest` makes this an Access-Reject.
fn reject(message: &str) -> Response<Body> {
    json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({ "Reply-Message": literal(message) }),
    )
}

fn no_content() -> Response<Body> {
    let mut response = text(StatusCode::NO_CONTENT, "");
    response.headers_mut().remove(header::CONTENT_TYPE);
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    page_response(status, "application/json", Bytes::from(body))
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = page_response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
