//! Processes running inside lab namespaces, with their output captured.
//!
//! A [`Proc`] owns its child: dropping it kills the process (by its own pid) and reaps it, so a
//! failing test cannot leave servers running. Output is read by two threads into a channel, so
//! a test can wait for a specific line (say, a server printing its address) while the process
//! keeps running, and still get everything at the end.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most lines kept per stream; a runaway process cannot exhaust the test's memory.
pub const MAX_CAPTURED_LINES: usize = 100_000;

/// How often [`Proc::wait`] checks whether the child exited.
const WAIT_POLL: Duration = Duration::from_millis(5);

/// How long to wait for output still in the pipes after the process exited.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// A finished process and everything it printed.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Stdout lines.
    pub stdout: Vec<String>,
    /// Stderr lines.
    pub stderr: Vec<String>,
}

impl Finished {
    /// Stdout joined with newlines.
    pub fn stdout_text(&self) -> String {
        self.stdout.join("\n")
    }

    /// Stderr joined with newlines.
    pub fn stderr_text(&self) -> String {
        self.stderr.join("\n")
    }
}

/// A running process inside a namespace.
#[derive(Debug)]
pub struct Proc {
    /// What was run, for error messages.
    label: String,
    /// The child; `ip netns exec` execs the command, so this is the command's own pid.
    child: Child,
    /// Lines from both reader threads.
    lines: Receiver<(Stream, String)>,
    /// Stdout lines already taken from `lines`.
    stdout: Vec<String>,
    /// Stderr lines already taken from `lines`.
    stderr: Vec<String>,
    /// Index into `stdout` of the next line [`Proc::next_line`] returns.
    cursor: usize,
    /// The reader threads, joined once the child is gone.
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Spawns `command` with piped output.
    pub(crate) fn spawn(mut command: Command, label: String) -> Result<Proc> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("spawning {label}"))?;
        let (tx, lines) = mpsc::channel();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(reader(out, Stream::Stdout, tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(reader(err, Stream::Stderr, tx));
        }
        Ok(Proc {
            label,
            child,
            lines,
            stdout: Vec::new(),
            stderr: Vec::new(),
            cursor: 0,
            readers,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Files a received line, respecting [`MAX_CAPTURED_LINES`].
    fn store(&mut self, stream: Stream, line: String) {
        let buf = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        if buf.len() < MAX_CAPTURED_LINES {
            buf.push(line);
        }
    }

    /// The next stdout line not yet returned, waiting up to `timeout`; `None` on timeout or
    /// when the process closed stdout.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stdout.get(self.cursor) {
                self.cursor += 1;
                return Some(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) => self.store(stream, line),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Waits up to `timeout` for the process to exit; kills it and fails if it does not.
    pub fn wait(mut self, timeout: Duration) -> Result<Finished> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain();
                bail!(
                    "{} did not exit within {timeout:?}; stdout: {:?} stderr: {:?}",
                    self.label,
                    self.stdout,
                    self.stderr
                );
            }
            std::thread::sleep(WAIT_POLL);
        };
        self.drain();
        Ok(Finished {
            status,
            stdout: std::mem::take(&mut self.stdout),
            stderr: std::mem::take(&mut self.stderr),
        })
    }

    /// Kills the process and returns what it printed.
    pub fn kill(mut self) -> Finished {
        let _ = self.child.kill();
        let status = self.child.wait();
        self.drain();
        Finished {
            // A child we cannot reap has exited as far as the test is concerned; report it
            // as killed.
            status: status.unwrap_or_else(|_| killed_status()),
            stdout: std::mem::take(&mut self.stdout),
            stderr: std::mem::take(&mut self.stderr),
        }
    }

    /// Collects remaining lines after the child is gone. Waits at most [`DRAIN_GRACE`] for
    /// the pipes to close, in case a grandchild inherited them.
    fn drain(&mut self) {
        let deadline = Instant::now() + DRAIN_GRACE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) => self.store(stream, line),
                Err(_) => break,
            }
        }
        // Readers end at EOF on their own; they are not joined so a leaked pipe cannot hang us.
        self.readers.clear();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An exit status meaning "killed by SIGKILL".
fn killed_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(9)
}

/// Reads `pipe` line by line into `tx` until EOF.
fn reader(
    pipe: impl Read + Send + 'static,
    stream: Stream,
    tx: Sender<(Stream, String)>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send((stream, line)).is_err() {
                break;
            }
        }
    })
}
