//! The client side of `scripts/soak-gate`: many distinct devices attesting
//! and sending proxied requests through the gate at once, as fast as it
//! answers, with every answer checked and counted, so the script can compare
//! the counts with the gate's audit log line for line.
//!
//! ```text
//! soak pki DIR --devices 10000
//! soak upstream --listen 127.0.0.1:PORT
//! soak run --dir DIR --addr 127.0.0.1:PORT --devices 10000 --workers 64 \
//!          --sources 4 --duration 60 --requests-per-attestation 20 \
//!          --kaspersky-every 10 --summary FILE
//! ```
//!
//! `pki` writes a development PKI with the project's own [`pki`] module
//! (`ca.pem`, `server.pem`, … as `posture-gate pki init` does) and a device
//! certificate and key per device under `DIR/devices/soak-NNNNN/`, as
//! `posture-gate pki issue-device` does, only without loading the CA again
//! for each of 10,000 devices.
//!
//! `upstream` is the app behind the gate: `200 ok` to every request, HTTP/1.1
//! keep-alive, one thread, no log (the same role as bench-gate's nginx
//! `return 200`, without needing nginx).
//!
//! `run`: each of `--workers` tasks repeats a *session* until the time is up:
//! take the next device (round robin over all of them, so every device
//! attests once in the first `--devices` sessions), open a mutual-TLS
//! connection with its certificate from source address `127.0.0.N` (workers
//! are spread over `--sources` loopback addresses, so the concurrency per
//! source address is `workers / sources`), fetch a challenge, sign an
//! inventory with the nonce using the agent's own signing code, post it, and
//! send `--requests-per-attestation` proxied GETs on the same keep-alive
//! connection; the last one says `Connection: close`, so the gate closes
//! first and the client's ports do not pile up in TIME_WAIT. Every
//! `--kaspersky-every`-th device reports Kaspersky: its verdict must say
//! `deny` and its proxied requests must be answered 403 (expected, counted
//! apart); a clean device's must be 200. Anything else is an error.
//!
//! Output: a table on stdout and, with `--summary`, `name value` lines for
//! the script: requests by outcome, errors by kind, devices attested, and
//! latency percentiles (HDR histograms, microseconds).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpSocket};

use posture_agent::attest::Credentials;
use posture_core::attestation::claims::{Software, SoftwareSource};
use posture_gate::gate::{ATTEST_PATH, CHALLENGE_PATH};
use posture_testkit::pki::Pki;
use posture_testkit::token::{claims_with_inventory, now};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match command.as_str() {
        "pki" => make_pki(&rest),
        "upstream" => upstream(&rest),
        "run" => run(&rest),
        _ => bail!("usage: soak pki DIR --devices N | soak upstream --listen ADDR | soak run ..."),
    }
}

/// `--flag value` pairs; every flag must be one the command knows.
fn flags(args: &[String], known: &[&str]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if !known.contains(&flag.as_str()) {
            bail!("unknown argument {flag}");
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        out.insert(flag.clone(), value.clone());
    }
    Ok(out)
}

fn opt<T: std::str::FromStr>(flags: &BTreeMap<String, String>, name: &str, default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match flags.get(name) {
        Some(v) => v.parse().with_context(|| format!("{name} {v}")),
        None => Ok(default),
    }
}

fn device_name(i: usize) -> String {
    format!("soak-{i:05}")
}

// ------------------------------------------------------------------ pki

fn make_pki(args: &[String]) -> Result<()> {
    let (dir, rest) = args.split_first().context("soak pki DIR --devices N")?;
    let f = flags(rest, &["--devices"])?;
    let devices: usize = opt(&f, "--devices", 10_000)?;
    let dir = PathBuf::from(dir);
    let started = Instant::now();
    let pki = Pki::generate()?;
    pki.write(&dir)?;
    // Issuing is a key generation and a signature per device; two threads
    // (the machine's cores) share the devices.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (pki, dir) = (&pki, &dir);
                s.spawn(move || -> Result<()> {
                    for i in (t..devices).step_by(threads) {
                        let name = device_name(i);
                        let creds = pki.issue_device(&name, "Soak BV", Some("Laptops"))?;
                        creds.write(&dir.join("devices").join(&name))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("an issuing thread panicked"))??;
        }
        Ok(())
    })?;
    eprintln!(
        "soak: PKI and {devices} device certificates in {} in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ------------------------------------------------------------------ upstream

fn upstream(args: &[String]) -> Result<()> {
    let f = flags(args, &["--listen"])?;
    let listen: SocketAddr = f.get("--listen").context("--listen ADDR")?.parse()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = TcpListener::bind(listen).await?;
            loop {
                let (tcp, _) = listener.accept().await?;
                let _ = tcp.set_nodelay(true);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"ok\n"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        })
}

