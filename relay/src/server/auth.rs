//! Long-term credential authentication (RFC 8489 §9.2) with stateless nonces.
//!
//! Nonces are `<8 hex digits of unix time><16 hex digits of HMAC(key, time ‖ client ip)>`: the
//! relay can check any nonce it issued, for any client, without remembering it. A flood of
//! unauthenticated Allocates therefore costs no memory, and a nonce stolen from one client's
//! address is useless from another's.
//!
//! Keys come from TURN REST shared secrets (several at once, for rotation) or static users.

use super::stats::AuthFailure;
use foldhash::HashMap;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::net::IpAddr;
use stun_rs::HMACKey;
use stun_rs::StunMessage;
use stun_rs::attributes::stun::{Nonce, Realm, UserName};
use supernode_proto::credentials::{RestUsername, long_term_key, rest_password};
use supernode_proto::stun::{Integrity, check_integrity};

/// Length of a nonce this relay issues.
const NONCE_LEN: usize = 24;

/// Derived keys remembered, by username. Deriving one costs a SASLprep pass and an MD5 per
/// secret; clients reuse their credentials for several requests and allocations.
pub const MAX_CACHED_KEYS: usize = 4096;

/// Secrets and users the relay accepts.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The REALM sent in challenges and required in requests.
    realm: String,
    /// TURN REST shared secrets; any of them may have signed a username.
    rest_secrets: Vec<Vec<u8>>,
    /// Static users and their passwords.
    users: HashMap<String, String>,
    /// Key of the nonce HMAC; random per process.
    nonce_key: [u8; 32],
    /// How long a nonce stays fresh.
    nonce_lifetime_secs: u64,
    /// Keys that verified a request before: username → (quota user, key). Only a key that
    /// checked out enters, so unauthenticated traffic cannot fill it; it is cleared when full.
    cache: HashMap<String, (String, HMACKey)>,
}

/// A request that authenticated.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The USERNAME as sent.
    pub username: String,
    /// The user quotas are counted against (the REST user part, or the static user).
    pub user: String,
    /// The long-term key, to sign responses.
    pub key: HMACKey,
    /// Which integrity attribute the request used; responses use the same.
    pub integrity: Integrity,
}

/// Why a request did not authenticate, and what to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Answer 401 with REALM and a fresh NONCE.
    Unauthorized(AuthFailure),
    /// Answer 438 with REALM and a fresh NONCE.
    StaleNonce,
    /// Answer 400: integrity present but USERNAME, REALM or NONCE missing.
    BadRequest,
}

