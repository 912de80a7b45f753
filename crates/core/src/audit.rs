//! One typed audit event per decision. Every enforcement point (the reverse
//! proxy now; forward-auth and 802.1X later) builds the same event types, so
//! the question "where is prohibited software still in use, at which
//! supplier or agency?" can be answered from one log with one schema.
//!
//! Events are serialised as one JSON object each; the server's audit writer
//! puts them on their way (this crate writes nothing).

use std::net::SocketAddr;

use serde::Serialize;

use crate::attestation::Reason;
use crate::code::Code;
use crate::device::DeviceIdentity;
use crate::verdict::{Decision, Finding, Unmet};

/// Who the device is, as its certificate says.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Device<'a> {
    /// Lowercase hex SHA-256 of the certificate.
    pub fingerprint_sha256: &'a str,
    /// RFC 4514 subject.
    pub subject: &'a str,
    /// The first O of the subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<&'a str>,
    /// Every OU of the subject.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub organizational_units: &'a [String],
}

impl<'a> From<&'a DeviceIdentity> for Device<'a> {
    fn from(d: &'a DeviceIdentity) -> Self {
        Device {
            fingerprint_sha256: &d.fingerprint_sha256,
            subject: &d.subject,
            organization: d.organization.as_deref(),
            organizational_units: &d.organizational_units,
        }
    }
}

/// Which door made the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// The reverse proxy.
    Proxy,
    /// Forward-auth for an existing proxy.
    ForwardAuth,
    /// 802.1X through FreeRADIUS.
    Nac,
}

/// A request for a segment was allowed, warned or denied.
///
/// A request the reverse proxy decided has, in its audit line, also
/// `method`, `path`, `status`, `bytes` (of the response body sent) and
/// `latency_ms` (from the request head to the last byte); the gate's
/// writer appends them once the response is done (they are not known
/// when the event is made).
#[derive(Debug, Clone, Serialize)]
pub struct DecisionEvent<'a> {
    /// Every decision has one; shown on the denial page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<&'a str>,
    /// The door.
    pub enforcement: Enforcement,
    /// The client certificate's identity, when there was a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Device<'a>>,
    /// The client's address (behind forward-auth: as its proxy tells it).
    pub source: SocketAddr,
    /// Forward-auth: the configured name of the proxy that asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<&'a str>,
    /// The route's host.
    pub route_host: &'a str,
    /// The route's path prefix.
    pub route_prefix: &'a str,
    /// The route's segment.
    pub segment: &'a str,
    /// Allow, warn or deny.
    pub decision: Decision,
    /// Why a request was denied without findings: `no_certificate`,
    /// `no_posture`, `stale_posture`, `catalogue_changed` or an attestation
    /// reason code; `prohibited` is told by the findings and unmet
    /// requirements instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Code>,
    /// The prohibited items behind a warning or a denial.
    #[serde(skip_serializing_if = "<[Finding]>::is_empty")]
    pub findings: &'a [Finding],
    /// The requirements not met behind a warning or a denial.
    #[serde(skip_serializing_if = "<[Unmet]>::is_empty")]
    pub unmet: &'a [Unmet],
}

/// A request the gate could not serve before or after any decision: a
/// malformed request (400), an unknown host (404), an upstream that failed
/// (502) or timed out (504). The reference on the page the client saw is
/// here, so the service desk finds every page in the log.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedEvent<'a> {
    /// Shown on the page.
    pub reference: &'a str,
    /// The door.
    pub enforcement: Enforcement,
    /// The client certificate's identity, when there was a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Device<'a>>,
    /// The client's address (behind forward-auth: as its proxy tells it,
    /// or the peer itself when it is no trusted proxy).
    pub source: SocketAddr,
    /// Forward-auth: the configured name of the proxy that asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<&'a str>,
    /// The route's host, once a route was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_host: Option<&'a str>,
    /// The route's path prefix, once a route was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_prefix: Option<&'a str>,
    /// The route's segment, once a route was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<&'a str>,
    /// `bad_request`, `unknown_host`, `upstream_unavailable` or
    /// `upstream_timeout`.
    pub reason: Code,
}

/// An attestation was accepted or refused.
#[derive(Debug, Clone, Serialize)]
pub struct AttestationEvent<'a> {
    /// The reference the gate gave the agent with its answer
    /// (`X-Posture-Reference`), printed by posture-agent for the service
    /// desk; absent for a token that came inline with a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<&'a str>,
    /// The client certificate's identity, when there was a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Device<'a>>,
    /// The peer address.
    pub source: SocketAddr,
    /// Whether the token verified.
    pub valid: bool,
    /// Why it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Unix seconds until which the posture is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
    /// Whether the posture was remembered (only for a TLS client certificate).
    pub remembered: bool,
    /// Every prohibited item the device reported, per segment.
    #[serde(skip_serializing_if = "<[Finding]>::is_empty")]
    pub findings: &'a [Finding],
}

