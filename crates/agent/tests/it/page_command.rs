//! The "have your device checked again" command on a gate's page works as
//! written (issue 19 point 4): the test reads it out of the HTML a browser
//! gets for a device the gate has not checked, runs exactly that with the
//! real posture-agent binary, and the device is then admitted.
//!
//! The device's certificate and key come from the agent's configuration
//! file, as on a real device (the page says so): the test writes an
//! agent.toml naming only them and runs the command with nothing added.

use crate::support as agent_common;
use posture_testkit as common;

use agent_common::{agent_env, s, AgentGate};
use bytes::Bytes;
use common::{request, Proto};
use http_body_util::Full;
use posture_testkit::pki::DeviceKeyType;

/// The text of the first `<pre><code>` that holds an agent command.
fn command_on(page: &str) -> String {
    let start = page
        .find("<code>posture-agent attest")
        .unwrap_or_else(|| panic!("no agent command on the page:\n{page}"))
        + "<code>".len();
    let end = start + page[start..].find("</code>").expect("the code ends");
    // Askama's escapes of HTML-special characters, undone.
    page[start..end]
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_on_the_page_admits_the_device() {
    let upstream = common::upstream::start("app").await;
    let ca_holder = tempfile::tempdir().unwrap();
    // Where the organisation tells people the gate's CA file is: the
    // gate's own root, copied there once the gate has made its PKI.
    let ca_file = ca_holder.path().join("gate-ca.pem");
    let ca_text = format!("{:?}", s(&ca_file));
    let route = upstream.url();
    let gate = AgentGate::start_with(move |text| {
        format!(
            "{text}\n[[route]]\nhost = \"localhost\"\npath_prefix = \"/\"\nupstream = \"{route}\"\n\
             segment = \"finance\"\n\n[remediation]\nagent_ca = {ca_text}\n"
        )
    })
    .await;
    std::fs::copy(gate.ca(), &ca_file).unwrap();
    let (creds, paths) = gate.device("lt-page-01", DeviceKeyType::P256);
    let browser = gate.client(&creds);
    // A browser names the port in Host.
    let host = format!("localhost:{}", gate.addr.port());
    let open = |lang: &'static str| {
        request("GET", &host, "/app", Proto::H1)
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .header("accept-language", lang)
            .body(Full::<Bytes>::default())
            .unwrap()
    };

    let page = browser.send(open("en")).await;
    assert_eq!(page.status, 403, "{}", page.text());
    let command = command_on(&page.text());
    assert_eq!(
        command,
        format!(
            "posture-agent attest --gate https://localhost:{} --ca {}",
            gate.addr.port(),
            s(&ca_file)
        )
    );
    // The Dutch page shows the same command.
    assert_eq!(command_on(&browser.send(open("nl")).await.text()), command);

    let mut words = command.split_whitespace();
    assert_eq!(words.next(), Some("posture-agent"));
    let args: Vec<&str> = words.collect();
    let config = ca_holder.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("cert = {:?}\nkey = {:?}\n", s(&paths.cert), s(&paths.key)),
    )
    .unwrap();
    let run = agent_env(&args, &[("POSTURE_AGENT_CONFIG", s(&config))]).await;
    assert_eq!(run.code, Some(0), "{command}\n{}", run.all());
    assert_eq!(gate.handle.posture_count(), 1);

    let admitted = browser.send(open("en")).await;
    assert_eq!(admitted.status, 200, "{}", admitted.text());
    assert_eq!(admitted.json()["upstream"], "app");
}
