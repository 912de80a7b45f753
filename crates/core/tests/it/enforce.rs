//! The one enforcement step: outcome, reference, audit events and warning
//! text for each kind of request, the precedence of an inline token over
//! the remembered posture, and revoked certificates.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use posture_core::attestation::claims::Software;
use posture_core::attestation::{Reason, Verifier, VerifierSettings};
use posture_core::audit::{AuditEvent, Enforcement};

use posture_core::config::Snapshot;
use posture_core::decision::{Denial, Outcome, Posture};
use posture_core::device::DeviceIdentity;
use posture_core::enforce::{self, Attestor, Case, Client, Door, Judgement, Refusal};
use posture_core::nonce::NonceIssuer;
use posture_core::revocation::Status;
use posture_core::store::{Fingerprint, MemoryPostures, PostureStore, StoreError, UsedNonces};
use posture_testkit::pki::{DeviceCredentials, Pki};
use posture_testkit::token::{now, valid_claims, TokenBuilder};
use serde_json::Value;

/// Polls a future of the in-memory stores to its end: they never wait.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the in-memory stores never wait"),
    }
}

struct Fixture {
    _pki: Pki,
    device: DeviceCredentials,
    identity: DeviceIdentity,
    snapshot: Snapshot,
    verifier: Verifier,
    issuer: NonceIssuer,
    nonces: UsedNonces,
    postures: MemoryPostures,
}

const SOURCE: &str = "192.0.2.10:50000";

fn fixture() -> Fixture {
    let pki = Pki::generate().unwrap();
    let device = pki
        .issue_device("lt-042", "Supplier BV", Some("IT"))
        .unwrap();
    let identity = DeviceIdentity::from_der(device.cert_der.as_ref()).unwrap();
    let root = pki.root_cert_der().clone();
    let settings = VerifierSettings {
        require_nonce: false,
        ..VerifierSettings::default()
    };
    Fixture {
        verifier: Verifier::new(std::slice::from_ref(&root), settings).unwrap(),
        snapshot: Snapshot::builtin_default(vec![root]).unwrap(),
        _pki: pki,
        device,
        identity,
        issuer: NonceIssuer::new(b"secret".to_vec(), Duration::from_secs(60)),
        nonces: UsedNonces::new(100),
        postures: MemoryPostures::new(100),
    }
}

fn kaspersky() -> Software {
    Software {
        name: "kesl".into(),
        vendor: Some("AO Kaspersky Lab".into()),
        version: Some("12.1".into()),
        id: Some("kesl".into()),
        signer: None,
        source: None,
    }
}

impl Fixture {
    fn client(&self) -> Client<'_> {
        Client {
            identity: Some(&self.identity),
            certificate: Some(self.device.cert_der.as_ref()),
            revocation: Status::Good,
            rejected: None,
        }
    }

    fn token(&self, with_kaspersky: bool, nonce: Option<&str>) -> String {
        TokenBuilder::new(&self.device)
            .with_claims(|c| {
                if with_kaspersky {
                    c.software.push(kaspersky());
                }
                c.eat_nonce = nonce.map(str::to_owned);
            })
            .build()
            .unwrap()
    }

    /// Remembers the posture of a verified token, as the attest endpoint does.
    fn remember(&self, with_kaspersky: bool) -> Arc<Posture> {
        let token = self.token(with_kaspersky, None);
        let a = run(enforce::attest(
            &self.snapshot,
            &self.attestor(),
            &self.postures,
            self.client(),
            token.as_bytes(),
            now(),
        ));
        assert!(a.remembered && a.store_error.is_none());
        a.result.unwrap().0
    }

    fn attestor(&self) -> Attestor<'_, UsedNonces> {
        Attestor {
            verifier: &self.verifier,
            issuer: &self.issuer,
            nonces: &self.nonces,
        }
    }

    fn judge<'a>(&'a self, client: Client<'a>, token: Option<&'a [u8]>) -> Judgement<'a> {
        run(enforce::enforce(Case {
            snapshot: &self.snapshot,
            postures: &self.postures,
            client,
            door: Door {
                enforcement: Enforcement::Proxy,
                source: SOURCE.parse::<SocketAddr>().unwrap(),
                proxy: None,
                route_host: "app.example",
                route_prefix: "/pay",
            },
            segment: 0,
            token,
            attestor: self.attestor(),
            now: now(),
        }))
    }

    /// The built-in policy with every rule turned into a warning.
    fn warn_only(&mut self) {
        for rule in &mut self.snapshot.policies[0].rules {
            rule.action = posture_core::verdict::Decision::Warn;
        }
    }
}