// ------------------------------------------------------------------ run

struct Device {
    creds: Credentials,
    tls: Arc<ClientConfig>,
    kaspersky: bool,
}

struct Settings {
    addr: SocketAddr,
    host: String,
    sources: u8,
    requests_per_attestation: usize,
    inventory: usize,
    end: Instant,
}

/// What one worker saw.
struct Tally {
    proxied: Histogram<u64>,
    attest: Histogram<u64>,
    challenge: Histogram<u64>,
    handshake: Histogram<u64>,
    sessions: u64,
    /// Proxied requests answered as expected: 200 for a clean device, 403
    /// for one that reported Kaspersky.
    proxied_200: u64,
    proxied_403: u64,
    /// Attestations the gate answered 200 `valid: true` with the expected
    /// decision.
    attest_allow: u64,
    attest_deny: u64,
    /// Requests sent (answered or not), to compare with the audit log.
    proxied_sent: u64,
    attest_sent: u64,
    challenge_sent: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Result<Tally> {
        let h = || Histogram::new_with_bounds(1, 120_000_000, 3);
        Ok(Tally {
            proxied: h()?,
            attest: h()?,
            challenge: h()?,
            handshake: h()?,
            sessions: 0,
            proxied_200: 0,
            proxied_403: 0,
            attest_allow: 0,
            attest_deny: 0,
            proxied_sent: 0,
            attest_sent: 0,
            challenge_sent: 0,
            errors: BTreeMap::new(),
        })
    }

    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) -> Result<()> {
        self.proxied.add(&other.proxied)?;
        self.attest.add(&other.attest)?;
        self.challenge.add(&other.challenge)?;
        self.handshake.add(&other.handshake)?;
        self.sessions += other.sessions;
        self.proxied_200 += other.proxied_200;
        self.proxied_403 += other.proxied_403;
        self.attest_allow += other.attest_allow;
        self.attest_deny += other.attest_deny;
        self.proxied_sent += other.proxied_sent;
        self.attest_sent += other.attest_sent;
        self.challenge_sent += other.challenge_sent;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        Ok(())
    }
}

fn micros(since: Instant) -> u64 {
    (since.elapsed().as_micros() as u64).max(1)
}

fn load_devices(dir: &Path, n: usize, kaspersky_every: usize) -> Result<Vec<Device>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem"))? {
        roots.add(cert?)?;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    (0..n)
        .map(|i| {
            let d = dir.join("devices").join(device_name(i));
            let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
            // The agent's own loader: checks that key and certificate belong
            // together, and signs as the agent does.
            let creds = Credentials::load(&cert, &key)?;
            let mut tls = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(creds.chain.clone(), PrivateKeyDer::from_pem_file(&key)?)?;
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            // No resumption: every session is a device's full handshake,
            // the gate's dearest case.
            tls.resumption = rustls::client::Resumption::disabled();
            Ok(Device {
                creds,
                tls: Arc::new(tls),
                kaspersky: kaspersky_every > 0 && i % kaspersky_every == 0,
            })
        })
        .collect()
}

