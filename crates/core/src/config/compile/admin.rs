//! `[admin]`: `/metrics`, `/healthz` and `/readyz` for the operators' own
//! tools, on a plain-HTTP listener of its own.
//!
//! Without an `[admin]` section there is no admin listener: a default port
//! opened by every config would make two gates on one host (blue/green,
//! tests, the demo beside a real gate) fight over it, and a config that
//! ran before keeps running unchanged. `[admin]` with nothing in it listens
//! on `127.0.0.1:9900`. Any address is accepted (a container's Prometheus
//! scrapes from outside it), but never the public port: what `/metrics`
//! tells (segments, refusals, certificate expiry) is for operators, so a
//! config where `[admin] listen` would share a port with `[server] listen`
//! or a side listener is an error.

use std::net::SocketAddr;

use super::super::model::AdminConfig;
use super::super::snapshot::{AdminSettings, ForwardAuthListen, ServerSettings};
use super::Context;

impl Context<'_> {
    pub(super) fn admin(&mut self, a: &AdminConfig, server: &ServerSettings) -> AdminSettings {
        let listen = match a.listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                self.c.at(
                    a.listen.span(),
                    format!(
                        "[admin] listen {:?} is not an IP address and port, like \"127.0.0.1:9900\"",
                        a.listen.get_ref()
                    ),
                );
                SocketAddr::from(([127, 0, 0, 1], 0))
            }
        };
        let sides = [
            ("[server] listen", Some(server.listen)),
            (
                "[forward_auth] listen",
                server.forward_auth.as_ref().and_then(|f| tcp(&f.listen)),
            ),
            (
                "[nac] listen",
                server.nac.as_ref().and_then(|n| tcp(&n.listen)),
            ),
        ];
        for (name, other) in sides {
            if other.is_some_and(|other| overlaps(listen, other)) {
                self.c.at(
                    a.listen.span(),
                    format!(
                        "[admin] listen {listen} is on the port of {name}: the admin endpoints \
                         (metrics, health) must never be reachable on a port meant for others; \
                         give [admin] a port of its own, like 127.0.0.1:9900"
                    ),
                );
            }
        }
        if *a.max_connections.get_ref() == 0 {
            self.c.at(
                a.max_connections.span(),
                "max_connections must be more than 0",
            );
        }
        AdminSettings {
            listen,
            max_connections: *a.max_connections.get_ref(),
        }
    }
}

fn tcp(listen: &ForwardAuthListen) -> Option<SocketAddr> {
    match listen {
        ForwardAuthListen::Tcp(addr) => Some(*addr),
        ForwardAuthListen::Unix(_) => None,
    }
}

/// Whether two listeners would take the same port: the same port on the
/// same address, or on any address when one of them is the wildcard.
/// Port 0 (the system picks one, as tests do) never clashes.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
