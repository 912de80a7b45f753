//! Exemptions by `device_subject` over real sockets (issue 19 point 5): the
//! gate's own spelling, DER order and openssl's spaced spelling all exempt
//! the device whose certificate subject has exactly those attributes; a
//! subject with fewer attributes, or another device, is not exempted.

use crate::support as common;

use common::pki::DeviceSpec;
use common::upstream::{self, Upstream};
use common::{Device, Proto, RouteSpec, Settings, TestGate};

/// Segments `fin-a`, `fin-b`, `fin-c` deny Kaspersky (policy `strict`),
/// each with an exemption by one spelling of a subject.
const EXEMPTIONS: &str = r#"
[[segment]]
name = "fin-a"
sensitivity = "high"
policy = "strict"

[[segment]]
name = "fin-b"
sensitivity = "high"
policy = "strict"

[[segment]]
name = "fin-c"
sensitivity = "high"
policy = "strict"

[[exemption]]
device_subject = "O=Leverancier BV,OU=Beheer,CN=lt-042"
catalogue = "kaspersky"
expires = 2999-12-31
reference = "RA-DER-ORDER"
segments = ["fin-a"]

[[exemption]]
device_subject = "CN = lt-042, OU = Beheer, O = Leverancier BV"
catalogue = "kaspersky"
expires = 2999-12-31
reference = "RA-OPENSSL"
segments = ["fin-b"]

[[exemption]]
device_subject = "CN=lt-042,O=Leverancier BV"
catalogue = "kaspersky"
expires = 2999-12-31
reference = "RA-NO-OU"
segments = ["fin-c"]
"#;

async fn world() -> (TestGate, Upstream) {
    let up = upstream::start("app").await;
    // The test server certificate names a few hosts only: one host, a
    // path per segment.
    let route = |prefix: &'static str, segment: &'static str| RouteSpec {
        host: "public.test",
        prefix,
        upstream: up.url(),
        segment,
    };
    let routes = [
        route("/a", "fin-a"),
        route("/b", "fin-b"),
        route("/c", "fin-c"),
        route("/finance", "finance"),
    ];
    let settings = Settings {
        extra: EXEMPTIONS.to_owned(),
        ..Settings::default()
    };
    (TestGate::start(&routes, &settings).await, up)
}

fn device(gate: &TestGate, cn: &str, ou: Option<&str>) -> Device {
    let mut spec = DeviceSpec::new(cn, "Leverancier BV");
    spec.ou = ou.map(str::to_owned);
    gate.pki.device_from(spec)
}

/// The status of a GET on the routes of fin-a, fin-b, fin-c and finance.
async fn statuses(gate: &TestGate, device: &Device) -> Vec<u16> {
    let client = gate.client(Some(device), Proto::H1);
    let mut out = Vec::new();
    for path in ["/a", "/b", "/c", "/finance"] {
        out.push(client.get("public.test", path).await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn every_spelling_of_the_subject_exempts_the_device_that_has_exactly_it() {
    let (gate, _up) = world().await;
    let with_ou = device(&gate, "lt-042", Some("Beheer"));
    let answer = gate.attest(&with_ou, true).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let verdict = answer.json();
    assert_eq!(verdict["decisions"]["fin-a"], "allow", "{verdict}");
    assert_eq!(verdict["decisions"]["fin-b"], "allow", "{verdict}");
    // Two attributes are not the certificate's three: no exemption.
    assert_eq!(verdict["decisions"]["fin-c"], "deny", "{verdict}");
    assert_eq!(verdict["decisions"]["finance"], "deny", "{verdict}");
    let references: Vec<&str> = verdict["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["exemption"].as_str())
        .collect();
    assert!(references.contains(&"RA-DER-ORDER"), "{verdict}");
    assert!(references.contains(&"RA-OPENSSL"), "{verdict}");
    assert!(!references.contains(&"RA-NO-OU"), "{verdict}");
    // And the proxy decides the same per request.
    assert_eq!(statuses(&gate, &with_ou).await, [200, 200, 403, 403]);

    // A device whose subject is exactly CN and O matches the short spelling.
    let without_ou = device(&gate, "LT-042", None);
    assert_eq!(gate.attest(&without_ou, true).await.status, 200);
    assert_eq!(statuses(&gate, &without_ou).await, [403, 403, 200, 403]);
}

#[tokio::test]
async fn another_device_of_the_same_supplier_is_not_exempted() {
    let (gate, _up) = world().await;
    for other in [
        device(&gate, "lt-043", Some("Beheer")),
        device(&gate, "lt-042", Some("Inkoop")),
    ] {
        assert_eq!(gate.attest(&other, true).await.status, 200);
        assert_eq!(statuses(&gate, &other).await, [403, 403, 403, 403]);
    }
    // Without Kaspersky the same devices are let in everywhere.
    let clean = device(&gate, "lt-044", Some("Beheer"));
    assert_eq!(gate.attest(&clean, false).await.status, 200);
    assert_eq!(statuses(&gate, &clean).await, [200, 200, 200, 200]);
}