fn json(event: AuditEvent<'_>) -> Value {
    serde_json::from_str(&event.to_json()).unwrap()
}

#[test]
fn a_clean_remembered_posture_is_allowed_with_a_reference_of_its_own() {
    let f = fixture();
    let remembered = f.remember(false);
    let j = f.judge(f.client(), None);
    assert_eq!(j.outcome, Outcome::Allow);
    let reference = j.reference.expect("an allowed decision has a reference");
    assert!(reference.starts_with("PG-"), "{reference}");
    assert_ne!(f.judge(f.client(), None).reference, Some(reference));
    assert_eq!(j.code(), None);
    assert_eq!(j.warning(), None);
    assert!(j.attestation_event().is_none());
    assert_eq!(j.valid_until(), remembered.valid_until);
    let e = json(j.decision_event());
    assert_eq!(e["event"], "decision");
    assert_eq!(e["decision"], "allow");
    assert_eq!(e["enforcement"], "proxy");
    assert_eq!(e["source"], SOURCE);
    assert_eq!(e["route_host"], "app.example");
    assert_eq!(e["route_prefix"], "/pay");
    assert_eq!(e["segment"], f.snapshot.segments[0].name);
    assert_eq!(
        e["device"]["fingerprint_sha256"],
        f.identity.fingerprint_sha256
    );
    assert_eq!(e["reference"], reference.as_str());
    for absent in ["reason", "findings", "unmet"] {
        assert!(e.get(absent).is_none(), "{absent} in {e}");
    }
}

#[test]
fn prohibited_software_is_denied_with_a_reference_and_its_findings() {
    let f = fixture();
    f.remember(true);
    let j = f.judge(f.client(), None);
    assert!(matches!(j.outcome, Outcome::Deny(Denial::Prohibited(_))));
    assert_eq!(j.code().map(|c| c.as_str()), Some("prohibited"));
    let reference = j.reference.expect("a denial has a reference");
    let e = json(j.decision_event());
    assert_eq!(e["decision"], "deny");
    assert_eq!(e["reference"], reference.as_str());
    assert_eq!(e["findings"][0]["catalog_id"], "kaspersky");
    // A `prohibited` denial is told by its findings.
    assert!(e.get("reason").is_none(), "{e}");
    assert!(j.posture.is_some(), "the page shows the reported OS");
}

#[test]
fn a_warning_has_a_reference_and_the_warning_text() {
    let mut f = fixture();
    f.warn_only();
    f.remember(true);
    let j = f.judge(f.client(), None);
    assert!(matches!(j.outcome, Outcome::Warn(_)), "{:?}", j.outcome);
    assert_eq!(j.warning().as_deref(), Some("kaspersky"));
    assert!(j.reference.is_some());
    let e = json(j.decision_event());
    assert_eq!(e["decision"], "warn");
    assert_eq!(e["reference"], j.reference.as_deref().unwrap());
    assert_eq!(e["findings"][0]["catalog_id"], "kaspersky");
    assert!(e.get("reason").is_none());
}

#[test]
fn denials_without_findings_carry_their_code_and_a_fresh_reference() {
    let f = fixture();
    let no_cert = f.judge(Client::NONE, None);
    assert_eq!(no_cert.outcome, Outcome::Deny(Denial::NoCertificate));
    let e = json(no_cert.decision_event());
    assert_eq!(e["reason"], "no_certificate");
    assert!(e.get("device").is_none());
    assert_eq!(e["reference"], no_cert.reference.as_deref().unwrap());

    let before = now();
    let no_posture = f.judge(f.client(), None);
    let after = now();
    assert_eq!(no_posture.outcome, Outcome::Deny(Denial::NoPosture));
    assert_eq!(json(no_posture.decision_event())["reason"], "no_posture");
    assert_ne!(no_cert.reference, no_posture.reference);
    // Without a posture, an outcome holds for no time at all.
    assert!(no_posture.posture.is_none());
    assert!((before..=after).contains(&no_posture.valid_until()));
}

