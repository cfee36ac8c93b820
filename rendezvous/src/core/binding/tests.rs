use super::*;
use crate::core::Config;
use supernode_proto::stun_rs::attributes::discovery::{ChangeRequest, ResponsePort};
use supernode_proto::stun_rs::{StunMessageBuilder, TransactionId};

const PRIMARY: &str = "127.0.0.1:3578";
const CLIENT: &str = "127.0.0.1:50000";

fn core(alternate_ip: Option<&str>) -> Core {
    let mut c = Config::new(PRIMARY.parse().unwrap());
    c.alternate_port = Some(3579);
    c.alternate_ip = alternate_ip.map(|s| s.parse().unwrap());
    Core::new(c, Instant::now(), 0)
}

fn request(attrs: impl FnOnce(StunMessageBuilder) -> StunMessageBuilder) -> Vec<u8> {
    let b = StunMessageBuilder::new(BINDING, MessageClass::Request)
        .with_transaction_id(TransactionId::from([7; 12]));
    sp::encode(&attrs(b).build()).unwrap()
}

fn ask(core: &mut Core, local: &str, raw: &[u8]) -> (SocketAddr, SocketAddr, StunMessage) {
    let now = Instant::now();
    let transport = Transport::Udp {
        local: local.parse().unwrap(),
    };
    core.handle_datagram(now, transport, CLIENT.parse().unwrap(), raw);
    let t = core.poll_transmit().expect("a response");
    let Transport::Udp { local: from } = t.transport else {
        panic!("udp expected");
    };
    let (msg, _) = MessageDecoderBuilder::default()
        .build()
        .decode(&t.data)
        .unwrap();
    (from, t.remote, msg)
}

fn addr_of<'a>(
    msg: &'a StunMessage,
    pick: fn(&'a StunAttribute) -> Option<SocketAddr>,
) -> Option<SocketAddr> {
    msg.attributes().iter().find_map(pick)
}

fn xor_mapped(a: &StunAttribute) -> Option<SocketAddr> {
    a.as_xor_mapped_address().ok().map(|x| *x.socket_address())
}
fn origin(a: &StunAttribute) -> Option<SocketAddr> {
    a.as_response_origin().ok().map(|x| *x.socket_address())
}
fn other(a: &StunAttribute) -> Option<SocketAddr> {
    a.as_other_address().ok().map(|x| *x.socket_address())
}

#[test]
fn plain_binding_reports_mapping_origin_and_other_address() {
    let mut c = core(Some("127.0.0.2"));
    let (from, to, msg) = ask(&mut c, PRIMARY, &request(|b| b));
    assert_eq!(msg.class(), MessageClass::SuccessResponse);
    assert_eq!(from, PRIMARY.parse().unwrap());
    assert_eq!(to, CLIENT.parse().unwrap());
    assert_eq!(addr_of(&msg, xor_mapped), Some(CLIENT.parse().unwrap()));
    assert_eq!(addr_of(&msg, origin), Some(PRIMARY.parse().unwrap()));
    assert_eq!(
        addr_of(&msg, other),
        Some("127.0.0.2:3579".parse().unwrap())
    );
}

#[test]
fn change_request_answers_from_the_other_socket() {
    use ChangeRequestFlags::{ChangeIp, ChangePort};
    let mut c = core(Some("127.0.0.2"));
    let port = request(|b| b.with_attribute(ChangeRequest::new(Some(ChangePort.into()))));
    let (from, _, msg) = ask(&mut c, PRIMARY, &port);
    assert_eq!(from, "127.0.0.1:3579".parse().unwrap());
    assert_eq!(addr_of(&msg, origin), Some(from));
    let both = request(|b| b.with_attribute(ChangeRequest::new(Some(ChangeIp | ChangePort))));
    let (from, _, msg) = ask(&mut c, PRIMARY, &both);
    assert_eq!(from, "127.0.0.2:3579".parse().unwrap());
    assert_eq!(addr_of(&msg, origin), Some(from));
    // From the alternate socket, "other" means back to the primary.
    let (from, _, msg) = ask(&mut c, "127.0.0.2:3579", &both);
    assert_eq!(from, PRIMARY.parse().unwrap());
    assert_eq!(addr_of(&msg, other), Some(PRIMARY.parse().unwrap()));
    assert_eq!(c.stats().bindings_changed, 3);
}

#[test]
fn one_ip_serves_port_changes_and_refuses_ip_changes() {
    use ChangeRequestFlags::{ChangeIp, ChangePort};
    let mut c = core(None);
    let (_, _, msg) = ask(&mut c, PRIMARY, &request(|b| b));
    // OTHER-ADDRESS keeps the IP: clients see only change-port tests are possible.
    assert_eq!(
        addr_of(&msg, other),
        Some("127.0.0.1:3579".parse().unwrap())
    );
    let port = request(|b| b.with_attribute(ChangeRequest::new(Some(ChangePort.into()))));
    let (from, _, _) = ask(&mut c, PRIMARY, &port);
    assert_eq!(from, "127.0.0.1:3579".parse().unwrap());
    let ip = request(|b| b.with_attribute(ChangeRequest::new(Some(ChangeIp.into()))));
    let (from, _, msg) = ask(&mut c, PRIMARY, &ip);
    assert_eq!(from, PRIMARY.parse().unwrap());
    assert_eq!(msg.class(), MessageClass::ErrorResponse);
}

