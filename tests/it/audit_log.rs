//! The audit log file (issue 18 point 1) over real sockets: the schema 1
//! line of every event kind, refused TLS handshakes, reloads, the access
//! fields of proxied requests, rotation by size, and reopening after
//! logrotate moved the file.

use crate::support as common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{request, Proto, RouteSpec, Settings, TestGate, TestPki};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use posture_gate::pki::DeviceSpec;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Generous bounds for things that happen within milliseconds.
const BOUND: Duration = Duration::from_secs(20);

/// `[audit]` writing to `path` (relative to the gate's directory), with
/// `more` lines.
pub fn audit_table(path: &str, more: &str) -> String {
    format!("[audit]\noutput = \"file\"\npath = {path:?}\n{more}")
}

/// The routes of these tests: `public.test` (segment open) and
/// `finance.test/pay` (finance, which denies Kaspersky), both to `upstream`.
pub fn routes(upstream: &str) -> [RouteSpec; 2] {
    [
        RouteSpec {
            host: "public.test",
            prefix: "/",
            upstream: upstream.to_string(),
            segment: "open",
        },
        RouteSpec {
            host: "finance.test",
            prefix: "/pay",
            upstream: upstream.to_string(),
            segment: "finance",
        },
    ]
}

/// Checks that `line` is one schema 1 line: `schema` first, `time` second
/// (RFC 3339, microseconds, an offset), `event` third, and parses it.
pub fn schema_1(line: &str) -> Value {
    const HEAD: &str = "{\"schema\":1,\"time\":\"";
    assert!(line.starts_with(HEAD), "not a schema 1 line: {line}");
    let time = &line[HEAD.len()..HEAD.len() + 32];
    let parsed = OffsetDateTime::parse(time, &Rfc3339)
        .unwrap_or_else(|e| panic!("time {time:?} is not RFC 3339: {e}"));
    assert_eq!(&time[19..20], ".", "{time}");
    assert!(
        time[20..26].bytes().all(|b| b.is_ascii_digit()),
        "microseconds: {time}"
    );
    assert_eq!(&time[26..], "+00:00", "an explicit offset: {time}");
    let age = OffsetDateTime::now_utc() - parsed;
    assert!(
        age >= time::Duration::ZERO && age < time::Duration::minutes(10),
        "a time of this run: {time}"
    );
    assert!(
        line[HEAD.len() + 32..].starts_with("\",\"event\":\""),
        "event third: {line}"
    );
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["schema"], 1);
    v
}

/// Every line of an audit file: whole lines only, each schema 1.
pub fn read_lines(path: &Path) -> Vec<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("{}: {e}", path.display()),
    };
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends in half a line: {:?}",
        path.display(),
        &text[text.len().saturating_sub(200)..]
    );
    text.lines().map(schema_1).collect()
}

/// Waits until the gate has written what it queued, then reads the file.
pub async fn lines(gate: &TestGate, path: &str) -> Vec<Value> {
    assert!(
        gate.handle.audit_flush(BOUND).await,
        "the audit lines were written in time"
    );
    read_lines(&gate.dir.path().join(path))
}

fn of_kind<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

