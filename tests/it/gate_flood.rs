//! 10,000 concurrent connections against one gate, in a process of their
//! own (this file has one test) so the file descriptors and the CPU they
//! take do not disturb other tests.

use crate::support as common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::upstream;
use common::{Proto, RouteSpec, Settings, TestGate};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

const BOUND: Duration = Duration::from_secs(20);
const TOTAL: usize = 10_000;
const LIMIT: usize = 1_000;
/// Client addresses the connections come from, 100 each: more than
/// `max_connections_per_ip` per address, so both limits refuse.
const SOURCES: usize = 100;
/// Connects in flight at once, well inside the gate's listen backlog.
const WAVE: usize = 500;

/// Both ends of every connection live in this process: raise the soft
/// limit on open files to the hard one when it is too low.
fn enough_files(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0, "getrlimit failed");
    if limit.rlim_cur >= needed {
        return;
    }
    assert!(
        limit.rlim_max >= needed,
        "this test needs {needed} open files; the hard limit is {}",
        limit.rlim_max
    );
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0, "setrlimit failed");
}

/// Whether the gate closed this socket (end of stream or reset); the gate
/// never sends a byte to a client that has sent none.
fn is_closed(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("the gate sent data before a TLS hello"),
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

async fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    socket.connect(addr).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_are_refused_quickly_and_a_clean_device_is_served_after() {
    // The client ends, the gate's held ends, and some room.
    enough_files((TOTAL + LIMIT + 1_000) as u64);
    let public = upstream::start("public").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: public.url(),
        segment: "open",
    }];
    let settings = Settings {
        max_connections: LIMIT,
        // The connections the gate holds wait for a TLS hello that never
        // comes; they must stay held for the whole test, so a refusal can
        // only come from the limits, never from a timeout.
        header_read_timeout: "60s",
        ..Settings::default()
    };
    let gate = TestGate::start(&routes, &settings).await;

    let mut streams = Vec::with_capacity(TOTAL);
    for wave in 0..TOTAL / WAVE {
        let mut connects = JoinSet::new();
        for i in 0..WAVE {
            let n = wave * WAVE + i;
            let source = Ipv4Addr::new(127, 1, 0, 1 + (n % SOURCES) as u8);
            connects.spawn(connect_from(source, gate.addr));
        }
        while let Some(done) = connects.join_next().await {
            let stream = done
                .unwrap()
                .unwrap_or_else(|e| panic!("connect {}: {e}", streams.len()));
            // Plain non-blocking sockets from here on: a sweep of reads
            // tells which ones the gate closed, with no task per socket.
            streams.push(stream.into_std().unwrap());
        }
    }
    assert_eq!(streams.len(), TOTAL);

    // Everything over the limit is closed at once; the rest stays held.
    let refused = TOTAL - LIMIT;
    let mut closed = vec![false; TOTAL];
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        for (stream, closed) in streams.iter_mut().zip(closed.iter_mut()) {
            *closed = *closed || is_closed(stream);
        }
        let count = closed.iter().filter(|c| **c).count();
        assert!(
            count <= refused,
            "the gate closed {count} connections, more than the {refused} over max_connections"
        );
        if count == refused {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {count} of {refused} connections over the limit were closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!gate.task.is_finished(), "the gate is still running");

    // The flood goes; a clean device is served again.
    drop(streams);
    let device = gate.pki.device("lt-401", "Org");
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let client = gate.client(Some(&device), Proto::H1);
        if client
            .try_get("public.test", "/.well-known/posture-gate/challenge")
            .await
            .is_ok_and(|a| a.status == 200)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gate serves no one after the flood"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let answer = gate
        .client(Some(&device), Proto::H1)
        .get("public.test", "/")
        .await;
    assert_eq!(answer.status, 200);
}
