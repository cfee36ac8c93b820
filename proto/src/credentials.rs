//! TURN credentials.
//!
//! Two schemes, both ending in an RFC 8489 long-term credential key:
//!
//! - **TURN REST ephemeral credentials**, as coturn's `static-auth-secret` and the
//!   "REST API for access to TURN services" draft: the username is `<unix-expiry>:<user>` and the
//!   password is `base64(HMAC-SHA1(secret, username))`. Anyone holding the shared secret (the
//!   rendezvous, an application backend) can mint credentials; the relay checks them with no
//!   database.
//! - **Static users** with a configured password.
//!
//! The long-term key is `MD5(username ":" realm ":" SASLprep(password))` (RFC 8489 §9.2.2),
//! computed by the STUN codec so that signing and checking agree byte for byte.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use stun_rs::attributes::stun::{Realm, UserName};
use stun_rs::{Algorithm, AlgorithmId, HMACKey, StunError};

/// Separator between expiry and user in a REST username, as coturn's default.
pub const REST_SEPARATOR: char = ':';

/// A username/password pair a client presents to a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The STUN USERNAME, e.g. `1767225600:alice`.
    pub username: String,
    /// The password from which the long-term key is derived.
    pub password: String,
}

impl Credentials {
    /// Mints REST credentials for `user` that expire at `expiry_unix` (seconds since the epoch).
    pub fn rest(secret: &[u8], user: &str, expiry_unix: u64) -> Self {
        let username = if user.is_empty() {
            expiry_unix.to_string()
        } else {
            format!("{expiry_unix}{REST_SEPARATOR}{user}")
        };
        let password = rest_password(secret, &username);
        Self { username, password }
    }
}

/// `base64(HMAC-SHA1(secret, username))`: the password for a REST username.
pub fn rest_password(secret: &[u8], username: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(rest_hmac(secret, username))
}

fn rest_hmac(secret: &[u8], username: &str) -> [u8; 20] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(username.as_bytes());
    mac.finalize().into_bytes().into()
}

/// A REST username split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestUsername<'a> {
    /// Expiry as seconds since the Unix epoch.
    pub expiry_unix: u64,
    /// The user part; empty when the username is the timestamp alone.
    pub user: &'a str,
}

impl<'a> RestUsername<'a> {
    /// Parses `<expiry>:<user>` or a bare `<expiry>`. Returns `None` when the first part is not a
    /// decimal timestamp.
    pub fn parse(username: &'a str) -> Option<Self> {
        let (ts, user) = match username.split_once(REST_SEPARATOR) {
            Some((ts, user)) => (ts, user),
            None => (username, ""),
        };
        if ts.is_empty() || ts.len() > 20 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            expiry_unix: ts.parse().ok()?,
            user,
        })
    }

    /// True while the credentials are valid at `now_unix`.
    pub fn is_valid_at(&self, now_unix: u64) -> bool {
        self.expiry_unix > now_unix
    }
}

/// Derives the RFC 8489 long-term credential key used for MESSAGE-INTEGRITY and
/// MESSAGE-INTEGRITY-SHA256.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> Result<HMACKey, StunError> {
    let username = UserName::new(username)?;
    let realm = Realm::new(realm)?;
    HMACKey::new_long_term(
        &username,
        &realm,
        password,
        Algorithm::from(AlgorithmId::MD5),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rest_password_matches_coturn_scheme() {
        // Reference value computed independently:
        //   printf '%s' 1700000000:alice | openssl dgst -sha1 -hmac s3cret -binary | base64
        let creds = Credentials::rest(b"s3cret", "alice", 1_700_000_000);
        assert_eq!(creds.username, "1700000000:alice");
        assert_eq!(creds.password, "TtElzSjT0GdnTQ9xdcRNxx96yQs=");
    }

    #[test]
    fn parses_rest_usernames() {
        let parsed = RestUsername::parse("1700000000:alice").unwrap();
        assert_eq!(parsed.expiry_unix, 1_700_000_000);
        assert_eq!(parsed.user, "alice");
        assert!(parsed.is_valid_at(1_699_999_999));
        assert!(!parsed.is_valid_at(1_700_000_000));
        assert_eq!(RestUsername::parse("1700000000").unwrap().user, "");
        assert_eq!(RestUsername::parse("alice:1700000000"), None);
        assert_eq!(RestUsername::parse(""), None);
        assert_eq!(RestUsername::parse(":alice"), None);
        assert_eq!(RestUsername::parse("99999999999999999999999:x"), None);
    }

    #[test]
    fn long_term_key_is_md5_of_triple() {
        // RFC 5769 §2.4 test vector: key = MD5("<U+30DE><U+30C8><U+30EA><U+30C3><U+30AF><U+30B9>:example.org:TheMatrIX")
        let key = long_term_key(
            "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}",
            "example.org",
            "TheMatrIX",
        )
        .unwrap();
        // python3 -c "import hashlib; print(hashlib.md5('\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9:example.org:TheMatrIX'.encode()).hexdigest())"
        let expected = [
            0xe8, 0xca, 0x7a, 0xd5, 0x9d, 0x5e, 0xb0, 0x51, 0x8e, 0x31, 0x29, 0x11, 0xd2, 0xda,
            0xb2, 0xa9,
        ];
        assert_eq!(key.as_bytes(), &expected);
    }

    proptest! {
        #[test]
        fn rest_round_trip(user in "[a-zA-Z0-9_.@-]{0,32}", expiry in 0u64..4_000_000_000, secret in proptest::collection::vec(any::<u8>(), 1..64)) {
            let creds = Credentials::rest(&secret, &user, expiry);
            let parsed = RestUsername::parse(&creds.username).unwrap();
            prop_assert_eq!(parsed.expiry_unix, expiry);
            prop_assert_eq!(parsed.user, user.as_str());
            prop_assert_eq!(rest_password(&secret, &creds.username), creds.password);
        }

        #[test]
        fn parse_never_panics(s in ".{0,64}") {
            let _ = RestUsername::parse(&s);
        }
    }
}