/// An upstream that answers `ok` and counts the requests it got.
pub struct Counting {
    pub addr: SocketAddr,
    pub count: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Counting {
    pub async fn start() -> Counting {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Counting { addr, count, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn every_event_kind_is_one_schema_1_line_in_the_file() {
    let up = Counting::start().await;
    let settings = Settings {
        extra: audit_table("audit.jsonl", ""),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let clean = gate.pki.device("lt-701", "Ministerie");
    let dirty = gate.pki.device("lt-702", "Leverancier BV");
    assert_eq!(gate.attest(&clean, false).await.status, 200);
    assert_eq!(gate.attest(&dirty, true).await.status, 200);
    let allowed = gate
        .client(Some(&clean), Proto::H1)
        .get("finance.test", "/pay/1")
        .await;
    assert_eq!(allowed.status, 200);
    let denied = gate
        .client(Some(&dirty), Proto::H2)
        .get("finance.test", "/pay/2")
        .await;
    assert_eq!(denied.status, 403);
    let unknown = gate
        .client(Some(&clean), Proto::H1)
        .get("other.test", "/")
        .await;
    assert_eq!(unknown.status, 404);
    gate.handle.reload_now().await.unwrap();

    let lines = lines(&gate, "audit.jsonl").await;
    for kind in ["reload", "attestation", "decision", "refused"] {
        assert!(
            !of_kind(&lines, kind).is_empty(),
            "no {kind} line: {lines:#?}"
        );
    }
    let start = of_kind(&lines, "reload")[0];
    assert_eq!(start["trigger"], "start");
    assert_eq!(start["result"], "ok");
    assert_eq!(
        start["source"],
        gate.config.display().to_string().as_str(),
        "{start}"
    );
    let attestations = of_kind(&lines, "attestation");
    assert_eq!(attestations.len(), 2);
    assert!(attestations.iter().all(|a| a["valid"] == true));
    let decisions = of_kind(&lines, "decision");
    assert_eq!(decisions.len(), 2, "{decisions:#?}");
    let (allow, deny) = (
        decisions.iter().find(|d| d["decision"] == "allow").unwrap(),
        decisions.iter().find(|d| d["decision"] == "deny").unwrap(),
    );
    // Every decision has a reference, the allowed one too.
    for d in [allow, deny] {
        let reference = d["reference"].as_str().expect("a reference");
        assert!(
            reference.starts_with("PG-") && reference.len() == 12,
            "{reference}"
        );
    }
    assert_ne!(allow["reference"], deny["reference"]);
    assert!(denied.text().contains(deny["reference"].as_str().unwrap()));
    assert_eq!(allow["device"]["fingerprint_sha256"], clean.fingerprint());
    assert_eq!(deny["findings"][0]["catalog_id"], "kaspersky");
    let refused = of_kind(&lines, "refused");
    assert_eq!(refused[0]["reason"], "unknown_host");
    let reloads = of_kind(&lines, "reload");
    assert!(
        reloads
            .iter()
            .any(|r| r["trigger"] == "api" && r["result"] == "ok"),
        "{reloads:#?}"
    );
}

/// A device certificate that fails verification leaves one `tls_refused`
/// line per connection with the reason, the code and what the leaf says
/// about itself (the handshake completes: issue 19), and its requests
/// decision lines with the code and no device.
#[tokio::test]
async fn refused_tls_handshakes_are_tls_refused_lines_with_reason_and_leaf() {
    let up = Counting::start().await;
    let settings = Settings {
        extra: audit_table("audit.jsonl", ""),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let now = OffsetDateTime::now_utc();
    let mut spec = DeviceSpec::new("lt-expired", "Leverancier BV");
    spec.not_before = now - time::Duration::days(30);
    spec.not_after = now - time::Duration::days(1);
    let expired = gate.pki.device_from(spec);
    let mut spec = DeviceSpec::new("lt-selfmade", "Elders BV");
    spec.issuer = posture_gate::pki::DeviceIssuer::SelfSigned;
    let unknown = gate.pki.device_from(spec);
    // Another test PKI's device CA has the same name as this gate's, so
    // webpki finds "its" issuer and the signature does not verify.
    let other_dir = tempfile::tempdir().unwrap();
    let foreign = TestPki::new(other_dir.path()).device("lt-foreign", "Elders BV");
    for (device, proto) in [
        (&expired, Proto::H1),
        (&unknown, Proto::H2),
        (&foreign, Proto::H1),
    ] {
        let got = tokio::time::timeout(
            BOUND,
            gate.client(Some(device), proto).try_get("public.test", "/"),
        )
        .await
        .expect("answered in time")
        .expect("the handshake completes");
        assert_eq!(got.status, 403, "{}", got.text());
    }
    assert_eq!(up.count(), 0);

    let lines = lines(&gate, "audit.jsonl").await;
    let refused = of_kind(&lines, "tls_refused");
    assert_eq!(refused.len(), 3, "{lines:#?}");
    let expired_line = refused
        .iter()
        .find(|r| r["reason"] == "expired")
        .unwrap_or_else(|| panic!("{refused:#?}"));
    let unknown_line = refused
        .iter()
        .find(|r| r["reason"] == "unknown_issuer")
        .unwrap_or_else(|| panic!("{refused:#?}"));
    let foreign_line = refused
        .iter()
        .find(|r| r["reason"] == "bad_signature")
        .unwrap_or_else(|| panic!("{refused:#?}"));
    assert_eq!(expired_line["code"], "cert_expired");
    assert_eq!(unknown_line["code"], "untrusted_chain");
    assert_eq!(foreign_line["code"], "untrusted_chain");
    let decisions = of_kind(&lines, "decision");
    let mut reasons: Vec<&str> = decisions
        .iter()
        .map(|d| {
            assert!(d.get("device").is_none(), "no identity: {d}");
            d["reason"].as_str().unwrap_or_default()
        })
        .collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        ["cert_expired", "untrusted_chain", "untrusted_chain"],
        "{decisions:#?}"
    );
    for (line, device, cn) in [
        (expired_line, &expired, "lt-expired"),
        (unknown_line, &unknown, "lt-selfmade"),
        (foreign_line, &foreign, "lt-foreign"),
    ] {
        assert_eq!(line["fingerprint_sha256"], device.fingerprint(), "{line}");
        assert!(
            line["source"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{line}"
        );
        let subject = line["subject"].as_str().unwrap_or_else(|| panic!("{line}"));
        assert!(subject.contains(&format!("CN={cn}")), "{subject}");
        assert!(line["issuer"].as_str().is_some(), "{line}");
        let (_, cert) = x509_parser::parse_x509_certificate(device.chain[0].as_ref()).unwrap();
        assert_eq!(line["serial"], hex::encode(cert.raw_serial()), "{line}");
    }
}

/// Reloads write a line with their trigger and result; a refused one has
/// the error.
#[tokio::test]
async fn reloads_are_lines_with_trigger_result_and_error() {
    let up = Counting::start().await;
    let settings = Settings {
        extra: audit_table("audit.jsonl", ""),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let good = std::fs::read_to_string(&gate.config).unwrap();
    std::fs::write(&gate.config, format!("{good}\n[[route]]\nhost = 7\n")).unwrap();
    assert!(gate.handle.reload_now().await.is_err());
    std::fs::write(&gate.config, &good).unwrap();
    gate.handle.reload_now().await.unwrap();

    let lines = lines(&gate, "audit.jsonl").await;
    let reloads: Vec<_> = of_kind(&lines, "reload")
        .into_iter()
        .filter(|r| r["trigger"] != "signal" && r["trigger"] != "file")
        .collect();
    assert_eq!(reloads.len(), 3, "{reloads:#?}");
    assert_eq!(
        (
            reloads[0]["trigger"].as_str(),
            reloads[0]["result"].as_str()
        ),
        (Some("start"), Some("ok"))
    );
    assert_eq!(
        (
            reloads[1]["trigger"].as_str(),
            reloads[1]["result"].as_str()
        ),
        (Some("api"), Some("failed"))
    );
    let error = reloads[1]["error"].as_str().expect("the error");
    assert!(error.contains("gate.toml"), "{error}");
    assert_eq!(
        (
            reloads[2]["trigger"].as_str(),
            reloads[2]["result"].as_str()
        ),
        (Some("api"), Some("ok"))
    );
    assert!(reloads[2].get("error").is_none());
}

/// A proxied request's decision line is also its access line: method,
/// path, status, bytes of the body sent, latency.
#[tokio::test]
async fn proxied_requests_carry_method_path_status_bytes_and_latency() {
    let up = common::upstream::start("echo").await;
    let settings = Settings {
        extra: audit_table("audit.jsonl", ""),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let device = gate.pki.device("lt-710", "Ministerie");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let body = vec![b'x'; 10_000];
    let client = gate.client(Some(&device), Proto::H2);
    let req = request("POST", "public.test", "/stream/up?q=1", Proto::H2)
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let streamed = client.send(req).await;
    assert_eq!(streamed.status, 200);
    // The echo upstream answers with a report of what it got.
    assert!(!streamed.body.is_empty());
    let denied = gate
        .client(None, Proto::H1)
        .get("finance.test", "/pay/x")
        .await;
    assert_eq!(denied.status, 403);

    let lines = lines(&gate, "audit.jsonl").await;
    let decisions = of_kind(&lines, "decision");
    assert_eq!(decisions.len(), 2, "{decisions:#?}");
    let post = decisions.iter().find(|d| d["method"] == "POST").unwrap();
    assert_eq!(post["path"], "/stream/up?q=1", "{post}");
    assert_eq!(post["status"], 200);
    assert_eq!(post["bytes"], streamed.body.len() as u64);
    assert!(
        post["latency_ms"].as_f64().is_some_and(|l| l > 0.0),
        "{post}"
    );
    let get = decisions.iter().find(|d| d["method"] == "GET").unwrap();
    assert_eq!(get["path"], "/pay/x");
    assert_eq!(get["status"], 403);
    assert_eq!(get["bytes"], denied.body.len() as u64);
    assert_eq!(get["reason"], "no_certificate");
}

/// Rotation by size keeps `keep` files besides the live one, none over
/// the size, each of whole lines.
#[tokio::test]
async fn rotation_by_size_keeps_keep_files_of_whole_lines() {
    let up = Counting::start().await;
    let settings = Settings {
        extra: audit_table("audit.jsonl", "rotate_size = \"4KB\"\nkeep = 2\n"),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let device = gate.pki.device("lt-720", "Ministerie");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let client = gate.client(Some(&device), Proto::H1);
    for i in 0..40 {
        assert_eq!(
            client.get("public.test", &format!("/r/{i}")).await.status,
            200
        );
    }
    assert!(gate.handle.audit_flush(BOUND).await);
    let file = |n: usize| -> PathBuf {
        match n {
            0 => gate.dir.path().join("audit.jsonl"),
            n => gate.dir.path().join(format!("audit.jsonl.{n}")),
        }
    };
    assert!(!file(3).exists(), "keep = 2 keeps two rotated files");
    let mut paths = Vec::new();
    for n in [2, 1, 0] {
        let path = file(n);
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(
            size > 0 && size <= 4_000,
            "{}: {size} bytes",
            path.display()
        );
        let lines = read_lines(&path);
        assert!(!lines.is_empty());
        paths.push(lines);
    }
    // Oldest to newest, the requests are in order across the files.
    let order: Vec<u64> = paths
        .iter()
        .flatten()
        .filter(|l| l["event"] == "decision")
        .map(|l| l["path"].as_str().unwrap()[3..].parse().unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[1] == w[0] + 1), "{order:?}");
    assert_eq!(order.last(), Some(&39));
}

/// logrotate moves the file and sends SIGHUP: the gate writes on into a
/// new file at the configured path.
#[tokio::test]
async fn sighup_reopens_the_file_after_logrotate_moved_it() {
    let up = Counting::start().await;
    let settings = Settings {
        extra: audit_table("audit.jsonl", ""),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let device = gate.pki.device("lt-730", "Ministerie");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let client = gate.client(Some(&device), Proto::H1);
    assert_eq!(client.get("public.test", "/before").await.status, 200);
    assert!(gate.handle.audit_flush(BOUND).await);
    let live = gate.dir.path().join("audit.jsonl");
    let moved = gate.dir.path().join("audit.jsonl-20261130");
    std::fs::rename(&live, &moved).unwrap();

    let status = tokio::process::Command::new("kill")
        .arg("-HUP")
        .arg(std::process::id().to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let deadline = tokio::time::Instant::now() + BOUND;
    while !read_lines(&live)
        .iter()
        .any(|l| l["event"] == "reload" && l["trigger"] == "signal")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload line in a new file after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.get("public.test", "/after").await.status, 200);

    let old = read_lines(&moved);
    let new = lines(&gate, "audit.jsonl").await;
    let paths = |lines: &[Value]| -> Vec<String> {
        of_kind(lines, "decision")
            .iter()
            .map(|d| d["path"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(paths(&old), ["/before"]);
    assert_eq!(paths(&new), ["/after"]);
}

/// `output = "syslog"`: one datagram per line to the socket, facility
/// auth, severity info, the schema 1 line as the message.
#[tokio::test]
async fn syslog_output_sends_each_line_as_one_datagram() {
    let sockets = tempfile::tempdir().unwrap();
    let socket_path = sockets.path().join("log");
    let syslog = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let up = Counting::start().await;
    let settings = Settings {
        extra: format!("[audit]\noutput = \"syslog\"\npath = {socket_path:?}\n"),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let device = gate.pki.device("lt-740", "Ministerie");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let answer = gate
        .client(Some(&device), Proto::H1)
        .get("public.test", "/s")
        .await;
    assert_eq!(answer.status, 200);
    assert!(gate.handle.audit_flush(BOUND).await);

    let mut events = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = syslog.recv(&mut buf) {
        let message = std::str::from_utf8(&buf[..n]).unwrap();
        let line = message
            .strip_prefix("<38>posture-gate-audit: ")
            .unwrap_or_else(|| panic!("not an auth.info message: {message}"));
        assert!(!line.contains('\n'), "one line per datagram: {line:?}");
        events.push(schema_1(line));
    }
    // Reloads by another test's SIGHUP (one process) are left out.
    events.retain(|e| e["event"] != "reload" || e["trigger"] == "start");
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reload", "attestation", "decision"], "{events:#?}");
    assert_eq!(events[2]["path"], "/s");
}

/// With `rotate_daily`, the first line of a new UTC day starts a new file:
/// a file last written yesterday is rotated before the gate's first line.
#[tokio::test]
async fn daily_rotation_starts_a_new_file_with_the_first_line_of_a_day() {
    let logs = tempfile::tempdir().unwrap();
    let path = logs.path().join("audit.jsonl");
    let yesterday =
        "{\"schema\":1,\"time\":\"2026-11-29T23:59:59.000000+00:00\",\"event\":\"reload\"}\n";
    std::fs::write(&path, yesterday).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(86_400))
        .unwrap();
    let up = Counting::start().await;
    let settings = Settings {
        extra: audit_table(path.to_str().unwrap(), "rotate_daily = true\n"),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    assert!(gate.handle.audit_flush(BOUND).await);
    assert_eq!(
        std::fs::read_to_string(logs.path().join("audit.jsonl.1")).unwrap(),
        yesterday
    );
    let today = read_lines(&path);
    assert_eq!(today[0]["event"], "reload");
    assert_eq!(today[0]["trigger"], "start");
}

/// A stalled output (a FIFO nobody reads: the writer blocks in `write`)
/// fills the queue: with `deny`, a proxied request and an attestation get
/// the 503 of `audit_unavailable` and reach nothing, while the readiness
/// endpoint, which needs no line, still answers: no worker thread waits on
/// the audit log. Once the output is read again, requests pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_output_refuses_decisions_with_503_while_readiness_answers() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fifos = tempfile::tempdir().unwrap();
    let fifo = fifos.path().join("audit.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A reader that does not read yet: the gate can open the FIFO, and its
    // writes block once the pipe's buffer is full.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let up = Counting::start().await;
    let settings = Settings {
        extra: audit_table(
            fifo.to_str().unwrap(),
            "queue_lines = 16\nmax_wait = \"200ms\"\n",
        ),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let device = gate.pki.device("lt-750", "Ministerie");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let client = gate.client(Some(&device), Proto::H2);

    // Lines of about 700 bytes: the 64 KiB pipe and the 16 queued lines
    // are full within a few hundred requests.
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut admitted = 0;
    loop {
        let answer = client.get("public.test", "/fill").await;
        if answer.status == 503 {
            assert!(
                answer.text().contains("cannot be recorded")
                    || answer.text().contains("niet worden vastgelegd"),
                "{}",
                answer.text()
            );
            break;
        }
        assert_eq!(answer.status, 200);
        admitted += 1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never filled"
        );
    }
    assert_eq!(up.count(), admitted, "the refused request reached nothing");
    let health = gate.handle.audit_health();
    assert!(health.failing && health.refused >= 1, "{health:?}");

    let ready = tokio::time::timeout(
        Duration::from_secs(5),
        gate.client(None, Proto::H1)
            .get("public.test", "/.well-known/posture-gate/ready"),
    )
    .await
    .expect("readiness answers while the audit log is stalled");
    assert_eq!(ready.status, 200);
    let token = gate.fresh_token(&device, false).await;
    let attest = common::post_token(
        &gate.client(Some(&device), Proto::H1),
        "public.test",
        &token,
    )
    .await;
    assert_eq!(attest.status, 503, "{}", attest.text());
    assert_eq!(up.count(), admitted);

    // The output is read again: the writer catches up and requests pass.
    let read = Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = read.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => return,
            }
        }
    });
    let deadline = tokio::time::Instant::now() + BOUND;
    while client.get("public.test", "/again").await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gate.handle.audit_flush(BOUND).await);
    // Everything written reached the reader, in whole lines, the admitted
    // requests' lines among them.
    let written = gate.handle.audit_health().written as usize;
    let deadline = tokio::time::Instant::now() + BOUND;
    let text = loop {
        let bytes = read.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        if text.lines().count() >= written && text.ends_with('\n') {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reader did not get every line"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lines: Vec<Value> = text.lines().map(schema_1).collect();
    let fills = lines
        .iter()
        .filter(|l| l["event"] == "decision" && l["path"] == "/fill")
        .count();
    assert_eq!(fills, admitted, "every admitted request has its line");
}