fn run(args: &[String]) -> Result<()> {
    let f = flags(
        args,
        &[
            "--dir",
            "--addr",
            "--host",
            "--devices",
            "--workers",
            "--sources",
            "--threads",
            "--duration",
            "--requests-per-attestation",
            "--inventory",
            "--kaspersky-every",
            "--summary",
        ],
    )?;
    let dir = PathBuf::from(f.get("--dir").context("--dir DIR")?);
    let addr: SocketAddr = f.get("--addr").context("--addr IP:PORT")?.parse()?;
    let devices_n: usize = opt(&f, "--devices", 10_000)?;
    let workers: usize = opt(&f, "--workers", 64)?;
    let sources: u8 = opt(&f, "--sources", 4)?;
    let threads: usize = opt(&f, "--threads", 2)?;
    let duration = Duration::from_secs_f64(opt(&f, "--duration", 60.0)?);
    let per: usize = opt(&f, "--requests-per-attestation", 20)?;
    let inventory: usize = opt(&f, "--inventory", 50)?;
    let kaspersky_every: usize = opt(&f, "--kaspersky-every", 10)?;
    if devices_n == 0 || workers == 0 || sources == 0 || per == 0 {
        bail!("--devices, --workers, --sources and --requests-per-attestation must be positive");
    }
    if !addr.is_ipv4() || !addr.ip().is_loopback() {
        bail!("--addr must be an IPv4 loopback address (sources are 127.0.0.N)");
    }

    let started = Instant::now();
    let devices = Arc::new(load_devices(&dir, devices_n, kaspersky_every)?);
    eprintln!(
        "soak: {devices_n} devices loaded in {:.1} s; {workers} workers over {sources} source addresses, {duration:?}",
        started.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let attested: Arc<Vec<AtomicBool>> =
        Arc::new((0..devices_n).map(|_| AtomicBool::new(false)).collect());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let settings = Arc::new(Settings {
        addr,
        host: f
            .get("--host")
            .cloned()
            .unwrap_or_else(|| "localhost".into()),
        sources,
        requests_per_attestation: per,
        inventory,
        end: start + duration,
    });
    let total = runtime.block_on(async {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (devices, attested, next, settings) = (
                    devices.clone(),
                    attested.clone(),
                    next.clone(),
                    settings.clone(),
                );
                tokio::spawn(worker(w, devices, attested, next, settings))
            })
            .collect();
        let mut total = Tally::new()?;
        for h in handles {
            total.merge(h.await??)?;
        }
        Ok::<_, anyhow::Error>(total)
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let devices_attested = attested
        .iter()
        .filter(|a| a.load(Ordering::Relaxed))
        .count();
    report(
        &total,
        elapsed,
        devices_attested,
        devices_n,
        f.get("--summary"),
    )
}

async fn worker(
    w: usize,
    devices: Arc<Vec<Device>>,
    attested: Arc<Vec<AtomicBool>>,
    next: Arc<AtomicU64>,
    settings: Arc<Settings>,
) -> Result<Tally> {
    let mut tally = Tally::new()?;
    let source = Ipv4Addr::new(127, 0, 0, 1 + (w % settings.sources as usize) as u8);
    while Instant::now() < settings.end {
        let i = (next.fetch_add(1, Ordering::Relaxed) % devices.len() as u64) as usize;
        tally.sessions += 1;
        if let Err(e) = session(&devices[i], i, &attested, source, &settings, &mut tally).await {
            tally.error(e);
        }
    }
    Ok(tally)
}

type Sender = http1::SendRequest<Full<Bytes>>;

/// One device's visit. An `Err` is the kind of the error that ended it,
/// already not counted anywhere else.
async fn session(
    device: &Device,
    index: usize,
    attested: &[AtomicBool],
    source: Ipv4Addr,
    s: &Settings,
    tally: &mut Tally,
) -> Result<(), String> {
    let t = Instant::now();
    let mut sender = connect(device, source, s).await?;
    tally.handshake.record(micros(t)).ok();

    // The challenge.
    tally.challenge_sent += 1;
    let t = Instant::now();
    let (status, body) = exchange(&mut sender, get(s, CHALLENGE_PATH, false)).await?;
    if status != StatusCode::OK {
        return Err(format!("challenge_{}", status.as_u16()));
    }
    tally.challenge.record(micros(t)).ok();
    let challenge: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "challenge_not_json")?;
    let nonce = challenge["nonce"]
        .as_str()
        .ok_or("challenge_without_nonce")?;

    // The attestation, signed the agent's way.
    let mut claims = claims_with_inventory(now(), s.inventory);
    claims.eat_nonce = Some(nonce.to_owned());
    claims.sub = Some(device_name(index));
    if device.kaspersky {
        claims.software.push(Software {
            name: "Kaspersky Endpoint Security for Linux".into(),
            vendor: Some("AO Kaspersky Lab".into()),
            version: Some("12.1.0.1297".into()),
            id: Some("kesl".into()),
            signer: None,
            source: Some(SoftwareSource::Dpkg),
        });
    }
    let token = device.creds.sign(&claims).map_err(|_| "sign")?;
    let post = Request::post(ATTEST_PATH)
        .header("host", &s.host)
        .header("content-type", "application/eat+jwt")
        .body(Full::new(Bytes::from(token)))
        .map_err(|_| "request")?;
    tally.attest_sent += 1;
    let t = Instant::now();
    let (status, body) = exchange(&mut sender, post).await?;
    if status != StatusCode::OK {
        return Err(format!("attest_{}", status.as_u16()));
    }
    tally.attest.record(micros(t)).ok();
    let verdict: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "verdict_not_json")?;
    let expected = if device.kaspersky { "deny" } else { "allow" };
    if verdict["valid"] != true || verdict["decisions"]["app"] != expected {
        return Err(format!("verdict_not_{expected}"));
    }
    if device.kaspersky {
        tally.attest_deny += 1;
    } else {
        tally.attest_allow += 1;
    }
    attested[index].store(true, Ordering::Relaxed);

    // Proxied requests on the same connection.
    let expected = if device.kaspersky {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    for r in 0..s.requests_per_attestation {
        if Instant::now() >= s.end {
            break;
        }
        let last = r + 1 == s.requests_per_attestation;
        let path = format!("/soak/{index}/{r}");
        tally.proxied_sent += 1;
        let t = Instant::now();
        let (status, _) = exchange(&mut sender, get(s, &path, last)).await?;
        if status != expected {
            return Err(format!("proxied_{}", status.as_u16()));
        }
        tally.proxied.record(micros(t)).ok();
        if device.kaspersky {
            tally.proxied_403 += 1;
        } else {
            tally.proxied_200 += 1;
        }
    }
    Ok(())
}

