//! Connection attempts: offer, answer, and the synchronised punch.
//!
//! Each attempt walks `Offering → Accepting → Punching` (or `Refusing`). Every message we send
//! to a peer is a request, retransmitted with exponential backoff until the peer answers. The
//! first transmission of the Offer measures the callee's round-trip time and that of Accepted
//! the caller's (Karn: only unretransmitted ones count). Both Punch messages then leave in the
//! same instant, each with a delay shortened by that side's one-way time, so that both sides
//! start probing together: at `now + max(rtt_a, rtt_b)/2 + margin` on our clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;
use supernode_proto::identity::PeerId;
use supernode_proto::signal::{Candidate, Envelope, ErrorCode, Message, Method, TransactionId};

use super::registry::Route;
use super::{ConnectOutcome, Core, DropReason, Event};

/// First retransmission timeout of our requests to peers.
const RTO: Duration = Duration::from_millis(250);
/// Transmissions of one request before giving up.
const MAX_TRIES: u32 = 6;
/// Round-trip time assumed for a peer never measured.
const DEFAULT_RTT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the callee's answer.
    Offering,
    /// Waiting for the caller to acknowledge the acceptance.
    Accepting,
    /// Waiting for the caller to acknowledge the refusal.
    Refusing,
    /// Punches sent; waiting for both acks.
    Punching,
}

/// One of our requests to a peer.
#[derive(Debug)]
struct Txn {
    tid: TransactionId,
    method: Method,
    to: PeerId,
    message: Message,
    first_sent: Instant,
    next: Instant,
    rto: Duration,
    tries: u32,
    /// For a punch: when the peer should start, on our clock, and its one-way time.
    go: Option<(Instant, Duration)>,
}

#[derive(Debug)]
struct Attempt {
    caller: PeerId,
    callee: PeerId,
    stage: Stage,
    /// Overall deadline of the current stage.
    deadline: Instant,
    txns: Vec<Txn>,
}

/// Attempts in progress, bounded.
#[derive(Debug)]
pub(super) struct Attempts {
    map: HashMap<u64, Attempt>,
    by_tid: HashMap<TransactionId, u64>,
    next_id: u64,
    max: usize,
    rng: rand::rngs::StdRng,
    /// Earliest timer, recomputed only after a change: the driver asks after every datagram,
    /// and most datagrams (Binding) never touch attempts.
    next: std::cell::Cell<Option<Option<Instant>>>,
}

impl Attempts {
    /// `seed` keys the transaction-id generator: ids must be unpredictable off-path.
    pub(super) fn new(max: usize, seed: [u8; 32]) -> Self {
        Self {
            map: HashMap::new(),
            by_tid: HashMap::new(),
            next_id: 1,
            max,
            rng: rand::SeedableRng::from_seed(seed),
            next: std::cell::Cell::new(None),
        }
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        if let Some(next) = self.next.get() {
            return next;
        }
        let next = self
            .map
            .values()
            .flat_map(|a| a.txns.iter().map(|t| t.next).chain([a.deadline]))
            .min();
        self.next.set(Some(next));
        next
    }

    /// Marks the cached timer stale; every mutation goes through a `Core` method that calls it.
    fn changed(&self) {
        self.next.set(None);
    }

    /// Attempts and outstanding transactions, for tests that check nothing is left behind.
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> (usize, usize) {
        (self.map.len(), self.by_tid.len())
    }

    fn remove(&mut self, id: u64) -> Option<Attempt> {
        self.changed();
        let attempt = self.map.remove(&id)?;
        for t in &attempt.txns {
            self.by_tid.remove(&t.tid);
        }
        Some(attempt)
    }
}

impl Core {
    /// Creates an attempt and offers it to the callee; `None` when the table is full.
    pub(super) fn start_attempt(
        &mut self,
        now: Instant,
        caller: PeerId,
        callee: PeerId,
        candidates: Vec<Candidate>,
    ) -> Option<u64> {
        self.attempts.changed();
        if self.attempts.map.len() >= self.attempts.max {
            return None;
        }
        let id = self.attempts.next_id;
        self.attempts.next_id += 1;
        self.attempts.map.insert(
            id,
            Attempt {
                caller,
                callee,
                stage: Stage::Offering,
                deadline: now + self.config.answer_timeout,
                txns: Vec::new(),
            },
        );
        let offer = Message::Offer {
            connect_id: id,
            from: caller,
            candidates,
        };
        self.request(now, id, callee, offer, None);
        Some(id)
    }

