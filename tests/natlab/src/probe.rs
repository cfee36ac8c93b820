//! An independent NAT behaviour probe, sharing no code with the rendezvous.
//!
//! It exists so that the lab can check its own NATs without trusting the component under test.
//! The protocol is deliberately not STUN: a small JSON request over UDP
//! (`{"id":7,"change_ip":false,"change_port":true}`) to a [`reflector`] that answers with the
//! source address it saw (`{"id":7,"seen":"203.0.113.12:40000","from":"203.0.113.10:3479"}`),
//! from the socket the request asked for. The reflector listens on two addresses × two ports,
//! like an RFC 5780 server, which is all the [`client`] needs to measure mapping (does the same
//! local socket get the same mapped address towards every server endpoint?) and filtering
//! (does a reply from another address, or another port, get through?). The measurements are
//! turned into RFC 4787 terms by [`classify`], which is pure and unit-tested.

pub mod classify;
pub mod client;
pub mod reflector;
pub mod wire;