async fn connect(device: &Device, source: Ipv4Addr, s: &Settings) -> Result<Sender, String> {
    let socket = TcpSocket::new_v4().map_err(|_| "socket")?;
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
        .map_err(|_| "bind")?;
    let tcp = socket.connect(s.addr).await.map_err(|_| "connect")?;
    tcp.set_nodelay(true).map_err(|_| "nodelay")?;
    let name = ServerName::try_from(s.host.clone()).map_err(|_| "server_name")?;
    let tls = tokio_rustls::TlsConnector::from(device.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|_| "tls_handshake")?;
    let (sender, conn) = http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|_| "http_handshake")?;
    tokio::spawn(conn);
    Ok(sender)
}

fn get(s: &Settings, path: &str, close: bool) -> Request<Full<Bytes>> {
    let mut req = Request::get(path)
        .header("host", &s.host)
        .header("user-agent", "posture-gate-soak");
    if close {
        req = req.header("connection", "close");
    }
    req.body(Full::default())
        .unwrap_or_else(|_| unreachable!("a GET of a path we formatted is a valid request"))
}

/// Sends a request and reads the whole answer.
async fn exchange(
    sender: &mut Sender,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    sender.ready().await.map_err(|_| "connection_closed")?;
    let response = sender.send_request(req).await.map_err(|_| "send")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|_| "body")?
        .to_bytes();
    Ok((status, body))
}

fn report(
    t: &Tally,
    elapsed: f64,
    devices_attested: usize,
    devices: usize,
    summary: Option<&String>,
) -> Result<()> {
    let errors: u64 = t.errors.values().sum();
    let mut lines: Vec<(String, String)> = vec![
        ("elapsed_s".into(), format!("{elapsed:.3}")),
        ("sessions".into(), t.sessions.to_string()),
        ("devices".into(), devices.to_string()),
        ("devices_attested".into(), devices_attested.to_string()),
        ("challenge_sent".into(), t.challenge_sent.to_string()),
        ("attest_sent".into(), t.attest_sent.to_string()),
        ("attest_allow".into(), t.attest_allow.to_string()),
        ("attest_deny".into(), t.attest_deny.to_string()),
        ("proxied_sent".into(), t.proxied_sent.to_string()),
        ("proxied_200".into(), t.proxied_200.to_string()),
        ("proxied_403".into(), t.proxied_403.to_string()),
        ("errors".into(), errors.to_string()),
        (
            "proxied_per_s".into(),
            format!("{:.0}", (t.proxied_200 + t.proxied_403) as f64 / elapsed),
        ),
        (
            "attest_per_s".into(),
            format!("{:.0}", (t.attest_allow + t.attest_deny) as f64 / elapsed),
        ),
    ];
    for (kind, n) in &t.errors {
        lines.push((format!("error_{kind}"), n.to_string()));
    }
    for (name, h) in [
        ("proxied", &t.proxied),
        ("attest", &t.attest),
        ("challenge", &t.challenge),
        ("handshake", &t.handshake),
    ] {
        for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
            lines.push((
                format!("{name}_{label}_us"),
                h.value_at_quantile(q).to_string(),
            ));
        }
        lines.push((format!("{name}_max_us"), h.max().to_string()));
    }
    let text: String = lines.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    if let Some(path) = summary {
        std::fs::write(path, &text).with_context(|| format!("writing {path}"))?;
    }
    print!("{text}");
    Ok(())
}
