//! The one enforcement step every door calls.
//!
//! A door (the reverse proxy, forward-auth, 802.1X) reads its own protocol
//! into a [`Case`]: the snapshot, the posture store, what TLS said about the
//! client ([`Client`], with the revocation status the door looked up in the
//! core's [`Revocations`](crate::revocation::Revocations)), which door and
//! route it is, the segment, and an inline token if the request carried
//! one. [`enforce`] answers with a [`Judgement`]: the outcome, the reference
//! the person is shown, the audit events to emit, and the text of a
//! warning. The door then only writes its own answer.
//!
//! In order (the reverse proxy's order before this step existed):
//!
//! 1. An inline token (spec section 7) is verified first, when the client
//!    showed a certificate (without one the request is denied anyway, so a
//!    token is not even looked at). A valid one replaces whatever was
//!    remembered, and is remembered; an invalid one denies with its reason.
//!    Without a token, the remembered posture is looked up.
//! 2. A certificate the CRLs refuse is denied, whatever else holds.
//! 3. [`decision::decide`] judges the posture for the segment.
//!
//! [`attest`] is the attestation alone, shared by the posture endpoint and
//! step 1, so a posted token and an inline one leave the same record.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::attestation::{NonceCheck, Reason, Verifier};
use crate::audit::{AttestationEvent, AuditEvent, DecisionEvent, Enforcement};
use crate::certificate::RejectedCert;
use crate::code::Code;
use crate::config::Snapshot;
use crate::decision::{self, Denial, Outcome, Posture, SegmentResult};
use crate::device::DeviceIdentity;
use crate::nonce::{MacCheck, NonceIssuer};
use crate::revocation::Status;
use crate::store::{NonceStore, NonceUse, PostureStore, StoreError};
use crate::verdict::{Finding, Unmet, Verdict};

/// What TLS said about the client.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The identity of the client certificate; `None` without one, or when
    /// it could not be read (which is judged as no certificate).
    pub identity: Option<&'a DeviceIdentity>,
    /// The DER of the client certificate, which an inline token must be
    /// bound to (spec section 2).
    pub certificate: Option<&'a [u8]>,
    /// What the current CRLs say about the presented chain; `Good` when no
    /// certificate was presented.
    pub revocation: Status,
    /// A certificate that was presented but failed verification. Then
    /// `identity` and `certificate` are `None`: the client is judged as
    /// one without a certificate, and only the denial names the problem.
    pub rejected: Option<&'a Arc<RejectedCert>>,
}

impl Client<'_> {
    /// A client that presented no certificate.
    pub const NONE: Client<'static> = Client {
        identity: None,
        certificate: None,
        revocation: Status::Good,
        rejected: None,
    };

    /// Why the CRLs refuse this client's certificate, if they do. (802.1X
    /// knows the certificate by issuer and serial, not its DER: an
    /// identity counts as a certificate too.)
    pub fn refused(&self) -> Option<Denial> {
        if self.certificate.is_none() && self.identity.is_none() {
            return None;
        }
        self.revocation.denial()
    }
}

/// Which door judges, and for whom: the door-specific fields of the audit
/// events.
#[derive(Debug, Clone, Copy)]
pub struct Door<'a> {
    /// The kind of door.
    pub enforcement: Enforcement,
    /// The client's address (behind forward-auth: as its proxy tells it).
    pub source: SocketAddr,
    /// Forward-auth: the configured name of the proxy that asked.
    pub proxy: Option<&'a str>,
    /// The route's host, as the audit event names it.
    pub route_host: &'a str,
    /// The route's path prefix, as the audit event names it.
    pub route_prefix: &'a str,
}

/// What a token is checked with: the verifier of the current
/// configuration, its nonce issuer, and the memory of used nonces.
pub struct Attestor<'a, N> {
    /// The verifier of spec section 7.
    pub verifier: &'a Verifier,
    /// Checks a nonce's MAC and expiry.
    pub issuer: &'a NonceIssuer,
    /// Marks a nonce used, once.
    pub nonces: &'a N,
}

