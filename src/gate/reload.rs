//! Hot reload: on SIGHUP and when the config file or any file it refers to
//! changes (certificates, keys, client CA, CRLs, catalogue includes, the
//! nonce secret), parse, validate and build a complete new [`Live`], then
//! swap it in atomically. A bad file or a broken certificate or CRL keeps
//! the last good config, with its last good CRLs, serving.
//!
//! A file is only read once it is complete. On Linux that is when a writer
//! closes it (`IN_CLOSE_WRITE`) or renames it into place; a write still in
//! progress, however long it pauses, does not trigger a reload. Everywhere,
//! the files must also be unchanged (size, mtime and content) over a quiet
//! period before they are read. And a config that would leave a high or
//! critical segment without a deny rule is refused unless it says
//! `allow_empty = true` (see `config::compile`), so even a prefix of a file
//! that is valid on its own cannot open such a segment.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use sha2::{Digest, Sha256};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::routing::RouteTable;
use super::{forward, nac, tls, upstream, Live, Shared};
use posture_core::attestation::Verifier;
use posture_core::audit::{AuditEvent, ReloadEvent, ReloadResult, ReloadTrigger};
use posture_core::config::snapshot::{CrlFreshness, CrlValidity};
use posture_core::config::{self, ConfigErrors, Snapshot};
use posture_core::nonce::NonceIssuer;
use posture_core::revocation::Revocations;

/// Editors save in bursts (write, rename, chmod): wait for the burst to end.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// The files must stay the same for this long before they are read.
const SETTLE: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not parse or validate; one `file:line:col: message` per line.
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("{}: the config has no [server] section", .0.display())]
    NoServer(PathBuf),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("attestation verifier: {0}")]
    Verifier(String),
    #[error("route {route}: {source}")]
    Upstream {
        route: usize,
        source: upstream::UpstreamError,
    },
    #[error("a CRL file holds a CRL that does not parse")]
    Revocations,
    #[error("the loader stopped: {0}")]
    Join(String),
}

/// Loads the config; also gives every file it refers to (as far as it
/// parsed, whether or not it is valid), which the watcher must watch.
pub(super) async fn load(path: PathBuf) -> (Result<Snapshot, ReloadError>, Vec<PathBuf>) {
    let loaded = tokio::task::spawn_blocking(move || {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigErrors(vec![config::ConfigError {
                file: path.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read config file: {e}"),
            }])
        });
        match text {
            Ok(text) => config::load_str_recording(&text, &path),
            Err(e) => (Err(e), Vec::new()),
        }
    })
    .await;
    match loaded {
        Ok((result, files)) => (result.map_err(ReloadError::Config), files),
        Err(e) => (Err(ReloadError::Join(e.to_string())), Vec::new()),
    }
}

/// Everything that can fail is built here, before anything is swapped.
pub(super) async fn build_live(
    snapshot: Snapshot,
    files: Vec<PathBuf>,
    fallback_secret: &[u8],
) -> Result<Live, ReloadError> {
    // Loud, but not a refusal (see `certificate_problems`): a reload that
    // failed here would also keep out new CRLs and rules.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for problem in posture_core::config::certificate_problems(&snapshot, now) {
        tracing::error!("{problem}");
    }
    let fallback_secret = fallback_secret.to_vec();
    // Reading certificates and keys is file I/O: keep it off the runtime.
    tokio::task::spawn_blocking(move || build_live_blocking(snapshot, files, fallback_secret))
        .await
        .map_err(|e| ReloadError::Join(e.to_string()))?
}

