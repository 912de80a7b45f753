//! What the forward-auth tests with real proxies share (forward_auth_nginx,
//! forward_auth_caddy): a gate with `[forward_auth]`, the echo upstream as
//! the application, the real proxy in front of both, configured from the
//! example file in `config/forward-auth/`, and curl as the device.
//!
//! The gate has two routes on `public.test`: `/public` (segment `open`,
//! no rules: a Kaspersky device is allowed) and `/secret` (segment
//! `finance`, Kaspersky denied). The proxy sends every request to the one
//! application after asking the gate.

use std::net::SocketAddr;
use std::path::Path;

use base64::Engine;
use posture_testkit::caddy::Caddy;
use posture_testkit::nginx::Nginx;
use posture_testkit::program::{example_path, from_example};
use posture_testkit::upstream::{self, Upstream};
use posture_testkit::{claims, forward_auth_table, Device, RouteSpec, Settings, TestGate};

/// The host the device asks for (covered by the test server certificate).
pub const HOST: &str = "public.test";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    /// The `kind` of its `[[forward_auth.proxy]]`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        }
    }

    /// The header in which this kind of proxy sends the device certificate.
    pub fn certificate_header(self) -> &'static str {
        match self {
            Kind::Nginx => "X-Client-Cert",
            Kind::Caddy => "X-Forwarded-Tls-Client-Cert",
        }
    }

    /// The device's certificate as this proxy puts it in that header:
    /// nginx's `$ssl_client_escaped_cert` (URL-encoded PEM), Caddy's
    /// `certificate_der_base64`.
    pub fn certificate_value(self, device: &Device) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(device.cert_der.as_ref());
        match self {
            Kind::Caddy => b64,
            Kind::Nginx => {
                let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
                for line in b64.as_bytes().chunks(64) {
                    pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
                    pem.push('\n');
                }
                pem.push_str("-----END CERTIFICATE-----\n");
                url_escape(&pem)
            }
        }
    }

    /// The headers a proxy of this kind sends for the original request.
    pub fn request_headers(self, uri: &str) -> Vec<(&'static str, String)> {
        match self {
            Kind::Nginx => vec![("Host", HOST.into()), ("X-Original-URI", uri.into())],
            Kind::Caddy => vec![
                ("X-Forwarded-Host", HOST.into()),
                ("X-Forwarded-Uri", uri.into()),
                ("X-Forwarded-Method", "GET".into()),
            ],
        }
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters, as nginx
/// escapes the PEM of `$ssl_client_escaped_cert`.
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub enum Proxy {
    Nginx(Nginx),
    Caddy(Caddy),
}

impl Proxy {
    pub fn port(&self) -> u16 {
        match self {
            Proxy::Nginx(n) => n.port,
            Proxy::Caddy(c) => c.port,
        }
    }

    pub fn log(&self) -> String {
        match self {
            Proxy::Nginx(n) => n.log(),
            Proxy::Caddy(c) => c.log(),
        }
    }
}

/// The gate, the application and the proxy of one test.
pub struct Front {
    pub kind: Kind,
    pub gate: TestGate,
    /// The application; kept here so that it runs as long as the test.
    pub _app: Upstream,
    /// The gate's forward-auth listener.
    pub authz: SocketAddr,
    pub proxy: Proxy,
}

/// What curl got.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The reference on a page, e.g. `PG-7K2M-Q9XD`.
    pub fn reference(&self) -> String {
        let at = self
            .body
            .find("PG-")
            .unwrap_or_else(|| panic!("no reference on the page: {}", self.body));
        self.body[at..at + 12].to_string()
    }

    /// A header the application received (the echo upstream's answer).
    pub fn app_header(&self, name: &str) -> Vec<String> {
        self.json()["headers"][name.to_ascii_lowercase()]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Front {
    /// A gate trusting a proxy of `kind` from 127.0.0.1 only, and that
    /// proxy, started from its example config.
    pub async fn start(kind: Kind) -> Front {
        let app = upstream::start("app").await;
        let routes = [
            RouteSpec {
                host: HOST,
                prefix: "/public",
                upstream: app.url(),
                segment: "open",
            },
            RouteSpec {
                host: HOST,
                prefix: "/secret",
                upstream: app.url(),
                segment: "finance",
            },
            RouteSpec {
                host: HOST,
                prefix: "/office",
                upstream: app.url(),
                segment: "office",
            },
        ];
        let settings = Settings {
            extra: forward_auth_table(kind.name(), &["127.0.0.1/32"]),
            ..Settings::default()
        };
        let gate = TestGate::start(&routes, &settings).await;
        let authz = gate
            .forward_addr
            .expect("the gate has a forward-auth listener");
        let proxy = match kind {
            Kind::Nginx => Proxy::Nginx(start_nginx(&gate, authz, app.addr)),
            Kind::Caddy => Proxy::Caddy(start_caddy(&gate, authz, app.addr)),
        };
        Front {
            kind,
            gate,
            _app: app,
            authz,
            proxy,
        }
    }

    /// curl through the proxy: `https://public.test:<port><path>`, with
    /// the device's certificate if any, and more arguments (`-H ...`).
    pub async fn curl(&self, device: Option<&Device>, path: &str, extra: &[&str]) -> Reply {
        let port = self.proxy.port();
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args([
            "--silent",
            "--show-error",
            "--path-as-is",
            "--max-time",
            "20",
        ])
        .arg("--cacert")
        .arg(self.gate.pki.ca_path())
        .arg("--resolve")
        .arg(format!("{HOST}:{port}:127.0.0.1"))
        .arg("--write-out")
        .arg("\n%{http_code} %{content_type}");
        if let Some(d) = device {
            cmd.arg("--cert")
                .arg(&d.cert_path)
                .arg("--key")
                .arg(&d.key_path);
        }
        cmd.args(extra).arg(format!("https://{HOST}:{port}{path}"));
        run(cmd, &self.proxy.log()).await
    }

    /// Attests the device through the proxy, as its agent would: a
    /// challenge, then a report signed with the challenge's nonce. Returns
    /// the attest endpoint's answer.
    pub async fn attest(&self, device: &Device, kaspersky: bool) -> Reply {
        let challenge = self
            .curl(Some(device), "/.well-known/posture-gate/challenge", &[])
            .await;
        assert_eq!(
            challenge.status, 200,
            "challenge through {:?}: {}",
            self.kind, challenge.body
        );
        let nonce = challenge.json()["nonce"]
            .as_str()
            .expect("a nonce")
            .to_string();
        let token = device.token(&claims(Some(&nonce), kaspersky));
        let file = self
            .gate
            .dir
            .path()
            .join(format!("token-{}.jwt", device.fingerprint()));
        std::fs::write(&file, &token).unwrap();
        let data = format!("@{}", file.display());
        self.curl(
            Some(device),
            "/.well-known/posture-gate/attest",
            &[
                "-H",
                "Content-Type: application/eat+jwt",
                "--data-binary",
                &data,
            ],
        )
        .await
    }

    /// A GET of the authz endpoint straight to the gate's forward-auth
    /// listener, from `source` (a loopback address), with the headers a
    /// proxy of this kind sends for `device` and `uri`.
    pub async fn ask_gate_from(&self, source: &str, device: &Device, uri: &str) -> Reply {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["--silent", "--show-error", "--max-time", "20"])
            .args(["--interface", source])
            .arg("--write-out")
            .arg("\n%{http_code} %{content_type}")
            .arg("-H")
            .arg(format!(
                "{}: {}",
                self.kind.certificate_header(),
                self.kind.certificate_value(device)
            ));
        for (name, value) in self.kind.request_headers(uri) {
            cmd.arg("-H").arg(format!("{name}: {value}"));
        }
        cmd.arg(format!(
            "http://{}/.well-known/posture-gate/authz",
            self.authz
        ));
        run(cmd, "").await
    }
}

async fn run(mut cmd: tokio::process::Command, log: &str) -> Reply {
    let out = cmd.output().await.expect("curl runs");
    assert!(
        out.status.success(),
        "curl failed: {}\nproxy log: {log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').expect("curl's --write-out line");
    let (status, content_type) = last.split_once(' ').unwrap_or((last, ""));
    Reply {
        status: status.parse().expect("an HTTP status"),
        content_type: content_type.to_string(),
        body: body.to_string(),
    }
}

/// `config/forward-auth/nginx.conf` with the test's addresses, host name
/// and certificate: the example as it is, not a copy of it.
fn start_nginx(gate: &TestGate, authz: SocketAddr, app: SocketAddr) -> Nginx {
    let paths = &gate.pki.paths;
    Nginx::start(|port| {
        from_example(
            &example_path("forward-auth/nginx.conf"),
            &[
                ("server 127.0.0.1:9090;", &format!("server {authz};")),
                ("server 127.0.0.1:8080;", &format!("server {app};")),
                ("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;")),
                (
                    "server_name app.example.com;",
                    &format!("server_name {HOST};"),
                ),
                ("/etc/nginx/tls/server.pem", &path(&paths.server_cert)),
                ("/etc/nginx/tls/server.key", &path(&paths.server_key)),
            ],
        )
    })
}

/// `config/forward-auth/Caddyfile` with the test's addresses, host name
/// and certificate.
fn start_caddy(gate: &TestGate, authz: SocketAddr, app: SocketAddr) -> Caddy {
    let paths = &gate.pki.paths;
    Caddy::start(|port| {
        from_example(
            &example_path("forward-auth/Caddyfile"),
            &[
                ("127.0.0.1:9090", &authz.to_string()),
                ("127.0.0.1:8080", &app.to_string()),
                ("app.example.com:443", &format!("{HOST}:{port}")),
                ("/etc/caddy/tls/server.pem", &path(&paths.server_cert)),
                ("/etc/caddy/tls/server.key", &path(&paths.server_key)),
            ],
        )
    })
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

// ------------------------------------------------------------ scenarios
// Each forward_auth_<proxy> test runs one of these with its proxy.

use posture_testkit::audit::{self, Captured};
use serde_json::Value;

const ACCEPT_PROBLEM: &str = "Accept: application/problem+json";

/// The audit decision with this reference (the one the page shows).
fn decision(captured: &Captured, reference: &str) -> Value {
    let decisions = captured.decisions();
    decisions
        .iter()
        .find(|d| d["reference"] == reference)
        .cloned()
        .unwrap_or_else(|| panic!("no decision with reference {reference}: {decisions:#?}"))
}

/// A clean device that attested through the proxy reaches the application,
/// which sees the gate's decision and the device's fingerprint, not what
/// the client claimed under those names.
pub async fn clean_device_attested_through_the_proxy_reaches_the_app(kind: Kind) {
    let front = Front::start(kind).await;
    let device = front.gate.pki.device("fa-clean", "Schoon BV");
    let attest = front.attest(&device, false).await;
    assert_eq!(attest.status, 200, "{}", attest.body);
    assert_eq!(
        attest.json()["device"]["fingerprint_sha256"],
        device.fingerprint(),
        "the gate took the device from {kind:?}'s certificate header"
    );
    let reply = front
        .curl(
            Some(&device),
            "/secret/report?year=2026",
            &[
                "-H",
                "X-Posture-Decision: forged",
                "-H",
                "X-Posture-Device-Fingerprint: forged",
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let echoed = reply.json();
    assert_eq!(echoed["upstream"], "app");
    assert_eq!(echoed["path"], "/secret/report?year=2026");
    assert_eq!(reply.app_header("X-Posture-Decision"), ["allow"]);
    assert_eq!(
        reply.app_header("X-Posture-Device-Fingerprint"),
        [device.fingerprint()]
    );
    assert!(
        reply
            .app_header(kind.certificate_header())
            .iter()
            .all(String::is_empty),
        "the certificate header is for the gate, not the application: {echoed}"
    );
}

/// A device that reported Kaspersky gets the gate's own denial page
/// through the proxy: 403, Dutch or English HTML or problem+json as the
/// client asks, with the reference of the gate's audit line.
pub async fn kaspersky_device_gets_the_gates_denial_page(kind: Kind) {
    let (captured, _guard) = audit::capture();
    let front = Front::start(kind).await;
    let device = front.gate.pki.device("fa-kav", "Leverancier BV");
    let attest = front.attest(&device, true).await;
    assert_eq!(attest.status, 200, "{}", attest.body);
    // Where the policy allows it, it gets through: the denial is the policy's.
    let open = front.curl(Some(&device), "/public/x", &[]).await;
    assert_eq!(open.status, 200, "{}", open.body);

    let nl = front
        .curl(Some(&device), "/secret/x", &["-H", "Accept-Language: nl"])
        .await;
    assert_eq!(nl.status, 403, "{}", nl.body);
    assert!(
        nl.content_type.starts_with("text/html"),
        "{}",
        nl.content_type
    );
    assert!(nl.body.contains("<html lang=\"nl\">"), "{}", nl.body);
    assert!(
        nl.body
            .contains("Er staat verboden software op uw apparaat"),
        "{}",
        nl.body
    );
    assert!(nl.body.contains("Kaspersky"), "{}", nl.body);

    let en = front
        .curl(
            Some(&device),
            "/secret/x",
            &["-H", "Accept-Language: en-GB,en;q=0.9"],
        )
        .await;
    assert_eq!(en.status, 403, "{}", en.body);
    assert!(en.body.contains("<html lang=\"en\">"), "{}", en.body);
    assert!(
        en.body.contains("Prohibited software found on your device"),
        "{}",
        en.body
    );

    let problem = front
        .curl(Some(&device), "/secret/x", &["-H", ACCEPT_PROBLEM])
        .await;
    assert_eq!(problem.status, 403, "{}", problem.body);
    assert!(
        problem.content_type.starts_with("application/problem+json"),
        "{}",
        problem.content_type
    );
    let j = problem.json();
    assert_eq!(j["type"], "urn:posture-gate:problem:prohibited-software");
    assert_eq!(j["status"], 403);

    for (page, reference) in [
        ("nl", nl.reference()),
        ("en", en.reference()),
        ("problem+json", j["reference"].as_str().unwrap().to_string()),
    ] {
        let d = decision(&captured, &reference);
        assert_eq!(d["decision"], "deny", "{page}: {d}");
        assert_eq!(d["segment"], "finance", "{page}: {d}");
        assert_eq!(d["device"]["fingerprint_sha256"], device.fingerprint());
        assert_eq!(d["findings"][0]["catalog_id"], "kaspersky", "{page}: {d}");
    }
}

/// A device with a certificate but no posture gets the page that tells it
/// to enrol (run the agent), through the proxy.
pub async fn device_without_a_posture_gets_the_enrolment_page(kind: Kind) {
    let (captured, _guard) = audit::capture();
    let front = Front::start(kind).await;
    let device = front.gate.pki.device("fa-new", "Nieuw BV");
    let nl = front
        .curl(Some(&device), "/secret/x", &["-H", "Accept-Language: nl"])
        .await;
    assert_eq!(nl.status, 403, "{}", nl.body);
    assert!(
        nl.body.contains("Uw apparaat is nog niet gecontroleerd"),
        "{}",
        nl.body
    );
    assert!(nl.body.contains("posture-agent attest"), "{}", nl.body);
    let problem = front
        .curl(Some(&device), "/secret/x", &["-H", ACCEPT_PROBLEM])
        .await;
    assert_eq!(problem.status, 403, "{}", problem.body);
    let j = problem.json();
    assert_eq!(j["type"], "urn:posture-gate:problem:no-attestation");
    let d = decision(&captured, j["reference"].as_str().unwrap());
    assert_eq!(d["reason"], "no_posture", "{d}");
    assert_eq!(d["device"]["fingerprint_sha256"], device.fingerprint());
}

/// Without a client certificate: 401 and the page that says so, not a TLS
/// error and not the application.
pub async fn no_client_certificate_gets_the_no_certificate_page(kind: Kind) {
    let front = Front::start(kind).await;
    let nl = front
        .curl(None, "/secret/x", &["-H", "Accept-Language: nl"])
        .await;
    assert_eq!(nl.status, 401, "{}", nl.body);
    assert!(
        nl.body
            .contains("Uw apparaat heeft geen certificaat laten zien"),
        "{}",
        nl.body
    );
    let problem = front.curl(None, "/public/x", &["-H", ACCEPT_PROBLEM]).await;
    assert_eq!(problem.status, 401, "{}", problem.body);
    assert_eq!(
        problem.json()["type"],
        "urn:posture-gate:problem:no-certificate"
    );
}

/// A certificate header the client sends to the proxy itself (here: the
/// header of an attested clean device) is overwritten by the proxy: a
/// client without a certificate stays without one, and a client with a
/// Kaspersky device's certificate is judged by that certificate.
pub async fn forged_certificate_header_from_the_client_is_ignored(kind: Kind) {
    let (captured, _guard) = audit::capture();
    let front = Front::start(kind).await;
    let clean = front.gate.pki.device("fa-clean", "Schoon BV");
    let flagged = front.gate.pki.device("fa-kav", "Leverancier BV");
    assert_eq!(front.attest(&clean, false).await.status, 200);
    assert_eq!(front.attest(&flagged, true).await.status, 200);
    let forged = format!(
        "{}: {}",
        kind.certificate_header(),
        kind.certificate_value(&clean)
    );
    // The clean device itself gets through.
    let own = front.curl(Some(&clean), "/secret/x", &[]).await;
    assert_eq!(own.status, 200, "{}", own.body);

    let none = front
        .curl(None, "/secret/x", &["-H", &forged, "-H", ACCEPT_PROBLEM])
        .await;
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(
        none.json()["type"],
        "urn:posture-gate:problem:no-certificate"
    );

    let other = front
        .curl(
            Some(&flagged),
            "/secret/x",
            &["-H", &forged, "-H", ACCEPT_PROBLEM],
        )
        .await;
    assert_eq!(other.status, 403, "{}", other.body);
    let j = other.json();
    assert_eq!(j["type"], "urn:posture-gate:problem:prohibited-software");
    let d = decision(&captured, j["reference"].as_str().unwrap());
    assert_eq!(
        d["device"]["fingerprint_sha256"],
        flagged.fingerprint(),
        "judged by the certificate of the TLS connection: {d}"
    );
}

/// The forward-auth listener answers only its proxies: the same question
/// that it answers with 200 from the proxy's address (127.0.0.1) is refused
/// from 127.0.0.2, with an audit line, whatever the headers say.
pub async fn untrusted_address_is_refused_by_the_forward_auth_listener(kind: Kind) {
    let (captured, _guard) = audit::capture();
    let front = Front::start(kind).await;
    let device = front.gate.pki.device("fa-clean", "Schoon BV");
    assert_eq!(front.attest(&device, false).await.status, 200);

    let trusted = front.ask_gate_from("127.0.0.1", &device, "/secret/x").await;
    assert_eq!(trusted.status, 200, "{}", trusted.body);

    let refused = front.ask_gate_from("127.0.0.2", &device, "/secret/x").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.content_type.starts_with("text/plain"),
        "{}",
        refused.content_type
    );
    let events = captured.audit_events();
    let line = events
        .iter()
        .find(|e| e["reason"] == "untrusted_proxy")
        .unwrap_or_else(|| panic!("no untrusted_proxy audit line: {events:#?}"));
    assert_eq!(line["enforcement"], "forward_auth", "{line}");
    assert!(
        line["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("127.0.0.2:")),
        "the audit line names the peer: {line}"
    );
    assert!(
        line.get("device").is_none(),
        "the stranger's certificate header is not read: {line}"
    );
}

/// An encoded `..` in the original URI cannot move a request from an
/// allowed route (`/public`) into another route's segment (`/secret`): the
/// gate normalises the URI the proxy forwards as its own proxy does, so a
/// Kaspersky device that may use /public is refused there.
pub async fn encoded_dot_dot_does_not_reach_another_routes_segment(kind: Kind) {
    let (captured, _guard) = audit::capture();
    let front = Front::start(kind).await;
    let device = front.gate.pki.device("fa-kav", "Leverancier BV");
    assert_eq!(front.attest(&device, true).await.status, 200);
    let open = front.curl(Some(&device), "/public/x", &[]).await;
    assert_eq!(open.status, 200, "{}", open.body);

    for path in [
        "/public/%2e%2e/secret/x",
        "/public/%2E%2E/secret/x",
        "/public/.%2e/secret/x",
    ] {
        let reply = front
            .curl(Some(&device), path, &["-H", ACCEPT_PROBLEM])
            .await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        let d = decision(&captured, reply.json()["reference"].as_str().unwrap());
        assert_eq!(d["segment"], "finance", "{path}: {d}");
        assert_eq!(d["decision"], "deny", "{path}: {d}");
    }
}

/// A device whose report the `office` segment only warns about gets
/// through nginx to the app, and the browser's answer carries the gate's
/// `Posture-Warning` (config/forward-auth/nginx.conf's `add_header`); a
/// clean device's answer has none.
pub async fn a_warned_device_sees_the_warning_header(kind: Kind) {
    let front = Front::start(kind).await;
    let warned = front.gate.pki.device("fa-warned", "Leverancier BV");
    let clean = front.gate.pki.device("fa-clean-2", "Schoon BV");
    assert_eq!(front.attest(&warned, true).await.status, 200);
    assert_eq!(front.attest(&clean, false).await.status, 200);
    let headers_of = |name: &str| front.gate.dir.path().join(format!("headers-{name}.txt"));
    for (device, name) in [(&warned, "warned"), (&clean, "clean")] {
        let file = headers_of(name);
        let reply = front
            .curl(Some(device), "/office/", &["--dump-header", &path(&file)])
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["upstream"], "app");
    }
    let warning = |name: &str| {
        std::fs::read_to_string(headers_of(name))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case("posture-warning"))
            .map(|(_, v)| v.trim().to_owned())
            .collect::<Vec<_>>()
    };
    // The form the app gets behind forward-auth (the causes); the gate's
    // own door tells the browser the segment and date too.
    assert_eq!(warning("warned"), ["kaspersky"]);
    assert_eq!(warning("clean"), Vec::<String>::new());

    // A browser's navigation: the notice once (through nginx's error_page,
    // as 200), then the app.
    let browser = [
        "-H",
        "Accept: text/html,application/xhtml+xml,*/*;q=0.8",
        "-H",
        "Accept-Language: en",
    ];
    let notice = front.curl(Some(&warned), "/office/page", &browser).await;
    assert_eq!(notice.status, 200, "{}", notice.body);
    assert!(notice.body.contains("Please note"), "{}", notice.body);
    assert!(
        notice.body.contains("href=\"/office/page\">Continue</a>"),
        "{}",
        notice.body
    );
    let then = front.curl(Some(&warned), "/office/page", &browser).await;
    assert_eq!(then.status, 200, "{}", then.body);
    assert_eq!(then.json()["upstream"], "app");
}