/// Everything [`enforce`] judges a request by.
pub struct Case<'a, P, N> {
    /// The configuration, one for the whole request.
    pub snapshot: &'a Snapshot,
    /// The remembered postures.
    pub postures: &'a P,
    /// What TLS said about the client.
    pub client: Client<'a>,
    /// Which door, which route.
    pub door: Door<'a>,
    /// Index into `snapshot.segments`.
    pub segment: usize,
    /// A token sent with the request (`Posture-Attestation`), if any.
    pub token: Option<&'a [u8]>,
    /// What a token is checked with.
    pub attestor: Attestor<'a, N>,
    /// Unix seconds.
    pub now: i64,
}

/// The answer of [`enforce`]: what to do, and what to record.
pub struct Judgement<'a> {
    /// Allow, warn (and why) or deny (and why).
    pub outcome: Outcome,
    /// The reference shown to the person and written to the audit log;
    /// every decision has one (made inline, no allocation).
    pub reference: Option<decision::Reference>,
    /// The posture the request was judged by, if there was one: remembered,
    /// or fresh from an inline token.
    pub posture: Option<Arc<Posture>>,
    /// The inline token's attestation, when the request carried one (boxed:
    /// rare, and large next to the rest).
    pub attestation: Option<Box<Attestation>>,
    client: Option<&'a DeviceIdentity>,
    door: Door<'a>,
    segment: &'a str,
    now: i64,
}

impl<'a> Judgement<'a> {
    /// The code of a denial; `None` for allow and warn.
    pub fn code(&self) -> Option<Code> {
        match &self.outcome {
            Outcome::Deny(denial) => Some(denial.code()),
            _ => None,
        }
    }

    /// The name of the segment the request was judged for.
    pub fn segment(&self) -> &'a str {
        self.segment
    }

    /// Until when the outcome holds without judging again (an upgraded
    /// connection is judged again then): the posture's `valid_until`, or
    /// now when there is none.
    pub fn valid_until(&self) -> i64 {
        self.posture.as_ref().map_or(self.now, |p| p.valid_until)
    }

    /// The findings and unmet requirements behind a warning or a
    /// `prohibited` denial.
    pub fn result(&self) -> Option<&SegmentResult> {
        match &self.outcome {
            Outcome::Warn(result) | Outcome::Deny(Denial::Prohibited(result)) => Some(result),
            _ => None,
        }
    }

    /// The audit event of the decision, borrowing from the judgement.
    pub fn decision_event(&self) -> AuditEvent<'_> {
        let (findings, unmet): (&[Finding], &[Unmet]) = match self.result() {
            Some(r) => (&r.findings, &r.unmet),
            None => (&[], &[]),
        };
        // A `prohibited` denial is told by its findings, not a reason.
        let reason = match &self.outcome {
            Outcome::Deny(Denial::Prohibited(_)) => None,
            _ => self.code(),
        };
        AuditEvent::Decision(DecisionEvent {
            reference: self.reference.as_deref(),
            enforcement: self.door.enforcement,
            device: self.client.map(Into::into),
            source: self.door.source,
            proxy: self.door.proxy,
            route_host: self.door.route_host,
            route_prefix: self.door.route_prefix,
            segment: self.segment,
            decision: self.outcome.decision(),
            reason,
            findings,
            unmet,
        })
    }

    /// The audit event of the inline token, when there was one; to be
    /// emitted before the decision's.
    pub fn attestation_event(&self) -> Option<AuditEvent<'_>> {
        let attestation = self.attestation.as_ref()?;
        Some(attestation.event(self.client, self.door.source))
    }

    /// The text of `Posture-Warning` for a warned request: the catalogue
    /// ids and unmet requirements behind it, sorted, without duplicates,
    /// comma-separated (`kaspersky, min_os_version`). The door encodes it
    /// for its protocol.
    pub fn warning(&self) -> Option<String> {
        let Outcome::Warn(result) = &self.outcome else {
            return None;
        };
        let mut causes: Vec<&str> = result
            .findings
            .iter()
            .map(|f| f.catalog_id.as_str())
            .collect();
        causes.extend(result.unmet.iter().map(|u| u.requirement.code()));
        causes.sort_unstable();
        causes.dedup();
        Some(causes.join(", "))
    }
}

