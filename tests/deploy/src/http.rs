//! A minimal HTTP/1.0 GET, enough for metrics endpoints and Prometheus' API.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest response body read (a metrics page or an API answer is far smaller).
const MAX_BODY: u64 = 8 * 1024 * 1024;

/// GETs `path` from `addr`; the body of a 200 answer.
pub fn get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = String::new();
    s.take(MAX_BODY).read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").context("no HTTP header")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") && !status.ends_with(" 200") {
        bail!("GET http://{addr}{path}: {status}");
    }
    Ok(body.to_owned())
}

/// Percent-encodes a query-string value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_promql() {
        assert_eq!(
            super::encode(r#"up{job="a b"}"#),
            "up%7Bjob%3D%22a%20b%22%7D"
        );
    }
}
