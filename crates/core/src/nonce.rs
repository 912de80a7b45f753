//! Gate nonces (spec section 4): stateless to issue, single-use to redeem.
//!
//! A nonce is `base64url(expires_at ‖ 16 random bytes ‖ HMAC-SHA256)`. The
//! MAC and the expiry it carries let every gate instance (and every door)
//! that shares the secret accept another's nonce without shared state; the
//! used-nonce memory ([`crate::store::NonceStore`]) makes it single-use.
//!
//! Redeeming is split in two, so the memory of used nonces may be a network
//! store: the verifier checks the MAC and the expiry as its last step
//! ([`MacCheck`], synchronous, spec section 7 order), and only a token that
//! verified has its nonce marked used (`enforce::attest`). Since the nonce
//! is the last check, the first failing check is the same as if both
//! happened at once, and a nonce is spent exactly when it would be spent by
//! a verifier that redeemed it in place.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::attestation::{NonceRedeemer, NonceVerdict};

type HmacSha256 = Hmac<Sha256>;

/// Spec section 4: a nonce expires after at most 5 minutes.
pub const MAX_TTL: Duration = Duration::from_secs(5 * 60);
const RANDOM_LEN: usize = 16;
const SIGNED_LEN: usize = 8 + RANDOM_LEN;
const NONCE_LEN: usize = SIGNED_LEN + 32;

/// Issues and checks nonces with one secret; rebuilt on every reload.
pub struct NonceIssuer {
    secret: Vec<u8>,
    ttl: Duration,
}

/// A freshly issued nonce.
pub struct Issued {
    /// The nonce, base64url without padding.
    pub nonce: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl NonceIssuer {
    /// An issuer with this secret; `ttl` is capped at [`MAX_TTL`].
    pub fn new(secret: Vec<u8>, ttl: Duration) -> NonceIssuer {
        NonceIssuer {
            secret,
            ttl: ttl.min(MAX_TTL),
        }
    }

    /// A new nonce, valid from `now` for the issuer's lifetime.
    pub fn issue(&self, now: i64) -> Issued {
        let expires_at = now.saturating_add(self.ttl.as_secs() as i64);
        let mut raw = [0u8; NONCE_LEN];
        raw[..8].copy_from_slice(&expires_at.to_be_bytes());
        rand::rng().fill_bytes(&mut raw[8..SIGNED_LEN]);
        let tag = self.mac(&raw[..SIGNED_LEN]).finalize().into_bytes();
        raw[SIGNED_LEN..].copy_from_slice(&tag);
        Issued {
            nonce: URL_SAFE_NO_PAD.encode(raw),
            expires_at,
        }
    }

    /// The expiry of a nonce this secret signed, if it did and it is still
    /// valid at `now`.
    pub fn check(&self, nonce: &str, now: i64) -> Option<i64> {
        if nonce.len() > 2 * NONCE_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        if raw.len() != NONCE_LEN {
            return None;
        }
        self.mac(&raw[..SIGNED_LEN])
            .verify_slice(&raw[SIGNED_LEN..])
            .ok()?;
        let expires_at = i64::from_be_bytes(raw[..8].try_into().ok()?);
        (expires_at > now).then_some(expires_at)
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        mac
    }
}

/// A per-process secret for when the config names none. Nonces then only
/// work on the instance that issued them.
pub fn random_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// The verifier's nonce step: checks the MAC and expiry with the current
/// issuer and notes the expiry, without marking anything used; the caller
/// marks the nonce used once the token has verified (see the module docs).
pub struct MacCheck<'a> {
    issuer: &'a NonceIssuer,
    /// The expiry of the nonce that passed; `i64::MIN` until one did.
    expires_at: AtomicI64,
}

impl<'a> MacCheck<'a> {
    /// A check with `issuer`'s secret.
    pub fn new(issuer: &'a NonceIssuer) -> MacCheck<'a> {
        MacCheck {
            issuer,
            expires_at: AtomicI64::new(i64::MIN),
        }
    }

    /// The expiry of the nonce that passed the check, if one did.
    pub fn passed(&self) -> Option<i64> {
        let e = self.expires_at.load(Ordering::Relaxed);
        (e != i64::MIN).then_some(e)
    }
}

impl NonceRedeemer for MacCheck<'_> {
    fn redeem(&self, nonce: &str, now: i64) -> NonceVerdict {
        match self.issuer.check(nonce, now) {
            Some(expires_at) => {
                self.expires_at.store(expires_at, Ordering::Relaxed);
                // Not yet used: that is settled with the used-nonce store.
                NonceVerdict::Fresh
            }
            None => NonceVerdict::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(secret: &[u8]) -> NonceIssuer {
        NonceIssuer::new(secret.to_vec(), Duration::from_secs(60))
    }

    #[test]
    fn another_instance_with_the_same_secret_accepts_it() {
        let n = issuer(b"shared").issue(1000);
        assert_eq!(n.expires_at, 1060);
        assert_eq!(issuer(b"shared").check(&n.nonce, 1001), Some(1060));
        assert_eq!(issuer(b"other").check(&n.nonce, 1001), None);
    }

    #[test]
    fn expired_forged_and_garbage_nonces_are_unknown() {
        let i = issuer(b"k");
        let n = i.issue(1000);
        assert_eq!(i.check(&n.nonce, 1060), None);
        let mut raw = URL_SAFE_NO_PAD.decode(&n.nonce).unwrap();
        raw[0] ^= 1; // extend the expiry without the key
        assert_eq!(i.check(&URL_SAFE_NO_PAD.encode(raw), 1001), None);
        assert_eq!(i.check("not a nonce", 1001), None);
        assert_eq!(i.check("", 1001), None);
    }

    #[test]
    fn the_mac_check_notes_the_expiry_of_a_good_nonce_only() {
        let i = issuer(b"k");
        let check = MacCheck::new(&i);
        assert_eq!(check.redeem("forged", 1001), NonceVerdict::Unknown);
        assert_eq!(check.passed(), None);
        let n = i.issue(1000);
        assert_eq!(check.redeem(&n.nonce, 1001), NonceVerdict::Fresh);
        assert_eq!(check.passed(), Some(1060));
    }

    #[test]
    fn ttl_is_capped_at_five_minutes() {
        let i = NonceIssuer::new(b"k".to_vec(), Duration::from_secs(3600));
        assert_eq!(i.issue(0).expires_at, 300);
    }
}