/// One line of the audit log; `event` names its kind.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent<'a> {
    /// A request for a segment was judged.
    Decision(DecisionEvent<'a>),
    /// A token was verified (posted or inline).
    Attestation(AttestationEvent<'a>),
    /// A request could not be served (400, 404, 502, 504).
    Refused(RefusedEvent<'a>),
    /// A NAS was told that a device's VLAN changed (802.1X, RFC 5176).
    Change(ChangeEvent<'a>),
    /// The TLS front refused a presented client certificate: the
    /// connection is served pages only.
    TlsRefused(TlsRefusedEvent<'a>),
    /// The configuration was (re)loaded, or a reload was refused.
    Reload(ReloadEvent<'a>),
}

/// Why the TLS front refused a presented client certificate (the
/// certificate module's [`CertProblem`], by its old name).
pub use crate::certificate::CertProblem as TlsRefusal;

/// A client certificate the TLS front refused: the handshake completes
/// (so the person gets a page naming the problem), but the connection has
/// no identity. One line per connection, at the handshake; its requests
/// get decision lines with the code and no device.
#[derive(Debug, Clone, Serialize)]
pub struct TlsRefusedEvent<'a> {
    /// The peer address.
    pub source: SocketAddr,
    /// Why.
    pub reason: TlsRefusal,
    /// The code the pages of this connection show (`cert_expired`, ...).
    pub code: Code,
    /// Lowercase hex SHA-256 of the presented leaf's DER (unverified: it
    /// identifies what was sent, not a device).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint_sha256: Option<&'a str>,
    /// The presented leaf's RFC 4514 subject, when it parses. Unverified:
    /// whoever connects writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// The presented leaf's issuer, when it parses (unverified too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<&'a str>,
    /// The presented leaf's serial number, lowercase hex, when it parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<&'a str>,
    /// Forward-auth: the proxy that forwarded the certificate (then one
    /// line per request it asks about, as its `decision` lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<&'a str>,
}

impl<'a> TlsRefusedEvent<'a> {
    /// The line of `rejected`, shown by the client at `source` (through
    /// `proxy`, for forward-auth).
    pub fn of(
        source: SocketAddr,
        rejected: &'a crate::certificate::RejectedCert,
        proxy: Option<&'a str>,
    ) -> TlsRefusedEvent<'a> {
        TlsRefusedEvent {
            source,
            reason: rejected.problem,
            code: rejected.code(),
            fingerprint_sha256: Some(rejected.fingerprint_sha256.as_str())
                .filter(|f| !f.is_empty()),
            subject: rejected.subject.as_deref(),
            issuer: rejected.issuer.as_deref(),
            serial: rejected.serial.as_deref(),
            proxy,
        }
    }
}

/// What started a (re)load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadTrigger {
    /// SIGHUP.
    Signal,
    /// A watched file changed.
    File,
    /// A call of the gate's API (`GateHandle::reload_now`).
    Api,
    /// The first load, at start.
    Start,
}

/// `ok` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadResult {
    /// The new configuration serves.
    Ok,
    /// Refused; the running configuration stays.
    Failed,
}

/// A configuration load and its result.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadEvent<'a> {
    /// Whether the configuration now serves.
    pub result: ReloadResult,
    /// What started it.
    pub trigger: ReloadTrigger,
    /// Why it was refused (every error, one per line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// The configuration file.
    pub source: &'a str,
}

/// The gate told (or tried to tell) a NAS that the VLAN a device may have
/// changed, after an attestation: a CoA-Request with the new VLAN or a
/// Disconnect-Request.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeEvent<'a> {
    /// The device.
    pub device: Device<'a>,
    /// The NAS's configured name; absent when no `[[nac.nas]]` has its
    /// address (then nothing could be sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nas: Option<&'a str>,
    /// The NAS-IP-Address of the session.
    pub nas_address: std::net::IpAddr,
    /// The session's Acct-Session-Id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acct_session_id: Option<&'a str>,
    /// The session's Calling-Station-Id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calling_station_id: Option<&'a str>,
    /// `coa` or `disconnect`.
    pub change: crate::config::model::NasChange,
    /// The VLAN the session had; absent: rejected or unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_before: Option<u16>,
    /// The VLAN the device may have now; absent: none (reject).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_after: Option<u16>,
    /// `ack`, `nak`, `timeout`, `error` or `no_nas`.
    pub result: &'a str,
    /// The NAS's Error-Cause with a NAK (RFC 5176 section 3.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_cause: Option<u32>,
    /// With a timeout: how many times the request was sent unanswered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

impl AuditEvent<'_> {
    /// The event as one JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        // serde_json writes only valid UTF-8.
        String::from_utf8(self.to_json_bytes()).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The event as one JSON line (no trailing newline), as bytes.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Room for a denial with a finding, so the line is one allocation.
        let mut json = Vec::with_capacity(768);
        // Serialising these plain structs cannot fail; an empty object would
        // still be a visible, countable line.
        if serde_json::to_writer(&mut json, self).is_err() {
            json.clear();
            json.extend_from_slice(b"{}");
        }
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_events_serialise_with_their_kind_and_skip_empty_parts() {
        let e = AuditEvent::Decision(DecisionEvent {
            reference: None,
            enforcement: Enforcement::Proxy,
            device: None,
            source: "127.0.0.1:5000".parse().unwrap(),
            proxy: None,
            route_host: "app.example",
            route_prefix: "/",
            segment: "kantoor",
            decision: Decision::Deny,
            reason: Some(Code::NoCertificate),
            findings: &[],
            unmet: &[],
        });
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["event"], "decision");
        assert_eq!(v["enforcement"], "proxy");
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["reason"], "no_certificate");
        assert!(v.get("findings").is_none() && v.get("device").is_none());
    }
}
