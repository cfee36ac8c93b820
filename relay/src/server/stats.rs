//! Counters the core keeps as plain integers.
//!
//! The core never touches Prometheus: it counts into these arrays, and the driver copies the
//! deltas into its metrics registry (metrics are emitted at the edges). Every counter is indexed
//! by a small enum so that adding a reason is one line and label values stay in one place.

/// Defines a counter-label enum with its `ALL` list and Prometheus label values.
macro_rules! labels {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every variant, in index order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The Prometheus label value.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }
    };
}

labels! {
    /// Outcome of an Allocate request that reached the allocation logic or failed auth.
    AllocResult {
        /// Allocation created.
        Ok => "ok",
        /// Missing or wrong credentials (401).
        Unauthorized => "unauthorized",
        /// Nonce expired or forged (438).
        StaleNonce => "stale_nonce",
        /// Per-user or total quota reached (486).
        Quota => "quota",
        /// An allocation already exists on this 5-tuple (437).
        Mismatch => "mismatch",
        /// Malformed or unsupported request (400, 420, 440, 442).
        BadRequest => "bad_request",
        /// No relay port or socket available (508).
        Capacity => "capacity",
    }
}

labels! {
    /// Why a request failed authentication.
    AuthFailure {
        /// No MESSAGE-INTEGRITY / USERNAME (the normal first step of the handshake).
        MissingCredentials => "missing_credentials",
        /// The user is unknown, or the REST username is not `<expiry>:<user>`.
        UnknownUser => "unknown_user",
        /// The REST credentials have expired.
        Expired => "expired",
        /// MESSAGE-INTEGRITY does not match.
        BadIntegrity => "bad_integrity",
        /// The nonce is stale or was not issued by this relay.
        StaleNonce => "stale_nonce",
        /// The realm differs from ours.
        WrongRealm => "wrong_realm",
        /// A different user than the one owning the allocation (441).
        WrongCredentials => "wrong_credentials",
    }
}

labels! {
    /// Why an incoming packet was dropped without an answer.
    Drop {
        /// Not STUN, not ChannelData, or a STUN message that does not decode.
        Malformed => "malformed",
        /// FINGERPRINT present and wrong.
        BadFingerprint => "bad_fingerprint",
        /// Larger than the relay accepts.
        Oversize => "oversize",
        /// Data or indication on a 5-tuple with no allocation.
        NoAllocation => "no_allocation",
        /// Data to or from a peer without a permission.
        NoPermission => "no_permission",
        /// ChannelData on an unbound or expired channel.
        NoChannel => "no_channel",
        /// Send indication to a forbidden peer address.
        ForbiddenPeer => "forbidden_peer",
        /// Allocation over its bandwidth cap.
        Bandwidth => "bandwidth",
        /// Per-source rate limit for unauthenticated requests.
        RateLimited => "rate_limited",
        /// An outgoing queue was full.
        QueueFull => "queue_full",
        /// A STUN response or unexpected message class arrived at the server.
        Unexpected => "unexpected",
    }
}

labels! {
    /// Why a request was refused because of a quota.
    QuotaKind {
        /// Per-user allocation quota.
        User => "user",
        /// Total allocation quota.
        Total => "total",
        /// Permissions or channels per allocation.
        PerAllocation => "per_allocation",
    }
}

labels! {
    /// Direction of relayed traffic.
    Direction {
        /// From a TURN client to a peer.
        ClientToPeer => "client_to_peer",
        /// From a peer to a TURN client.
        PeerToClient => "peer_to_client",
    }
}

/// Everything the core counts. Counters only grow; gauges are read from the core's tables.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Allocate outcomes, indexed by [`AllocResult`].
    pub allocations: [u64; 7],
    /// Authentication failures, indexed by [`AuthFailure`].
    pub auth_failures: [u64; 7],
    /// Drops, indexed by [`Drop`].
    pub drops: [u64; 11],
    /// Quota refusals, indexed by [`QuotaKind`].
    pub quota: [u64; 3],
    /// Packets relayed, indexed by [`Direction`].
    pub packets: [u64; 2],
    /// Payload bytes relayed, indexed by [`Direction`].
    pub bytes: [u64; 2],
    /// Allocations that ended by expiry, refresh-to-zero or transport close.
    pub allocations_closed: u64,
    /// STUN Binding requests answered.
    pub binding_requests: u64,
}

impl Stats {
    pub(crate) fn alloc(&mut self, r: AllocResult) {
        self.allocations[r as usize] += 1;
    }
    pub(crate) fn auth_failure(&mut self, r: AuthFailure) {
        self.auth_failures[r as usize] += 1;
    }
    pub(crate) fn drop(&mut self, r: Drop) {
        self.drops[r as usize] += 1;
    }
    pub(crate) fn quota(&mut self, r: QuotaKind) {
        self.quota[r as usize] += 1;
    }
    pub(crate) fn relayed(&mut self, d: Direction, bytes: usize) {
        self.packets[d as usize] += 1;
        self.bytes[d as usize] += bytes as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_fit_their_enums() {
        let s = Stats::default();
        assert_eq!(s.allocations.len(), AllocResult::ALL.len());
        assert_eq!(s.auth_failures.len(), AuthFailure::ALL.len());
        assert_eq!(s.drops.len(), Drop::ALL.len());
        assert_eq!(s.quota.len(), QuotaKind::ALL.len());
        assert_eq!(s.packets.len(), Direction::ALL.len());
    }
}
