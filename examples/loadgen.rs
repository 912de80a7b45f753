//! A small HTTP/1.1 load generator for `scripts/bench-gate`: N keep-alive
//! connections, each sending GET after GET for a fixed time, every latency
//! recorded in an HDR histogram. One tool for every target, so a
//! comparison is fair: plain `http://`, TLS, or mutual TLS with a client
//! certificate (which wrk cannot present).
//!
//! ```text
//! loadgen --url https://localhost:8443/ --ca ca.pem --cert cert.pem --key key.pem \
//!         [--attest-inventory 50] --connections 32 --duration 10 --warmup 2 --label gate \
//!         [--rate 5000] [--attest-only [--nonce]]
//! ```
//!
//! Without `--rate`, each connection sends its next request as soon as the
//! answer is in (the most the target can do); with `--rate R`, the
//! connections together send R requests per second, for the latency a
//! target adds when it is not saturated.
//!
//! With `--attest-inventory N` it first posts a signed attestation (a clean
//! Linux inventory of N items; no nonce unless `--nonce`) over the same
//! client certificate, so the load runs against a remembered posture.
//! Output: one line of tab-separated results,
//! `label rps p50_ms p99_ms max_ms requests errors`.
//!
//! With `--attest-only` (and `--cert`/`--key`), each connection instead
//! posts attestation after attestation to `/.well-known/posture-gate/attest`,
//! each a report of `--attest-inventory` items (default 50) signed afresh
//! (with the current `iat`) just before it is sent; only a `200` counts,
//! anything else is an error. With `--nonce` as well, each attestation first
//! fetches a challenge on the same connection and signs its nonce, so the
//! gate also spends the nonce in its store; the latency is then of the pair.
//! The figures are attestations per second, not requests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use posture_core::attestation::sign::{sign_token, SigningKey};
use posture_gate::gate::{ATTEST_PATH, CHALLENGE_PATH};
use posture_testkit::token::{claims_with_inventory, now};

struct Args {
    url: Uri,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    attest_inventory: Option<usize>,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    label: String,
    threads: usize,
    /// Requests per second over all connections; `None`: as fast as answers come.
    rate: Option<f64>,
    /// Post attestations instead of proxied GETs.
    attest_only: bool,
    /// With `attest_only`: fetch a challenge and sign its nonce first.
    nonce: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        url: "http://127.0.0.1/".parse()?,
        ca: None,
        cert: None,
        key: None,
        attest_inventory: None,
        connections: 32,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        label: "target".into(),
        threads: 2,
        rate: None,
        attest_only: false,
        nonce: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?.parse().context("--url")?,
            "--ca" => args.ca = Some(value()?.into()),
            "--cert" => args.cert = Some(value()?.into()),
            "--key" => args.key = Some(value()?.into()),
            "--attest-inventory" => args.attest_inventory = Some(value()?.parse()?),
            "--connections" => args.connections = value()?.parse()?,
            "--duration" => args.duration = Duration::from_secs_f64(value()?.parse()?),
            "--warmup" => args.warmup = Duration::from_secs_f64(value()?.parse()?),
            "--label" => args.label = value()?,
            "--threads" => args.threads = value()?.parse()?,
            "--rate" => {
                let rate: f64 = value()?.parse()?;
                if !(rate > 0.0 && rate.is_finite()) {
                    bail!("--rate must be a positive number of requests per second");
                }
                args.rate = Some(rate);
            }
            "--attest-only" => args.attest_only = true,
            "--nonce" => args.nonce = true,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// Where to connect and how.
#[derive(Clone)]
struct Target {
    addr: String,
    host: String,
    authority: String,
    path: String,
    tls: Option<Arc<ClientConfig>>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Target {
    fn new(args: &Args) -> Result<Target> {
        let host = args.url.host().context("--url needs a host")?.to_string();
        let https = args.url.scheme_str() == Some("https");
        let port = args.url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = https.then(|| tls_config(args)).transpose()?;
        Ok(Target {
            addr: format!("{host}:{port}"),
            authority: format!("{host}:{port}"),
            host,
            path: args
                .url
                .path_and_query()
                .map_or("/".into(), |p| p.to_string()),
            tls,
        })
    }

    async fn connect(&self) -> Result<http1::SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connect {}", self.addr))?;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = ServerName::try_from(self.host.clone())?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake")?;
                Box::new(tls)
            }
        };
        let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    fn get(&self) -> Request<Full<Bytes>> {
        Request::get(&self.path)
            .header("host", &self.authority)
            .header("user-agent", "posture-gate-loadgen")
            .body(Full::default())
            .expect("a GET with a parsed path is a valid request")
    }
}

fn tls_config(args: &Args) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let ca = args.ca.as_ref().context("https needs --ca")?;
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let mut config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key)?)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("--cert and --key go together"),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Signs reports of a clean device with the client certificate's key.
struct Signer {
    chain: Vec<CertificateDer<'static>>,
    key: SigningKey,
    items: usize,
    /// Fetch a challenge and sign its nonce first.
    nonce: bool,
}

