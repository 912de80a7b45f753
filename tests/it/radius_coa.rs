//! RADIUS CoA and Disconnect (RFC 5176, issue 17 point 2) against a real,
//! independent receiver: Debian's FreeRADIUS as the NAS stand-in, started by
//! each test in the foreground on a free loopback port with a generated
//! configuration. FreeRADIUS checks the Request Authenticator and the
//! Message-Authenticator itself and drops what does not verify; its `-X`
//! output shows the attributes it decoded, which the tests read back.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use posture_gate::radius::packet::{self, Attribute, RequestCode};
use posture_gate::radius::{send, Change, CoaError, Nas, Outcome, Session};
use time::OffsetDateTime;

const SECRET: &[u8] = b"switch-1 shared secret";
/// The User-Name the configured FreeRADIUS NAKs, with Error-Cause 503.
const NAK_USER: &str = "nak-me";
/// Only a guard: FreeRADIUS answers loopback requests in milliseconds.
const GUARD: Duration = Duration::from_secs(5);
const PACKAGES: &str = "freeradius freeradius-utils";

/// FreeRADIUS listening for CoA and Disconnect-Requests from 127.0.0.1 with
/// `SECRET`; killed when dropped.
struct FreeRadius {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl FreeRadius {
    fn start() -> FreeRadius {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            // Bound, read and released; FreeRADIUS binds it a moment later.
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.local_addr().unwrap().port()
        };
        let root = dir.path().display().to_string();
        let secret = std::str::from_utf8(SECRET).unwrap();
        // FreeRADIUS 3.2 runs both CoA-Request and Disconnect-Request
        // through recv-coa/send-coa (it has no recv-disconnect section);
        // `reject` there makes the reply a NAK. The always modules stand in
        // for the ones a full installation's mods-enabled/ defines.
        let config = format!(
            r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
raddbdir = {root}
confdir = {root}
logdir = {root}
run_dir = {root}
db_dir = {root}
libdir = /usr/lib/freeradius
pidfile = {root}/radiusd.pid
name = radiusd
max_request_time = 5
cleanup_delay = 1
max_requests = 64
hostname_lookups = no
log {{
    destination = stdout
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = no
}}
client gate {{
    ipaddr = 127.0.0.1
    secret = "{secret}"
}}
modules {{
    always reject {{
        rcode = reject
    }}
    always ok {{
        rcode = ok
    }}
}}
listen {{
    type = coa
    ipaddr = 127.0.0.1
    port = {port}
    virtual_server = coa
}}
server coa {{
    recv-coa {{
        if (&User-Name == "{NAK_USER}") {{
            update reply {{
                &Error-Cause := Session-Context-Not-Found
            }}
            reject
        }}
        ok
    }}
    send-coa {{
        ok
    }}
}}
"#
        );
        std::fs::write(dir.path().join("radiusd.conf"), config).unwrap();
        // The local dictionary that radiusd.conf's directory must have.
        std::fs::write(dir.path().join("dictionary"), "").unwrap();
        let log = dir.path().join("radiusd.out");
        let out = File::create(&log).unwrap();
        let child = Command::new("freeradius")
            .arg("-X")
            .arg("-d")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start freeradius: {e}. The CoA tests need FreeRADIUS as the NAS: \
                     install the Debian packages {PACKAGES} (scripts/test-all does)"
                )
            });
        let mut server = FreeRadius {
            child,
            addr: (Ipv4Addr::LOCALHOST, port).into(),
            log,
            _dir: dir,
        };
        server.wait_for("Ready to process requests");
        server
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the output contains `needle`; panics with the output
    /// (or if FreeRADIUS exited) otherwise.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + GUARD;
        loop {
            let output = self.output();
            if output.contains(needle) {
                return output;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("freeradius exited ({status}) before {needle:?}:\n{output}");
            }
            if Instant::now() > deadline {
                panic!("freeradius did not print {needle:?} within {GUARD:?}:\n{output}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn nas(&self, secret: &[u8]) -> Nas {
        Nas {
            name: "freeradius-as-nas".into(),
            addr: self.addr,
            secret: secret.to_vec(),
        }
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn session(user: &str) -> Session {
    Session {
        user_name: Some(user.into()),
        acct_session_id: Some("5A3F0001".into()),
        calling_station_id: Some("02-00-00-00-00-01".into()),
        nas_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
        nas_port: Some(12),
    }
}

/// The attribute lines FreeRADIUS printed for its first request, e.g.
/// `User-Name = "device-17"`, after its `Received <kind>` line.
fn received(output: &str, kind: &str) -> Vec<String> {
    let start = output
        .find(&format!("(0) Received {kind} Id "))
        .unwrap_or_else(|| panic!("FreeRADIUS received no {kind}:\n{output}"));
    output[start..]
        .lines()
        .skip(1)
        .map_while(|line| line.strip_prefix("(0)   "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_coa_request_with_a_vlan_is_acked_and_freeradius_decoded_every_attribute() {
    let mut radius = FreeRadius::start();
    let before = OffsetDateTime::now_utc().unix_timestamp();
    let outcome = send(
        &radius.nas(SECRET),
        &Change::Coa { vlan: Some(100) },
        &session("device-17"),
        2,
        GUARD,
    )
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Ack);
    let after = OffsetDateTime::now_utc().unix_timestamp();

    let output = radius.wait_for("Sent CoA-ACK");
    let attributes = received(&output, "CoA-Request");
    // Tag 0 on all three tunnel attributes (RFC 3580 §3.31), as FreeRADIUS
    // shows it; the VLAN string without a stray tag octet in it.
    for expected in [
        r#"User-Name = "device-17""#,
        r#"Acct-Session-Id = "5A3F0001""#,
        r#"Calling-Station-Id = "02-00-00-00-00-01""#,
        "NAS-IP-Address = 192.0.2.10",
        "NAS-Port = 12",
        "Tunnel-Type:0 = VLAN",
        "Tunnel-Medium-Type:0 = IEEE-802",
        r#"Tunnel-Private-Group-Id:0 = "100""#,
    ] {
        assert!(
            attributes.iter().any(|line| line == expected),
            "{expected} not in {attributes:#?}"
        );
    }
    assert!(
        attributes[0].starts_with("Message-Authenticator = 0x"),
        "the Message-Authenticator comes first: {attributes:#?}"
    );
    // The time of sending, as FreeRADIUS prints a date (strftime
    // "%b %e %Y %H:%M:%S %Z").
    let format = time::macros::format_description!(
        "Event-Timestamp = \"[month repr:short] [day padding:space] [year] [hour]:[minute]:[second] UTC\""
    );
    let sent_at: Vec<String> = (before..=after)
        .map(|t| {
            OffsetDateTime::from_unix_timestamp(t)
                .unwrap()
                .format(&format)
                .unwrap()
        })
        .collect();
    assert!(
        attributes.iter().any(|line| sent_at.contains(line)),
        "no Event-Timestamp of {sent_at:?} in {attributes:#?}"
    );
}

#[tokio::test]
async fn a_disconnect_request_is_acked() {
    let mut radius = FreeRadius::start();
    let outcome = send(
        &radius.nas(SECRET),
        &Change::Disconnect,
        &session("device-17"),
        2,
        GUARD,
    )
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Ack);
    let output = radius.wait_for("Sent Disconnect-ACK");
    let attributes = received(&output, "Disconnect-Request");
    assert!(attributes.contains(&r#"Acct-Session-Id = "5A3F0001""#.to_string()));
    assert!(
        !attributes.iter().any(|line| line.starts_with("Tunnel-")),
        "a Disconnect-Request carries no VLAN: {attributes:#?}"
    );
}

#[tokio::test]
async fn a_nak_carries_its_error_cause() {
    let mut radius = FreeRadius::start();
    let nas = radius.nas(SECRET);
    for change in [Change::Coa { vlan: Some(999) }, Change::Disconnect] {
        let outcome = send(&nas, &change, &session(NAK_USER), 2, GUARD)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            Outcome::Nak {
                error_cause: Some(503)
            },
            "{change:?}"
        );
    }
    radius.wait_for("Sent Disconnect-NAK");
    assert!(radius.output().contains("Sent CoA-NAK"));
}

#[tokio::test]
async fn with_a_wrong_secret_freeradius_drops_the_request_and_the_sender_gives_up() {
    let mut radius = FreeRadius::start();
    let result = send(
        &radius.nas(b"not the secret"),
        &Change::Coa { vlan: Some(100) },
        &session("device-17"),
        2,
        Duration::from_millis(500),
    )
    .await;
    assert!(
        matches!(result, Err(CoaError::Timeout { attempts: 2 })),
        "{result:?}"
    );
    let output = radius.wait_for("(Shared secret is incorrect.)");
    assert!(!output.contains("Sent CoA-"), "{output}");
}

/// The Ack above proves FreeRADIUS accepted our Message-Authenticator only
/// if FreeRADIUS checks it: a request whose Request Authenticator is right
/// but whose Message-Authenticator is not must be dropped.
#[tokio::test]
async fn freeradius_checks_the_message_authenticator_separately() {
    let mut radius = FreeRadius::start();
    let request = packet::encode_request(
        RequestCode::Coa,
        7,
        &[Attribute::UserName("device-17".into())],
        SECRET,
    )
    .unwrap();
    let mut bytes = request.bytes().to_vec();
    assert_eq!(bytes[20], packet::attr::MESSAGE_AUTHENTICATOR);
    bytes[22] ^= 0x01;
    // Re-sign the Request Authenticator over the altered packet.
    bytes[4..20].fill(0);
    let mut hash = Md5::new();
    hash.update(&bytes);
    hash.update(SECRET);
    let auth: [u8; 16] = hash.finalize().into();
    bytes[4..20].copy_from_slice(&auth);

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&bytes, radius.addr).await.unwrap();
    let output = radius.wait_for("invalid Message-Authenticator");
    let mut buf = [0u8; 4096];
    let reply = tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf)).await;
    assert!(reply.is_err(), "FreeRADIUS answered: {output}");

    // The same request unaltered is answered (from another port, so that
    // FreeRADIUS cannot take it for a duplicate of the dropped one).
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(request.bytes(), radius.addr).await.unwrap();
    let (len, _) = tokio::time::timeout(GUARD, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let response = packet::decode_response(&buf[..len], &request, SECRET).unwrap();
    assert_eq!(response.kind, packet::ResponseKind::Ack);
}