/// A posture store that cannot be reached (as a shared store may not be).
struct Unreachable;

impl PostureStore for Unreachable {
    fn get(
        &self,
        _: &Fingerprint,
    ) -> impl Future<Output = Result<Option<Arc<Posture>>, StoreError>> + Send {
        std::future::ready(Err(StoreError::Unavailable("refused".into())))
    }

    fn put(
        &self,
        _: &Fingerprint,
        _: Arc<Posture>,
        _: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        std::future::ready(Err(StoreError::Unavailable("refused".into())))
    }

    fn remove(&self, _: &Fingerprint) -> impl Future<Output = Result<(), StoreError>> + Send {
        std::future::ready(Err(StoreError::Unavailable("refused".into())))
    }
}

#[test]
fn a_posture_store_that_cannot_answer_denies_and_never_allows() {
    let f = fixture();
    let judge = |token: Option<&[u8]>| {
        run(enforce::enforce(Case {
            snapshot: &f.snapshot,
            postures: &Unreachable,
            client: f.client(),
            door: Door {
                enforcement: Enforcement::ForwardAuth,
                source: SOURCE.parse::<SocketAddr>().unwrap(),
                proxy: None,
                route_host: "app.example",
                route_prefix: "/",
            },
            segment: 0,
            token,
            attestor: f.attestor(),
            now: now(),
        }))
        .outcome
    };
    assert_eq!(judge(None), Outcome::Deny(Denial::PostureStoreUnavailable));
    // A valid inline token is judged on its own, but is not remembered.
    let token = f.token(false, None);
    assert_eq!(judge(Some(token.as_bytes())), Outcome::Allow);
    let a = run(enforce::attest(
        &f.snapshot,
        &f.attestor(),
        &Unreachable,
        f.client(),
        token.as_bytes(),
        now(),
    ));
    assert!(!a.remembered && a.store_error.is_some());
    assert_eq!(
        json(a.event(Some(&f.identity), SOURCE.parse().unwrap()))["remembered"],
        false
    );
}

#[test]
fn a_revoked_or_unknown_certificate_is_denied_whatever_its_posture() {
    let f = fixture();
    f.remember(false);
    for (status, code) in [
        (Status::Revoked, "cert_revoked"),
        (Status::Unknown, "revocation_unknown"),
    ] {
        let client = Client {
            revocation: status,
            ..f.client()
        };
        let j = f.judge(client, None);
        assert_eq!(j.code().map(|c| c.as_str()), Some(code));
        let e = json(j.decision_event());
        assert_eq!(e["reason"], code);
        assert_eq!(e["device"]["subject"], f.identity.subject, "{e}");
        assert!(j.reference.is_some());
    }
    // The revocation status of no certificate is never looked at.
    let nobody = Client {
        revocation: Status::Revoked,
        ..Client::NONE
    };
    assert_eq!(
        f.judge(nobody, None).outcome,
        Outcome::Deny(Denial::NoCertificate)
    );
}

#[test]
fn a_valid_inline_token_replaces_the_remembered_posture_and_is_remembered() {
    let f = fixture();
    let dirty = f.remember(true);
    let token = f.token(false, None);
    let j = f.judge(f.client(), Some(token.as_bytes()));
    assert_eq!(j.outcome, Outcome::Allow, "the clean inline report counts");
    let attestation = json(j.attestation_event().expect("the inline token is audited"));
    assert_eq!(attestation["event"], "attestation");
    assert_eq!(attestation["valid"], true);
    assert_eq!(attestation["remembered"], true);
    let now_remembered = run(f.postures.get(&f.identity.fingerprint))
        .unwrap()
        .unwrap();
    assert!(!Arc::ptr_eq(&now_remembered, &dirty));
    assert!(now_remembered.assessment().matches.is_empty());
    // And the next request without a token is judged by it.
    assert_eq!(f.judge(f.client(), None).outcome, Outcome::Allow);
}

