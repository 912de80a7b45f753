//! The service installs of `config/agent/`: they run `posture-agent attest`
//! with the configuration file, and let an ordinary user trigger exactly
//! the command the agent names when it may not read the key (issue 19,
//! contract item 4). Checked with the tools this machine has: systemd's own
//! verifier, polkit's JavaScript engine (duktape), a plist parser and an
//! XML parser.

use std::path::{Path, PathBuf};
use std::process::Command;

use posture_agent::i18n::ServiceOs;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/agent")
}

fn read(name: &str) -> String {
    let path = dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let service = read("linux/posture-agent.service");
    // Settings from /etc/posture-agent/agent.toml; once per timer tick.
    assert!(
        service.contains("\nExecStart=/usr/local/bin/posture-agent attest --once\n"),
        "{service}"
    );
    for line in [
        "Type=oneshot",
        "SuccessExitStatus=3 4",
        "User=posture-agent",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
        "UMask=0077",
    ] {
        assert!(service.contains(line), "{line}: {service}");
    }
    let timer = read("linux/posture-agent.timer");
    assert!(timer.contains("OnUnitActiveSec=10min"), "{timer}");

    // verify checks that ExecStart names an executable: this build's.
    let tmp = tempfile::tempdir().unwrap();
    let unit = tmp.path().join("posture-agent.service");
    std::fs::write(
        &unit,
        service.replace(
            "/usr/local/bin/posture-agent",
            env!("CARGO_BIN_EXE_posture-agent"),
        ),
    )
    .unwrap();
    let timer_path = tmp.path().join("posture-agent.timer");
    std::fs::write(&timer_path, timer).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .arg(&timer_path)
        .output()
        .expect("systemd-analyze (Debian package systemd) is installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown or misspelt settings are only warnings: none allowed.
    assert_eq!(stderr, "", "systemd-analyze verify warned");
}

/// Runs the polkit rule in duktape, the JavaScript engine of Debian's
/// polkitd, with polkit's objects stubbed: only a local, active user's
/// `start` of posture-agent.service is allowed.
#[test]
fn the_polkit_rule_lets_a_local_user_start_the_unit_and_nothing_else() {
    let rule = read("linux/50-posture-agent.rules");
    assert!(rule.contains("org.freedesktop.systemd1.manage-units"));
    let script = format!(
        r#"
var rules = [];
var polkit = {{ Result: {{ YES: "yes", NO: "no", NOT_HANDLED: null }},
               addRule: function (f) {{ rules.push(f); }} }};
function action(id, unit, verb) {{
    return {{ id: id, lookup: function (k) {{ return {{ unit: unit, verb: verb }}[k]; }} }};
}}
function ask(id, unit, verb, local, active) {{
    var r = rules[0](action(id, unit, verb), {{ local: local, active: active }});
    return r === undefined || r === null ? "-" : r;
}}
{rule}
var M = "org.freedesktop.systemd1.manage-units";
print(rules.length);
print(ask(M, "posture-agent.service", "start", true, true));
print(ask(M, "posture-agent.service", "stop", true, true));
print(ask(M, "posture-agent.service", "restart", true, true));
print(ask(M, "ssh.service", "start", true, true));
print(ask(M, "posture-agent.service", "start", false, true));
print(ask(M, "posture-agent.service", "start", true, false));
print(ask("org.freedesktop.systemd1.manage-unit-files", "posture-agent.service", "start", true, true));
"#
    );
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("check.js");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("duk")
        .arg(&path)
        .output()
        .expect("duk (Debian package duktape) is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["1", "yes", "-", "-", "-", "-", "-", "-"],
        "{stdout}"
    );
    // The command the agent tells a person to run is the one allowed.
    assert_eq!(
        ServiceOs::Linux.trigger(),
        "systemctl start posture-agent.service"
    );
}

#[test]
fn the_launch_daemon_watches_the_file_a_person_touches() {
    let path = dir().join("macos/nl.posture-gate.agent.plist");
    let value = plist::Value::from_file(&path).unwrap();
    let d = value.as_dictionary().unwrap();
    assert_eq!(
        d.get("Label").and_then(|v| v.as_string()),
        Some("nl.posture-gate.agent")
    );
    let args: Vec<&str> = d["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_string().unwrap())
        .collect();
    assert_eq!(args, ["/usr/local/bin/posture-agent", "attest", "--once"]);
    let watched: Vec<&str> = d["WatchPaths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_string().unwrap())
        .collect();
    assert_eq!(watched, ["/Users/Shared/posture-agent/check-now"]);
    assert_eq!(ServiceOs::Macos.trigger(), format!("touch {}", watched[0]));
    assert_eq!(
        d.get("StartInterval").and_then(|v| v.as_unsigned_integer()),
        Some(600)
    );
    assert_eq!(d.get("RunAtLoad").and_then(|v| v.as_boolean()), Some(true));
    assert_eq!(
        d.get("UserName").and_then(|v| v.as_string()),
        Some("_postureagent")
    );
}

#[test]
fn the_scheduled_task_is_well_formed_and_runnable_by_users() {
    use quick_xml::events::Event;
    let text = read("windows/posture-agent.xml");
    let mut reader = quick_xml::Reader::from_str(&text);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let mut stack: Vec<String> = Vec::new();
    let mut values: Vec<(String, String)> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => stack.push(e.local_name().into_inner().to_owned()),
            Ok(Event::End(_)) => {
                stack.pop();
            }
            Ok(Event::Text(t)) => {
                let t = t.xml10_content();
                if !t.trim().is_empty() {
                    values.push((stack.join("/"), t.trim().to_owned()));
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed at {}: {e}", reader.buffer_position()),
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    let get = |path: &str| {
        values
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {path} in {values:?}"))
    };
    assert_eq!(
        get("Task/RegistrationInfo/URI"),
        r"\posture-gate\posture-agent"
    );
    let sd = get("Task/RegistrationInfo/SecurityDescriptor");
    // Users (BU): generic read and execute, i.e. see and run the task.
    assert!(sd.starts_with("D:"), "{sd}");
    assert!(sd.contains("(A;;GRGX;;;BU)"), "{sd}");
    assert_eq!(
        get("Task/Principals/Principal/UserId"),
        "S-1-5-18",
        "runs as SYSTEM"
    );
    assert_eq!(get("Task/Actions/Exec/Arguments"), "attest --once");
    assert_eq!(
        ServiceOs::Windows.trigger(),
        format!("schtasks /run /tn \"{}\"", get("Task/RegistrationInfo/URI"))
    );
}

#[test]
fn the_example_agent_toml_is_valid_and_names_every_key() {
    let path = dir().join("agent.toml");
    let text = read("agent.toml");
    let c = posture_agent::config::parse(&text, &path).unwrap();
    assert_eq!(c.gate.as_deref(), Some("https://gate.example.nl:8443"));
    assert_eq!(c.ca, Some(dir().join("ca.pem")));
    assert_eq!(c.cert, Some(dir().join("cert.pem")));
    assert_eq!(c.key, Some(dir().join("key.pem")));
    // The optional ones are shown, commented out, with valid values.
    for key in ["lang", "interval"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("# {key} = ")))
            .unwrap_or_else(|| panic!("no commented {key}"));
        posture_agent::config::parse(&line[2..], &path).unwrap();
    }
}

#[test]
fn the_guide_shows_each_systems_trigger_and_install_command() {
    let guide = read("README.md");
    for os in [ServiceOs::Linux, ServiceOs::Macos, ServiceOs::Windows] {
        assert!(guide.contains(os.trigger()), "{}", os.trigger());
    }
    for needle in [
        r#"schtasks /create /tn "\posture-gate\posture-agent" /xml posture-agent.xml"#,
        "/etc/polkit-1/rules.d/50-posture-agent.rules",
        "/Library/LaunchDaemons/nl.posture-gate.agent.plist",
        "/etc/posture-agent/agent.toml",
    ] {
        assert!(guide.contains(needle), "{needle}");
    }
}
