//! The pages of issue 19 over real sockets: every refusal names its reason
//! (an aged-out posture with its moment, a refused last report with its
//! code, a changed catalogue), a warned device is told in the browser
//! (`Posture-Warning` and the notice page, once, for navigations only), the
//! command on the page is this gate's, and browsers in other languages than
//! Dutch get English.

use crate::support as common;

use std::time::Duration;

use bytes::Bytes;
use common::pki::{claims, unix_now};
use common::upstream::{self, Upstream};
use common::{post_token, request, Answer, Client, Proto, RouteSpec, Settings, TestGate};
use http_body_util::Full;

struct World {
    gate: TestGate,
    _finance: Upstream,
    _office: Upstream,
}

async fn world(settings: &Settings) -> World {
    let finance = upstream::start("finance").await;
    let office = upstream::start("office").await;
    let routes = [
        RouteSpec {
            host: "finance.test",
            prefix: "/",
            upstream: finance.url(),
            segment: "finance",
        },
        RouteSpec {
            host: "office.test",
            prefix: "/",
            upstream: office.url(),
            segment: "office",
        },
    ];
    World {
        gate: TestGate::start(&routes, settings).await,
        _finance: finance,
        _office: office,
    }
}

/// A browser's top-level navigation to `path` on `host`.
async fn navigate(client: &Client, host: &str, path: &str, lang: &str) -> Answer {
    let req = request("GET", host, path, Proto::H1)
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("accept-language", lang)
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .body(Full::<Bytes>::default())
        .unwrap();
    client.send(req).await
}