/// Judges one request. See the module docs for the order of the steps.
pub async fn enforce<'a, P, N>(case: Case<'a, P, N>) -> Judgement<'a>
where
    P: PostureStore,
    N: NonceStore,
{
    let segment = case.segment;
    let seen = look(&case).await;
    let outcome = seen.outcome(&case, segment);
    seen.judgement(&case, segment, outcome)
}

/// 802.1X: judges the device for each of `segments` in turn (most
/// sensitive first) and answers with the first judgement that lets it in,
/// or, when none does, the last one's denial. Steps 1 and 2 are taken once;
/// `case.segment` is not used.
pub async fn place<'a, P, N>(case: Case<'a, P, N>, segments: &[usize]) -> Judgement<'a>
where
    P: PostureStore,
    N: NonceStore,
{
    let seen = look(&case).await;
    let mut last = None;
    for &segment in segments {
        let outcome = seen.outcome(&case, segment);
        let admitted = !matches!(outcome, Outcome::Deny(_));
        last = Some((segment, outcome));
        if admitted {
            break;
        }
    }
    let (segment, outcome) = last.unwrap_or((case.segment, Outcome::Deny(Denial::NoPosture)));
    seen.judgement(&case, segment, outcome)
}

/// Steps 1 and 2: what is known of the device before any segment.
struct Seen {
    posture: Option<Arc<Posture>>,
    attestation: Option<Box<Attestation>>,
    /// The posture store could not be read.
    unreadable: bool,
}

async fn look<P, N>(case: &Case<'_, P, N>) -> Seen
where
    P: PostureStore,
    N: NonceStore,
{
    let client = case.client;
    let mut posture = None;
    let mut attestation = None;
    let mut unreadable = false;
    // Without a client certificate the request is denied whatever a token
    // says, and nothing could be remembered: such a peer gets no signature
    // check and no spent nonce for free.
    let token = case.token.filter(|_| client.identity.is_some());
    if let Some(token) = token {
        // Boxed: an inline token is rare, and its verification would
        // otherwise make the future of every request as large as its own.
        let attested = Box::pin(attest(
            case.snapshot,
            &case.attestor,
            case.postures,
            client,
            token,
            case.now,
        ))
        .await;
        if let Ok((fresh, _)) = &attested.result {
            posture = Some(fresh.clone());
        }
        attestation = Some(Box::new(attested));
    } else if let Some(identity) = client.identity {
        match case.postures.get(&identity.fingerprint).await {
            Ok(remembered) => posture = remembered,
            Err(_) => unreadable = true,
        }
    }
    Seen {
        posture,
        attestation,
        unreadable,
    }
}

impl Seen {
    /// Step 3 for one segment, after the refusals of steps 1 and 2.
    fn outcome<P, N>(&self, case: &Case<'_, P, N>, segment: usize) -> Outcome {
        // A refusal that is the gate's (its nonce memory), not the token's,
        // is told as such: the device did nothing wrong and may try again.
        let invalid = self
            .attestation
            .as_ref()
            .and_then(|a| a.result.as_ref().err())
            .map(|refusal| match refusal.retry_later {
                true => Denial::NonceNotRecorded,
                false => Denial::InvalidAttestation(refusal.reason),
            });
        match (case.client.refused(), invalid) {
            (Some(denial), _) => Outcome::Deny(denial),
            (None, Some(denial)) => Outcome::Deny(denial),
            (None, None) if self.unreadable => Outcome::Deny(Denial::PostureStoreUnavailable),
            (None, None) => match (
                decision::decide(
                    case.snapshot,
                    case.client.identity,
                    self.posture.as_deref(),
                    segment,
                    case.now,
                ),
                case.client.rejected,
            ) {
                // Denied as without a certificate; the page names why.
                (Outcome::Deny(Denial::NoCertificate), Some(rejected)) => {
                    Outcome::Deny(Denial::CertificateRejected(rejected.clone()))
                }
                (outcome, _) => outcome,
            },
        }
    }

    fn judgement<'a, P, N>(
        self,
        case: &Case<'a, P, N>,
        segment: usize,
        outcome: Outcome,
    ) -> Judgement<'a> {
        // Every decision has a reference (issue 18): an allowed request is
        // found in the audit log by it as well as a denied one.
        let reference = Some(decision::Reference::new());
        Judgement {
            outcome,
            reference,
            posture: self.posture,
            attestation: self.attestation,
            client: case.client.identity,
            door: case.door,
            segment: case
                .snapshot
                .segments
                .get(segment)
                .map_or("", |s| s.name.as_str()),
            now: case.now,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The spec's reason code, told to the agent and the audit log.
    pub reason: Reason,
    /// The token may be fine, but its nonce could not be recorded as used
    /// now (the used-nonce memory is full or out of reach): the gate, not
    /// the token, is at fault, and the answer is "retry later".
    pub retry_later: bool,
}

/// One token, verified, assessed and (for a client certificate)
/// remembered.
#[derive(Debug)]
pub struct Attestation {
    /// The posture and the verdict of spec section 5, or why not.
    pub result: Result<(Arc<Posture>, Verdict), Refusal>,
    /// Whether the posture was remembered under the client certificate.
    pub remembered: bool,
    /// A store that could not be asked or told: the nonce store (then the
    /// result is a refusal with `retry_later`) or the posture store (then
    /// the posture is valid but not remembered).
    pub store_error: Option<StoreError>,
}

impl Attestation {
    fn refused(reason: Reason) -> Attestation {
        Attestation {
            result: Err(Refusal {
                reason,
                retry_later: false,
            }),
            remembered: false,
            store_error: None,
        }
    }

    /// The audit event of this attestation.
    pub fn event<'e>(
        &'e self,
        device: Option<&'e DeviceIdentity>,
        source: SocketAddr,
    ) -> AuditEvent<'e> {
        let (reason, valid_until, findings) = match &self.result {
            Ok((posture, verdict)) => (None, Some(posture.valid_until), &verdict.findings[..]),
            Err(refusal) => (Some(refusal.reason), None, &[][..]),
        };
        AuditEvent::Attestation(AttestationEvent {
            reference: None,
            device: device.map(Into::into),
            source,
            valid: reason.is_none(),
            reason,
            valid_until,
            remembered: self.remembered,
            findings,
        })
    }
}

