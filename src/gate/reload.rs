//! Hot reload: on SIGHUP and when the config file changes, parse, validate
//! and build a complete new [`Live`], then swap it in atomically. A bad file
//! or a broken certificate keeps the last good config serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::nonce::NonceIssuer;
use super::routing::RouteTable;
use super::{tls, upstream, Live, Shared};
use crate::attestation::Verifier;
use crate::config::{self, ConfigErrors, Snapshot};

/// Editors save in bursts (write, rename, chmod): wait for the burst to end.
const DEBOUNCE: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not parse or validate; one `file:line:col: message` per line.
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("{}: the config has no [server] section", .0.display())]
    NoServer(PathBuf),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("attestation verifier: {0}")]
    Verifier(String),
    #[error("route {route}: {source}")]
    Upstream {
        route: usize,
        source: upstream::UpstreamError,
    },
    #[error("the loader stopped: {0}")]
    Join(String),
}

pub(super) async fn load(path: PathBuf) -> Result<Snapshot, ReloadError> {
    tokio::task::spawn_blocking(move || config::load(&path))
        .await
        .map_err(|e| ReloadError::Join(e.to_string()))?
        .map_err(ReloadError::Config)
}

/// Everything that can fail is built here, before anything is swapped.
pub(super) async fn build_live(
    snapshot: Snapshot,
    fallback_secret: &[u8],
) -> Result<Live, ReloadError> {
    let fallback_secret = fallback_secret.to_vec();
    // Reading certificates and keys is file I/O: keep it off the runtime.
    tokio::task::spawn_blocking(move || build_live_blocking(snapshot, fallback_secret))
        .await
        .map_err(|e| ReloadError::Join(e.to_string()))?
}

fn build_live_blocking(snapshot: Snapshot, fallback_secret: Vec<u8>) -> Result<Live, ReloadError> {
    let source = snapshot.source.clone().unwrap_or_default();
    let settings = snapshot
        .server
        .clone()
        .ok_or(ReloadError::NoServer(source))?;
    let tls = tls::server_config(&settings)?;
    let attestation = &snapshot.attestation;
    let verifier = Verifier::new(&attestation.trust_anchors, attestation.verifier.clone())
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
        tls,
        upstreams,
        snapshot: Arc::new(snapshot),
    })
}

pub(super) async fn reload(shared: &Shared) -> Result<(), ReloadError> {
    // One reload at a time, so two quick edits cannot swap in out of order.
    let _serial = shared.reload_lock.lock().await;
    let result = match load(shared.config_path.clone()).await {
        Ok(mut snapshot) => {
            keep_catalogue_if_unchanged(&mut snapshot, &shared.live.load().snapshot);
            build_live(snapshot, &shared.fallback_secret).await
        }
        Err(e) => Err(e),
    };
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

/// Remembered postures hold the assessment made with one catalogue, known by
/// its `Arc`. A reload that only touches routes, policies or exemptions must
/// not make every device attest again, so an equal catalogue keeps the old
/// `Arc`; the matcher built from it is the same, index for index.
fn keep_catalogue_if_unchanged(new: &mut Snapshot, old: &Snapshot) {
    if *new.catalogue == *old.catalogue {
        new.catalogue = Arc::clone(&old.catalogue);
    } else {
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
    if old.max_body_bytes_in_flight != new.max_body_bytes_in_flight {
        tracing::warn!("max_body_bytes_in_flight changes take effect after a restart");
    }
}

/// Keeps the file watcher and the signal task alive while the gate runs.
pub(super) struct Watchers {
    _watcher: Option<notify::RecommendedWatcher>,
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
    let watcher = watch_file(&shared.config_path, tx.clone());
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut tasks = vec![tokio::spawn(reload_on_events(shared, rx))];
    #[cfg(unix)]
    {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tasks.push(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let _ = tx.try_send(());
            }
        }));
    }
    Ok(Watchers {
        _watcher: watcher,
        tasks,
    })
}

/// Watches the parent directory, because editors and Kubernetes ConfigMaps
/// replace a file by rename or symlink swap, which a watch on the file
/// itself would miss. Without a watcher the gate still reloads on SIGHUP.
fn watch_file(path: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let name = path.file_name()?.to_owned();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event
            .paths
            .iter()
            .any(|p| p.file_name() == Some(name.as_os_str()))
        {
            // A full channel already has a reload pending: that one will see this change.
            let _ = tx.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch the config file, reload with SIGHUP: {e}");
            return None;
        }
    };
    if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), "cannot watch the config directory, reload with SIGHUP: {e}");
        return None;
    }
    Some(watcher)
}

async fn reload_on_events(shared: Arc<Shared>, mut rx: mpsc::Receiver<()>) {
    while rx.recv().await.is_some() {
        tokio::time::sleep(DEBOUNCE).await;
        while rx.try_recv().is_ok() {}
        // Errors are logged inside; the running config stays.
        let _ = reload(&shared).await;
    }
}