fn header(answer: &Answer, name: &str) -> Option<String> {
    answer
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// The page's agent command, as the page shows it.
fn command_of(page: &str) -> &str {
    let start = page
        .find("<code>posture-agent attest")
        .unwrap_or_else(|| panic!("no agent command on the page: {page}"))
        + "<code>".len();
    let end = start + page[start..].find("</code>").unwrap();
    &page[start..end]
}

#[tokio::test]
async fn an_aged_out_posture_says_when_it_aged_out() {
    let w = world(&Settings {
        max_age: Some("60s"),
        ..Settings::default()
    })
    .await;
    let device = w.gate.pki.device("lt-1901", "Leverancier BV");
    let client = w.gate.client(Some(&device), Proto::H1);
    // A report made 57 s ago is valid for 3 s more.
    let nonce = common::challenge(&client).await;
    let mut c = claims(Some(&nonce), false);
    let iat = unix_now() - 57;
    c["iat"] = iat.into();
    let answer = post_token(&client, "finance.test", &device.token(&c)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let end = iat + 60;
    let ok = navigate(&client, "finance.test", "/", "nl").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    while unix_now() <= end {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = time::OffsetDateTime::from_unix_timestamp(end).unwrap();
    let months = [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ];
    let nl_moment = format!(
        "{} {} {} om {:02}:{:02} UTC",
        t.day(),
        months[usize::from(u8::from(t.month())) - 1],
        t.year(),
        t.hour(),
        t.minute()
    );
    let page = navigate(&client, "finance.test", "/", "nl").await;
    assert_eq!(page.status, 403);
    let text = page.text();
    assert!(
        text.contains(&format!("verlopen op {nl_moment}.")),
        "{nl_moment}: {text}"
    );
    assert!(!text.contains("nog niet gecontroleerd"));
    assert!(text.contains("<dd>stale_posture</dd>"));
    let api = w
        .gate
        .client(Some(&device), Proto::H1)
        .send(
            request("GET", "finance.test", "/", Proto::H1)
                .header("accept", "application/json")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    let j = api.json();
    assert_eq!(j["code"], "stale_posture");
    let rfc3339 = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(j["aged_out"], rfc3339.as_str());
}

#[tokio::test]
async fn a_refused_report_is_remembered_and_named_on_the_not_checked_page() {
    let w = world(&Settings::default()).await;
    let device = w.gate.pki.device("lt-1902", "Leverancier BV");
    let other = w.gate.pki.device("lt-1903", "Leverancier BV");
    let client = w.gate.client(Some(&device), Proto::H1);
    // Before any report: plain "not checked yet".
    let first = navigate(&client, "finance.test", "/", "en").await;
    assert!(first
        .text()
        .contains("Your device has not been checked yet"));
    // A report signed with another device's key, over this device's TLS.
    let nonce = common::challenge(&client).await;
    let refused = post_token(
        &client,
        "finance.test",
        &other.token(&claims(Some(&nonce), false)),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["reason"], "key_mismatch");
    let page = navigate(&client, "finance.test", "/", "en").await;
    assert_eq!(page.status, 403);
    let text = page.text();
    assert!(
        text.contains(
            "was refused (key_mismatch). The report was signed with a different certificate"
        ),
        "{text}"
    );
    assert!(text.contains("Your device&#39;s last report was refused"));
    assert!(!text.contains("not been checked yet"));
    let api = client
        .send(
            request("GET", "finance.test", "/", Proto::H1)
                .header("accept", "application/problem+json")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    let j = api.json();
    assert_eq!(j["reason"], "key_mismatch");
    assert_eq!(j["code"], "no_posture");
    assert!(
        j["refused_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{j}"
    );
    // Another device is not told this device's refusal.
    let theirs = navigate(
        &w.gate.client(Some(&other), Proto::H1),
        "finance.test",
        "/",
        "en",
    )
    .await;
    assert!(theirs
        .text()
        .contains("Your device has not been checked yet"));
    // A good report makes the refusal history.
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    let ok = navigate(&client, "finance.test", "/", "en").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[tokio::test]
async fn a_changed_catalogue_is_named_on_the_page() {
    let w = world(&Settings::default()).await;
    let device = w.gate.pki.device("lt-1904", "Leverancier BV");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    let extra = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/config/extra-catalogue.toml"),
    )
    .unwrap();
    std::fs::write(w.gate.dir.path().join("extra.toml"), extra).unwrap();
    let config = std::fs::read_to_string(&w.gate.config).unwrap();
    std::fs::write(
        &w.gate.config,
        format!("[catalogue]\ninclude = [\"extra.toml\"]\n\n{config}"),
    )
    .unwrap();
    w.gate.handle.reload_now().await.unwrap();
    let client = w.gate.client(Some(&device), Proto::H1);
    for (lang, words) in [
        ("nl", "De lijst met verboden software is gewijzigd op of na de laatste controle van uw apparaat."),
        ("en", "The list of prohibited software changed at or after your device&#39;s last check."),
    ] {
        let page = navigate(&client, "finance.test", "/", lang).await;
        assert_eq!(page.status, 403);
        assert!(page.text().contains(words), "{lang}: {}", page.text());
        assert!(page.text().contains("<dd>catalogue_changed</dd>"));
    }
}

#[tokio::test]
async fn a_warned_device_gets_the_header_and_the_notice_once_then_straight_through() {
    let w = world(&Settings::default()).await;
    let device = w.gate.pki.device("lt-1905", "Leverancier BV");
    assert_eq!(w.gate.attest(&device, true).await.status, 200);
    let client = w.gate.client(Some(&device), Proto::H1);
    let expected = "kaspersky;segment=office";

    // API calls, scripts and posts go straight through, with the header,
    // and do not use up the notice.
    let api = client
        .send(
            request("GET", "office.test", "/api/items", Proto::H1)
                .header("accept", "application/json")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(api.status, 200);
    assert_eq!(api.json()["upstream"], "office");
    assert_eq!(header(&api, "posture-warning").as_deref(), Some(expected));
    let fetch = client
        .send(
            request("GET", "office.test", "/part", Proto::H1)
                .header("accept", "text/html")
                .header("sec-fetch-mode", "cors")
                .header("sec-fetch-dest", "empty")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(fetch.json()["upstream"], "office");
    let post = client
        .send(
            request("POST", "office.test", "/form", Proto::H1)
                .header("accept", "text/html")
                .body(Full::from("a=1"))
                .unwrap(),
        )
        .await;
    assert_eq!(post.json()["upstream"], "office");
    assert_eq!(header(&post, "posture-warning").as_deref(), Some(expected));

    // The first navigation: the notice, in Dutch, with a link back here.
    let notice = navigate(&client, "office.test", "/app?x=1", "nl").await;
    assert_eq!(notice.status, 200);
    assert!(header(&notice, "content-type")
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(
        header(&notice, "posture-warning").as_deref(),
        Some(expected)
    );
    let text = notice.text();
    assert!(
        text.contains("<p class=\"kicker\">Waarschuwing</p>"),
        "{text}"
    );
    assert!(text.contains("kesl"));
    assert!(text.contains("Zo verwijdert u"));
    assert!(text.contains("<a class=\"button\" href=\"/app?x=1\">Verder</a>"));
    assert!(header(&notice, "x-posture-reference").is_some());

    // Following it: the app, and every later navigation too.
    for _ in 0..2 {
        let app = navigate(&client, "office.test", "/app?x=1", "nl").await;
        assert_eq!(app.status, 200);
        assert_eq!(app.json()["upstream"], "office");
        assert_eq!(header(&app, "posture-warning").as_deref(), Some(expected));
    }
    // An allowed request carries no warning.
    let clean = w.gate.pki.device("lt-1906", "Leverancier BV");
    assert_eq!(w.gate.attest(&clean, false).await.status, 200);
    let app = navigate(
        &w.gate.client(Some(&clean), Proto::H1),
        "office.test",
        "/",
        "nl",
    )
    .await;
    assert_eq!(app.json()["upstream"], "office");
    assert_eq!(header(&app, "posture-warning"), None);
}

#[tokio::test]
async fn warning_notice_every_zero_shows_the_header_only() {
    let w = world(&Settings {
        extra: "\n[remediation]\nwarning_notice_every = \"0s\"\n".into(),
        ..Settings::default()
    })
    .await;
    let device = w.gate.pki.device("lt-1907", "Leverancier BV");
    assert_eq!(w.gate.attest(&device, true).await.status, 200);
    let app = navigate(
        &w.gate.client(Some(&device), Proto::H1),
        "office.test",
        "/",
        "en",
    )
    .await;
    assert_eq!(app.json()["upstream"], "office");
    assert_eq!(
        header(&app, "posture-warning").as_deref(),
        Some("kaspersky;segment=office")
    );
}

#[tokio::test]
async fn the_command_names_the_route_host_and_the_port_the_request_came_to() {
    let w = world(&Settings::default()).await;
    let device = w.gate.pki.device("lt-1908", "Leverancier BV");
    let client = w.gate.client(Some(&device), Proto::H1);
    let port = w.gate.addr.port();
    let with_port = format!("FINANCE.test:{port}");
    let page = navigate(&client, &with_port, "/", "en").await;
    assert_eq!(page.status, 403);
    assert_eq!(
        command_of(&page.text()),
        format!("posture-agent attest --gate https://finance.test:{port} --ca gate-ca.pem")
    );
    // No port in Host: the one a browser leaves out.
    let page = navigate(&client, "finance.test", "/", "en").await;
    assert_eq!(
        command_of(&page.text()),
        "posture-agent attest --gate https://finance.test:443 --ca gate-ca.pem"
    );
}

#[tokio::test]
async fn browsers_in_other_languages_get_english_dutch_ones_dutch() {
    let w = world(&Settings::default()).await;
    let client = w.gate.client(None, Proto::H1);
    for (lang, expected) in [
        ("de-DE,de;q=0.9", "en"),
        ("fr-FR,fr;q=0.9", "en"),
        ("pl-PL,pl;q=0.9", "en"),
        ("nl-BE,nl;q=0.9", "nl"),
        ("nl", "nl"),
        ("en-US", "en"),
    ] {
        let page = navigate(&client, "finance.test", "/", lang).await;
        assert_eq!(page.status, 403);
        assert!(
            page.text().contains(&format!("<html lang=\"{expected}\">")),
            "{lang}"
        );
    }
}
