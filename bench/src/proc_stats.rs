//! Reading another process's CPU time and memory from `/proc`.

/// Clock ticks per second for `/proc/<pid>/stat` (USER_HZ; 100 on every Linux build that
/// matters, and not exposed without libc).
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of `pid`, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// Resident set size of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Measures a process's CPU time over a run.
pub struct CpuMeter {
    /// The process and its CPU seconds at the start.
    start: Option<(u32, f64)>,
}

impl CpuMeter {
    /// Starts measuring `pid`, if given and readable.
    pub fn start(pid: Option<u32>) -> Self {
        Self {
            start: pid.and_then(|p| cpu_secs(p).map(|c| (p, c))),
        }
    }

    /// CPU seconds used since the start.
    pub fn finish(self) -> Option<f64> {
        let (pid, start) = self.start?;
        Some(cpu_secs(pid)? - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(cpu_secs(pid).is_some());
        assert!(rss_kib(pid).unwrap() > 0);
    }
}