    /// Sends a new request to `to` as part of attempt `id`.
    fn request(
        &mut self,
        now: Instant,
        id: u64,
        to: PeerId,
        m: Message,
        go: Option<(Instant, Duration)>,
    ) {
        self.attempts.changed();
        let tid: TransactionId = self.attempts.rng.random();
        let Some(method) = m.method_class().map(|(method, _)| method) else {
            return;
        };
        let txn = Txn {
            tid,
            method,
            to,
            message: m,
            first_sent: now,
            next: now + RTO,
            rto: RTO,
            tries: 1,
            go,
        };
        self.transmit(&txn);
        if let Some(a) = self.attempts.map.get_mut(&id) {
            a.txns.push(txn);
            self.attempts.by_tid.insert(tid, id);
        }
    }

    fn transmit(&mut self, txn: &Txn) {
        let Some(route) = self.registry.get(&txn.to).map(|p| p.route) else {
            return;
        };
        if let Some(bytes) =
            Envelope::request(txn.tid, txn.message.clone()).and_then(|e| e.encode().ok())
        {
            self.send(route.0, route.1, bytes);
        }
    }

    /// A success or error response from a peer to one of our requests.
    pub(super) fn handle_peer_response(&mut self, now: Instant, route: Route, env: Envelope) {
        self.attempts.changed();
        let Some(&id) = self.attempts.by_tid.get(&env.transaction_id) else {
            self.stats.drop(DropReason::UnknownTransaction);
            return;
        };
        let session = match &env.message {
            Message::Answer { session, .. } | Message::Ack { session, .. } => *session,
            _ => {
                self.stats.drop(DropReason::Unexpected);
                return;
            }
        };
        let Some(peer) = self.registry.authenticate(now, &session, route) else {
            self.stats.drop(DropReason::UnknownSession);
            return;
        };
        let Some(attempt) = self.attempts.map.get_mut(&id) else {
            return;
        };
        let Some(index) = attempt
            .txns
            .iter()
            .position(|t| t.tid == env.transaction_id && t.to == peer && t.method == env.method)
        else {
            self.stats.drop(DropReason::UnknownTransaction);
            return;
        };
        let txn = attempt.txns.swap_remove(index);
        self.attempts.by_tid.remove(&txn.tid);
        if txn.tries == 1 {
            let sample = now.saturating_duration_since(txn.first_sent);
            if let Some(p) = self.registry.get_mut(&peer) {
                p.rtt = Some(match p.rtt {
                    Some(old) => (old * 7 + sample) / 8,
                    None => sample,
                });
            }
        }
        let (caller, callee, stage) = (attempt.caller, attempt.callee, attempt.stage);
        match (stage, env.message) {
            (
                Stage::Offering,
                Message::Answer {
                    accept, candidates, ..
                },
            ) => {
                let (next, m) = if accept {
                    let m = Message::Accepted {
                        connect_id: id,
                        from: callee,
                        candidates,
                    };
                    (Stage::Accepting, m)
                } else {
                    self.finish(caller, callee, ConnectOutcome::Refused);
                    let m = Message::Refused {
                        connect_id: id,
                        from: callee,
                        code: ErrorCode::Refused,
                    };
                    (Stage::Refusing, m)
                };
                if let Some(a) = self.attempts.map.get_mut(&id) {
                    a.stage = next;
                    a.deadline = now + self.config.answer_timeout;
                }
                self.request(now, id, caller, m, None);
            }
            (Stage::Accepting, Message::Ack { .. }) => self.punch(now, id, caller, callee),
            (Stage::Refusing, Message::Ack { .. }) => {
                self.attempts.remove(id);
            }
            (Stage::Punching, Message::Ack { .. }) => {
                if self
                    .attempts
                    .map
                    .get(&id)
                    .is_some_and(|a| a.txns.is_empty())
                {
                    self.attempts.remove(id);
                }
            }
            _ => self.stats.drop(DropReason::Unexpected),
        }
    }

