//! Stateless registration challenges and session tokens.
//!
//! A challenge nonce is `issued (u64 ms since start) · HMAC-SHA256(secret, label · issued ·
//! address)[..16]`. Checking it needs only the secret, so answering a flood of first-round
//! registrations stores nothing; a nonce is valid only for the address it was issued to and only
//! for the configured lifetime. The issue time also orders registrations of one peer, which is
//! how replays of an older proof are refused.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use supernode_proto::identity::PeerId;
use supernode_proto::signal::message::{NONCE_LEN, SESSION_LEN};

const NONCE_LABEL: &[u8] = b"supernode/rendezvous/nonce";
const SESSION_LABEL: &[u8] = b"supernode/rendezvous/session";

/// Why a nonce is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum NonceError {
    /// Forged, or issued to another address.
    #[error("nonce was not issued to this address")]
    Foreign,
    /// Older than the lifetime, or from the future.
    #[error("nonce expired")]
    Expired,
}

fn mac(secret: &[u8; 32]) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

fn addr_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut out = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
        std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

fn ms_since(start: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX)
}

/// Issues a nonce for `addr` at `now`.
pub(super) fn issue(
    secret: &[u8; 32],
    start: Instant,
    now: Instant,
    addr: SocketAddr,
) -> [u8; NONCE_LEN] {
    let issued = ms_since(start, now).to_be_bytes();
    let mut m = mac(secret);
    m.update(NONCE_LABEL);
    m.update(&issued);
    m.update(&addr_bytes(addr));
    let tag = m.finalize().into_bytes();
    let mut out = [0u8; NONCE_LEN];
    out[..8].copy_from_slice(&issued);
    out[8..].copy_from_slice(&tag[..NONCE_LEN - 8]);
    out
}

/// Checks a nonce presented from `addr`; returns its issue time (ms since start).
pub(super) fn check(
    secret: &[u8; 32],
    start: Instant,
    now: Instant,
    lifetime: Duration,
    addr: SocketAddr,
    nonce: &[u8; NONCE_LEN],
) -> Result<u64, NonceError> {
    let mut issued = [0u8; 8];
    issued.copy_from_slice(&nonce[..8]);
    let mut m = mac(secret);
    m.update(NONCE_LABEL);
    m.update(&issued);
    m.update(&addr_bytes(addr));
    m.verify_truncated_left(&nonce[8..])
        .map_err(|_| NonceError::Foreign)?;
    let issued = u64::from_be_bytes(issued);
    let now_ms = ms_since(start, now);
    let lifetime_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
    if issued > now_ms || now_ms - issued > lifetime_ms {
        return Err(NonceError::Expired);
    }
    Ok(issued)
}

/// The session token for a registration: unguessable without the secret, distinct per
/// registration.
pub(super) fn session(
    secret: &[u8; 32],
    peer: &PeerId,
    nonce: &[u8; NONCE_LEN],
) -> [u8; SESSION_LEN] {
    let mut m = mac(secret);
    m.update(SESSION_LABEL);
    m.update(peer.as_bytes());
    m.update(nonce);
    let tag = m.finalize().into_bytes();
    let mut out = [0u8; SESSION_LEN];
    out.copy_from_slice(&tag[..SESSION_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_bound_to_address_and_time() {
        let secret = [7; 32];
        let t0 = Instant::now();
        let a: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:1001".parse().unwrap();
        let life = Duration::from_secs(10);
        let n = issue(&secret, t0, t0 + Duration::from_secs(1), a);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(check(&secret, t0, later, life, a, &n), Ok(1000));
        assert_eq!(
            check(&secret, t0, later, life, b, &n),
            Err(NonceError::Foreign)
        );
        assert_eq!(
            check(&[8; 32], t0, later, life, a, &n),
            Err(NonceError::Foreign)
        );
        let too_late = t0 + Duration::from_secs(12);
        assert_eq!(
            check(&secret, t0, too_late, life, a, &n),
            Err(NonceError::Expired)
        );
        let mut forged = n;
        forged[3] ^= 1;
        assert_eq!(
            check(&secret, t0, later, life, a, &forged),
            Err(NonceError::Foreign)
        );
    }
}
