//! The README's first command, as a new user runs it: `posture-gate demo`
//! starts, and the curl commands it prints give the clean device the app and
//! the Kaspersky device the denial page, and each decision is an audit
//! line on the gate's standard error.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs one printed command line through the shell; returns stdout.
fn run_printed(line: &str, extra: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{line} -sS {extra}"))
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The audit event with this reference, from the gate's standard output
/// (the audit log's default output; diagnostics go to standard error). The
/// writer writes in batches a few milliseconds apart, so the line is waited
/// for (at most 20 s) rather than expected at once.
fn audit_line(log: &std::path::Path, reference: &str) -> serde_json::Value {
    let needle = format!("\"reference\":\"{reference}\"");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(&needle)) {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(line.starts_with("{\"schema\":1,\"time\":\""), "{line}");
            let time = v["time"].as_str().unwrap();
            assert!(
                time.len() == 32 && time.ends_with("+00:00") && time.as_bytes()[10] == b'T',
                "an RFC 3339 time with microseconds and offset: {time}"
            );
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no audit line with {reference} on the gate's stdout:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_demo_prints_commands_that_show_both_outcomes() {
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "this test needs the `curl` program (apt-get install curl)"
    );
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stdout.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .args([
            "demo",
            "--dir",
            dir.path().to_str().unwrap(),
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(logs.path().join("stderr.log")).unwrap())
        .spawn()
        .expect("the demo starts");
    let stdout = child.stdout.take().unwrap();
    let _demo = Demo(child);

    // Read the instructions until the closing line; a thread keeps draining
    // stdout afterwards, as a terminal would.
    // Every line is also kept in a file, where the audit lines are looked for.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut kept = std::fs::File::create(&log).unwrap();
    std::thread::spawn(move || {
        use std::io::Write as _;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = writeln!(kept, "{line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let done = line.contains("signed again every 5 minutes");
        lines.push(line);
        if done {
            break;
        }
    }
    let curls: Vec<&String> = lines.iter().filter(|l| l.starts_with("curl ")).collect();
    assert_eq!(curls.len(), 6, "six curl commands: {lines:#?}");
    for f in [
        "ca.pem",
        "gate.toml",
        "devices/clean/cert.pem",
        "devices/clean/key.pem",
        "devices/clean/attestation.jwt",
        "devices/kaspersky/attestation.jwt",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} written");
    }

    // Clean device: attest, then the app answers with the identity the gate set.
    let verdict = run_printed(curls[0], "");
    let v: serde_json::Value = serde_json::from_str(&verdict).unwrap();
    assert_eq!(v["decisions"]["financien"], "allow", "{v}");
    let app = run_printed(curls[1], "");
    assert!(app.contains("Demo app: you are in."), "{app}");
    assert!(
        app.contains("x-posture-decision              allow"),
        "{app}"
    );

    // Kaspersky device: attested, then refused with the page naming the product.
    let verdict = run_printed(curls[2], "");
    let v: serde_json::Value = serde_json::from_str(&verdict).unwrap();
    assert_eq!(v["decisions"]["financien"], "deny", "{v}");
    assert_eq!(v["findings"][0]["catalog_id"], "kaspersky");
    let page = run_printed(curls[3], "-w '\\n%{http_code}'");
    assert!(page.ends_with("403"), "{page}");
    assert!(page.contains("Kaspersky Endpoint Security for Windows"));
    assert!(page.contains("12.3.0.493"));
    assert!(page.contains("<html lang=\"nl\""));
    // As an API client: problem+json.
    let problem: serde_json::Value = serde_json::from_str(&run_printed(curls[4], "")).unwrap();
    assert_eq!(problem["status"], 403);
    assert_eq!(problem["findings"][0]["catalog_id"], "kaspersky");
    let reference = problem["reference"].as_str().unwrap();
    let denial = audit_line(&log, reference);
    assert_eq!(denial["event"], "decision");
    assert_eq!(denial["decision"], "deny");
    assert_eq!(denial["segment"], "financien");
    assert_eq!(denial["findings"][0]["catalog_id"], "kaspersky");
    assert_eq!(
        denial["device"]["organization"], "Leverancier Extern BV",
        "{denial}"
    );
    // The low-sensitivity segment lets it through with a warning.
    let kantine = run_printed(curls[5], "");
    assert!(
        kantine.contains("x-posture-decision              warn"),
        "{kantine}"
    );
}

/// Issue 13: the demo's client CA is the device CA alone, not the root that
/// also issued the gate's server certificate, so the demo teaches the
/// configuration a deployment should copy.
#[test]
fn the_demo_trusts_only_the_device_ca_for_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gate.toml");
    let child = Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .args(["demo", "--dir", dir.path().to_str().unwrap()])
        .args(["--port", &free_port().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo starts");
    let _demo = Demo(child);
    // The config is the last file the demo writes before it starts the gate.
    let deadline = Instant::now() + Duration::from_secs(60);
    let snapshot = loop {
        if let Ok(snapshot) = posture_core::config::load(&config) {
            break snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "the demo wrote no loadable {config:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let server = snapshot.server.as_ref().unwrap();
    let client_ca = std::fs::read_to_string(&server.client_ca).unwrap();
    assert_eq!(
        client_ca,
        std::fs::read_to_string(dir.path().join("pki/device-ca.pem")).unwrap(),
        "client_ca = {}",
        server.client_ca.display()
    );
    assert_ne!(
        client_ca,
        std::fs::read_to_string(dir.path().join("pki/ca.pem")).unwrap()
    );
}

/// Starts `demo --dir DIR`; returns the running demo and its printed curl
/// commands once it has printed them all.
fn start_demo(dir: &std::path::Path) -> (Demo, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .args(["demo", "--dir", dir.to_str().unwrap()])
        .args(["--port", &free_port().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo starts");
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut curls = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains("signed again every 5 minutes") {
            return (demo, curls);
        }
        if line.starts_with("curl ") {
            curls.push(line);
        }
    }
    panic!("the demo printed no instructions; curls so far: {curls:#?}");
}

/// Every file under `dir` with its bytes.
fn contents(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Issue 19: a second `demo --dir` over the first one's directory keeps
/// its CA, so the device certificates (and any handed out with sign-csr)
/// still verify at the gate; the devices' printed commands still work.
#[test]
fn demo_dir_twice_reuses_the_pki_and_its_devices_still_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = start_demo(dir.path());
    drop(first);
    let ca = std::fs::read(dir.path().join("pki/ca.pem")).unwrap();
    let device = std::fs::read(dir.path().join("devices/clean/cert.pem")).unwrap();
    let device_ca_key = std::fs::read(dir.path().join("pki/device-ca.key")).unwrap();

    let (_second, curls) = start_demo(dir.path());
    assert_eq!(std::fs::read(dir.path().join("pki/ca.pem")).unwrap(), ca);
    assert_eq!(
        std::fs::read(dir.path().join("pki/device-ca.key")).unwrap(),
        device_ca_key
    );
    assert_eq!(
        std::fs::read(dir.path().join("devices/clean/cert.pem")).unwrap(),
        device
    );
    // The first run's device certificate, over mutual TLS to the second gate.
    let verdict = run_printed(&curls[0], "");
    let v: serde_json::Value = serde_json::from_str(&verdict).unwrap();
    assert_eq!(v["decisions"]["financien"], "allow", "{v}");
    let app = run_printed(&curls[1], "");
    assert!(app.contains("Demo app: you are in."), "{app}");
}

/// Runs `demo --dir dir`; its exit status (`None`: still serving after
/// 30 s, then killed) and what it wrote to stderr.
fn demo_that_may_refuse(dir: &std::path::Path) -> (Option<std::process::ExitStatus>, String) {
    let errors = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .args(["demo", "--dir", dir.to_str().unwrap()])
        .args(["--port", &free_port().to_string()])
        .stdout(Stdio::null())
        .stderr(errors.reopen().unwrap())
        .spawn()
        .unwrap();
    // A demo that took the directory would serve until killed: a guard,
    // not a time being measured.
    let mut demo = Demo(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(demo);
    (status, std::fs::read_to_string(errors.path()).unwrap())
}

/// A demo directory whose keys others can read (copied without keeping
/// modes, say) is not reused.
#[test]
fn a_demo_dir_whose_keys_others_can_read_is_not_reused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = start_demo(dir.path());
    drop(first);
    let key = dir.path().join("devices/clean/key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = contents(dir.path());
    let (status, err) = demo_that_may_refuse(dir.path());
    assert!(status.is_some_and(|s| !s.success()), "{err}");
    assert!(err.contains("can be read by others (mode 644)"), "{err}");
    assert_eq!(contents(dir.path()), before);
}

#[test]
fn demo_dir_with_foreign_or_partial_contents_is_refused_and_left_unchanged() {
    // A file elsewhere that a planted link in the directory points at.
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("bashrc");
    let original = "# Written by `posture-gate demo`\nnot yours to write\n";
    std::fs::write(&target, original).unwrap();
    let plant = |d: &std::path::Path| {
        std::os::unix::fs::symlink(&target, d.join("gate.toml")).unwrap();
    };
    for (what, setup) in [
        (
            "foreign",
            &(|d: &std::path::Path| {
                std::fs::create_dir_all(d.join("pki")).unwrap();
                std::fs::write(d.join("pki/ca.pem"), "someone else's CA\n").unwrap();
                std::fs::write(d.join("notes.txt"), "mine\n").unwrap();
            }) as &dyn Fn(&std::path::Path),
        ),
        ("partial", &|d: &std::path::Path| {
            std::fs::write(d.join("gate.toml"), "# Written by `posture-gate demo`\n").unwrap();
            std::fs::write(d.join("ca.pem"), "x\n").unwrap();
        }),
        ("symlink", &plant),
    ] {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let before = contents(dir.path());
        let (status, err) = demo_that_may_refuse(dir.path());
        assert!(
            status.is_some_and(|s| !s.success()),
            "{what}: the demo did not refuse the directory: {err}"
        );
        assert!(err.contains("nothing was changed"), "{what}: {err}");
        let said = match what {
            "foreign" => "notes.txt",
            "symlink" => "gate.toml (a symbolic link)",
            _ => "missing",
        };
        assert!(err.contains(said), "{what}: {err}");
        assert_eq!(
            contents(dir.path()),
            before,
            "{what}: the directory changed"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), original);
    }
}

/// A certificate issued by `pki sign-csr` for an openssl request is a
/// device identity at the gate: over mutual TLS the gate answers that the
/// device has not been checked yet, not that no certificate was shown.
#[test]
fn a_certificate_from_sign_csr_is_accepted_by_the_demo_gate() {
    let dir = tempfile::tempdir().unwrap();
    let (_demo, curls) = start_demo(dir.path());
    let work = tempfile::tempdir().unwrap();
    let (csr, key) = (work.path().join("d.csr"), work.path().join("d.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ])
        .args(["-subj", "/O=Leverancier BV/CN=lt-042"])
        .output()
        .expect("this test needs openssl");
    assert!(out.status.success(), "{out:?}");
    let pki = dir.path().join("pki");
    let out = Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .args([
            "pki",
            "sign-csr",
            pki.to_str().unwrap(),
            "--csr",
            csr.to_str().unwrap(),
            "--org",
            "Leverancier BV",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cert = pki.join("devices/lt-042/cert.pem");
    // The app command of the clean device, with the new certificate and key.
    let line = curls[1]
        .replace(
            &dir.path()
                .join("devices/clean/cert.pem")
                .display()
                .to_string(),
            &cert.display().to_string(),
        )
        .replace(
            &dir.path()
                .join("devices/clean/key.pem")
                .display()
                .to_string(),
            &key.display().to_string(),
        );
    assert_ne!(
        line, curls[1],
        "the printed command names the clean device's files"
    );
    let answer = run_printed(&line, "-H 'Accept: application/json'");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["type"], "urn:posture-gate:problem:no-attestation", "{v}");
}
