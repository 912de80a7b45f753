//! The rate limit on attestations posted without a client certificate
//! (`[server] attest_without_certificate_per_minute`, default 30): each
//! costs a full chain and signature check over a body of up to 1 MiB, and
//! such a peer has shown nothing, so it is held to a token bucket per
//! address. A device with a certificate is never limited here (it is bound
//! by the connection and body limits).
//!
//! - The bucket holds a minute's worth of attempts and refills evenly
//!   (`per_minute / 60` a second), so the `per_minute + 1`-th attempt within
//!   a minute is refused with 429 and a `Retry-After` of the seconds until
//!   the next attempt is allowed; a refused attempt costs nothing.
//! - An IPv4 address is its own key; an IPv6 address counts by its /64
//!   (one host usually holds a whole /64, and could otherwise step through
//!   it); an IPv4-mapped IPv6 address counts as its IPv4 address.
//! - The map is bounded (moka, [`MAX_ADDRESSES`]) and forgets an address
//!   idle for two minutes (by then its bucket is full again anyway). Under
//!   a flood from more addresses than that, moka evicts the least useful
//!   entries, so an address may start over with a full bucket: the limit
//!   then degrades towards the connection and body limits, never to a
//!   refusal of devices with certificates.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Addresses tracked at once.
const MAX_ADDRESSES: u64 = 100_000;
/// An address idle this long is forgotten (its bucket is full again).
const FORGET_AFTER: Duration = Duration::from_secs(120);

pub(super) struct AttestLimit {
    buckets: moka::sync::Cache<IpAddr, Arc<Mutex<Bucket>>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl AttestLimit {
    pub fn new() -> AttestLimit {
        AttestLimit {
            buckets: moka::sync::Cache::builder()
                .max_capacity(MAX_ADDRESSES)
                .time_to_idle(FORGET_AFTER)
                .build(),
        }
    }

    /// Takes one attempt for `ip`; `Err(seconds)` to wait when none is left.
    pub fn take(&self, ip: IpAddr, per_minute: u32) -> Result<(), u64> {
        let per_minute = f64::from(per_minute.max(1));
        let per_second = per_minute / 60.0;
        let now = Instant::now();
        let bucket = self.buckets.get_with(key(ip), || {
            Arc::new(Mutex::new(Bucket {
                tokens: per_minute,
                at: now,
            }))
        });
        // A poisoned lock only means another request panicked mid-update;
        // the numbers in it are still numbers.
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_second).min(per_minute);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / per_second).ceil();
            Err((wait as u64).max(1))
        }
    }
}

fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
}