#[test]
fn an_invalid_inline_token_denies_with_its_reason_despite_a_good_posture() {
    let f = fixture();
    f.remember(false);
    let j = f.judge(f.client(), Some(b"not.a.token"));
    assert_eq!(
        j.outcome,
        Outcome::Deny(Denial::InvalidAttestation(Reason::Malformed))
    );
    let e = json(j.decision_event());
    assert_eq!(e["reason"], "malformed");
    let a = json(j.attestation_event().unwrap());
    assert_eq!(a["valid"], false);
    assert_eq!(a["reason"], "malformed");
    assert_eq!(a["remembered"], false);
}

#[test]
fn an_inline_token_on_a_revoked_certificate_is_refused_and_the_denial_is_the_revocation() {
    let f = fixture();
    let token = f.token(false, None);
    let client = Client {
        revocation: Status::Revoked,
        ..f.client()
    };
    let j = f.judge(client, Some(token.as_bytes()));
    assert_eq!(j.outcome, Outcome::Deny(Denial::CertificateRevoked));
    let a = json(j.attestation_event().unwrap());
    assert_eq!(a["reason"], "untrusted_chain");
    assert!(run(f.postures.get(&f.identity.fingerprint))
        .unwrap()
        .is_none());
}

#[test]
fn a_nonce_is_spent_once_and_a_full_memory_asks_to_retry_later() {
    let mut f = fixture();
    f.nonces = UsedNonces::new(1);
    let t = now();
    let (first, second) = (f.issuer.issue(t), f.issuer.issue(t));
    let attest = |token: &str| {
        run(enforce::attest(
            &f.snapshot,
            &f.attestor(),
            &f.postures,
            f.client(),
            token.as_bytes(),
            t,
        ))
    };
    let token = f.token(false, Some(&first.nonce));
    assert!(attest(&token).result.is_ok());
    assert_eq!(
        attest(&token).result.err(),
        Some(Refusal {
            reason: Reason::NonceReplayed,
            retry_later: false
        })
    );
    // The memory holds one live nonce: the second cannot be recorded.
    let other = f.token(false, Some(&second.nonce));
    assert_eq!(
        attest(&other).result.err(),
        Some(Refusal {
            reason: Reason::NonceUnknown,
            retry_later: true
        })
    );
    let forged = f.token(false, Some("forged"));
    assert_eq!(
        attest(&forged).result.err(),
        Some(Refusal {
            reason: Reason::NonceUnknown,
            retry_later: false
        })
    );
}

#[test]
fn a_token_that_fails_before_its_nonce_does_not_spend_it() {
    let f = fixture();
    let t = now();
    let issued = f.issuer.issue(t);
    let stale = TokenBuilder::new(&f.device)
        .claims(valid_claims(t - 3600))
        .with_claims(|c| c.eat_nonce = Some(issued.nonce.clone()))
        .build()
        .unwrap();
    let a = run(enforce::attest(
        &f.snapshot,
        &f.attestor(),
        &f.postures,
        f.client(),
        stale.as_bytes(),
        t,
    ));
    assert_eq!(a.result.err().map(|r| r.reason), Some(Reason::Stale));
    let good = f.token(false, Some(&issued.nonce));
    let a = run(enforce::attest(
        &f.snapshot,
        &f.attestor(),
        &f.postures,
        f.client(),
        good.as_bytes(),
        t,
    ));
    assert!(a.result.is_ok(), "{:?}", a.result.err());
}

#[test]
fn the_memory_store_keeps_a_posture_until_removed_and_never_an_expired_one() {
    let f = fixture();
    let posture = f.remember(false);
    let key = f.identity.fingerprint;
    assert_eq!(f.postures.count(), 1);
    run(f.postures.remove(&key)).unwrap();
    assert!(run(f.postures.get(&key)).unwrap().is_none());
    run(f.postures.put(&key, posture.clone(), posture.valid_until)).unwrap();
    assert!(
        run(f.postures.get(&key)).unwrap().is_none(),
        "a posture expired at `now` is not kept"
    );
    run(f
        .postures
        .put(&key, posture.clone(), posture.valid_until - 1))
    .unwrap();
    let got = run(f.postures.get(&key)).unwrap().unwrap();
    assert!(Arc::ptr_eq(&got, &posture));
}