fn build_live_blocking(
    snapshot: Snapshot,
    files: Vec<PathBuf>,
    fallback_secret: Vec<u8>,
) -> Result<Live, ReloadError> {
    let source = snapshot.source.clone().unwrap_or_default();
    let settings = snapshot
        .server
        .clone()
        .ok_or(ReloadError::NoServer(source))?;
    // Built from the DER the config load read; no file is opened here.
    let front = tls::server_config(&settings)?;
    let forward = match &settings.forward_auth {
        Some(f) => Some(forward::Doors::new(f, front.devices.clone())?),
        None => None,
    };
    let nac = match &settings.nac {
        Some(n) => Some(nac::NacDoor::new(n, &settings.client_cas)?),
        None => None,
    };
    let crls = &settings.revocation_lists;
    let revocations = Revocations::from_crls(crls).map_err(|_| ReloadError::Revocations)?;
    let attestation = &snapshot.attestation;
    let verifier = Verifier::new(&attestation.trust_anchors, attestation.verifier.clone())
        .and_then(|v| v.with_crls(crls))
        .map_err(|e| ReloadError::Verifier(e.to_string()))?;
    let upstreams = snapshot
        .routes
        .iter()
        .enumerate()
        .map(|(route, r)| {
            upstream::client(r.upstream_ca.as_deref(), settings.upstream_timeout)
                .map_err(|source| ReloadError::Upstream { route, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secret = attestation.nonce_secret.clone().unwrap_or(fallback_secret);
    Ok(Live {
        routes: RouteTable::new(&snapshot.routes),
        nonces: NonceIssuer::new(secret, attestation.nonce_ttl),
        settings,
        verifier,
        tls: front.config,
        devices: front.devices,
        forward,
        nac,
        revocations,
        upstreams,
        files,
        snapshot: Arc::new(snapshot),
    })
}

pub(super) async fn reload(shared: &Shared) -> Result<(), ReloadError> {
    reload_recording(shared, ReloadTrigger::Api).await.0
}

/// The `reload` audit line of a load with its result (`error`: refused),
/// and a reopen of the audit file: every reload, SIGHUP's included, is
/// also logrotate's signal.
pub(super) async fn record(shared: &Shared, trigger: ReloadTrigger, error: Option<&ReloadError>) {
    shared.audit.reopen();
    let error = error.map(ToString::to_string);
    let source = shared.config_path.display().to_string();
    let event = AuditEvent::Reload(ReloadEvent {
        result: if error.is_some() {
            ReloadResult::Failed
        } else {
            ReloadResult::Ok
        },
        trigger,
        error: error.as_deref(),
        source: &source,
    });
    // A reload admits no one: nothing to refuse if it cannot be recorded.
    shared.audit.emit_record(&event).await;
}

/// [`reload`], also giving the files the new config refers to, so the
/// watcher follows them even when the config was refused (a CRL it names
/// that does not exist yet, say).
async fn reload_recording(
    shared: &Shared,
    trigger: ReloadTrigger,
) -> (Result<(), ReloadError>, Vec<PathBuf>) {
    // One reload at a time, so two quick edits cannot swap in out of order.
    let _serial = shared.reload_lock.lock().await;
    super::systemd::reloading();
    let (loaded, files) = load(shared.config_path.clone()).await;
    let result = match loaded {
        Ok(snapshot) => {
            warn_if_catalogue_changed(&snapshot, &shared.live.load().snapshot);
            if snapshot.store != shared.live.load().snapshot.store {
                tracing::warn!("[store] changes take effect after a restart");
            }
            build_live(snapshot, files.clone(), &shared.fallback_secret).await
        }
        Err(e) => Err(e),
    };
    let result = apply(shared, result);
    super::systemd::ready();
    record(shared, trigger, result.as_ref().err()).await;
    (result, files)
}

fn apply(shared: &Shared, result: Result<Live, ReloadError>) -> Result<(), ReloadError> {
    crate::metrics::reload(result.is_ok());
    match result {
        Ok(live) => {
            warn_fixed_settings(&shared.live.load().settings, &live.settings);
            shared.live.store(Arc::new(live));
            tracing::info!(config = %shared.config_path.display(), "configuration reloaded");
            Ok(())
        }
        Err(error) => {
            for line in error.to_string().lines().filter(|l| !l.is_empty()) {
                tracing::error!(config = %shared.config_path.display(), "reload refused, keeping the running configuration: {line}");
            }
            Err(error)
        }
    }
}

/// Remembered postures record the digest of the catalogue they were
/// assessed with (`Posture::is_current`): a reload that only touches routes,
/// policies or exemptions keeps the digest, and with it every posture; one
/// that changes the catalogue makes every device attest again, which is
/// worth a warning.
fn warn_if_catalogue_changed(new: &Snapshot, old: &Snapshot) {
    if new.catalogue.digest() != old.catalogue.digest() {
        tracing::warn!(
            "the catalogue changed: every device must attest again before its next request"
        );
    }
}

fn warn_fixed_settings(
    old: &config::snapshot::ServerSettings,
    new: &config::snapshot::ServerSettings,
) {
    if old.listen != new.listen || old.max_connections != new.max_connections {
        tracing::warn!("listen and max_connections changes take effect after a restart");
    }
    let listen = |s: &config::snapshot::ServerSettings| {
        (
            s.forward_auth
                .as_ref()
                .map(|f| (f.listen.clone(), f.max_connections)),
            s.nac
                .as_ref()
                .map(|n| (n.listen.clone(), n.max_connections)),
        )
    };
    if listen(old) != listen(new) {
        tracing::warn!(
            "[forward_auth] and [nac] listen and max_connections changes (and adding or \
             removing either section) take effect after a restart"
        );
    }
    if old.max_body_bytes_in_flight != new.max_body_bytes_in_flight {
        tracing::warn!("max_body_bytes_in_flight changes take effect after a restart");
    }
    if old.admin != new.admin {
        tracing::warn!("[admin] changes (and adding or removing it) take effect after a restart");
    }
    if old.audit != new.audit {
        tracing::warn!(
            "[audit] changes take effect after a restart (a reload only reopens the file)"
        );
    }
}

/// Keeps the file watcher and the signal task alive while the gate runs.
pub(super) struct Watchers {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub(super) fn spawn_watchers(shared: Arc<Shared>) -> std::io::Result<Watchers> {
    let (tx, rx) = mpsc::channel::<()>(1);
    let watch = FileWatch::new(tx.clone());
    #[cfg_attr(not(unix), allow(unused_mut))]
    #[cfg(unix)]
    let signalled = shared.clone();
    let mut tasks = vec![tokio::spawn(reload_on_events(shared, rx, watch))];
    #[cfg(unix)]
    {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tasks.push(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                signalled
                    .hangup
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = tx.try_send(());
            }
        }));
    }
    Ok(Watchers { tasks })
}

/// The watcher over the directories of the config file and of every file
/// it refers to. Directories, because editors and Kubernetes ConfigMaps
/// replace a file by rename or symlink swap, which a watch on the file
/// itself would miss. Without a watcher the gate still reloads on SIGHUP.
struct FileWatch {
    watcher: Option<notify::RecommendedWatcher>,
    dirs: HashSet<PathBuf>,
    /// The files whose events count; shared with the event handler.
    files: Arc<RwLock<HashSet<PathBuf>>>,
}

impl FileWatch {
    fn new(tx: mpsc::Sender<()>) -> FileWatch {
        let files: Arc<RwLock<HashSet<PathBuf>>> = Arc::default();
        let watched = files.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            let relevant = match event {
                // Events were lost (queue overflow) or the backend failed:
                // look at everything again.
                Err(_) => true,
                Ok(event) if event.need_rescan() => true,
                Ok(event) => {
                    completes_a_write(&event) && {
                        let files = watched.read().unwrap_or_else(|e| e.into_inner());
                        event.paths.iter().any(|p| {
                            files.contains(p)
                                // A ConfigMap swaps `..data`, never the files.
                                || p.file_name().is_some_and(|n| n == "..data")
                        })
                    }
                }
            };
            if relevant {
                // A full channel already has a reload pending: that one will see this change.
                let _ = tx.try_send(());
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("cannot watch the config files, reload with SIGHUP: {e}");
                None
            }
        };
        FileWatch {
            watcher,
            dirs: HashSet::new(),
            files,
        }
    }

    /// Watches exactly the directories of `files` from now on.
    fn follow(&mut self, files: HashSet<PathBuf>) {
        use notify::Watcher;
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let dirs: HashSet<PathBuf> = files.iter().map(|f| parent_dir(f)).collect();
        for gone in self.dirs.difference(&dirs) {
            let _ = watcher.unwatch(gone);
        }
        for dir in dirs.difference(&self.dirs) {
            if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), "cannot watch this directory, reload with SIGHUP after changes there: {e}");
            }
        }
        self.dirs = dirs;
        *self.files.write().unwrap_or_else(|e| e.into_inner()) = files;
    }
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether an event means a file is complete: closed after writing, or
/// moved or linked into place. A plain write is not: the writer may not be
/// done. Only inotify reports closes; elsewhere writes count, and the quiet
/// period before reading (see [`settled`]) is what waits for the writer.
fn completes_a_write(event: &notify::Event) -> bool {
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Modify(ModifyKind::Name(_)) => true,
        // A symlink appears whole; a regular file being created is still
        // empty, and its close will follow.
        EventKind::Create(_) => event.paths.iter().any(|p| {
            p.symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        }),
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => !cfg!(target_os = "linux"),
        _ => false,
    }
}

