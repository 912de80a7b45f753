//! `[forward_auth]`: the listener for existing proxies and the proxies it
//! answers. What would let a stranger speak for a proxy is an error here,
//! at its line: plain HTTP beyond loopback, a proxy entry that trusts no
//! one in particular on such a listener, a Unix socket shared by several
//! proxies (it cannot tell them apart).

use std::net::SocketAddr;
use std::sync::Arc;

use serde_spanned::Spanned;

use super::super::files;
use super::super::model::{ForwardAuthConfig, ProxyConfig};
use super::super::snapshot::{
    ForwardAuthListen, ForwardAuthSettings, ForwardAuthTls, TrustedPeer, TrustedProxy,
};
use super::super::values;
use super::Context;

impl Context<'_> {
    pub(super) fn forward_auth(&mut self, f: &ForwardAuthConfig) -> ForwardAuthSettings {
        let listen = self.forward_auth_listen(&f.listen);
        let tls = self.side_tls(
            f.listen.span(),
            [&f.tls_certificate, &f.tls_key, &f.proxy_ca],
            "proxy_ca",
        );
        if let (Some(ForwardAuthListen::Tcp(addr)), None) = (&listen, &tls) {
            if !addr.ip().is_loopback() {
                self.c.at(
                    f.listen.span(),
                    format!(
                        "forward-auth on {addr} would be plain HTTP beyond this machine: listen on a \
                         loopback address or a unix: socket, or give tls_certificate, tls_key and \
                         proxy_ca for mutual TLS with the proxies"
                    ),
                );
            }
        }
        let unix = matches!(listen, Some(ForwardAuthListen::Unix(_)));
        if unix && tls.is_some() {
            self.c.at(
                f.listen.span(),
                "a unix: socket is not spoken to over TLS: leave out tls_certificate, tls_key and proxy_ca",
            );
        }
        let max_connections = *f.max_connections.get_ref();
        if max_connections == 0 {
            self.c.at(
                f.max_connections.span(),
                "max_connections must be more than 0",
            );
        }
        if f.proxies.is_empty() {
            self.c.at(
                f.listen.span(),
                "[forward_auth] needs at least one [[forward_auth.proxy]]: nobody else may ask",
            );
        }
        if unix && f.proxies.len() > 1 {
            self.c.at(
                f.proxies[1].name.span(),
                "a unix: socket cannot tell proxies apart: give it exactly one [[forward_auth.proxy]]",
            );
        }
        let mut proxies: Vec<TrustedProxy> = Vec::with_capacity(f.proxies.len());
        for p in &f.proxies {
            if proxies.iter().any(|q| &q.name == p.name.get_ref()) {
                self.c.at(
                    p.name.span(),
                    format!("a proxy named {:?} is already listed", p.name.get_ref()),
                );
            }
            let proxy = self.trusted_proxy(p, unix, tls.is_some());
            // Two entries one connection could match would let one proxy's
            // clients be read with the other's headers (a Traefik client's
            // own `X-Client-Cert` read as nginx's): every connection must
            // be exactly one proxy.
            let twin = proxies.iter().find(|q| !unix && could_be_both(q, &proxy));
            if let Some(other) = twin {
                self.c.at(
                    p.name.span(),
                    format!(
                        "proxy {:?} could be the same connection as {:?} (their addresses \
                         overlap, or either accepts any address, and no distinct \
                         certificate_name tells them apart): one connection must be exactly \
                         one proxy",
                        proxy.name, other.name
                    ),
                );
            }
            proxies.push(proxy);
        }
        ForwardAuthSettings {
            // A stand-in only when an error was collected.
            listen: listen.unwrap_or(ForwardAuthListen::Tcp(SocketAddr::from((
                [127, 0, 0, 1],
                0,
            )))),
            tls,
            max_connections,
            proxies,
        }
    }

    pub(super) fn forward_auth_listen(
        &mut self,
        listen: &Spanned<String>,
    ) -> Option<ForwardAuthListen> {
        let text = listen.get_ref();
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                self.c.at(
                    listen.span(),
                    "unix: needs a socket path, like unix:/run/posture-gate/authz.sock",
                );
                return None;
            }
            // Not `resolve`: the socket is made by the gate, not a file the
            // config reads, so the reloader must not watch it.
            return Some(ForwardAuthListen::Unix(self.base.join(path)));
        }
        match text.parse::<SocketAddr>() {
            Ok(addr) => Some(ForwardAuthListen::Tcp(addr)),
            Err(_) => {
                self.c.at(
                    listen.span(),
                    format!(
                        "listen {text:?} is neither an IP address and port (\"127.0.0.1:9090\") nor \
                         unix:/path/to/socket"
                    ),
                );
                None
            }
        }
    }

    /// The TLS files of a side listener, all three or none; `ca_name` is
    /// what the CA setting is called in its section.
    pub(super) fn side_tls(
        &mut self,
        listen: std::ops::Range<usize>,
        [cert, key, ca]: [&Option<Spanned<std::path::PathBuf>>; 3],
        ca_name: &str,
    ) -> Option<ForwardAuthTls> {
        let (cert, key, ca) = match (cert, key, ca) {
            (None, None, None) => return None,
            (Some(cert), Some(key), Some(ca)) => (cert, key, ca),
            (cert, key, ca) => {
                let span = [cert, key, ca]
                    .into_iter()
                    .flatten()
                    .next()
                    .map_or(listen, |v| v.span());
                self.c.at(
                    span,
                    format!("mutual TLS needs all three of tls_certificate, tls_key and {ca_name}"),
                );
                return None;
            }
        };
        let cert_path = self.resolve(cert);
        let cert_chain = self.certificates(cert, "listener certificate");
        let key_path = self.resolve(key);
        let private_key = self.read(key, &key_path, files::private_key);
        let section = if ca_name == "radius_ca" {
            "[nac]"
        } else {
            "[forward_auth]"
        };
        let pair = format!("{section} tls_certificate and tls_key");
        self.key_pair(
            key,
            [&cert_path, &key_path],
            &cert_chain,
            private_key.as_ref(),
            &pair,
        );
        let ca_path = self.resolve(ca);
        let proxy_cas = self.read(ca, &ca_path, files::client_cas);
        Some(ForwardAuthTls {
            cert: cert_path,
            cert_chain,
            key: key_path,
            private_key: Arc::new(
                private_key.unwrap_or_else(|| {
                    rustls_pki_types::PrivatePkcs8KeyDer::from(Vec::new()).into()
                }),
            ),
            proxy_ca: ca_path,
            proxy_cas: proxy_cas.unwrap_or_default(),
        })
    }

    /// Who a peer of a side listener is: its addresses and certificate
    /// name, checked against the listener's kind.
    pub(super) fn trusted_peer(
        &mut self,
        name: &Spanned<String>,
        from: &[Spanned<String>],
        certificate_name: &Option<Spanned<String>>,
        unix: bool,
        tls: bool,
    ) -> TrustedPeer {
        let nets: Vec<ipnet::IpNet> = from
            .iter()
            .filter_map(|a| {
                values::trusted_proxy(a.get_ref())
                    .map_err(|m| self.c.at(a.span(), m))
                    .ok()
            })
            .collect();
        if unix {
            if let Some(a) = from.first() {
                self.c.at(
                    a.span(),
                    "a unix: socket has no peer addresses: leave out from (the socket's file \
                     permissions say who may connect)",
                );
            }
        } else if !tls && from.is_empty() {
            self.c.at(
                name.span(),
                "on plain HTTP a peer is known by its address: give from = [\"127.0.0.1/32\"] or the like",
            );
        }
        let certificate_name = certificate_name.as_ref().map(|n| {
            if !tls {
                self.c.at(
                    n.span(),
                    "certificate_name is only checked with mutual TLS (tls_certificate, tls_key and the CA)",
                );
            }
            n.get_ref().trim_end_matches('.').to_ascii_lowercase()
        });
        TrustedPeer {
            name: name.get_ref().clone(),
            from: nets,
            certificate_name,
        }
    }

    fn trusted_proxy(&mut self, p: &ProxyConfig, unix: bool, tls: bool) -> TrustedProxy {
        let kind = *p.kind.get_ref();
        let peer = self.trusted_peer(&p.name, &p.from, &p.certificate_name, unix, tls);
        let mut header = |value: &Option<Spanned<String>>, default: &'static str, what: &str| {
            let Some(v) = value else {
                return http::HeaderName::from_static(default);
            };
            http::HeaderName::from_bytes(v.get_ref().as_bytes()).unwrap_or_else(|_| {
                self.c.at(
                    v.span(),
                    format!("{what} {:?} is not a header name", v.get_ref()),
                );
                http::HeaderName::from_static(default)
            })
        };
        let certificate_header = header(
            &p.certificate_header,
            kind.default_certificate_header(),
            "certificate_header",
        );
        let host_header = header(&p.host_header, kind.default_host_header(), "host_header");
        let uri_header = match (kind.default_uri_header(), &p.uri_header) {
            (None, Some(v)) => {
                self.c.at(
                    v.span(),
                    "envoy sends the original path after /.well-known/posture-gate/authz, not in a header: leave out uri_header",
                );
                None
            }
            (None, None) => None,
            (Some(default), value) => Some(header(value, default, "uri_header")),
        };
        TrustedProxy {
            name: peer.name,
            kind,
            from: peer.from,
            certificate_name: peer.certificate_name,
            certificate_header,
            uri_header,
            host_header,
        }
    }
}

/// Whether one connection could match both proxies: their addresses
/// overlap (an empty `from` is any address) and no pair of distinct
/// certificate names separates them.
fn could_be_both(a: &TrustedProxy, b: &TrustedProxy) -> bool {
    let names_differ = matches!(
        (&a.certificate_name, &b.certificate_name),
        (Some(x), Some(y)) if x != y
    );
    if names_differ {
        return false;
    }
    if a.from.is_empty() || b.from.is_empty() {
        return true;
    }
    a.from.iter().any(|x| {
        b.from
            .iter()
            .any(|y| x.contains(&y.network()) || y.contains(&x.network()))
    })
}