/// Verifies a token for this client (spec section 7), marks its nonce used,
/// assesses it for every segment and remembers the posture when the client
/// has a certificate. The posture endpoint and inline tokens share it.
pub async fn attest<P, N>(
    snapshot: &Snapshot,
    attestor: &Attestor<'_, N>,
    postures: &P,
    client: Client<'_>,
    token: &[u8],
    now: i64,
) -> Attestation
where
    P: PostureStore,
    N: NonceStore,
{
    // The token is bound to this connection's certificate (spec section 2):
    // one the current CRLs refuse cannot vouch for a device. The spec's code
    // for a certificate that does not chain to a trusted anchor is the
    // honest one on the wire.
    if client.refused().is_some() {
        return Attestation::refused(Reason::UntrustedChain);
    }
    // A certificate that failed verification vouches for nothing either:
    // the token is not read, let alone bound or remembered.
    if let Some(rejected) = client.rejected {
        return Attestation::refused(rejected.problem.attestation_reason());
    }
    let check = MacCheck::new(attestor.issuer);
    let verified =
        match attestor
            .verifier
            .verify(token, client.certificate, now, NonceCheck::Check(&check))
        {
            Ok(verified) => verified,
            Err(reason) => return Attestation::refused(reason),
        };
    // The nonce was the verifier's last check; only now is it spent.
    if let Some(nonce) = verified.claims.eat_nonce.as_deref() {
        let Some(expires_at) = check.passed() else {
            return Attestation::refused(Reason::NonceUnknown);
        };
        let busy = |store_error| Attestation {
            result: Err(Refusal {
                reason: Reason::NonceUnknown,
                retry_later: true,
            }),
            remembered: false,
            store_error,
        };
        match attestor.nonces.use_once(nonce, expires_at, now).await {
            Ok(NonceUse::Used) => {}
            Ok(NonceUse::AlreadyUsed) => return Attestation::refused(Reason::NonceReplayed),
            // Accepting it unrecorded would make it reusable; refuse.
            Ok(NonceUse::Full) => return busy(None),
            Err(e) => return busy(Some(e)),
        }
    }
    let posture = Arc::new(Posture::new(snapshot, &verified));
    let verdict = decision::verdict(snapshot, &verified.device, &posture, now);
    let mut remembered = false;
    let mut store_error = None;
    if let Some(identity) = client.identity {
        match postures
            .put(&identity.fingerprint, posture.clone(), now)
            .await
        {
            Ok(()) => remembered = true,
            Err(e) => store_error = Some(e),
        }
    }
    Attestation {
        result: Ok((posture, verdict)),
        remembered,
        store_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Decision, FindingItem, ItemKind, Requirement};

    fn finding(id: &str) -> Finding {
        Finding {
            catalog_id: id.into(),
            segment: "s".into(),
            action: Decision::Warn,
            item: FindingItem {
                kind: ItemKind::Software,
                name: "x".into(),
                vendor: None,
                version: None,
                id: None,
            },
            category: "antivirus".into(),
            exemption: None,
            exemption_expires: None,
            deny_from: None,
        }
    }

    fn judgement(outcome: Outcome) -> Judgement<'static> {
        Judgement {
            outcome,
            reference: None,
            posture: None,
            attestation: None,
            client: None,
            door: Door {
                enforcement: Enforcement::Nac,
                source: "[2001:db8::1]:1812".parse().unwrap(),
                proxy: None,
                route_host: "h",
                route_prefix: "/",
            },
            segment: "s",
            now: 7,
        }
    }

    #[test]
    fn the_warning_names_each_cause_once_in_order() {
        let unmet = |requirement| Unmet {
            requirement,
            segment: "s".into(),
            action: Decision::Warn,
            detail: String::new(),
        };
        let result = SegmentResult {
            decision: Decision::Warn,
            findings: vec![finding("kaspersky"), finding("acme"), finding("kaspersky")],
            unmet: vec![unmet(Requirement::MinOsVersion)],
        };
        let j = judgement(Outcome::Warn(result.clone()));
        assert_eq!(
            j.warning().as_deref(),
            Some("acme, kaspersky, min_os_version")
        );
        assert_eq!(j.result(), Some(&result));
        assert_eq!(judgement(Outcome::Allow).warning(), None);
        let denied = judgement(Outcome::Deny(Denial::Prohibited(result)));
        assert_eq!(denied.warning(), None, "a denial warns nobody");
    }

    #[test]
    fn without_a_posture_an_outcome_holds_until_now() {
        assert_eq!(judgement(Outcome::Allow).valid_until(), 7);
    }

    #[test]
    fn the_door_and_code_are_in_the_decision_event() {
        let j = judgement(Outcome::Deny(Denial::StalePosture { valid_until: 1 }));
        assert_eq!(j.code(), Some(Code::StalePosture));
        let v: serde_json::Value = serde_json::from_str(&j.decision_event().to_json()).unwrap();
        assert_eq!(v["enforcement"], "nac");
        assert_eq!(v["source"], "[2001:db8::1]:1812");
        assert_eq!(v["reason"], "stale_posture");
        assert_eq!(v["decision"], "deny");
    }

    #[test]
    fn only_a_presented_certificate_can_be_refused_by_the_crls() {
        let der = [0x30u8, 0x00];
        let with = |revocation| Client {
            identity: None,
            certificate: Some(&der),
            revocation,
            rejected: None,
        };
        assert_eq!(with(Status::Good).refused(), None);
        assert_eq!(
            with(Status::Revoked).refused(),
            Some(Denial::CertificateRevoked)
        );
        assert_eq!(
            with(Status::Unknown).refused(),
            Some(Denial::RevocationUnknown)
        );
        let none = Client {
            revocation: Status::Revoked,
            rejected: None,
            ..Client::NONE
        };
        assert_eq!(none.refused(), None);
    }
}