#[test]
fn response_port_changes_only_the_port() {
    let mut c = core(None);
    let raw = request(|b| b.with_attribute(ResponsePort::new(4000)));
    let (_, to, msg) = ask(&mut c, PRIMARY, &raw);
    assert_eq!(to, "127.0.0.1:4000".parse().unwrap());
    assert_eq!(addr_of(&msg, xor_mapped), Some(CLIENT.parse().unwrap()));
}

#[test]
fn responses_never_exceed_the_request_beyond_essentials() {
    let pad = |m: &StunMessage| {
        m.attributes()
            .iter()
            .find_map(|a| a.as_padding().ok().map(|p| p.as_str().len()))
    };
    let size = |c: &mut Core, raw: &[u8]| {
        c.handle_datagram(
            Instant::now(),
            Transport::Udp {
                local: PRIMARY.parse().unwrap(),
            },
            CLIENT.parse().unwrap(),
            raw,
        );
        let t = c.poll_transmit().unwrap();
        let (msg, _) = MessageDecoderBuilder::default()
            .build()
            .decode(&t.data)
            .unwrap();
        (t.data.len(), msg)
    };
    let mut c = core(Some("127.0.0.2"));
    // A bare request gets only the essentials: XOR-MAPPED, RESPONSE-ORIGIN, OTHER-ADDRESS.
    let bare = request(|b| b);
    let (len, msg) = size(&mut c, &bare);
    assert_eq!(len, 20 + 3 * 12);
    assert_eq!(addr_of(&msg, xor_mapped), Some(CLIENT.parse().unwrap()));
    assert_eq!(pad(&msg), None);
    // Padding is echoed so that the response matches the request's size, never more.
    let small = request(|b| b.with_attribute(Padding::new("\0".repeat(100)).unwrap()));
    let (len, msg) = size(&mut c, &small);
    assert_eq!(len, small.len());
    // 124 bytes: 56 essential, MAPPED-ADDRESS 12, SOFTWARE 20, PADDING 4 + 32.
    assert_eq!(pad(&msg), Some(32));
    assert!(msg.attributes().iter().any(|a| a.is_mapped_address()));
    // Large padding is capped by max_padding.
    let big = request(|b| b.with_attribute(Padding::new("\0".repeat(1400)).unwrap()));
    let (len, msg) = size(&mut c, &big);
    assert_eq!(pad(&msg), Some(512));
    assert!(len < big.len());
    // With room, the optional attributes come too.
    let roomy = request(|b| b.with_attribute(Padding::new("\0".repeat(200)).unwrap()));
    let (len, msg) = size(&mut c, &roomy);
    assert!(len <= roomy.len());
    assert!(msg.attributes().iter().any(|a| a.is_mapped_address()));
}

#[test]
fn tcp_refuses_change_request() {
    use ChangeRequestFlags::ChangePort;
    let mut c = core(None);
    let raw = request(|b| b.with_attribute(ChangeRequest::new(Some(ChangePort.into()))));
    let transport = Transport::Tcp {
        conn: 1,
        local: PRIMARY.parse().unwrap(),
    };
    c.handle_datagram(Instant::now(), transport, CLIENT.parse().unwrap(), &raw);
    let t = c.poll_transmit().unwrap();
    assert_eq!(t.transport, transport);
    let (msg, _) = MessageDecoderBuilder::default()
        .build()
        .decode(&t.data)
        .unwrap();
    assert_eq!(msg.class(), MessageClass::ErrorResponse);
}

#[test]
fn mapping_behaviour_is_observed_passively() {
    let mut c = core(Some("127.0.0.2"));
    let now = Instant::now();
    let udp = |s: &str| Transport::Udp {
        local: s.parse().unwrap(),
    };
    let raw = request(|b| b);
    let client: SocketAddr = "198.51.100.1:1000".parse().unwrap();
    c.handle_datagram(now, udp(PRIMARY), client, &raw);
    c.handle_datagram(now, udp("127.0.0.2:3578"), client, &raw);
    assert_eq!(c.stats().mappings(MappingClass::EndpointIndependent), 1);
    let other: SocketAddr = "198.51.100.2:1000".parse().unwrap();
    c.handle_datagram(now, udp(PRIMARY), other, &raw);
    c.handle_datagram(
        now,
        udp("127.0.0.2:3578"),
        "198.51.100.2:1001".parse().unwrap(),
        &raw,
    );
    assert_eq!(c.stats().mappings(MappingClass::Dependent), 1);
}

#[test]
fn ipv6_answers_carry_ipv6_addresses_within_budget() {
    let mut c = Config::new("[::1]:3578".parse().unwrap());
    c.alternate_port = Some(3579);
    let mut core = Core::new(c, Instant::now(), 0);
    let client: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
    let raw = request(|b| b);
    core.handle_datagram(
        Instant::now(),
        Transport::Udp {
            local: "[::1]:3578".parse().unwrap(),
        },
        client,
        &raw,
    );
    let t = core.poll_transmit().unwrap();
    assert_eq!(t.remote, client);
    // Essentials only: three 24-byte IPv6 address attributes.
    assert_eq!(t.data.len(), 20 + 3 * 24);
    let (msg, _) = MessageDecoderBuilder::default()
        .build()
        .decode(&t.data)
        .unwrap();
    assert_eq!(addr_of(&msg, xor_mapped), Some(client));
    assert_eq!(addr_of(&msg, other), Some("[::1]:3579".parse().unwrap()));
}
