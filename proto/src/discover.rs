//! An RFC 5780 NAT behaviour discovery client, sans-IO.
//!
//! [`Classifier`] runs the tests of RFC 5780 §4.3 (mapping) and §4.4 (filtering) one after the
//! other from a single local socket and produces a [`Report`]:
//!
//! - Test I: Binding to the server's primary address → mapped address M1 and OTHER-ADDRESS.
//! - Filtering tests (run before the mapping tests, whose traffic to the server's other
//!   addresses would open the NAT's filter): see below.
//! - Mapping test II: Binding to the alternate IP, primary port → M2. M2 = M1: endpoint-
//!   independent mapping. Mapping test III: Binding to the alternate IP and port → M3. M3 = M2:
//!   address-dependent, else address-and-port-dependent.
//! - Filtering test II: CHANGE-REQUEST(IP and port). An answer means endpoint-independent
//!   filtering. Filtering test III: CHANGE-REQUEST(port). An answer means address-dependent,
//!   silence address-and-port-dependent.
//!
//! With a single-IP server (OTHER-ADDRESS has the primary IP) the tests that need a second IP
//! are replaced by port-only variants, and the report says which distinctions it could not make
//! ([`Behaviour::EndpointIndependentOrAddressDependent`]). Responses are matched by transaction
//! id, since CHANGE-REQUEST answers come from another address; a filtering answer that did *not*
//! come from another address means the server ignored the request, and the result is unknown.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::signal::NatBehaviour;
use crate::stun::encode;
use rand::Rng;
use stun_rs::attributes::discovery::{ChangeRequest, ChangeRequestFlags};
use stun_rs::{
    MessageClass, MessageDecoderBuilder, StunAttribute, StunMessageBuilder, TransactionId,
    methods::BINDING,
};

/// Interval between retransmissions of one test's request.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(300);
/// Transmissions per test before concluding there is no answer.
pub const TRIES: u32 = 4;

/// A NAT behaviour class, as far as the tests could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Endpoint-independent.
    EndpointIndependent,
    /// Address-dependent.
    AddressDependent,
    /// Address-and-port-dependent.
    AddressAndPortDependent,
    /// One of the first two; telling them apart needs a server with two IPs.
    EndpointIndependentOrAddressDependent,
    /// Not determined (server without RFC 5780 support, or UDP blocked).
    Unknown,
}

impl Behaviour {
    /// Kebab-case name: `endpoint-independent`, `address-dependent`,
    /// `address-and-port-dependent`, `endpoint-independent-or-address-dependent`, `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::EndpointIndependent => "endpoint-independent",
            Behaviour::AddressDependent => "address-dependent",
            Behaviour::AddressAndPortDependent => "address-and-port-dependent",
            Behaviour::EndpointIndependentOrAddressDependent => {
                "endpoint-independent-or-address-dependent"
            }
            Behaviour::Unknown => "unknown",
        }
    }

    /// The class to report to a rendezvous ([`crate::signal::client::Client::report_nat`]);
    /// an undecided class is reported as unknown.
    pub fn to_nat(self) -> NatBehaviour {
        match self {
            Behaviour::EndpointIndependent => NatBehaviour::EndpointIndependent,
            Behaviour::AddressDependent => NatBehaviour::AddressDependent,
            Behaviour::AddressAndPortDependent => NatBehaviour::AddressAndPortDependent,
            Behaviour::EndpointIndependentOrAddressDependent | Behaviour::Unknown => {
                NatBehaviour::Unknown
            }
        }
    }
}

/// The outcome of discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The server probed.
    pub server: SocketAddr,
    /// Our local address, if known.
    pub local: Option<SocketAddr>,
    /// Our server-reflexive address from test I.
    pub mapped: Option<SocketAddr>,
    /// The server's OTHER-ADDRESS.
    pub other_address: Option<SocketAddr>,
    /// Whether the server has a second IP (full RFC 5780 tests).
    pub alternate_ip: bool,
    /// No answer at all to test I.
    pub udp_blocked: bool,
    /// Whether a NAT is in the way (`None` when the local address is unknown).
    pub nat: Option<bool>,
    /// Mapping behaviour (RFC 4787 §4.1).
    pub mapping: Behaviour,
    /// Filtering behaviour (RFC 4787 §5).
    pub filtering: Behaviour,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    One,
    MappingTwo,
    MappingThree,
    FilteringTwo,
    FilteringThree,
}

