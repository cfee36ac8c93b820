//! Authenticated allocations per second: each worker allocates and deletes (Refresh with
//! LIFETIME 0) as fast as the server answers, each time from a fresh socket (a new 5-tuple).

use crate::Target;
use crate::client::TurnClient;
use crate::report::Report;
use std::time::{Duration, Instant};

/// Options of the `allocate` subcommand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

pub fn run(target: &Target, args: &Args) -> anyhow::Result<Report> {
    let duration = Duration::from_secs_f64(args.duration);
    // Get through the 401 once, outside the measured phase.
    let mut first = TurnClient::new(target, "alloc-bench")?;
    first.allocate()?;
    first.deallocate()?;
    let nonce = first.nonce();
    let start = Instant::now();
    let workers: Vec<_> = (0..args.clients)
        .map(|i| {
            let target = target.clone();
            let nonce = nonce.clone();
            std::thread::spawn(move || -> anyhow::Result<(u64, u64)> {
                let mut c = TurnClient::new(&target, &format!("alloc-bench-{i}"))?;
                c.set_nonce(nonce);
                let (mut ok, mut tried) = (0, 0);
                let mut first_error = None;
                while start.elapsed() < duration {
                    tried += 1;
                    c.rebind()?;
                    match c.allocate().and_then(|_| c.deallocate()) {
                        Ok(()) => ok += 1,
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                if let Some(e) = first_error {
                    eprintln!("client {i}: {} of {tried} failed; first: {e:#}", tried - ok);
                }
                Ok((ok, tried))
            })
        })
        .collect();
    let mut report = Report::new("allocate");
    for w in workers {
        let (ok, tried) = w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        report.completed += ok;
        report.sent += tried;
    }
    report.duration_secs = start.elapsed().as_secs_f64();
    report.lost = report.sent - report.completed;
    Ok(report)
}
