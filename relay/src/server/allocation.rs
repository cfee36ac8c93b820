//! One TURN allocation: its relayed address, lifetime, permissions and channels.
//!
//! Permissions and channels are short vectors scanned linearly: an allocation rarely has more
//! than a handful, a scan of a few entries beats hashing on the per-packet path, and the limits
//! [`MAX_PERMISSIONS`] and [`MAX_CHANNELS`] keep the worst case small.

use super::FiveTuple;
use super::limits::TokenBucket;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stun_rs::HMACKey;
use supernode_proto::stun::Integrity;

/// Permissions one allocation may hold.
pub const MAX_PERMISSIONS: usize = 64;
/// Channels one allocation may bind.
pub const MAX_CHANNELS: usize = 64;
/// Permission lifetime (RFC 8656 §9).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime (RFC 8656 §12).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// After a channel expires its number and peer stay reserved this long (RFC 8656 §12).
pub const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);

/// A channel binding.
#[derive(Debug, Clone, Copy)]
pub struct Channel {
    /// The channel number.
    pub number: u16,
    /// The peer it stands for.
    pub peer: SocketAddr,
    /// Usable until then; kept until `expires + CHANNEL_COOLDOWN` so it is not rebound early.
    pub expires: Instant,
}

/// Where an allocation stands.
#[derive(Debug, Clone)]
pub enum State {
    /// Waiting for the driver to open the relay socket; holds what the success response needs.
    Opening(Pending),
    /// The relay socket is open.
    Open,
}

/// The parts of an Allocate request remembered while its socket is opened.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Transaction id of the Allocate.
    pub transaction_id: [u8; 12],
    /// Lifetime granted.
    pub lifetime: Duration,
    /// Whether the request carried FINGERPRINT (then the response does too).
    pub fingerprint: bool,
    /// Whether a plain even port was requested (retries look for another even port).
    pub even_port: bool,
    /// Token of the port reserved next to this one (EVEN-PORT with R set), for the response.
    pub reservation: Option<[u8; 8]>,
    /// True when the port came from a reservation or made one: a failed bind is then final.
    pub pinned: bool,
    /// Ports tried so far.
    pub attempts: u8,
    /// An ADDITIONAL-ADDRESS-FAMILY the relay declined, reported as ADDRESS-ERROR-CODE.
    pub declined_family: Option<stun_rs::AddressFamily>,
}

/// A TURN allocation.
#[derive(Debug)]
pub struct Allocation {
    /// The client's 5-tuple; the allocation's identity on the client side.
    pub five_tuple: FiveTuple,
    /// The local address of the relay socket.
    pub relay: SocketAddr,
    /// The address clients and peers are told (external address with the relay port).
    pub advertised: SocketAddr,
    /// The USERNAME that created it; later requests must use the same (RFC 8656 §6.2).
    pub username: String,
    /// The user its quota is counted against.
    pub user: String,
    /// The long-term key of `username`, to check and sign later requests without re-deriving.
    pub key: HMACKey,
    /// Integrity variant of the creating request.
    pub integrity: Integrity,
    /// When the allocation expires unless refreshed.
    pub expires: Instant,
    /// Peer IPs with their permission expiry.
    pub permissions: Vec<(IpAddr, Instant)>,
    /// Channel bindings, including ones cooling down after expiry.
    pub channels: Vec<Channel>,
    /// Bandwidth bucket when a cap is configured.
    pub bandwidth: Option<TokenBucket>,
    /// The last response sent, by transaction id, to answer retransmissions identically.
    pub last_response: Option<([u8; 12], Vec<u8>)>,
    /// Opening or open.
    pub state: State,
    /// The deadline queued in the server's timer heap for this allocation.
    pub scheduled: Option<Instant>,
}

impl Allocation {
    /// True if data may flow to and from `ip` at `now`.
    pub fn permits(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|&(p, expires)| p == ip && expires > now)
    }

    /// Installs or refreshes a permission. Returns false when the table is full.
    pub fn permit(&mut self, ip: IpAddr, now: Instant) -> bool {
        let expires = now + PERMISSION_LIFETIME;
        if let Some(entry) = self.permissions.iter_mut().find(|(p, _)| *p == ip) {
            entry.1 = expires;
            return true;
        }
        if self.permissions.len() >= MAX_PERMISSIONS {
            return false;
        }
        self.permissions.push((ip, expires));
        true
    }

    /// The active channel with this number.
    pub fn channel(&self, number: u16, now: Instant) -> Option<&Channel> {
        self.channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
    }

    /// The active channel bound to `peer`.
    pub fn channel_for_peer(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
            .map(|c| c.number)
    }

    /// Binds or refreshes a channel (RFC 8656 §11.2). Errors map to 400 (conflict) or 508
    /// (table full).
    pub fn bind_channel(
        &mut self,
        number: u16,
        peer: SocketAddr,
        now: Instant,
    ) -> Result<(), BindError> {
        let expires = now + CHANNEL_LIFETIME;
        for c in &mut self.channels {
            match (c.number == number, c.peer == peer) {
                (true, true) => {
                    c.expires = expires;
                    return Ok(());
                }
                (true, false) | (false, true) => return Err(BindError::Conflict),
                (false, false) => {}
            }
        }
        if self.channels.len() >= MAX_CHANNELS {
            return Err(BindError::Full);
        }
        self.channels.push(Channel {
            number,
            peer,
            expires,
        });
        Ok(())
    }

    /// Drops expired permissions and channels past their cool-down.
    pub fn sweep(&mut self, now: Instant) {
        self.permissions.retain(|&(_, expires)| expires > now);
        self.channels.retain(|c| c.expires + CHANNEL_COOLDOWN > now);
    }

    /// The next instant after `now` at which something in this allocation changes state.
    pub fn next_deadline(&self, now: Instant) -> Instant {
        let perms = self.permissions.iter().map(|&(_, e)| e);
        let chans = self.channels.iter().flat_map(|c| {
            // A channel changes state twice: when it stops being usable and when its
            // cool-down ends.
            [c.expires, c.expires + CHANNEL_COOLDOWN]
        });
        perms
            .chain(chans)
            .filter(|&t| t > now)
            .fold(self.expires, |acc, t| if t < acc { t } else { acc })
    }

    /// Active permissions at `now`.
    pub fn active_permissions(&self, now: Instant) -> usize {
        self.permissions.iter().filter(|&&(_, e)| e > now).count()
    }

    /// Active channels at `now`.
    pub fn active_channels(&self, now: Instant) -> usize {
        self.channels.iter().filter(|c| c.expires > now).count()
    }
}

/// Why a ChannelBind was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    /// The number is bound to another peer, or the peer to another number.
    Conflict,
    /// [`MAX_CHANNELS`] reached.
    Full,
}
