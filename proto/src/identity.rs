//! Peer identity: an ed25519 key pair, and the peer id derived from it.
//!
//! A peer *is* its public key. The [`PeerId`] is the 32-byte ed25519 public key, printed as
//! lowercase RFC 4648 base32 without padding (52 characters, `[a-z2-7]`), which survives
//! copy-paste, URLs, DNS labels and case-insensitive filesystems. Parsing accepts upper or lower
//! case.
//!
//! # Key file format
//!
//! A secret key is stored as a text file holding the 32-byte ed25519 secret seed as 64 lowercase
//! hex digits, optionally followed by a newline; nothing else. Tools that write it must create
//! it with mode 0600. [`Keypair::to_file_string`] and [`Keypair::from_file_string`] produce and
//! read that format; reading and writing the file itself is the caller's job, which keeps this
//! module free of I/O.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Length of a peer id in bytes (an ed25519 public key).
pub const PEER_ID_LEN: usize = 32;

/// Length of a signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// Length of a peer id in its printed form.
pub const PEER_ID_TEXT_LEN: usize = 52;

/// Why a peer id or key file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not 52 base32 characters.
    #[error("peer id must be {PEER_ID_TEXT_LEN} base32 characters")]
    BadPeerIdText,
    /// The bytes are not a valid ed25519 public key.
    #[error("peer id is not a valid ed25519 public key")]
    BadPublicKey,
    /// The key file does not hold exactly 64 hex digits.
    #[error("key file must hold a 32-byte secret seed as 64 hex digits")]
    BadKeyFile,
}

/// A peer's identity: its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; PEER_ID_LEN]);

impl PeerId {
    /// Wraps 32 bytes as a peer id, checking that they are a valid ed25519 public key.
    pub fn from_bytes(bytes: [u8; PEER_ID_LEN]) -> Result<Self, Error> {
        VerifyingKey::from_bytes(&bytes).map_err(|_| Error::BadPublicKey)?;
        Ok(Self(bytes))
    }

    /// The raw public key bytes.
    pub fn as_bytes(&self) -> &[u8; PEER_ID_LEN] {
        &self.0
    }

    /// Checks that `signature` is this peer's signature over `message`.
    ///
    /// Uses strict verification so that a signature has exactly one valid encoding and cannot be
    /// malleated into a second "fresh" message.
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let signature = Signature::from_bytes(signature);
        key.verify_strict(message, &signature).is_ok()
    }
}

fn base32() -> data_encoding::Encoding {
    let mut spec = data_encoding::Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    spec.translate.from.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    spec.translate.to.push_str("abcdefghijklmnopqrstuvwxyz");
    match spec.encoding() {
        Ok(encoding) => encoding,
        // The specification above is a constant; a failure here is a programming error that
        // every test run would catch.
        Err(e) => unreachable!("constant base32 specification is valid: {e}"),
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32().encode(&self.0))
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s.len() != PEER_ID_TEXT_LEN {
            return Err(Error::BadPeerIdText);
        }
        let bytes = base32()
            .decode(s.as_bytes())
            .map_err(|_| Error::BadPeerIdText)?;
        let bytes: [u8; PEER_ID_LEN] = bytes.try_into().map_err(|_| Error::BadPeerIdText)?;
        Self::from_bytes(bytes)
    }
}

/// A peer's secret key and its public identity.
#[derive(Clone)]
pub struct Keypair {
    secret: SigningKey,
}

impl Keypair {
    /// Generates a new key pair from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut seed);
        Self::from_seed(seed)
    }

    /// Rebuilds a key pair from its 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            secret: SigningKey::from_bytes(&seed),
        }
    }

    /// The public identity.
    pub fn peer_id(&self) -> PeerId {
        PeerId(self.secret.verifying_key().to_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.secret.sign(message).to_bytes()
    }

    /// The key file contents: the secret seed as 64 lowercase hex digits and a newline.
    pub fn to_file_string(&self) -> String {
        let mut s = data_encoding::HEXLOWER.encode(self.secret.as_bytes());
        s.push('\n');
        s
    }

    /// Parses key file contents written by [`Keypair::to_file_string`]; surrounding whitespace
    /// is ignored and upper-case hex is accepted.
    pub fn from_file_string(text: &str) -> Result<Self, Error> {
        let hex = text.trim().to_ascii_lowercase();
        let bytes = data_encoding::HEXLOWER
            .decode(hex.as_bytes())
            .map_err(|_| Error::BadKeyFile)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| Error::BadKeyFile)?;
        Ok(Self::from_seed(seed))
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("Keypair")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn peer_id_text_round_trip() {
        let key = Keypair::from_seed([7; 32]);
        let id = key.peer_id();
        let text = id.to_string();
        assert_eq!(text.len(), PEER_ID_TEXT_LEN);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        );
        assert_eq!(text.parse::<PeerId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<PeerId>().unwrap(), id);
        assert_eq!("abc".parse::<PeerId>(), Err(Error::BadPeerIdText));
        let mut bad = text.clone();
        bad.replace_range(0..1, "1");
        assert_eq!(bad.parse::<PeerId>(), Err(Error::BadPeerIdText));
    }

    #[test]
    fn key_file_round_trip() {
        let key = Keypair::generate();
        let text = key.to_file_string();
        assert_eq!(text.len(), 65);
        let back = Keypair::from_file_string(&text).unwrap();
        assert_eq!(back.peer_id(), key.peer_id());
        assert_eq!(
            Keypair::from_file_string("00ff").unwrap_err(),
            Error::BadKeyFile
        );
        assert_eq!(
            Keypair::from_file_string(&"zz".repeat(32)).unwrap_err(),
            Error::BadKeyFile
        );
    }

    #[test]
    fn signatures_bind_key_and_message() {
        let a = Keypair::from_seed([1; 32]);
        let b = Keypair::from_seed([2; 32]);
        let sig = a.sign(b"hello");
        assert!(a.peer_id().verify(b"hello", &sig));
        assert!(!a.peer_id().verify(b"hellp", &sig));
        assert!(!b.peer_id().verify(b"hello", &sig));
        let mut forged = sig;
        forged[10] ^= 1;
        assert!(!a.peer_id().verify(b"hello", &forged));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,80}") {
            let _ = s.parse::<PeerId>();
            let _ = Keypair::from_file_string(&s);
        }

        #[test]
        fn every_seed_round_trips(seed in any::<[u8; 32]>()) {
            let id = Keypair::from_seed(seed).peer_id();
            prop_assert_eq!(id.to_string().parse::<PeerId>().unwrap(), id);
        }
    }
}
