//! The probe's request and response datagrams (JSON).

use serde_json::{Value, json};
use std::net::SocketAddr;

/// Largest datagram the probe sends or accepts; anything bigger is not ours.
pub const MAX_DATAGRAM: usize = 512;

/// A request to a reflector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Transaction id, echoed in the response.
    pub id: u64,
    /// Answer from the other address (RFC 5780's CHANGE-REQUEST "change IP").
    pub change_ip: bool,
    /// Answer from the other port (CHANGE-REQUEST "change port").
    pub change_port: bool,
}

/// A reflector's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// Source address of the request as the reflector saw it (the mapped address).
    pub seen: SocketAddr,
    /// The reflector socket the answer was sent from.
    pub from: SocketAddr,
}

impl Request {
    /// Serialises the request.
    pub fn encode(&self) -> Vec<u8> {
        json!({"id": self.id, "change_ip": self.change_ip, "change_port": self.change_port})
            .to_string()
            .into_bytes()
    }

    /// Parses a request; `None` for anything malformed or oversized.
    pub fn decode(buf: &[u8]) -> Option<Request> {
        let v = parse(buf)?;
        Some(Request {
            id: v.get("id")?.as_u64()?,
            change_ip: v.get("change_ip").and_then(Value::as_bool).unwrap_or(false),
            change_port: v
                .get("change_port")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

impl Response {
    /// Serialises the response.
    pub fn encode(&self) -> Vec<u8> {
        json!({"id": self.id, "seen": self.seen.to_string(), "from": self.from.to_string()})
            .to_string()
            .into_bytes()
    }

    /// Parses a response; `None` for anything malformed or oversized.
    pub fn decode(buf: &[u8]) -> Option<Response> {
        let v = parse(buf)?;
        Some(Response {
            id: v.get("id")?.as_u64()?,
            seen: v.get("seen")?.as_str()?.parse().ok()?,
            from: v.get("from")?.as_str()?.parse().ok()?,
        })
    }
}

/// Parses a bounded JSON object.
fn parse(buf: &[u8]) -> Option<Value> {
    if buf.len() > MAX_DATAGRAM {
        return None;
    }
    serde_json::from_slice::<Value>(buf)
        .ok()
        .filter(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Request {
            id: 9,
            change_ip: true,
            change_port: false,
        };
        assert_eq!(Request::decode(&r.encode()), Some(r));
        let a = Response {
            id: 9,
            seen: "203.0.113.5:4000".parse().unwrap(),
            from: "203.0.113.10:3479".parse().unwrap(),
        };
        assert_eq!(Response::decode(&a.encode()), Some(a));
    }

    #[test]
    fn hostile_input_is_rejected() {
        for bad in [
            &b""[..],
            b"[]",
            b"{\"id\":-1}",
            b"{\"id\":1,\"seen\":\"nope\",\"from\":\"1.2.3.4:5\"}",
            &[0xff; 600][..],
        ] {
            assert_eq!(Response::decode(bad), None);
        }
        assert_eq!(Request::decode(b"{\"id\":\"x\"}"), None);
        let mut big = b"{\"id\":1,\"pad\":\"".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_DATAGRAM));
        big.extend(b"\"}");
        assert_eq!(Request::decode(&big), None);
    }
}