/// An answer to one test: mapped address, OTHER-ADDRESS, and where it came from.
type Answer = Option<(SocketAddr, Option<SocketAddr>, SocketAddr)>;

/// The classifier. Drive it like every sans-IO machine here: `poll_transmit`, `handle_input`,
/// `poll_timeout`/`handle_timeout`, until [`Classifier::report`] returns `Some`.
#[derive(Debug)]
pub struct Classifier {
    report: Report,
    test: Test,
    tid: [u8; 12],
    dest: SocketAddr,
    change: Option<(bool, bool)>,
    tries: u32,
    next: Instant,
    done: bool,
    /// Mapped addresses of test I and mapping test II.
    m1: Option<SocketAddr>,
    m2: Option<SocketAddr>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    rng: rand::rngs::StdRng,
}

impl Classifier {
    /// Starts discovery against `server`, from a socket bound to `local` (if known).
    pub fn new(server: SocketAddr, local: Option<SocketAddr>, now: Instant) -> Self {
        let mut c = Self {
            report: Report {
                server,
                local,
                mapped: None,
                other_address: None,
                alternate_ip: false,
                udp_blocked: false,
                nat: None,
                mapping: Behaviour::Unknown,
                filtering: Behaviour::Unknown,
            },
            test: Test::One,
            tid: [0; 12],
            dest: server,
            change: None,
            tries: 0,
            next: now,
            done: false,
            m1: None,
            m2: None,
            transmits: VecDeque::new(),
            rng: rand::SeedableRng::from_os_rng(),
        };
        c.start(now, Test::One, server, None);
        c
    }

    /// The report, once every test has finished.
    pub fn report(&self) -> Option<&Report> {
        self.done.then_some(&self.report)
    }

