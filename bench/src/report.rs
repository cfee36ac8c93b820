//! The JSON report every run prints.

use serde::Serialize;

/// What one run measured. Fields a subcommand does not measure stay `null`.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The subcommand.
    pub test: &'static str,
    /// Caller's label (which server).
    pub label: String,
    /// Wall-clock seconds of the measured phase.
    pub duration_secs: f64,
    /// Operations (round trips, allocations, Binding transactions) completed.
    pub completed: u64,
    /// Operations started.
    pub sent: u64,
    /// Operations that never completed.
    pub lost: u64,
    /// Completed operations per wall-clock second.
    pub rate: f64,
    /// Server CPU seconds over the run (utime + stime), when its PID was given.
    pub server_cpu_secs: Option<f64>,
    /// Completed operations per server CPU-second.
    pub per_server_cpu_sec: Option<f64>,
    /// Round-trip latency percentiles, microseconds.
    pub rtt_p50_us: Option<u64>,
    /// 99th percentile round trip, microseconds.
    pub rtt_p99_us: Option<u64>,
    /// Allocations held (`hold`).
    pub allocations: u64,
    /// Server RSS before (`hold`), KiB.
    pub rss_before_kib: Option<u64>,
    /// Server RSS after (`hold`), KiB.
    pub rss_after_kib: Option<u64>,
    /// (after − before) / allocations, KiB (`hold`).
    pub kib_per_allocation: Option<f64>,
    /// Round-trip samples, consumed by [`Report::finish`].
    #[serde(skip)]
    pub rtts_us: Vec<u32>,
}

impl Report {
    /// An empty report for `test`.
    pub fn new(test: &'static str) -> Self {
        Self {
            test,
            ..Self::default()
        }
    }

    /// Derives rates and percentiles.
    pub fn finish(&mut self) {
        if self.duration_secs > 0.0 {
            self.rate = self.completed as f64 / self.duration_secs;
        }
        if let Some(cpu) = self.server_cpu_secs.filter(|c| *c > 0.0) {
            self.per_server_cpu_sec = Some(self.completed as f64 / cpu);
        }
        if !self.rtts_us.is_empty() {
            self.rtts_us.sort_unstable();
            let at = |q: f64| {
                let i = ((self.rtts_us.len() as f64 - 1.0) * q).round() as usize;
                u64::from(self.rtts_us[i])
            };
            self.rtt_p50_us = Some(at(0.50));
            self.rtt_p99_us = Some(at(0.99));
        }
        if let (Some(b), Some(a)) = (self.rss_before_kib, self.rss_after_kib) {
            if self.allocations > 0 {
                self.kib_per_allocation = Some((a as f64 - b as f64) / self.allocations as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_rates() {
        let mut r = Report::new("relay");
        r.completed = 1000;
        r.duration_secs = 2.0;
        r.server_cpu_secs = Some(0.5);
        r.rtts_us = (1..=100).collect();
        r.finish();
        assert_eq!(r.rate, 500.0);
        assert_eq!(r.per_server_cpu_sec, Some(2000.0));
        assert_eq!(r.rtt_p50_us, Some(51));
        assert_eq!(r.rtt_p99_us, Some(99));
    }
}