impl Signer {
    fn load(args: &Args) -> Result<Signer> {
        let (cert, key) = match (&args.cert, &args.key) {
            (Some(c), Some(k)) => (c, k),
            _ => bail!("attesting needs --cert and --key"),
        };
        Ok(Signer {
            chain: CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?,
            key: SigningKey::from_pem(&std::fs::read_to_string(key)?)?,
            items: args.attest_inventory.unwrap_or(50),
            nonce: args.nonce,
        })
    }

    /// One attestation on this connection, signed now (after the
    /// challenge, with `nonce`); `Err` says why it was not a 200.
    async fn attest(
        &self,
        sender: &mut http1::SendRequest<Full<Bytes>>,
        target: &Target,
    ) -> Result<()> {
        let mut claims = claims_with_inventory(now(), self.items);
        if self.nonce {
            let req = Request::get(CHALLENGE_PATH)
                .header("host", &target.authority)
                .body(Full::default())?;
            // hyper's client may not have taken in the end of the last
            // answer yet: wait until it can send.
            sender.ready().await?;
            let response = sender.send_request(req).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            if status != StatusCode::OK {
                bail!("challenge: {status}: {}", String::from_utf8_lossy(&body));
            }
            let challenge: serde_json::Value =
                serde_json::from_slice(&body).context("challenge: not JSON")?;
            let nonce = challenge["nonce"].as_str().context("challenge: no nonce")?;
            claims.eat_nonce = Some(nonce.to_owned());
        }
        let token = sign_token(&claims, &self.chain, &self.key)?;
        let req = Request::post(ATTEST_PATH)
            .header("host", &target.authority)
            .header("content-type", "application/eat+jwt")
            .body(Full::new(Bytes::from(token)))?;
        sender.ready().await?;
        let response = sender.send_request(req).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            bail!("attest: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

/// What each connection sends, again and again.
#[derive(Clone)]
enum Op {
    /// A GET of `--url`, proxied by the gate.
    Get,
    /// An attestation (`--attest-only`).
    Attest(Arc<Signer>),
}

/// The first error of the run, printed once (later ones are only counted).
static REPORTED: AtomicBool = AtomicBool::new(false);

struct Tally {
    histogram: Histogram<u64>,
    errors: u64,
}

/// One connection's loop: request after request until `end`; latencies
/// after `measure_from` are recorded (microseconds).
/// One connection. With `period`, a request is sent every period (from a
/// random phase, so connections do not march in step) and the latency is
/// the answer's alone: at a rate the target keeps up with, that is the time
/// the target adds, without the queueing of a saturated machine.
async fn worker(
    target: Target,
    op: Op,
    measure_from: Instant,
    end: Instant,
    period: Option<Duration>,
) -> Result<Tally> {
    let mut tally = Tally {
        histogram: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        errors: 0,
    };
    let mut sender = target.connect().await?;
    let mut pace = period.map(|p| {
        let phase = p.mul_f64(rand::random::<f64>());
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + phase, p);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    while Instant::now() < end {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        let started = Instant::now();
        let ok = match &op {
            Op::Get => match sender.send_request(target.get()).await {
                Ok(response) => {
                    let ok = response.status().is_success();
                    ok && response.into_body().collect().await.is_ok()
                }
                Err(_) => false,
            },
            Op::Attest(signer) => match signer.attest(&mut sender, &target).await {
                Ok(()) => true,
                Err(e) => {
                    if !REPORTED.swap(true, Ordering::Relaxed) {
                        eprintln!("loadgen {}: {e:#}", target.addr);
                    }
                    false
                }
            },
        };
        if started >= measure_from {
            if ok {
                let micros = started.elapsed().as_micros() as u64;
                tally.histogram.record(micros.max(1))?;
            } else {
                tally.errors += 1;
            }
        }
        if !ok {
            // A failed request may have closed the connection: reopen.
            sender = target.connect().await?;
        }
    }
    Ok(tally)
}

async fn run(args: Args) -> Result<()> {
    let target = Target::new(&args)?;
    let op = if args.attest_only {
        Op::Attest(Arc::new(Signer::load(&args)?))
    } else {
        Op::Get
    };
    // Fail fast, before the clock starts, if the target is not serving
    // (for GETs, after the attestation the posture comes from).
    let mut probe = target.connect().await?;
    match &op {
        Op::Attest(signer) => signer.attest(&mut probe, &target).await?,
        Op::Get => {
            if args.attest_inventory.is_some() {
                Signer::load(&args)?.attest(&mut probe, &target).await?;
            }
            probe.ready().await?;
            let status = probe.send_request(target.get()).await?.status();
            if !status.is_success() {
                bail!("{}: the first request got {status}", args.url);
            }
        }
    }
    drop(probe);
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let period = args
                .rate
                .map(|r| Duration::from_secs_f64(args.connections as f64 / r));
            tokio::spawn(worker(
                target.clone(),
                op.clone(),
                measure_from,
                end,
                period,
            ))
        })
        .collect();
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    for w in workers {
        let tally = w.await??;
        total.add(&tally.histogram)?;
        errors += tally.errors;
    }
    let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{}\t{:.0}\t{:.3}\t{:.3}\t{:.3}\t{}\t{}",
        args.label,
        total.len() as f64 / args.duration.as_secs_f64(),
        ms(0.50),
        ms(0.99),
        total.max() as f64 / 1000.0,
        total.len(),
        errors
    );
    Ok(())
}