    /// Next datagram and its destination.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// When to call [`Classifier::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then_some(self.next)
    }

    /// Retransmits, or concludes the current test got no answer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.done || now < self.next {
            return;
        }
        if self.tries < TRIES {
            self.send(now);
        } else {
            self.advance(now, None);
        }
    }

    /// Handles a datagram; returns false if it is not an answer to the current test.
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> bool {
        if self.done {
            return false;
        }
        let Ok((msg, _)) = MessageDecoderBuilder::default().build().decode(bytes) else {
            return false;
        };
        if msg.method() != BINDING
            || msg.class() != MessageClass::SuccessResponse
            || msg.transaction_id().as_bytes() != &self.tid
        {
            return false;
        }
        let mut mapped = None;
        let mut other = None;
        for attr in msg.attributes() {
            match attr {
                StunAttribute::XorMappedAddress(a) => mapped = Some(*a.socket_address()),
                StunAttribute::MappedAddress(a) if mapped.is_none() => {
                    mapped = Some(*a.socket_address())
                }
                StunAttribute::OtherAddress(a) => other = Some(*a.socket_address()),
                _ => {}
            }
        }
        let Some(mapped) = mapped else {
            return false;
        };
        self.advance(now, Some((mapped, other, from)));
        true
    }

    fn start(&mut self, now: Instant, test: Test, dest: SocketAddr, change: Option<(bool, bool)>) {
        self.test = test;
        self.dest = dest;
        self.change = change;
        self.tid = self.rng.random();
        self.tries = 0;
        self.send(now);
    }

    fn send(&mut self, now: Instant) {
        let mut b = StunMessageBuilder::new(BINDING, MessageClass::Request)
            .with_transaction_id(TransactionId::from(self.tid));
        if let Some(change) = self.change {
            use ChangeRequestFlags::{ChangeIp, ChangePort};
            let flags = match change {
                (true, true) => Some(ChangeIp | ChangePort),
                (true, false) => Some(ChangeIp.into()),
                (false, true) => Some(ChangePort.into()),
                (false, false) => None,
            };
            b = b.with_attribute(ChangeRequest::new(flags));
        }
        if let Ok(bytes) = encode(&b.build()) {
            self.transmits.push_back((self.dest, bytes));
        }
        self.tries += 1;
        self.next = now + RETRY_INTERVAL;
    }

    fn finish(&mut self) {
        self.done = true;
    }

    fn advance(&mut self, now: Instant, answer: Answer) {
        let server = self.report.server;
        let r = &mut self.report;
        match self.test {
            Test::One => {
                let Some((mapped, other, _)) = answer else {
                    r.udp_blocked = true;
                    return self.finish();
                };
                r.mapped = Some(mapped);
                r.other_address = other;
                r.nat = r.local.map(|l| l != mapped);
                self.m1 = Some(mapped);
                let Some(other) = other else {
                    return self.finish();
                };
                r.alternate_ip = other.ip() != server.ip();
                // Filtering first: the mapping tests open the NAT towards the server's other
                // addresses, which would make a filtering NAT look more permissive than it is.
                self.filtering(now);
            }
            Test::MappingTwo => {
                let Some((m2, ..)) = answer else {
                    return self.finish();
                };
                self.m2 = Some(m2);
                let other = r.other_address.unwrap_or(server);
                if Some(m2) == self.m1 {
                    r.mapping = if r.alternate_ip {
                        Behaviour::EndpointIndependent
                    } else {
                        Behaviour::EndpointIndependentOrAddressDependent
                    };
                    self.finish();
                } else if r.alternate_ip {
                    self.start(now, Test::MappingThree, other, None);
                } else {
                    // Only the port changed, and the mapping did.
                    r.mapping = Behaviour::AddressAndPortDependent;
                    self.finish();
                }
            }
            Test::MappingThree => {
                if let Some((m3, ..)) = answer {
                    r.mapping = if Some(m3) == self.m2 {
                        Behaviour::AddressDependent
                    } else {
                        Behaviour::AddressAndPortDependent
                    };
                }
                self.finish();
            }
            Test::FilteringTwo => match answer {
                Some((.., from)) if from.ip() != server.ip() => {
                    r.filtering = Behaviour::EndpointIndependent;
                    self.mapping(now);
                }
                // The server answered from its primary address: it ignored the request.
                Some(_) => self.mapping(now),
                None => self.start(now, Test::FilteringThree, server, Some((false, true))),
            },
            Test::FilteringThree => {
                r.filtering = match answer {
                    Some((.., from)) if from != server => {
                        if r.alternate_ip {
                            Behaviour::AddressDependent
                        } else {
                            Behaviour::EndpointIndependentOrAddressDependent
                        }
                    }
                    Some(_) => Behaviour::Unknown,
                    None => Behaviour::AddressAndPortDependent,
                };
                self.mapping(now);
            }
        }
    }

    fn mapping(&mut self, now: Instant) {
        let server = self.report.server;
        let Some(other) = self.report.other_address else {
            return self.finish();
        };
        let dest = if self.report.alternate_ip {
            SocketAddr::new(other.ip(), server.port())
        } else {
            SocketAddr::new(server.ip(), other.port())
        };
        self.start(now, Test::MappingTwo, dest, None);
    }

    fn filtering(&mut self, now: Instant) {
        let server = self.report.server;
        if self.report.alternate_ip {
            self.start(now, Test::FilteringTwo, server, Some((true, true)));
        } else {
            self.start(now, Test::FilteringThree, server, Some((false, true)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_udp_gives_up_after_the_retries() {
        let t0 = Instant::now();
        let mut c = Classifier::new("192.0.2.1:3578".parse().unwrap(), None, t0);
        let mut sent = 0;
        while let Some(at) = c.poll_timeout() {
            while c.poll_transmit().is_some() {
                sent += 1;
            }
            c.handle_timeout(at);
        }
        let r = c.report().unwrap();
        assert!(r.udp_blocked);
        assert_eq!(sent, TRIES);
        assert_eq!(r.mapping, Behaviour::Unknown);
        assert_eq!(r.mapping.to_nat(), NatBehaviour::Unknown);
    }

    #[test]
    fn foreign_answers_are_ignored() {
        let t0 = Instant::now();
        let mut c = Classifier::new("192.0.2.1:3578".parse().unwrap(), None, t0);
        let (_, request) = c.poll_transmit().unwrap();
        assert!(!c.handle_input(t0, "192.0.2.1:3578".parse().unwrap(), &request));
        assert!(!c.handle_input(t0, "192.0.2.1:3578".parse().unwrap(), b"junk"));
        assert!(c.report().is_none());
    }
}