/// Size, mtime and content hash of one file; `None` when it cannot be read.
type FileState = Option<(u64, Option<std::time::SystemTime>, [u8; 32])>;

/// What the files are now.
fn state_of(files: &[PathBuf]) -> Vec<FileState> {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            let bytes = std::fs::read(f).ok()?;
            Some((
                meta.len(),
                meta.modified().ok(),
                Sha256::digest(&bytes).into(),
            ))
        })
        .collect()
}

/// Waits until the files have stayed the same over [`SETTLE`] with no new
/// event; a file still being written does not get read half way.
async fn settled(files: &[PathBuf], rx: &mut mpsc::Receiver<()>) {
    let mut rounds = 0u32;
    loop {
        let list = files.to_vec();
        let before = tokio::task::spawn_blocking(move || state_of(&list))
            .await
            .ok();
        tokio::time::sleep(SETTLE).await;
        let mut more = false;
        while rx.try_recv().is_ok() {
            more = true;
        }
        let list = files.to_vec();
        let after = tokio::task::spawn_blocking(move || state_of(&list))
            .await
            .ok();
        if !more && before.is_some() && before == after {
            return;
        }
        rounds += 1;
        if rounds.is_multiple_of(50) {
            tracing::warn!(
                "the config files keep changing; waiting for them to settle before reloading"
            );
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
}

/// The config file and every file the serving config and the last attempt
/// refer to.
fn wanted(shared: &Shared, attempt: &[PathBuf]) -> HashSet<PathBuf> {
    let config =
        std::path::absolute(&shared.config_path).unwrap_or_else(|_| shared.config_path.clone());
    let live = shared.live.load();
    std::iter::once(config)
        .chain(live.files.iter().cloned())
        .chain(attempt.iter().cloned())
        .collect()
}

/// How often a CRL that stays due or out of date is reported again.
const CRL_REPEAT: Duration = Duration::from_secs(60 * 60);

/// Says in the log, before it happens, that a CRL is about to pass its
/// nextUpdate, and when it has: from then on the TLS front and the
/// revocation check refuse every device of its issuer
/// (`revocation_unknown`) until a newer CRL is loaded. A warning when a
/// CRL enters its margin (`CrlValidity::warning_margin`: 24 hours, or a
/// quarter of its validity when shorter), an error when it passes, each
/// repeated hourly while it lasts; a newer CRL (another nextUpdate) starts
/// afresh. Checked every second from the serving config, which costs a
/// comparison per CRL.
#[derive(Default)]
struct CrlReporter {
    /// Per CRL (file, issuer, nextUpdate): what was reported, and when.
    reported: HashMap<(PathBuf, String, i64), (bool, tokio::time::Instant)>,
}

impl CrlReporter {
    fn check(&mut self, crls: &[CrlValidity], now: i64) {
        let mut current = HashSet::new();
        for crl in crls {
            let Some(next) = crl.next_update else {
                continue;
            };
            let key = (crl.file.clone(), crl.issuer.clone(), next);
            let past = match crl.freshness(now) {
                CrlFreshness::Fresh => continue,
                CrlFreshness::Due { .. } => false,
                CrlFreshness::Past { .. } => true,
            };
            current.insert(key.clone());
            let due_again = match self.reported.get(&key) {
                Some((was_past, at)) => *was_past != past || at.elapsed() >= CRL_REPEAT,
                None => true,
            };
            if !due_again {
                continue;
            }
            self.reported
                .insert(key, (past, tokio::time::Instant::now()));
            let at = time::OffsetDateTime::from_unix_timestamp(next)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| next.to_string());
            if past {
                tracing::error!(
                    crl = %crl.file.display(), issuer = %crl.issuer, next_update = %at,
                    "CRL passed its nextUpdate: devices of this issuer are refused \
                     (revocation_unknown) until a newer CRL is in place"
                );
            } else {
                tracing::warn!(
                    crl = %crl.file.display(), issuer = %crl.issuer, next_update = %at,
                    seconds_left = next.saturating_sub(now),
                    "CRL reaches its nextUpdate soon: publish a newer one before then, or \
                     devices of this issuer are refused (revocation_unknown)"
                );
            }
        }
        self.reported.retain(|key, _| current.contains(key));
    }
}

async fn reload_on_events(shared: Arc<Shared>, mut rx: mpsc::Receiver<()>, mut watch: FileWatch) {
    let mut attempt: Vec<PathBuf> = Vec::new();
    watch.follow(wanted(&shared, &attempt));
    let mut seen = shared.live.load_full();
    let mut crls = CrlReporter::default();
    // A reload through the handle changes what to watch without an event
    // here; a cheap pointer comparison now and then notices.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = rx.recv() => {
                if event.is_none() {
                    return;
                }
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
                let files: Vec<PathBuf> = wanted(&shared, &attempt).into_iter().collect();
                settled(&files, &mut rx).await;
                // Errors are logged inside; the running config stays.
                let trigger = if shared.hangup.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    ReloadTrigger::Signal
                } else {
                    ReloadTrigger::File
                };
                let (_, files) = reload_recording(&shared, trigger).await;
                attempt = files;
            }
            _ = tick.tick() => {
                let live = shared.live.load_full();
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                crls.check(&live.settings.crl_validity, now);
                if Arc::ptr_eq(&live, &seen) {
                    continue;
                }
            }
        }
        seen = shared.live.load_full();
        watch.follow(wanted(&shared, &attempt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_core::revocation::{CertId, Status};
    use posture_testkit::{config_text, Settings, TestPki};

    /// The TLS front, the revocation set and the verifier are built from
    /// the DER the config load read: with the certificate, key, client-CA
    /// and CRL files gone, the live config still builds, and the CRL it
    /// read still revokes.
    #[test]
    fn the_live_config_is_built_without_reading_the_tls_files_again() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(dir.path());
        std::fs::write(dir.path().join("nonce.key"), [7u8; 32]).unwrap();
        let revoked = pki.device("lt-revoked", "Org");
        let kept = pki.device("lt-kept", "Org");
        let crl = pki.crl(&[&revoked], "revoked.pem");
        let settings = Settings {
            crls: vec![crl.clone()],
            ..Settings::default()
        };
        let path = dir.path().join("gate.toml");
        std::fs::write(&path, config_text(&[], &settings)).unwrap();
        let snapshot = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for gone in ["server.pem", "server.key", "device-ca.pem", "revoked.pem"] {
            std::fs::remove_file(dir.path().join(gone)).unwrap();
        }
        let live = build_live_blocking(snapshot, Vec::new(), vec![1; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let status = |d: &posture_testkit::pki::Device| {
            let id = CertId::of(&d.cert_der).expect("a certificate");
            live.revocations.status(&[id], now)
        };
        assert_eq!(status(&revoked), Status::Revoked);
        assert_eq!(status(&kept), Status::Good);
    }

    /// A key that parses but does not belong to the certificate is refused
    /// at load, naming both files (issue 19); and should one get past the
    /// load (a key type its check does not know), rustls refuses the pair
    /// and the error names both files too.
    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(dir.path());
        std::fs::write(dir.path().join("nonce.key"), [7u8; 32]).unwrap();
        let other = pki.device("lt-other", "Org");
        let path = dir.path().join("gate.toml");
        let good = config_text(&[], &Settings::default());
        let text = good.replace(
            "key = \"server.key\"",
            &format!("key = {:?}", other.key_path.display().to_string()),
        );
        std::fs::write(&path, text).unwrap();
        let Err(errors) = config::load(&path) else {
            panic!("a certificate with another device's key must be refused at load");
        };
        let message = errors.to_string();
        assert!(message.contains("server.pem"), "{message}");
        assert!(
            message.contains(&other.key_path.display().to_string()),
            "{message}"
        );

        std::fs::write(&path, good).unwrap();
        let mut snapshot = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let server = snapshot.server.as_mut().unwrap();
        server.key = other.key_path.clone();
        server.private_key = std::sync::Arc::new(
            <rustls_pki_types::PrivateKeyDer as rustls_pki_types::pem::PemObject>::from_pem_file(
                &other.key_path,
            )
            .unwrap(),
        );
        let Err(e) = build_live_blocking(snapshot, Vec::new(), vec![1; 32]) else {
            panic!("a certificate with another device's key must be refused");
        };
        let message = e.to_string();
        assert!(message.contains("server.pem"), "{message}");
        assert!(
            message.contains(&other.key_path.display().to_string()),
            "{message}"
        );
        assert!(message.contains("cannot be used together"), "{message}");
    }
}