impl Auth {
    /// Builds the authenticator.
    pub fn new(
        realm: String,
        rest_secrets: Vec<Vec<u8>>,
        users: HashMap<String, String>,
        nonce_key: [u8; 32],
        nonce_lifetime_secs: u64,
    ) -> Self {
        Self {
            realm,
            rest_secrets,
            users,
            nonce_key,
            nonce_lifetime_secs,
            cache: HashMap::default(),
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A nonce for `client` issued at `unix_now`.
    pub fn nonce(&self, client: IpAddr, unix_now: u64) -> String {
        let ts = unix_now as u32;
        format!("{ts:08x}{:016x}", self.nonce_mac(ts, client))
    }

    fn nonce_mac(&self, ts: u32, client: IpAddr) -> u64 {
        let mut mac = match Hmac::<Sha1>::new_from_slice(&self.nonce_key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(&ts.to_be_bytes());
        match client {
            IpAddr::V4(ip) => mac.update(&ip.octets()),
            IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        let out = mac.finalize().into_bytes();
        u64::from_be_bytes([
            out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7],
        ])
    }

    /// True if `nonce` was issued by this relay to `client` and is still fresh.
    pub fn nonce_is_fresh(&self, nonce: &str, client: IpAddr, unix_now: u64) -> bool {
        if nonce.len() != NONCE_LEN || !nonce.is_ascii() {
            return false;
        }
        let (Ok(ts), Ok(mac)) = (
            u32::from_str_radix(&nonce[..8], 16),
            u64::from_str_radix(&nonce[8..], 16),
        ) else {
            return false;
        };
        if mac != self.nonce_mac(ts, client) {
            return false;
        }
        // Timestamps are 32-bit seconds; compare modulo 2^32 so the scheme survives 2106.
        let age = (unix_now as u32).wrapping_sub(ts);
        u64::from(age) < self.nonce_lifetime_secs
    }

    /// Authenticates a request (RFC 8489 §9.2.4).
    ///
    /// `raw` is the request's bytes and `msg` its decoding; `client` the source address.
    pub fn authenticate(
        &mut self,
        raw: &[u8],
        msg: &StunMessage,
        client: IpAddr,
        unix_now: u64,
    ) -> Result<Authenticated, Rejection> {
        let has_integrity = msg
            .get::<stun_rs::attributes::stun::MessageIntegrity>()
            .is_some()
            || msg
                .get::<stun_rs::attributes::stun::MessageIntegritySha256>()
                .is_some();
        if !has_integrity {
            return Err(Rejection::Unauthorized(AuthFailure::MissingCredentials));
        }
        let username = msg.get::<UserName>().and_then(|a| a.as_user_name().ok());
        let realm = msg.get::<Realm>().and_then(|a| a.as_realm().ok());
        let nonce = msg.get::<Nonce>().and_then(|a| a.as_nonce().ok());
        let (Some(username), Some(realm), Some(nonce)) = (username, realm, nonce) else {
            return Err(Rejection::BadRequest);
        };
        if !self.nonce_is_fresh(nonce.as_str(), client, unix_now) {
            return Err(Rejection::StaleNonce);
        }
        if realm.as_str() != self.realm {
            return Err(Rejection::Unauthorized(AuthFailure::WrongRealm));
        }
        let username = username.as_str();
        // Expiry is checked on every request, cached key or not.
        let candidates = self.candidate_passwords(username, unix_now)?;
        if let Some((user, key)) = self.cache.get(username) {
            if let Ok(integrity) = check_integrity(raw, msg, key) {
                return Ok(Authenticated {
                    username: username.to_owned(),
                    user: user.clone(),
                    key: key.clone(),
                    integrity,
                });
            }
        }
        for (user, password) in candidates {
            let key = long_term_key(username, &self.realm, &password)
                .map_err(|_| Rejection::Unauthorized(AuthFailure::UnknownUser))?;
            if let Ok(integrity) = check_integrity(raw, msg, &key) {
                if self.cache.len() >= MAX_CACHED_KEYS {
                    self.cache.clear();
                }
                self.cache
                    .insert(username.to_owned(), (user.clone(), key.clone()));
                return Ok(Authenticated {
                    username: username.to_owned(),
                    user,
                    key,
                    integrity,
                });
            }
        }
        Err(Rejection::Unauthorized(AuthFailure::BadIntegrity))
    }

    /// The (quota user, password) pairs that could have signed a request from `username`.
    fn candidate_passwords(
        &self,
        username: &str,
        unix_now: u64,
    ) -> Result<Vec<(String, String)>, Rejection> {
        if let Some(password) = self.users.get(username) {
            return Ok(vec![(username.to_owned(), password.clone())]);
        }
        if self.rest_secrets.is_empty() {
            return Err(Rejection::Unauthorized(AuthFailure::UnknownUser));
        }
        let rest = RestUsername::parse(username)
            .ok_or(Rejection::Unauthorized(AuthFailure::UnknownUser))?;
        if !rest.is_valid_at(unix_now) {
            return Err(Rejection::Unauthorized(AuthFailure::Expired));
        }
        let user = if rest.user.is_empty() {
            username.to_owned()
        } else {
            rest.user.to_owned()
        };
        Ok(self
            .rest_secrets
            .iter()
            .map(|secret| (user.clone(), rest_password(secret, username)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            "example.org".into(),
            vec![],
            HashMap::default(),
            [7; 32],
            600,
        )
    }

    #[test]
    fn nonces_bind_time_and_address() {
        let a = auth();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let n = a.nonce(ip, 1_000_000);
        assert_eq!(n.len(), NONCE_LEN);
        assert!(a.nonce_is_fresh(&n, ip, 1_000_000));
        assert!(a.nonce_is_fresh(&n, ip, 1_000_599));
        assert!(!a.nonce_is_fresh(&n, ip, 1_000_600));
        assert!(!a.nonce_is_fresh(&n, other, 1_000_000));
        let mut forged = n.clone();
        forged.replace_range(23.., if n.ends_with('0') { "1" } else { "0" });
        assert!(!a.nonce_is_fresh(&forged, ip, 1_000_000));
        assert!(!a.nonce_is_fresh("short", ip, 1_000_000));
        assert!(!a.nonce_is_fresh("zzzzzzzzzzzzzzzzzzzzzzzz", ip, 1_000_000));
        assert!(!a.nonce_is_fresh("ééééééééééää", ip, 1_000_000));
    }
}