    /// Sends both punches at once.
    fn punch(&mut self, now: Instant, id: u64, caller: PeerId, callee: PeerId) {
        let one_way = |core: &Self, p: &PeerId| {
            core.registry
                .get(p)
                .and_then(|p| p.rtt)
                .unwrap_or(DEFAULT_RTT)
                / 2
        };
        let (ow_a, ow_b) = (one_way(self, &caller), one_way(self, &callee));
        let go_at = now + ow_a.max(ow_b) + self.config.punch_margin;
        if let Some(a) = self.attempts.map.get_mut(&id) {
            a.stage = Stage::Punching;
            a.deadline = go_at + self.config.answer_timeout;
        }
        self.stats.punches += 1;
        self.finish(caller, callee, ConnectOutcome::Punched);
        for (to, peer, ow) in [(caller, callee, ow_a), (callee, caller, ow_b)] {
            let delay = go_at.saturating_duration_since(now + ow);
            let m = Message::Punch {
                connect_id: id,
                peer,
                delay_ms: u16::try_from(delay.as_millis()).unwrap_or(u16::MAX),
            };
            self.request(now, id, to, m, Some((go_at, ow)));
        }
    }

    fn finish(&mut self, caller: PeerId, callee: PeerId, outcome: ConnectOutcome) {
        self.stats.connect(outcome);
        self.push_event(Event::Connect {
            caller,
            callee,
            outcome,
        });
    }

    /// Retransmits due requests and ends attempts whose stage timed out.
    pub(super) fn drive_attempts(&mut self, now: Instant) {
        if self.attempts.next_timeout().is_none_or(|t| now < t) {
            return;
        }
        self.attempts.changed();
        let due: Vec<u64> = self
            .attempts
            .map
            .iter()
            .filter(|(_, a)| now >= a.deadline || a.txns.iter().any(|t| now >= t.next))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(mut attempt) = self.attempts.map.remove(&id) else {
                continue;
            };
            let mut keep = Vec::with_capacity(attempt.txns.len());
            for mut txn in std::mem::take(&mut attempt.txns) {
                if now < txn.next {
                    keep.push(txn);
                    continue;
                }
                if txn.tries >= MAX_TRIES {
                    self.attempts.by_tid.remove(&txn.tid);
                    continue;
                }
                if let Some((go_at, ow)) = txn.go {
                    // A late punch must still make its peer start at the common instant.
                    let Some(delay) = go_at.checked_duration_since(now + ow) else {
                        self.attempts.by_tid.remove(&txn.tid);
                        continue;
                    };
                    if let Message::Punch { delay_ms, .. } = &mut txn.message {
                        *delay_ms = u16::try_from(delay.as_millis()).unwrap_or(u16::MAX);
                    }
                }
                txn.tries += 1;
                txn.rto *= 2;
                txn.next = now + txn.rto;
                self.transmit(&txn);
                keep.push(txn);
            }
            attempt.txns = keep;
            let stalled = attempt.txns.is_empty() || now >= attempt.deadline;
            if !stalled {
                self.attempts.map.insert(id, attempt);
                continue;
            }
            for t in &attempt.txns {
                self.attempts.by_tid.remove(&t.tid);
            }
            match attempt.stage {
                Stage::Offering => {
                    // The callee never answered: tell the caller, explicitly.
                    self.finish(attempt.caller, attempt.callee, ConnectOutcome::Timeout);
                    let m = Message::Refused {
                        connect_id: id,
                        from: attempt.callee,
                        code: ErrorCode::Timeout,
                    };
                    attempt.stage = Stage::Refusing;
                    attempt.deadline = now + self.config.answer_timeout;
                    attempt.txns.clear();
                    let caller = attempt.caller;
                    self.attempts.map.insert(id, attempt);
                    self.request(now, id, caller, m, None);
                }
                Stage::Accepting => {
                    self.finish(attempt.caller, attempt.callee, ConnectOutcome::Timeout);
                }
                Stage::Refusing | Stage::Punching => {}
            }
        }
    }
}
