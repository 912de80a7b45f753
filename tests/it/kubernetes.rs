//! The Kubernetes manifests of docker/kubernetes/ and the image they run.
//!
//! - Every manifest passes `kubernetes-validate --strict` (the JSON schemas
//!   of the Kubernetes API; unknown fields are errors) for Kubernetes 1.31
//!   and 1.37, the newest the validator (1.37.0, installed by
//!   scripts/test-all) ships.
//! - What matters for the gate holds, read from the same YAML: three
//!   replicas spread over nodes, readiness on the gate's endpoint over
//!   HTTPS, a PodDisruptionBudget of two, the restricted security context,
//!   no secret in any manifest, the ConfigMap mounted as a directory, and a
//!   LoadBalancer passing TCP 443 to the gate's own port.
//! - The ConfigMap's gate.toml is a config the gate loads, with the files
//!   it names put where the Deployment mounts them.
//! - docker/Dockerfile copies every path the workspace's build reads.
//!
//! The YAML is read by the validator's own parser (PyYAML, in the
//! validator's Python), turned into JSON, so the properties are asserted
//! on exactly what was validated, and the product gains no dependency.

use crate::support as common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The validator release scripts/test-all installs.
const VALIDATOR_RELEASE: &str = "1.37.0";
/// The Kubernetes versions the manifests are checked against: a release
/// still common in managed clusters, and the newest the validator knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.31", "1.37"];
const READY_PATH: &str = "/.well-known/posture-gate/ready";

fn manifest_dir() -> PathBuf {
    Path::new(ROOT).join("docker/kubernetes")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest_dir())
        .expect("docker/kubernetes exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

/// `kubernetes-validate`: `$KUBERNETES_VALIDATE` (what scripts/test-all
/// sets), else the virtualenv scripts/test-all makes, else `PATH`.
fn validator() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBERNETES_VALIDATE") {
        return PathBuf::from(path);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let cached = Path::new(&home)
            .join(".cache/posture-gate")
            .join(format!("kubernetes-validate-{VALIDATOR_RELEASE}"))
            .join("bin/kubernetes-validate");
        if cached.exists() {
            return cached;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("kubernetes-validate");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "kubernetes-validate is not installed: run scripts/test-all (it installs \
         kubernetes-validate=={VALIDATOR_RELEASE} from PyPI into ~/.cache/posture-gate), \
         or `pip install kubernetes-validate=={VALIDATOR_RELEASE}` and put it on PATH, \
         or set KUBERNETES_VALIDATE to the program"
    );
}

/// The Python the validator runs on (its virtualenv's), for PyYAML.
fn python() -> PathBuf {
    let validator = validator();
    let beside = validator.with_file_name("python3");
    if beside.exists() {
        beside
    } else {
        PathBuf::from("python3")
    }
}

/// Every YAML document of `files`, in order, as JSON.
fn documents_of(files: &[PathBuf]) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f, encoding='utf-8')) if d is not None]\n\
                  json.dump(docs, sys.stdout)\n";
    let python = python();
    let output = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (python3 with PyYAML, which kubernetes-validate brings): {e}",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "{} could not read the manifests: {}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from the YAML")
}

fn documents() -> Vec<Value> {
    documents_of(&manifests())
}

fn the<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} {name}");
    found[0]
}

fn gate_deployment(docs: &[Value]) -> &Value {
    the(docs, "Deployment", "posture-gate")
}

fn gate_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

/// A probe's or Service's port, by number or by the container port's name.
fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().expect("a port is a number or a name");
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
        .as_u64()
        .unwrap()
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .expect("matchLabels")
        .iter()
        .all(|(k, v)| labels[k] == *v)
}

#[test]
fn every_manifest_passes_the_kubernetes_schema_in_strict_mode() {
    let validator = validator();
    let files = manifests();
    let resources = documents_of(&files).len();
    for version in KUBERNETES_VERSIONS {
        let output = Command::new(&validator)
            .args(["--strict", "--kubernetes-version", version])
            .args(&files)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", validator.display()));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "kubernetes-validate --strict for {version}:\n{text}"
        );
        // Each resource checked, none skipped.
        let passed = text
            .lines()
            .filter(|l| l.contains(" passed for resource ") && l.contains(version))
            .count();
        assert_eq!(passed, resources, "{text}");
    }
}

