//! Link conditions (latency, jitter, loss) of one segment.
//!
//! A segment's conditions are installed as a netem qdisc on the egress of *both* ends of its
//! veth pair, so each direction is delayed by `delay` (a round trip over the segment grows by
//! twice the delay) and each direction loses `loss_percent` of its packets. Kernels without
//! `sch_netem` get the same semantics from the userspace emulator of [`crate::emulator`].

use anyhow::{Result, ensure};
use std::time::Duration;

use crate::sys;

/// Largest delay or jitter accepted; longer would make tests slow rather than realistic.
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// Conditions of one segment. The default is a perfect link (no qdisc installed).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Link {
    /// One-way delay added in each direction.
    pub delay: Duration,
    /// Random variation of the delay (netem's jitter, uniform ±).
    pub jitter: Duration,
    /// Percentage of packets dropped in each direction, 0–100.
    pub loss_percent: f32,
}

impl Link {
    /// A link with `ms` milliseconds of one-way delay.
    pub fn delay_ms(ms: u64) -> Self {
        Link {
            delay: Duration::from_millis(ms),
            ..Link::default()
        }
    }

    /// Sets the jitter.
    pub fn jitter_ms(mut self, ms: u64) -> Self {
        self.jitter = Duration::from_millis(ms);
        self
    }

    /// Sets the loss percentage.
    pub fn loss(mut self, percent: f32) -> Self {
        self.loss_percent = percent;
        self
    }

    /// Whether the link needs a qdisc at all.
    pub fn is_perfect(&self) -> bool {
        self.delay.is_zero() && self.jitter.is_zero() && self.loss_percent == 0.0
    }

    /// Checks ranges, naming the field.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.delay <= MAX_DELAY,
            "link delay must be at most {MAX_DELAY:?}"
        );
        ensure!(
            self.jitter <= MAX_DELAY,
            "link jitter must be at most {MAX_DELAY:?}"
        );
        ensure!(
            (0.0..=100.0).contains(&self.loss_percent),
            "link loss_percent must be within 0..=100"
        );
        Ok(())
    }

    /// Arguments after `tc qdisc replace dev <dev> root` that realise this link.
    pub(crate) fn netem_args(&self) -> Vec<String> {
        let mut args = vec!["netem".to_owned()];
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            args.push("delay".into());
            args.push(format!("{}us", self.delay.as_micros()));
            if !self.jitter.is_zero() {
                args.push(format!("{}us", self.jitter.as_micros()));
            }
        }
        if self.loss_percent > 0.0 {
            args.push("loss".into());
            args.push(format!("{}%", self.loss_percent));
        }
        args
    }

    /// Installs the conditions on the egress of `dev` inside `netns`.
    pub(crate) fn apply(&self, netns: &str, dev: &str) -> Result<()> {
        if self.is_perfect() {
            return Ok(());
        }
        let args = self.netem_args();
        let mut full = vec!["qdisc", "replace", "dev", dev, "root"];
        full.extend(args.iter().map(String::as_str));
        sys::tc(netns, &full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_arguments() {
        assert_eq!(
            Link::delay_ms(20).jitter_ms(5).loss(1.5).netem_args(),
            ["netem", "delay", "20000us", "5000us", "loss", "1.5%"]
        );
        assert_eq!(Link::delay_ms(7).netem_args(), ["netem", "delay", "7000us"]);
        assert!(Link::default().is_perfect());
        assert!(Link::default().loss(101.0).validate().is_err());
        assert!(Link::delay_ms(5000).validate().is_err());
    }
}
