//! Counters kept by the core; the driver exports them as Prometheus metrics.
//!
//! They are plain integers because the core is single-threaded; the driver reads them after
//! each turn of its loop and adds the difference to its metrics, so the metrics stay live.

use supernode_proto::signal::NatBehaviour;

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The first byte is not in the STUN range.
    NotStun,
    /// A STUN header or Binding request that does not parse.
    MalformedStun,
    /// A signalling message that does not parse.
    MalformedSignal,
    /// A STUN method this node does not serve.
    UnsupportedMethod,
    /// The source IP exceeded its rate.
    RateLimitedIp,
    /// Too many source IPs are being tracked to give a new one a bucket.
    IpTableFull,
    /// A peer exceeded its connect-request rate.
    RateLimitedPeer,
    /// A session token that is unknown or used from the wrong address.
    UnknownSession,
    /// A registration with an invalid signature.
    BadSignature,
    /// A registration with an expired or foreign nonce.
    StaleNonce,
    /// A registration that was already used or is older than the current one.
    Replayed,
    /// The peer table is full.
    PeerTableFull,
    /// The attempt table is full.
    AttemptTableFull,
    /// A response to no transaction of ours.
    UnknownTransaction,
    /// A relay announcement with a bad MAC (or no relay secret configured).
    BadRelayMac,
    /// A relay announcement with an old sequence number or a skewed clock.
    RelayReplay,
    /// The relay table is full.
    RelayTableFull,
    /// A message that is valid but makes no sense here (a response class we never expect).
    Unexpected,
    /// The outgoing queue is full.
    QueueFull,
}

impl DropReason {
    /// Every reason, for exporting.
    pub const ALL: [DropReason; 19] = [
        DropReason::NotStun,
        DropReason::MalformedStun,
        DropReason::MalformedSignal,
        DropReason::UnsupportedMethod,
        DropReason::RateLimitedIp,
        DropReason::IpTableFull,
        DropReason::RateLimitedPeer,
        DropReason::UnknownSession,
        DropReason::BadSignature,
        DropReason::StaleNonce,
        DropReason::Replayed,
        DropReason::PeerTableFull,
        DropReason::AttemptTableFull,
        DropReason::UnknownTransaction,
        DropReason::BadRelayMac,
        DropReason::RelayReplay,
        DropReason::RelayTableFull,
        DropReason::Unexpected,
        DropReason::QueueFull,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::NotStun => "not_stun",
            DropReason::MalformedStun => "malformed_stun",
            DropReason::MalformedSignal => "malformed_signal",
            DropReason::UnsupportedMethod => "unsupported_method",
            DropReason::RateLimitedIp => "rate_limited_ip",
            DropReason::IpTableFull => "ip_table_full",
            DropReason::RateLimitedPeer => "rate_limited_peer",
            DropReason::UnknownSession => "unknown_session",
            DropReason::BadSignature => "bad_signature",
            DropReason::StaleNonce => "stale_nonce",
            DropReason::Replayed => "replayed",
            DropReason::PeerTableFull => "peer_table_full",
            DropReason::AttemptTableFull => "attempt_table_full",
            DropReason::UnknownTransaction => "unknown_transaction",
            DropReason::BadRelayMac => "bad_relay_mac",
            DropReason::RelayReplay => "relay_replay",
            DropReason::RelayTableFull => "relay_table_full",
            DropReason::Unexpected => "unexpected",
            DropReason::QueueFull => "queue_full",
        }
    }
}

/// How a connection attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectOutcome {
    /// Both sides were told to punch.
    Punched,
    /// The callee refused.
    Refused,
    /// The callee is not registered.
    UnknownPeer,
    /// The caller was rate-limited.
    RateLimited,
    /// A side stopped answering.
    Timeout,
    /// No room for another attempt, or a malformed request.
    Rejected,
}

impl ConnectOutcome {
    /// Every outcome, for exporting.
    pub const ALL: [ConnectOutcome; 6] = [
        ConnectOutcome::Punched,
        ConnectOutcome::Refused,
        ConnectOutcome::UnknownPeer,
        ConnectOutcome::RateLimited,
        ConnectOutcome::Timeout,
        ConnectOutcome::Rejected,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            ConnectOutcome::Punched => "punched",
            ConnectOutcome::Refused => "refused",
            ConnectOutcome::UnknownPeer => "unknown_peer",
            ConnectOutcome::RateLimited => "rate_limited",
            ConnectOutcome::Timeout => "timeout",
            ConnectOutcome::Rejected => "rejected",
        }
    }
}

/// NAT mapping behaviour seen passively, when one client probes two of our addresses from the
/// same source IP (RFC 5780 §4.3 tests I and II, as any discovery client runs them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingClass {
    /// Same mapped port towards both of our IPs.
    EndpointIndependent,
    /// A different mapped port towards our other IP.
    Dependent,
}

impl MappingClass {
    /// Every class, for exporting.
    pub const ALL: [MappingClass; 2] = [MappingClass::EndpointIndependent, MappingClass::Dependent];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            MappingClass::EndpointIndependent => "endpoint_independent",
            MappingClass::Dependent => "dependent",
        }
    }
}

/// Counters. Monotonic unless noted.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Messages received.
    pub received: u64,
    /// Messages queued for sending.
    pub sent: u64,
    /// Binding requests answered.
    pub bindings: u64,
    /// Binding requests answered from another address (CHANGE-REQUEST).
    pub bindings_changed: u64,
    /// Successful registrations.
    pub registrations: u64,
    /// Peers removed for silence or a closed connection.
    pub expiries: u64,
    /// Punches coordinated (each attempt that reached "punch now").
    pub punches: u64,
    /// Relay announcements accepted.
    pub announcements: u64,
    drops: [u64; DropReason::ALL.len()],
    nat_reports: [[u64; NatBehaviour::ALL.len()]; NatBehaviour::ALL.len()],
    connects: [u64; ConnectOutcome::ALL.len()],
    mappings: [u64; MappingClass::ALL.len()],
}

impl Stats {
    /// Counts a drop.
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Drops for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Counts a finished connection attempt.
    pub fn connect(&mut self, outcome: ConnectOutcome) {
        self.connects[outcome as usize] += 1;
    }

    /// Attempts that ended with `outcome` so far.
    pub fn connects(&self, outcome: ConnectOutcome) -> u64 {
        self.connects[outcome as usize]
    }

    /// Counts a peer's report of its NAT's mapping and filtering behaviour.
    pub fn nat_report(&mut self, mapping: NatBehaviour, filtering: NatBehaviour) {
        self.nat_reports[mapping as usize][filtering as usize] += 1;
    }

    /// Reports of (mapping, filtering) so far.
    pub fn nat_reports(&self, mapping: NatBehaviour, filtering: NatBehaviour) -> u64 {
        self.nat_reports[mapping as usize][filtering as usize]
    }

    /// Counts a mapping observation.
    pub fn mapping(&mut self, class: MappingClass) {
        self.mappings[class as usize] += 1;
    }

    /// Observations of `class` so far.
    pub fn mappings(&self, class: MappingClass) -> u64 {
        self.mappings[class as usize]
    }
}