/// The allow path of every door: the step adds no allocation to what the
/// lookup and the decision it wraps make themselves (the proxy's request
/// path before the step existed), and none for the event it hands out.
#[test]
fn an_allowed_request_costs_no_allocation_beyond_lookup_and_decision() {
    use crate::support::counting;
    let f = fixture();
    f.remember(false);
    let t = now();
    // Warm up the caches of the store and the clock.
    for _ in 0..3 {
        assert_eq!(f.judge(f.client(), None).outcome, Outcome::Allow);
    }
    let before = counting::on_this_thread();
    let posture = run(f.postures.get(&f.identity.fingerprint)).unwrap();
    let outcome =
        posture_core::decision::decide(&f.snapshot, Some(&f.identity), posture.as_deref(), 0, t);
    let baseline = counting::on_this_thread() - before;
    assert_eq!(outcome, Outcome::Allow);

    let before = counting::on_this_thread();
    let j = f.judge(f.client(), None);
    let event = j.decision_event();
    let judged = counting::on_this_thread() - before;
    assert!(matches!(event, AuditEvent::Decision(_)));
    assert_eq!(j.outcome, Outcome::Allow);
    assert!(
        judged <= baseline,
        "the step allocated {judged}, lookup and decision {baseline}"
    );
    assert!(
        j.reference.is_some(),
        "an allowed decision has its reference"
    );
    // The counter does see this thread's allocations.
    let before = counting::on_this_thread();
    std::hint::black_box(vec![0u8; 16]);
    assert!(counting::on_this_thread() > before);
}

/// Issue 19: a certificate that failed verification is judged as none,
/// whatever is remembered for it or sent with it; the denial and the
/// decision event name its problem, and an attestation on it is refused
/// with the spec's code and remembers nothing.
#[test]
fn a_rejected_certificate_is_judged_as_none_with_its_problem_named() {
    use posture_core::certificate::{CertProblem, RejectedCert};
    let f = fixture();
    f.remember(false);
    let token = f.token(false, None);
    for (problem, code, reason) in [
        (CertProblem::Expired, "cert_expired", Reason::CertExpired),
        (
            CertProblem::NotYetValid,
            "cert_expired",
            Reason::CertExpired,
        ),
        (
            CertProblem::UnknownIssuer,
            "untrusted_chain",
            Reason::UntrustedChain,
        ),
        (CertProblem::Revoked, "cert_revoked", Reason::UntrustedChain),
        (
            CertProblem::BadPurpose,
            "cert_wrong_usage",
            Reason::UntrustedChain,
        ),
        (
            CertProblem::Unreadable,
            "cert_invalid",
            Reason::UntrustedChain,
        ),
    ] {
        let rejected = Arc::new(RejectedCert::of(problem, f.device.cert_der.as_ref()));
        let client = Client {
            rejected: Some(&rejected),
            ..Client::NONE
        };
        for inline in [None, Some(token.as_bytes())] {
            let j = f.judge(client, inline);
            assert_eq!(
                j.outcome,
                Outcome::Deny(Denial::CertificateRejected(rejected.clone()))
            );
            assert!(j.attestation.is_none(), "no token is read");
            let e = json(j.decision_event());
            assert_eq!(e["reason"], code, "{e}");
            assert!(e.get("device").is_none(), "no identity: {e}");
        }
        let before = f.postures.count();
        let a = run(enforce::attest(
            &f.snapshot,
            &f.attestor(),
            &f.postures,
            client,
            token.as_bytes(),
            now(),
        ));
        assert_eq!(
            a.result.as_ref().err().map(|r| r.reason),
            Some(reason),
            "{problem:?}"
        );
        assert!(!a.remembered);
        assert_eq!(f.postures.count(), before);
    }
}
