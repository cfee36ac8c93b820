//! What a registering peer signs.
//!
//! Registration is a two-round-trip challenge–response on the peer's data socket:
//!
//! 1. The peer sends `Register{peer, proof: None}`.
//! 2. The rendezvous answers `Challenge{nonce, observed}`. The nonce is stateless: the issue time
//!    and a MAC over (issue time, observed address) under a server secret, so a flood of first
//!    messages fills no table. It expires after a few seconds.
//! 3. The peer signs [`signed_data`] — a domain-separation label, its id, the nonce, the observed
//!    address and its clock — with its ed25519 key and sends `Register{peer, proof}`.
//! 4. The rendezvous checks the nonce's MAC and age, that it was issued to the address the proof
//!    comes from, the signature, and that the nonce is newer than the one behind the peer's
//!    current registration (so an old proof cannot be replayed, even from the same address).
//!
//! Nobody without the secret key can produce the signature, so nobody can register as another
//! peer's id, and connections for that id go only to the address that proved possession.

use std::net::SocketAddr;

use super::codec::Writer;
use super::message::{NONCE_LEN, Proof};
use crate::identity::{Keypair, PeerId};

/// Domain-separation label: a signature made for registration is useless anywhere else.
pub const LABEL: &[u8] = b"supernode/register/v1";

/// The bytes a peer signs to prove it holds the key for `peer`.
pub fn signed_data(
    peer: &PeerId,
    nonce: &[u8; NONCE_LEN],
    observed: SocketAddr,
    timestamp_ms: u64,
) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(LABEL);
    w.bytes(peer.as_bytes());
    w.bytes(nonce);
    w.addr(observed);
    w.u64(timestamp_ms);
    w.buf
}

/// Builds the proof answering a challenge.
pub fn prove(
    key: &Keypair,
    nonce: [u8; NONCE_LEN],
    observed: SocketAddr,
    timestamp_ms: u64,
) -> Proof {
    let data = signed_data(&key.peer_id(), &nonce, observed, timestamp_ms);
    Proof {
        nonce,
        timestamp_ms,
        signature: key.sign(&data),
    }
}

/// Checks a proof's signature for `peer` and the address it claims to come from. Nonce freshness
/// is the verifier's business: only it can check its own MAC.
pub fn verify(peer: &PeerId, proof: &Proof, observed: SocketAddr) -> bool {
    let data = signed_data(peer, &proof.nonce, observed, proof.timestamp_ms);
    peer.verify(&data, &proof.signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_binds_peer_nonce_and_address() {
        let key = Keypair::from_seed([1; 32]);
        let other = Keypair::from_seed([2; 32]);
        let addr: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let proof = prove(&key, [7; NONCE_LEN], addr, 42);
        assert!(verify(&key.peer_id(), &proof, addr));
        assert!(!verify(&other.peer_id(), &proof, addr));
        assert!(!verify(
            &key.peer_id(),
            &proof,
            "192.0.2.1:5001".parse().unwrap()
        ));
        let mut tampered = proof;
        tampered.nonce[0] ^= 1;
        assert!(!verify(&key.peer_id(), &tampered, addr));
        let mut tampered = proof;
        tampered.timestamp_ms += 1;
        assert!(!verify(&key.peer_id(), &tampered, addr));
    }
}
