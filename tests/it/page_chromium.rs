//! The denial page as a person reads it: rendered by headless Chromium
//! (Debian's `chromium`) and turned into text with `pdftotext` (Debian's
//! poppler-utils), so what is asserted is what a browser lays out, not what
//! the template happens to contain.
//!
//! The gate runs for real (TLS, routing, decision, audit) in front of an echo
//! upstream. A Windows device with Kaspersky Endpoint Security attests over
//! mutual TLS and opens a finance page; its HTML answers, in Dutch and
//! English, are saved and rendered. Chromium cannot present a client
//! certificate headlessly without system-wide policy, so the device's pages
//! are rendered from files; the enrolment page a browser without a
//! certificate gets is loaded by Chromium straight from the gate over TLS.
//!
//! Missing programs make the tests fail, never skip: `scripts/test-all`
//! installs them.

use crate::support as common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use posture_core::attestation::claims::OsFamily;
use posture_gate::gate::{Gate, GateHandle};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use common::audit::Captured;
use common::pki::unix_now;
use common::upstream::{self, Upstream};
use common::{config_text, post_token, request, Device, Proto, RouteSpec, Settings, TestPki};

const DESK_NAME: &str = "Servicedesk Rijksportaal";
const DESK_PHONE: &str = "+31 70 123 45 67";
const DESK_EMAIL: &str = "servicedesk@example.nl";
const PRODUCT: &str = "Kaspersky Endpoint Security for Windows";
const VERSION: &str = "12.3.0.493";
const VENDOR: &str = "AO Kaspersky Lab";
const APP_PATH: &str = "/pay/1";

// ---------------------------------------------------------------- audit log

/// The reference of the newest decision, which must be a denial.
fn last_denial_reference(audit: &Captured) -> String {
    let decisions = audit.decisions();
    let last = decisions.last().expect("the gate logged a decision");
    assert_eq!(last["decision"], "deny", "{last}");
    let reference = last["reference"].as_str().unwrap_or_default().to_string();
    assert!(!reference.is_empty(), "{last}");
    reference
}

// ----------------------------------------------------------------- the gate

