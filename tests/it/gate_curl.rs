//! The gate as the real `curl` binary sees it: mutual TLS with --cert and
//! --key, HTTP/1.1 and HTTP/2, the attest endpoint, and the denial page.

use crate::support as common;

use common::upstream;
use common::{claims, Device, RouteSpec, Settings, TestGate};

struct Curl<'a> {
    gate: &'a TestGate,
}

struct Output {
    status: u16,
    version: String,
    body: String,
}

impl Curl<'_> {
    /// Runs curl against `https://<host>:<port><path>`, resolved to the gate.
    async fn run(&self, device: Option<&Device>, host: &str, path: &str, extra: &[&str]) -> Output {
        let port = self.gate.addr.port();
        let mut cmd = tokio::process::Command::new("curl");
        cmd.arg("--silent")
            .arg("--show-error")
            .arg("--max-time")
            .arg("20")
            .arg("--cacert")
            .arg(self.gate.pki.ca_path())
            .arg("--resolve")
            .arg(format!("{host}:{port}:127.0.0.1"))
            .arg("--write-out")
            .arg("\n%{http_code} %{http_version}");
        if let Some(d) = device {
            cmd.arg("--cert")
                .arg(&d.cert_path)
                .arg("--key")
                .arg(&d.key_path);
        }
        cmd.args(extra).arg(format!("https://{host}:{port}{path}"));
        let out = cmd.output().await.expect("curl runs");
        assert!(
            out.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, last) = text.rsplit_once('\n').unwrap();
        let (status, version) = last.split_once(' ').unwrap();
        Output {
            status: status.parse().unwrap(),
            version: version.to_string(),
            body: body.to_string(),
        }
    }
}

#[tokio::test]
async fn curl_attests_and_gets_through_with_http1_and_http2() {
    let up = upstream::start("public").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "finance",
    }];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    let curl = Curl { gate: &gate };
    let device = gate.pki.device("lt-401", "Org");

    let denied = curl.run(Some(&device), "public.test", "/", &[]).await;
    assert_eq!(denied.status, 403, "no posture yet");

    let challenge = curl
        .run(
            Some(&device),
            "public.test",
            "/.well-known/posture-gate/challenge",
            &[],
        )
        .await;
    assert_eq!(challenge.status, 200);
    let nonce: serde_json::Value = serde_json::from_str(&challenge.body).unwrap();
    let token = device.token(&claims(nonce["nonce"].as_str(), false));
    let token_file = gate.dir.path().join("token.jwt");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let data = format!("@{}", token_file.display());
    let attest = curl
        .run(
            Some(&device),
            "public.test",
            "/.well-known/posture-gate/attest",
            &[
                "-H",
                "Content-Type: application/eat+jwt",
                "--data-binary",
                &data,
            ],
        )
        .await;
    assert_eq!(attest.status, 200, "{}", attest.body);
    let verdict: serde_json::Value = serde_json::from_str(&attest.body).unwrap();
    assert_eq!(
        verdict["device"]["fingerprint_sha256"],
        device.fingerprint()
    );

    let h1 = curl
        .run(Some(&device), "public.test", "/x", &["--http1.1"])
        .await;
    assert_eq!((h1.status, h1.version.as_str()), (200, "1.1"));
    let h2 = curl
        .run(Some(&device), "public.test", "/x", &["--http2"])
        .await;
    assert_eq!((h2.status, h2.version.as_str()), (200, "2"));
    let echoed: serde_json::Value = serde_json::from_str(&h2.body).unwrap();
    assert_eq!(
        echoed["headers"]["x-posture-device-fingerprint"][0],
        device.fingerprint()
    );
}

#[tokio::test]
async fn curl_without_a_certificate_gets_the_page_not_a_tls_error() {
    let up = upstream::start("public").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "finance",
    }];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    let curl = Curl { gate: &gate };
    for version in ["--http1.1", "--http2"] {
        let page = curl.run(None, "public.test", "/", &[version]).await;
        assert_eq!(page.status, 403, "{version}");
        assert!(!page.body.is_empty());
    }
    let problem = curl
        .run(
            None,
            "public.test",
            "/",
            &["-H", "Accept: application/problem+json"],
        )
        .await;
    assert_eq!(problem.status, 403);
    assert!(
        serde_json::from_str::<serde_json::Value>(&problem.body).is_ok(),
        "{}",
        problem.body
    );
}

#[tokio::test]
async fn curl_path_tricks_are_normalised_or_refused() {
    let up = upstream::start("public").await;
    let fin = upstream::start("finance").await;
    let routes = [
        RouteSpec {
            host: "public.test",
            prefix: "/",
            upstream: up.url(),
            segment: "open",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/finance",
            upstream: fin.url(),
            segment: "finance",
        },
    ];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    let curl = Curl { gate: &gate };
    let flagged = gate.pki.device("lt-402", "Org");
    assert_eq!(gate.attest(&flagged, true).await.status, 200);
    for path in ["/x/%2e%2e/finance/", "//finance/", "/x/../finance/"] {
        let out = curl
            .run(Some(&flagged), "public.test", path, &["--path-as-is"])
            .await;
        assert_eq!(out.status, 403, "{path}: {}", out.body);
    }
    let out = curl
        .run(
            Some(&flagged),
            "public.test",
            "/x%2F..%2Ffinance/",
            &["--path-as-is"],
        )
        .await;
    assert_eq!(out.status, 400);
}

#[tokio::test]
async fn curl_with_tls_1_2_presents_its_certificate_too() {
    let up = upstream::start("public").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "open",
    }];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    let curl = Curl { gate: &gate };
    let device = gate.pki.device("lt-403", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let out = curl
        .run(
            Some(&device),
            "public.test",
            "/",
            &["--tlsv1.2", "--tls-max", "1.2"],
        )
        .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let echoed: serde_json::Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(
        echoed["headers"]["x-posture-device-fingerprint"][0],
        device.fingerprint()
    );
}