#[test]
fn the_validator_refuses_what_the_api_server_would() {
    // So the test above cannot pass by a validator that accepts anything.
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(manifest_dir().join("30-gate.yaml")).unwrap();
    for (name, bad) in [
        ("typo.yaml", good.replacen("replicas: 3", "replicaz: 3", 1)),
        (
            "type.yaml",
            good.replacen("replicas: 3", "replicas: \"3\"", 1),
        ),
    ] {
        assert_ne!(bad, good);
        let path = dir.path().join(name);
        std::fs::write(&path, bad).unwrap();
        let status = Command::new(validator())
            .args(["--strict", "--quiet", "--kubernetes-version", "1.31"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(!status.success(), "{name} passed");
    }
}

#[test]
fn three_gates_spread_over_nodes_ready_on_the_gates_endpoint() {
    let docs = documents();
    let deployment = gate_deployment(&docs);
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"];
    assert!(labels_match(
        &deployment["spec"]["selector"]["matchLabels"],
        &pod["metadata"]["labels"]
    ));
    let gate = gate_container(deployment);

    let ready = &gate["readinessProbe"]["httpGet"];
    assert_eq!(ready["scheme"], "HTTPS");
    assert_eq!(ready["path"], READY_PATH);
    assert_eq!(container_port(gate, &ready["port"]), 8443);
    let alive = &gate["livenessProbe"]["tcpSocket"];
    assert_eq!(container_port(gate, &alive["port"]), 8443);

    for side in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                gate["resources"][side][resource].is_string(),
                "{side}.{resource}"
            );
        }
    }

    // Spread: one per node (topology spread on the host name, hard), or a
    // required anti-affinity on it.
    let spec = &pod["spec"];
    let spread = spec["topologySpreadConstraints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["topologyKey"] == "kubernetes.io/hostname"
                && c["maxSkew"] == 1
                && c["whenUnsatisfiable"] == "DoNotSchedule"
                && labels_match(
                    &c["labelSelector"]["matchLabels"],
                    &pod["metadata"]["labels"],
                )
        });
    let anti = spec["affinity"]["podAntiAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["topologyKey"] == "kubernetes.io/hostname");
    assert!(spread || anti, "{spec}");
}