struct Running {
    _dir: tempfile::TempDir,
    _upstream: Upstream,
    pki: TestPki,
    addr: SocketAddr,
    handle: GateHandle,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// The test gate of `tests/common` with a service desk configured, in
/// front of an echo upstream on `finance.test/pay` (Kaspersky denied).
async fn start_gate() -> Running {
    let up = upstream::start("finance").await;
    let routes = [
        RouteSpec {
            host: "finance.test",
            prefix: "/pay",
            upstream: up.url(),
            segment: "finance",
        },
        // The office segment warns about Kaspersky: the notice page.
        RouteSpec {
            host: "office.test",
            prefix: "/",
            upstream: up.url(),
            segment: "office",
        },
    ];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let pki = TestPki::new(&dir);
    std::fs::write(dir.join("nonce.key"), [7u8; 32]).unwrap();
    let mut text = config_text(&routes, &Settings::default());
    text.push_str(&format!(
        "\n[remediation.service_desk]\nname = \"{DESK_NAME}\"\nphone = \"{DESK_PHONE}\"\n\
         email = \"{DESK_EMAIL}\"\nhours_nl = \"Werkdagen 8.00-18.00 uur\"\n\
         hours_en = \"Weekdays 8:00-18:00\"\n"
    ));
    let config = dir.join("gate.toml");
    std::fs::write(&config, text).unwrap();
    let gate = Gate::bind(config)
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = gate.local_addr();
    let handle = gate.handle();
    tokio::spawn(gate.run());
    Running {
        _dir: tmp,
        _upstream: up,
        pki,
        addr,
        handle,
        dir,
    }
}

/// What a Windows laptop with Kaspersky Endpoint Security reports.
fn windows_kaspersky_claims(nonce: &str) -> Value {
    json!({
        "eat_profile": "urn:posture-gate:attestation:v1",
        "iat": unix_now(),
        "eat_nonce": nonce,
        "sub": "lt-kes-01",
        "os": {"family": "windows", "name": "Windows 11 Pro", "version": "10.0.22631"},
        "software": [
            {"name": "Microsoft Edge", "vendor": "Microsoft Corporation",
             "version": "131.0.2903.70", "id": "Microsoft Edge", "source": "registry"},
            {"name": PRODUCT, "vendor": VENDOR, "version": VERSION,
             "id": "{6B5E4A2C-AB6C-4E9A-8DE6-1F2B0C8B2C4A}", "source": "registry"},
        ],
        // The same product as its process and as the security centre
        // reports it: one card on the page, not three.
        "processes": [
            {"name": "avp.exe", "path": "C:\\Program Files (x86)\\Kaspersky Lab\\KES.12.3.0\\avp.exe"},
        ],
        "security_products": [
            {"name": "Kaspersky Endpoint Security", "vendor": VENDOR, "kind": "antivirus",
             "enabled": true, "up_to_date": true},
        ],
    })
}

/// The device attests over its own mutual-TLS connection.
async fn attest_kaspersky(gate: &Running, device: &Device) {
    let client = common::Client::new(gate.addr, &gate.pki.ca_der, Some(device), Proto::H1);
    let nonce = common::challenge(&client).await;
    let answer = post_token(
        &client,
        "finance.test",
        &device.token(&windows_kaspersky_claims(&nonce)),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// The device opens `host` (with the gate's port, as a browser names it)
/// the way a browser in `lang` would, and gets `status`.
async fn navigate(gate: &Running, device: &Device, host: &str, lang: &str, status: u16) -> String {
    let client = common::Client::new(gate.addr, &gate.pki.ca_der, Some(device), Proto::H1);
    let req = request(
        "GET",
        &format!("{host}:{}", gate.addr.port()),
        APP_PATH,
        Proto::H1,
    )
    .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
    .header("accept-language", lang)
    .header("sec-fetch-mode", "navigate")
    .header("sec-fetch-dest", "document")
    .body(Full::<Bytes>::default())
    .unwrap();
    let answer = client.send(req).await;
    assert_eq!(answer.status, status, "{}", answer.text());
    let content_type = answer.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    answer.text()
}

/// The denial page the device gets for the finance app.
async fn fetch_page(gate: &Running, device: &Device, lang: &str) -> String {
    navigate(gate, device, "finance.test", lang, 403).await
}

// ----------------------------------------------------------------- browsers

/// The program on PATH, or a failure that names it and how to get it.
fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not installed, and this test needs it: \
                 run scripts/test-all, or `apt-get install {package}`"
            )
        })
}

struct Browser {
    chromium: PathBuf,
    pdftotext: PathBuf,
    /// Where pages, PDFs, texts and screenshots are kept for a person to
    /// look at after the run.
    out: PathBuf,
    runs: std::cell::Cell<u32>,
}

/// How Chromium should reach a page served by the gate.
struct Tls<'a> {
    addr: SocketAddr,
    /// Base64 SHA-256 of the server key: Chromium trusts exactly this key.
    spki_pin: &'a str,
    /// The browser's language, which it sends as `Accept-Language`.
    lang: &'a str,
}

impl Browser {
    fn new(name: &str) -> Browser {
        let chromium = require("chromium", "chromium");
        let pdftotext = require("pdftotext", "poppler-utils");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("page_chromium")
            .join(name);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        Browser {
            chromium,
            pdftotext,
            out,
            runs: std::cell::Cell::new(0),
        }
    }

