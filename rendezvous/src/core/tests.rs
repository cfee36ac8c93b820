//! Deterministic tests of the core: simulated peers (the proto signalling client) on an
//! in-memory network with per-peer latency and a virtual clock.

mod connect;
mod hostile;
mod register;
mod relays;
mod sim;