#[test]
fn a_disruption_budget_keeps_two_gates() {
    let docs = documents();
    let pdb = the(&docs, "PodDisruptionBudget", "posture-gate");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    let pod_labels = &gate_deployment(&docs)["spec"]["template"]["metadata"]["labels"];
    assert!(labels_match(
        &pdb["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
}

#[test]
fn every_pod_runs_restricted() {
    let docs = documents();
    let workloads: Vec<&Value> = docs
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Deployment" | "StatefulSet")))
        .collect();
    assert_eq!(workloads.len(), 2, "the gate and Redis");
    for w in workloads {
        let name = &w["metadata"]["name"];
        let spec = &w["spec"]["template"]["spec"];
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        assert!(spec["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
        assert_eq!(spec["automountServiceAccountToken"], false, "{name}");
        for c in spec["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(sc["runAsNonRoot"], true, "{name}");
            assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
            assert!(sc["capabilities"]["add"].is_null(), "{name}");
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
            assert!(sc["privileged"].is_null() || sc["privileged"] == false);
        }
    }
    // And the namespace makes the API server enforce it.
    let ns = the(&docs, "Namespace", "posture-gate");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn no_secret_is_in_the_manifests() {
    let docs = documents();
    assert!(
        docs.iter().all(|d| d["kind"] != "Secret"),
        "Secrets are made from files outside the repository (README.md)"
    );
    for d in &docs {
        let text = d.to_string();
        for needle in ["PRIVATE KEY", "BEGIN CERTIFICATE", "requirepass "] {
            assert!(
                !text.contains(needle),
                "{needle} in {}",
                d["metadata"]["name"]
            );
        }
    }
    // The gate's keys, CA, nonce secret and Redis password are Secret
    // volumes; nothing comes as a literal environment value but the log level.
    let deployment = gate_deployment(&docs);
    let spec = &deployment["spec"]["template"]["spec"];
    let secrets: Vec<&str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str())
        .collect();
    assert_eq!(
        secrets,
        [
            "posture-gate-tls",
            "posture-gate-client-ca",
            "posture-gate-nonce",
            "posture-gate-redis"
        ]
    );
    for v in spec["volumes"].as_array().unwrap() {
        if v["secret"].is_object() {
            // Readable by the owner and the pod's group, nobody else.
            assert_eq!(v["secret"]["defaultMode"].as_u64().unwrap() & 0o007, 0);
        }
    }
    for env in gate_container(deployment)["env"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert!(env["value"].is_null() || env["name"] == "RUST_LOG", "{env}");
    }
    // Redis takes its password from the same Secret, through the kubelet.
    let redis = &the(&docs, "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = redis["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args.iter().position(|a| *a == "--requirepass").unwrap();
    assert_eq!(args[at + 1], "$(REDIS_PASSWORD)");
    let env = redis["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "REDIS_PASSWORD")
        .unwrap();
    assert!(env["value"].is_null());
    assert_eq!(
        env["valueFrom"]["secretKeyRef"]["name"],
        "posture-gate-redis"
    );
}

#[test]
fn the_balancer_passes_tcp_443_to_the_gates_port() {
    let docs = documents();
    let deployment = gate_deployment(&docs);
    let gate = gate_container(deployment);
    let service = the(&docs, "Service", "posture-gate");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert!(labels_match(
        &service["spec"]["selector"],
        &deployment["spec"]["template"]["metadata"]["labels"]
    ));
    let ports = service["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "TCP 443 only");
    assert_eq!(ports[0]["port"], 443);
    assert_eq!(ports[0]["protocol"], "TCP");
    let target = container_port(gate, &ports[0]["targetPort"]);
    // The port the gate listens on, per its configuration.
    let listen = config_snapshot(&docs, false)
        .server
        .expect("[server]")
        .listen;
    assert_eq!(u64::from(listen.port()), target);
    // No TLS or HTTP in the balancer: nothing asks it to terminate
    // (annotations of cloud providers for certificates or HTTP backends).
    let annotations = service["metadata"]["annotations"]
        .to_string()
        .to_lowercase();
    for word in ["ssl-cert", "backend-protocol", "certificate", "https"] {
        assert!(!annotations.contains(word), "{annotations}");
    }
    // The client's address reaches the gate: no SNAT (Local), or a PROXY
    // header the gate is told to read.
    let proxied = !config_snapshot(&docs, false)
        .server
        .unwrap()
        .proxy_protocol_from
        .is_empty();
    assert!(service["spec"]["externalTrafficPolicy"] == "Local" || proxied);
}

#[test]
fn the_config_is_a_mounted_directory() {
    let docs = documents();
    let deployment = gate_deployment(&docs);
    let gate = gate_container(deployment);
    for m in gate["volumeMounts"].as_array().unwrap() {
        // subPath mounts are never updated by the kubelet.
        assert!(m["subPath"].is_null() && m["subPathExpr"].is_null(), "{m}");
    }
    let config = gate["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .unwrap();
    let args: Vec<&str> = gate["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let file = format!("{}/gate.toml", config["mountPath"].as_str().unwrap());
    assert_eq!(args, ["serve", "--config", file.as_str()]);
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .unwrap();
    assert_eq!(volume["configMap"]["name"], "posture-gate-config");
    assert!(volume["configMap"]["items"].is_null(), "the whole map");
}

/// The ConfigMap's gate.toml, loaded as the gate would in the pod: the
/// files of each Secret are put in a temporary directory at the path the
/// Deployment mounts that Secret at, and `/etc/posture-gate/` is that
/// directory. `proxied`: with the commented `proxy_protocol_from` line on.
fn config_snapshot(docs: &[Value], proxied: bool) -> posture_core::config::Snapshot {
    let text = the(docs, "ConfigMap", "posture-gate-config")["data"]["gate.toml"]
        .as_str()
        .expect("gate.toml in the ConfigMap")
        .to_string();
    let text = if proxied {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("# proxy_protocol_from = "))
            .expect("the PROXY protocol line, commented");
        text.replacen(line, line.trim_start().trim_start_matches("# "), 1)
    } else {
        text
    };
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    std::fs::create_dir(&pki_dir).unwrap();
    let _pki = common::TestPki::new(&pki_dir);
    // What each Secret holds: its keys and stand-ins for their values.
    let mut contents: BTreeMap<&str, Vec<(&str, Vec<u8>)>> = BTreeMap::new();
    let read = |name: &str| std::fs::read(pki_dir.join(name)).unwrap();
    contents.insert(
        "posture-gate-tls",
        vec![
            ("tls.crt", read("server.pem")),
            ("tls.key", read("server.key")),
        ],
    );
    contents.insert(
        "posture-gate-client-ca",
        vec![("ca.crt", read("device-ca.pem"))],
    );
    contents.insert("posture-gate-nonce", vec![("nonce.key", vec![9u8; 32])]);
    contents.insert(
        "posture-gate-redis",
        vec![("password", b"stand-in".to_vec())],
    );

    let deployment = gate_deployment(docs);
    let spec = &deployment["spec"]["template"]["spec"];
    let root = "/etc/posture-gate/";
    for m in gate_container(deployment)["volumeMounts"]
        .as_array()
        .unwrap()
    {
        let mount = m["mountPath"].as_str().unwrap();
        let relative = mount
            .strip_prefix(root)
            .unwrap_or_else(|| panic!("{mount} is not under {root}"));
        let at = dir.path().join(relative);
        std::fs::create_dir_all(&at).unwrap();
        let volume = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        if let Some(secret) = volume["secret"]["secretName"].as_str() {
            for (key, bytes) in &contents[secret] {
                std::fs::write(at.join(key), bytes).unwrap();
            }
        }
    }
    let config_mount = gate_container(deployment)["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .unwrap()["mountPath"]
        .as_str()
        .unwrap()
        .strip_prefix(root)
        .unwrap();
    let path = dir.path().join(config_mount).join("gate.toml");
    let local = text.replace(root, &format!("{}/", dir.path().display()));
    std::fs::write(&path, &local).unwrap();
    posture_core::config::load(&path).unwrap_or_else(|e| panic!("gate.toml of the ConfigMap:\n{e}"))
}

#[test]
fn the_configmaps_gate_toml_loads_with_the_mounted_files() {
    let docs = documents();
    let snapshot = config_snapshot(&docs, false);
    let server = snapshot.server.as_ref().unwrap();
    assert!(server.proxy_protocol_from.is_empty());
    assert!(snapshot.attestation.nonce_secret.is_some());
    assert!(!snapshot.attestation.trust_anchors.is_empty());
    assert!(!snapshot.routes.is_empty());
    // Shorter than the pod's grace period, or the drain is cut short.
    let grace = gate_deployment(&docs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(server.shutdown_grace.as_secs() < grace);
    // Every replica shares one store, its password read from the Secret.
    let posture_core::config::snapshot::StoreSettings::Redis(redis) = &snapshot.store else {
        panic!("the replicas must share a Redis store");
    };
    assert_eq!(redis.password.as_deref(), Some("stand-in"));
    assert_eq!(
        redis.on_store_failure,
        posture_core::config::model::StoreFailure::Deny
    );

    // The PROXY protocol variant the comments describe loads too.
    let proxied = config_snapshot(&docs, true);
    assert!(!proxied.server.unwrap().proxy_protocol_from.is_empty());
}

#[test]
fn the_image_build_copies_every_path_the_workspace_build_reads() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("docker/Dockerfile")).unwrap();
    let copied: Vec<String> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let top = |p: &str| p.split('/').next().unwrap().to_string();
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    // Every workspace member, and the targets Cargo.toml declares.
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    for line in manifest.lines() {
        if let Some(list) = line
            .strip_prefix("members = [")
            .or_else(|| line.strip_prefix("default-members = ["))
        {
            for member in list.trim_end_matches(']').split(',') {
                let member = member.trim().trim_matches('"');
                // "." is the root package: Cargo.toml and src, below.
                if member != "." {
                    needed.push(top(member));
                }
            }
        }
        if let Some(path) = line.strip_prefix("path = \"") {
            needed.push(top(path.trim_end_matches('"')));
        }
        if line == "[[bench]]" {
            needed.push("benches".to_string());
        }
    }
    // Every file compiled in with include_str!/include_bytes!.
    let mut sources = vec![Path::new(ROOT).join("src")];
    for entry in std::fs::read_dir(Path::new(ROOT).join("crates")).unwrap() {
        sources.push(entry.unwrap().path().join("src"));
    }
    while let Some(dir) = sources.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources.push(path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for part in text.split("include_").skip(1) {
                let Some(rest) = part
                    .strip_prefix("str!(\"")
                    .or_else(|| part.strip_prefix("bytes!(\""))
                else {
                    continue;
                };
                let target = rest.split('"').next().unwrap();
                let resolved = path.parent().unwrap().join(target);
                let resolved = std::fs::canonicalize(&resolved)
                    .unwrap_or_else(|e| panic!("{}: {e}", resolved.display()));
                let relative = resolved
                    .strip_prefix(std::fs::canonicalize(ROOT).unwrap())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                needed.push(top(&relative));
            }
        }
    }
    // askama reads the templates directory at build time.
    needed.push("templates".to_string());
    needed.sort();
    needed.dedup();
    for path in &needed {
        assert!(
            copied.iter().any(|c| c == path),
            "docker/Dockerfile does not COPY {path} (copies {copied:?})"
        );
    }
    // And it runs as the numeric user the Deployment names.
    let docs = documents();
    let uid = gate_deployment(&docs)["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
        .as_u64()
        .unwrap();
    assert!(
        dockerfile
            .lines()
            .any(|l| l.trim() == format!("USER {uid}:{uid}")),
        "the image's USER is {uid}:{uid}"
    );
}