    /// Runs headless Chromium on `url` with the given output flags.
    async fn chromium(&self, url: &str, tls: Option<&Tls<'_>>, args: &[String]) -> Output {
        let run = self.runs.get() + 1;
        self.runs.set(run);
        let profile = self.out.join(format!("profile-{run}"));
        let mut cmd = tokio::process::Command::new(&self.chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args);
        if let Some(tls) = tls {
            // The test names resolve to the gate; no other name resolves.
            cmd.arg(format!(
                "--host-resolver-rules=MAP finance.test {}, EXCLUDE localhost",
                tls.addr.ip()
            ))
            .arg(format!(
                "--ignore-certificate-errors-spki-list={}",
                tls.spki_pin
            ))
            .arg(format!("--lang={}", tls.lang))
            .arg(format!("--accept-lang={}", tls.lang));
        }
        cmd.arg(url).kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(90), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("chromium did not finish within 90 s on {url}"))
            .unwrap_or_else(|e| panic!("cannot run chromium: {e}"));
        let _ = std::fs::remove_dir_all(&profile);
        output
    }

    /// The text a person reads: the page printed to PDF, then extracted.
    async fn read(&self, name: &str, url: &str, tls: Option<&Tls<'_>>) -> String {
        let pdf = self.out.join(format!("{name}.pdf"));
        let output = self
            .chromium(
                url,
                tls,
                &[
                    format!("--print-to-pdf={}", pdf.display()),
                    "--no-pdf-header-footer".into(),
                ],
            )
            .await;
        assert!(
            pdf.is_file(),
            "chromium made no PDF of {url}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = tokio::process::Command::new(&self.pdftotext)
            .arg("-layout")
            .arg(&pdf)
            .arg("-")
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run pdftotext: {e}"));
        assert!(text.status.success(), "pdftotext failed on {name}.pdf");
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        std::fs::write(self.out.join(format!("{name}.txt")), &text).unwrap();
        text
    }

    /// The document as the browser built it (links and their targets).
    async fn dom(&self, url: &str) -> String {
        let output = self.chromium(url, None, &["--dump-dom".into()]).await;
        assert!(output.status.success(), "chromium --dump-dom {url} failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The page laid out at `width` CSS pixels. Headless Chromium's window
    /// is at least 500 wide, so the page is loaded in a frame of that
    /// width (its media queries then see `width`), inside a wrapper whose
    /// script measures the frame's document when it has loaded and writes
    /// the layout as JSON into the wrapper, read back with `--dump-dom`.
    async fn measure(&self, page: &Path, width: u32) -> Layout {
        let stem = page.file_stem().unwrap().to_string_lossy().into_owned();
        let wrapper = self.out.join(format!("{stem}-measure-{width}.html"));
        std::fs::write(
            &wrapper,
            format!(
                "<!DOCTYPE html><html><body style=\"margin:0\">{MEASURE}\
                 <iframe id=\"page\" src=\"{}\" onload=\"measure(this)\" \
                 style=\"display:block;border:0;width:{width}px;height:2400px\"></iframe>\
                 </body></html>",
                file_url(page)
            ),
        )
        .unwrap();
        let output = self
            .chromium(
                &file_url(&wrapper),
                None,
                &[
                    "--dump-dom".into(),
                    "--allow-file-access-from-files".into(),
                    "--window-size=1400,2400".into(),
                ],
            )
            .await;
        assert!(output.status.success(), "chromium --dump-dom failed");
        let dom = String::from_utf8_lossy(&output.stdout);
        let start = dom
            .find("<pre id=\"measure\">")
            .unwrap_or_else(|| panic!("the measuring script did not run:\n{dom}"))
            + "<pre id=\"measure\">".len();
        let end = start + dom[start..].find("</pre>").unwrap();
        let json = dom[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        Layout { v, width }
    }

    /// Desktop and phone screenshots, for a person to look at.
    async fn screenshots(&self, name: &str, url: &str) {
        for (device, width) in [("desktop", 1280), ("phone", 390)] {
            let png = self.out.join(format!("{name}-{device}-{width}.png"));
            self.chromium(
                url,
                None,
                &[
                    format!("--screenshot={}", png.display()),
                    format!("--window-size={width},2400"),
                ],
            )
            .await;
            assert!(png.is_file(), "no {device} screenshot of {name}");
        }
    }
}

/// Measures the laid-out page: the viewport and document widths, every
/// element that reaches past the viewport's right edge, each h2 with its
/// offset from the top of the document, the product cards and the code
/// blocks' text.
const MEASURE: &str = r#"<script>
function measure(frame) {
  var d = frame.contentDocument, w = frame.contentWindow;
  var vw = d.documentElement.clientWidth;
  var wide = [];
  d.querySelectorAll("body *").forEach(function (e) {
    var b = e.getBoundingClientRect();
    if (b.width > 0 && b.right > vw + 0.5) {
      wide.push(e.tagName + "." + e.className + " right=" + Math.round(b.right));
    }
  });
  var r = {
    viewport: vw,
    scroll_width: d.documentElement.scrollWidth,
    wide: wide,
    headings: Array.prototype.map.call(d.querySelectorAll("h2"), function (h) {
      return { text: h.textContent, top: h.getBoundingClientRect().top + w.scrollY };
    }),
    cards: d.querySelectorAll("li.card").length,
    codes: Array.prototype.map.call(d.querySelectorAll("pre code"), function (c) {
      return c.textContent;
    })
  };
  var pre = document.createElement("pre");
  pre.id = "measure";
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
}
</script>"#;

/// What [`Browser::measure`] found.
struct Layout {
    v: Value,
    width: u32,
}

impl Layout {
    /// Nothing is wider than the viewport: no sideways scrolling.
    #[track_caller]
    fn fits(&self, what: &str) {
        assert_eq!(
            self.v["viewport"].as_u64(),
            Some(u64::from(self.width)),
            "{what}: the window is not {} wide: {}",
            self.width,
            self.v
        );
        assert!(
            self.v["scroll_width"].as_u64() <= self.v["viewport"].as_u64(),
            "{what} at {}: the page scrolls sideways: {}",
            self.width,
            self.v
        );
        assert_eq!(
            self.v["wide"].as_array().map(Vec::len),
            Some(0),
            "{what} at {}: elements past the right edge: {}",
            self.width,
            self.v["wide"]
        );
    }

    /// The offset from the top of the first h2 that starts with `prefix`.
    #[track_caller]
    fn heading(&self, prefix: &str) -> f64 {
        self.v["headings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["text"].as_str().unwrap_or_default().starts_with(prefix))
            .and_then(|h| h["top"].as_f64())
            .unwrap_or_else(|| panic!("no heading {prefix:?} in {}", self.v["headings"]))
    }

    fn cards(&self) -> u64 {
        self.v["cards"].as_u64().unwrap()
    }

    fn has_code(&self, code: &str) -> bool {
        self.v["codes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str() == Some(code))
    }
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Base64 SHA-256 of the server certificate's SubjectPublicKeyInfo, the form
/// `--ignore-certificate-errors-spki-list` takes.
fn server_spki_pin(dir: &Path) -> String {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_file(dir.join("server.pem")).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let spki = cert.tbs_certificate.subject_pki.raw;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki))
}

// --------------------------------------------------------------- assertions

/// Runs of white space (line breaks of the layout included) as one space.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[track_caller]
fn reads(text: &str, expected: &str, what: &str) {
    assert!(
        text.contains(&words(expected)),
        "the page should show {what}: {expected:?}\n--- the page reads ---\n{text}"
    );
}

/// A command as printed: a narrow page wraps it (also after `--`), which
/// the extracted text shows as spaces, so it is compared without any.
#[track_caller]
fn reads_code(text: &str, code: &str, what: &str) {
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    assert!(
        squeeze(text).contains(&squeeze(code)),
        "the page should show {what}: {code:?}\n--- the page reads ---\n{text}"
    );
}

#[track_caller]
fn does_not_read(text: &str, unexpected: &str, what: &str) {
    assert!(
        !text.contains(unexpected),
        "the page should not show {what}: {unexpected:?}\n--- the page reads ---\n{text}"
    );
}

/// The first sentence of a catalogue text, as a person would quote it.
fn first_sentence(text: &str) -> &str {
    text.find(". ").map_or(text, |end| &text[..=end])
}

/// The language-switch link of a page as the browser parsed it.
fn switch_link(dom: &str, to: &str) -> String {
    let marker = format!("hreflang=\"{to}\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no link with {marker} in:\n{dom}"));
    let start = dom[..at].rfind("<a ").expect("the hreflang is on a link");
    let end = at + dom[at..].find("</a>").expect("the link is closed");
    dom[start..end + 4].to_string()
}

fn href_of(link: &str) -> String {
    let start = link.find("href=\"").expect("the link has an href") + 6;
    let end = start + link[start..].find('"').unwrap();
    link[start..end].replace("&amp;", "&")
}

struct Language {
    accept: &'static str,
    code: &'static str,
    other: &'static str,
    other_label: &'static str,
    /// Words only a page in this language has, and only one in the other.
    own: [&'static str; 4],
    foreign: [&'static str; 3],
    /// The headings of what was found, the removal steps, the check
    /// again step and the rationale, in the order a person must meet them.
    order: [&'static str; 4],
    /// Words of the warning notice.
    notice: [&'static str; 3],
}

const DUTCH: Language = Language {
    accept: "nl-NL,nl;q=0.9",
    code: "nl",
    other: "en",
    other_label: "English",
    own: [
        "Geen toegang",
        "Er staat verboden software op uw apparaat",
        "Uw referentie",
        "Hulp nodig?",
    ],
    foreign: ["Access denied", "Your reference", "Need help?"],
    order: [
        "Wat er is gevonden",
        "Zo verwijdert u",
        "Zo laat u uw apparaat controleren",
        "Waarom",
    ],
    notice: [
        "Let op: uw apparaat voldoet niet helemaal",
        "maar op uw apparaat staat iets dat daar niet gewenst is",
        "Verder",
    ],
};

const ENGLISH: Language = Language {
    accept: "en-GB,en;q=0.9",
    code: "en",
    other: "nl",
    other_label: "Nederlands",
    own: [
        "Access denied",
        "Prohibited software found on your device",
        "Your reference",
        "Need help?",
    ],
    foreign: ["Geen toegang", "Uw referentie", "Hulp nodig?"],
    order: [
        "What was found",
        "How to remove",
        "How to have your device checked",
        "Why",
    ],
    notice: [
        "Please note: your device does not fully comply",
        "but your device has something that is not wanted there",
        "Continue",
    ],
};

// -------------------------------------------------------------------- tests

#[tokio::test(flavor = "current_thread")]
async fn a_kaspersky_device_reads_why_and_how_to_fix_it_in_dutch_and_english() {
    let browser = Browser::new("kaspersky");
    let (audit, _guard) = common::audit::capture();
    let gate = start_gate().await;
    let device = gate.pki.device("lt-kes-01", "Leverancier BV");
    attest_kaspersky(&gate, &device).await;

    let snapshot = gate.handle.snapshot();
    let catalogue = &snapshot.catalogue;
    let entry = &catalogue.entries()[catalogue.index_of("kaspersky").unwrap()];
    let windows_steps = entry.removal_steps(Some(OsFamily::Windows));

    for lang in [DUTCH, ENGLISH] {
        let html = fetch_page(&gate, &device, lang.accept).await;
        let reference = last_denial_reference(&audit);
        let file = browser.out.join(format!("denial-{}.html", lang.code));
        std::fs::write(&file, &html).unwrap();
        let url = file_url(&file);
        let raw = browser
            .read(&format!("denial-{}", lang.code), &url, None)
            .await;
        let text = words(&raw);
        let pick = |nl: &str, en: &str| {
            if lang.code == "nl" {
                nl.to_string()
            } else {
                en.to_string()
            }
        };

        reads(&text, PRODUCT, "the product as reported");
        reads(&text, VERSION, "the version as reported");
        reads(&text, VENDOR, "the vendor as reported");
        reads(
            &text,
            "Windows 11 Pro 10.0.22631",
            "the device's OS as reported",
        );
        let rationale = pick(&entry.rationale.nl, &entry.rationale.en);
        reads(&text, first_sentence(&rationale), "why it is not allowed");
        let steps = if lang.code == "nl" {
            &windows_steps.nl
        } else {
            &windows_steps.en
        };
        reads(
            &text,
            &pick("Zo verwijdert u", "How to remove"),
            "the removal heading",
        );
        reads(
            &text,
            &format!("1 {}", steps[0]),
            "the first Windows removal step, numbered",
        );
        reads(
            &text,
            &format!("2 {}", steps[1]),
            "the second Windows removal step, numbered",
        );
        let command = format!(
            "posture-agent attest --gate https://finance.test:{} --ca gate-ca.pem",
            gate.addr.port()
        );
        reads_code(
            &text,
            &command,
            "this gate's agent command to have the device checked again",
        );
        reads_code(
            &text,
            SCHTASKS,
            "the Windows service trigger (the device reported Windows)",
        );
        does_not_read(&text, "systemctl", "another OS's trigger");
        reads(&text, DESK_NAME, "the service desk");
        reads(&text, DESK_PHONE, "the service desk's phone number");
        reads(&text, DESK_EMAIL, "the service desk's e-mail address");
        reads(&text, &reference, "the reference the gate logged");
        for own in lang.own {
            reads(&text, own, "words of the page's own language");
        }
        for foreign in lang.foreign {
            does_not_read(&text, foreign, "words of the other language");
        }

        // The switch link is hidden when printed, so it is checked in the
        // document the browser built, then followed below.
        let dom = browser.dom(&url).await;
        assert!(
            dom.contains(&format!("<html lang=\"{}\"", lang.code)),
            "{dom}"
        );
        let link = switch_link(&dom, lang.other);
        assert!(
            link.contains(&format!(">{}</a>", lang.other_label)),
            "{link}"
        );
        assert_eq!(href_of(&link), format!("{APP_PATH}?lang={}", lang.other));
        browser
            .screenshots(&format!("denial-{}", lang.code), &url)
            .await;

        // Laid out at desktop and phone width: nothing sideways, one card
        // for the product seen three ways, the removal steps right after
        // what was found and the rationale after them, the real command.
        for width in [1280, 390] {
            let layout = browser.measure(&file, width).await;
            layout.fits(&format!("the {} denial page", lang.code));
            assert_eq!(layout.cards(), 1, "{}", layout.v);
            let [found, remove, check, why] = lang.order.map(|h| layout.heading(h));
            assert!(
                found < remove && remove < check && check < why,
                "{}",
                layout.v["headings"]
            );
            assert!(layout.has_code(&command), "{}", layout.v["codes"]);
            assert!(layout.has_code(SCHTASKS_CODE), "{}", layout.v["codes"]);
        }
    }
}

/// The Windows service trigger as the page prints it, and as a browser's
/// DOM holds it.
const SCHTASKS: &str = r#"schtasks /run /tn "\posture-gate\posture-agent""#;
const SCHTASKS_CODE: &str = SCHTASKS;

#[tokio::test(flavor = "current_thread")]
async fn a_warned_device_reads_the_notice_in_dutch_and_english_at_both_widths() {
    let browser = Browser::new("notice");
    let gate = start_gate().await;
    let device = gate.pki.device("lt-kes-02", "Leverancier BV");
    attest_kaspersky(&gate, &device).await;
    let snapshot = gate.handle.snapshot();
    let catalogue = &snapshot.catalogue;
    let entry = &catalogue.entries()[catalogue.index_of("kaspersky").unwrap()];
    let windows_steps = entry.removal_steps(Some(OsFamily::Windows));

    for lang in [DUTCH, ENGLISH] {
        // A new device and segment each time: the notice is once a day.
        let device = gate
            .pki
            .device(&format!("lt-kes-notice-{}", lang.code), "Leverancier BV");
        attest_kaspersky(&gate, &device).await;
        let html = navigate(&gate, &device, "office.test", lang.accept, 200).await;
        let file = browser.out.join(format!("notice-{}.html", lang.code));
        std::fs::write(&file, &html).unwrap();
        let url = file_url(&file);
        let text = words(
            &browser
                .read(&format!("notice-{}", lang.code), &url, None)
                .await,
        );
        for words in lang.notice {
            reads(&text, words, "the notice's own words");
        }
        reads(&text, PRODUCT, "the product as reported");
        reads(&text, "avp.exe", "the process it was seen as");
        let steps = if lang.code == "nl" {
            &windows_steps.nl
        } else {
            &windows_steps.en
        };
        reads(&text, &format!("1 {}", steps[0]), "the first removal step");
        for foreign in lang.foreign {
            does_not_read(&text, foreign, "words of the other language");
        }
        // The continue link goes to the same path on this host.
        let dom = browser.dom(&url).await;
        let label = lang.notice[2];
        let at = dom
            .find(&format!(">{label}</a>"))
            .unwrap_or_else(|| panic!("no {label} link: {dom}"));
        let link = &dom[dom[..at].rfind("<a ").unwrap()..at];
        assert_eq!(href_of(link), APP_PATH);
        for width in [1280, 390] {
            let layout = browser.measure(&file, width).await;
            layout.fits(&format!("the {} notice", lang.code));
            assert_eq!(layout.cards(), 1, "{}", layout.v);
            let [found, remove, why] = [0, 1, 3].map(|i| layout.heading(lang.order[i]));
            assert!(found < remove && remove < why, "{}", layout.v["headings"]);
        }
        browser
            .screenshots(&format!("notice-{}", lang.code), &url)
            .await;
        // Then straight through: the app, not the notice again.
        let client = common::Client::new(gate.addr, &gate.pki.ca_der, Some(&device), Proto::H1);
        let again = client
            .send(
                request("GET", "office.test", APP_PATH, Proto::H1)
                    .header("accept", "text/html")
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
            .await;
        assert_eq!(again.status, 200);
        assert_eq!(again.json()["upstream"], "finance");
    }
    drop(device);
}

#[tokio::test(flavor = "current_thread")]
async fn a_browser_without_a_certificate_gets_the_enrolment_page_over_tls() {
    let browser = Browser::new("no-certificate");
    let (audit, _guard) = common::audit::capture();
    let gate = start_gate().await;
    let pin = server_spki_pin(&gate.dir);
    let tls = Tls {
        addr: gate.addr,
        spki_pin: &pin,
        lang: "nl-NL",
    };
    let base = format!("https://finance.test:{}", gate.addr.port());

    // A browser set to Dutch gets the Dutch page...
    let url = format!("{base}{APP_PATH}");
    let text = words(&browser.read("geen-certificaat", &url, Some(&tls)).await);
    let reference = last_denial_reference(&audit);
    assert_eq!(
        audit.decisions().last().unwrap()["reason"],
        "no_certificate"
    );
    reads(
        &text,
        "Uw apparaat heeft geen certificaat laten zien",
        "the Dutch title",
    );
    reads(
        &text,
        "1 Vraag een apparaatcertificaat aan bij uw organisatie.",
        "the first step, numbered",
    );
    reads(
        &text,
        &format!("Neem contact op met {DESK_NAME}"),
        "the service desk",
    );
    reads(&text, DESK_PHONE, "the service desk's phone number");
    reads(&text, &reference, "the reference the gate logged");
    does_not_read(&text, "Access denied", "English words");

    // ...and the page's switch link (`?lang=en`) gives the English one.
    let url = format!("{base}{APP_PATH}?lang=en");
    let text = words(&browser.read("no-certificate", &url, Some(&tls)).await);
    let reference = last_denial_reference(&audit);
    reads(
        &text,
        "Your device did not present a certificate",
        "the title",
    );
    reads(
        &text,
        "1 Ask your organisation for a device certificate.",
        "the first step, numbered",
    );
    reads(&text, &format!("Contact {DESK_NAME}"), "the service desk");
    reads(&text, &reference, "the reference the gate logged");
    does_not_read(&text, "Geen toegang", "Dutch words");
}

// ------------------------------------------- a certificate that failed (19)

/// How far the page at `url` is wider than a `width` px window (0 or less:
/// it fits), measured by Chromium on a copy of the page with a script that
/// writes the measure into the document.
async fn overflow_at(browser: &Browser, name: &str, html: &str, width: u32) -> i64 {
    const PROBE: &str = "<script>document.body.dataset.overflow = String(document.documentElement.scrollWidth - document.documentElement.clientWidth);</script>";
    let probed = html.replacen("</body>", &format!("{PROBE}</body>"), 1);
    assert_ne!(probed, html, "the page has a </body>");
    let file = browser.out.join(format!("{name}-probe-{width}.html"));
    std::fs::write(&file, probed).unwrap();
    let output = browser
        .chromium(
            &file_url(&file),
            None,
            &["--dump-dom".into(), format!("--window-size={width},2400")],
        )
        .await;
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom
        .find("data-overflow=\"")
        .unwrap_or_else(|| panic!("the probe ran on {name} at {width} px:\n{dom}"))
        + "data-overflow=\"".len();
    let end = start + dom[start..].find('"').unwrap();
    dom[start..end].parse().unwrap()
}

/// An expired device certificate: the browser completes the handshake
/// (which headless Chromium cannot do with a client certificate, so the
/// device's answer is rendered from a file) and the person reads what is
/// wrong, since when, whom to ask and what the certificate says, in Dutch
/// and English; the page fits a phone (390 px) and a desktop (1280 px)
/// without sideways scrolling, long fingerprint and all.
#[tokio::test(flavor = "current_thread")]
async fn an_expired_certificate_reads_what_is_wrong_and_whom_to_ask_in_both_languages() {
    let browser = Browser::new("expired-certificate");
    let (audit, _guard) = common::audit::capture();
    let gate = start_gate().await;
    let now = time::OffsetDateTime::now_utc();
    let mut spec = common::pki::DeviceSpec::new("lt-verlopen-01", "Leverancier BV");
    spec.not_before = now - time::Duration::days(400);
    spec.not_after = now - time::Duration::days(3);
    let expires = spec
        .not_after
        .format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap();
    let device = gate.pki.device_from(spec);
    let (_, ca) = x509_parser::parse_x509_certificate(gate.pki.device_ca_cert_der()).unwrap();
    let ca_name = ca.subject().to_string();

    // The probe can fail: a page with something too wide does not fit.
    let wide = "<!DOCTYPE html><html><body><div style=\"width:2000px\">x</div></body></html>";
    assert!(overflow_at(&browser, "control", wide, 390).await > 0);

    for (lang, accept) in [("nl", "nl-NL,nl;q=0.9"), ("en", "en-GB,en;q=0.9")] {
        let html = fetch_page(&gate, &device, accept).await;
        let last = audit.decisions();
        let last = last.last().expect("a decision");
        assert_eq!(last["reason"], "cert_expired", "{last}");
        assert!(last.get("device").is_none(), "no identity: {last}");
        let reference = last_denial_reference(&audit);
        let name = format!("verlopen-{lang}");
        let file = browser.out.join(format!("{name}.html"));
        std::fs::write(&file, &html).unwrap();
        let url = file_url(&file);
        let text = words(&browser.read(&name, &url, None).await);
        let pick = |nl: &'static str, en: &'static str| if lang == "nl" { nl } else { en };
        reads(
            &text,
            pick(
                "Het certificaat van uw apparaat is verlopen",
                "Your device's certificate has expired",
            ),
            "the title",
        );
        reads(
            &text,
            &format!("{}{expires}", pick("Het verliep op ", "It expired on ")),
            "since when",
        );
        reads(
            &text,
            &format!(
                "{}{ca_name}",
                pick(
                    "Apparaatcertificaten voor deze toegang worden uitgegeven door: ",
                    "Device certificates for this access are issued by: ",
                )
            ),
            "whom to ask",
        );
        reads(&text, "CN=lt-verlopen-01", "the certificate's subject");
        reads(&text, "Code: cert_expired", "the code");
        reads(&text, &reference, "the reference the gate logged");
        reads(&text, DESK_NAME, "the service desk");
        does_not_read(
            &text,
            pick("Access denied", "Geen toegang"),
            "the other language",
        );
        assert!(
            text.replace(' ', "").contains(&device.fingerprint()),
            "the fingerprint, perhaps wrapped: {text}"
        );
        for width in [1280, 390] {
            let over = overflow_at(&browser, &name, &html, width).await;
            assert!(over <= 0, "{name} is {over} px too wide at {width} px");
        }
        browser.screenshots(&name, &url).await;
    }
}
