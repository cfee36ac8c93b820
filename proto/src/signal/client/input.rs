//! Datagrams from the rendezvous: responses to our requests, and its own requests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Client, Event, MAX_OFFERS};
use crate::signal::{Class, Envelope, Message, Method};

impl Client {
    /// Handles a datagram; returns false when it is not signalling from our rendezvous (so the
    /// caller can hand it to another consumer of the socket).
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> bool {
        if from != self.server {
            return false;
        }
        let Ok(env) = Envelope::decode(bytes) else {
            return false;
        };
        if Self::is_response(env.class) {
            self.handle_response(now, env);
        } else {
            self.handle_request(now, env);
        }
        true
    }

    fn handle_response(&mut self, now: Instant, env: Envelope) {
        let Some(index) = self
            .pending
            .iter()
            .position(|p| p.tid == env.transaction_id && p.method == env.method)
        else {
            // A late duplicate of a response we already handled.
            return;
        };
        let pending = self.pending.swap_remove(index);
        match env.message {
            Message::Challenge { nonce, observed } => {
                let proof = self.prove(now, nonce, observed);
                let _ = self.send_request(now, proof, None);
            }
            Message::Registered {
                observed,
                session,
                keepalive_secs,
                ..
            } => {
                self.session = Some(session);
                self.observed = Some(observed);
                self.keepalive = Duration::from_secs(u64::from(keepalive_secs.max(1)));
                self.next_keepalive = Some(now + self.keepalive);
                self.push_event(Event::Registered { observed });
            }
            Message::KeepaliveAck { observed } if self.observed != Some(observed) => {
                self.observed = Some(observed);
                self.push_event(Event::MappingChanged { observed });
            }
            Message::ConnectAck { connect_id } => {
                if let Some(target) = pending.target {
                    self.push_event(Event::ConnectSent { target, connect_id });
                }
            }
            Message::Relays {
                username,
                password,
                ttl_secs,
                relays,
            } => self.push_event(Event::Relays {
                username,
                password,
                ttl_secs,
                relays,
            }),
            Message::Error { code } => {
                if code == crate::signal::ErrorCode::NotRegistered
                    && pending.method != Method::Register
                {
                    // The rendezvous forgot us (restart, expiry): register again.
                    self.session = None;
                    self.next_keepalive = None;
                    self.register(now);
                }
                self.push_event(Event::Failed {
                    method: pending.method,
                    target: pending.target,
                    code: Some(code),
                });
            }
            _ => {}
        }
    }

    fn handle_request(&mut self, now: Instant, env: Envelope) {
        debug_assert_eq!(env.class, Class::Request);
        if let Some((_, bytes)) = self
            .answered
            .iter()
            .find(|(tid, _)| *tid == env.transaction_id)
        {
            // A retransmission: our answer was lost. Same answer, no new event.
            let bytes = bytes.clone();
            if self.transmits.len() < super::MAX_QUEUED {
                self.transmits.push_back(bytes);
            }
            return;
        }
        let Some(session) = self.session else {
            return;
        };
        let tid = env.transaction_id;
        let ack = |connect_id| Message::Ack {
            session,
            connect_id,
        };
        match env.message {
            Message::Offer {
                connect_id,
                from,
                candidates,
            } => {
                if self.offers.iter().any(|(_, t)| *t == tid) {
                    return;
                }
                if self.offers.len() >= MAX_OFFERS {
                    self.offers.pop_front();
                }
                self.offers.push_back((connect_id, tid));
                self.push_event(Event::Offer {
                    connect_id,
                    from,
                    candidates,
                });
            }
            Message::Accepted {
                connect_id,
                from,
                candidates,
            } => {
                self.ack(env.method, tid, ack(connect_id));
                self.push_event(Event::Accepted {
                    connect_id,
                    peer: from,
                    candidates,
                });
            }
            Message::Refused {
                connect_id,
                from,
                code,
            } => {
                self.ack(env.method, tid, ack(connect_id));
                self.push_event(Event::Refused {
                    connect_id,
                    peer: from,
                    code,
                });
            }
            Message::Punch {
                connect_id,
                peer,
                delay_ms,
            } => {
                self.ack(env.method, tid, ack(connect_id));
                self.push_event(Event::Punch {
                    connect_id,
                    peer,
                    at: now + Duration::from_millis(u64::from(delay_ms)),
                });
            }
            _ => {}
        }
    }

    fn ack(&mut self, method: Method, tid: crate::signal::TransactionId, message: Message) {
        if let Ok(bytes) = Envelope::response(method, tid, message).encode() {
            self.remember_answer(tid, bytes);
        }
    }
}
