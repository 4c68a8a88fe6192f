//! Host tests: the stack against frames built here and against a second smoltcp interface on
//! an in-memory wire (the client side of the TCP and UDP exchanges).

use super::*;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::*;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::result::Result;

const SERVER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const CLIENT_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
const SERVER_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const CLIENT_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

/// One end of an in-memory Ethernet wire.
struct End {
    queues: Rc<RefCell<[VecDeque<Vec<u8>>; 2]>>,
    side: usize,
    mac: [u8; 6],
}

impl Nic for End {
    type Error = ();
    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }
    fn receive(&mut self, out: &mut [u8]) -> Result<Option<usize>, ()> {
        let Some(frame) = self.queues.borrow_mut()[self.side].pop_front() else {
            return Ok(None);
        };
        out[..frame.len()].copy_from_slice(&frame);
        Ok(Some(frame.len()))
    }
    fn can_transmit(&mut self) -> bool {
        true
    }
    fn transmit(&mut self, frame: &[u8]) -> Result<(), ()> {
        self.queues.borrow_mut()[1 - self.side].push_back(frame.to_vec());
        Ok(())
    }
}

type Queues = Rc<RefCell<[VecDeque<Vec<u8>>; 2]>>;

fn wire() -> (Queues, End, End) {
    let queues: Queues = Rc::default();
    let server = End {
        queues: queues.clone(),
        side: 0,
        mac: SERVER_MAC,
    };
    let client = End {
        queues: queues.clone(),
        side: 1,
        mac: CLIENT_MAC,
    };
    (queues, server, client)
}

fn config() -> StackConfig {
    StackConfig {
        address: Ipv4Cidr::new(SERVER_IP, 24),
        gateway: Some(CLIENT_IP),
        random_seed: 1,
    }
}

fn ethernet(
    ethertype: EthernetProtocol,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let mut bytes = vec![0; 14 + payload_len];
    let mut frame = EthernetFrame::new_unchecked(&mut bytes);
    frame.set_src_addr(EthernetAddress(CLIENT_MAC));
    frame.set_dst_addr(if ethertype == EthernetProtocol::Arp {
        EthernetAddress::BROADCAST
    } else {
        EthernetAddress(SERVER_MAC)
    });
    frame.set_ethertype(ethertype);
    fill(frame.payload_mut());
    bytes
}

fn arp_request() -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(CLIENT_MAC),
        source_protocol_addr: CLIENT_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: SERVER_IP,
    };
    ethernet(EthernetProtocol::Arp, repr.buffer_len(), |payload| {
        repr.emit(&mut ArpPacket::new_unchecked(payload))
    })
}

fn echo_request(data: &[u8]) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 0x4d4f,
        seq_no: 7,
        data,
    };
    let ip = Ipv4Repr {
        src_addr: CLIENT_IP,
        dst_addr: SERVER_IP,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let checksums = ChecksumCapabilities::default();
    ethernet(
        EthernetProtocol::Ipv4,
        ip.buffer_len() + icmp.buffer_len(),
        |payload| {
            let mut packet = Ipv4Packet::new_unchecked(payload);
            ip.emit(&mut packet, &checksums);
            icmp.emit(
                &mut Icmpv4Packet::new_unchecked(packet.payload_mut()),
                &checksums,
            );
        },
    )
}

#[test]
fn arp_and_icmp_echo_are_answered() {
    let (queues, server, _client) = wire();
    let mut stack = Stack::new(server, config(), 0).unwrap();
    queues.borrow_mut()[0].push_back(arp_request());
    stack.poll(1000);
    let reply = queues.borrow_mut()[1].pop_front().expect("an ARP reply");
    let frame = EthernetFrame::new_checked(&reply[..]).unwrap();
    assert_eq!(frame.dst_addr(), EthernetAddress(CLIENT_MAC));
    let arp = ArpRepr::parse(&ArpPacket::new_checked(frame.payload()).unwrap()).unwrap();
    assert_eq!(
        arp,
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(SERVER_MAC),
            source_protocol_addr: SERVER_IP,
            target_hardware_addr: EthernetAddress(CLIENT_MAC),
            target_protocol_addr: CLIENT_IP,
        }
    );

    queues.borrow_mut()[0].push_back(echo_request(b"moat ping payload"));
    stack.poll(2000);
    let reply = queues.borrow_mut()[1].pop_front().expect("an echo reply");
    let frame = EthernetFrame::new_checked(&reply[..]).unwrap();
    let ip = Ipv4Packet::new_checked(frame.payload()).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (SERVER_IP, CLIENT_IP));
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    let repr = Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default()).unwrap();
    assert_eq!(
        repr,
        Icmpv4Repr::EchoReply {
            ident: 0x4d4f,
            seq_no: 7,
            data: b"moat ping payload"
        }
    );
    let frames = stack.report().frames;
    assert_eq!((frames.arp_requests, frames.arp_replies), (1, 1));
    assert_eq!((frames.echo_requests, frames.echo_replies), (1, 1));
}

/// The client side: a second interface on the wire.
struct Client {
    phy: Phy<End>,
    interface: Interface,
    sockets: SocketSet<'static>,
}

impl Client {
    fn new(end: End) -> Self {
        let mut phy = Phy::new(end, CLIENT_IP);
        let mut interface = Interface::new(
            Config::new(EthernetAddress(CLIENT_MAC).into()),
            &mut phy,
            Instant::ZERO,
        );
        interface.update_ip_addrs(|a| a.push(IpCidr::new(CLIENT_IP.into(), 24)).unwrap());
        Self {
            phy,
            interface,
            sockets: SocketSet::new(vec![]),
        }
    }
    fn poll(&mut self, now_us: u64) {
        self.interface.poll(
            Instant::from_micros(now_us as i64),
            &mut self.phy,
            &mut self.sockets,
        );
    }
}

/// Runs a TCP exchange with `payload` against the service; returns (greeting, echo, report).
fn tcp_exchange(payload: &[u8]) -> (Vec<u8>, Vec<u8>, Report) {
    let (_queues, server, client_end) = wire();
    let mut stack = Stack::new(server, config(), 0).unwrap();
    let mut client = Client::new(client_end);
    let socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 4096]),
        tcp::SocketBuffer::new(vec![0; 4096]),
    );
    let handle = client.sockets.add(socket);
    let context = client.interface.context();
    client
        .sockets
        .get_mut::<tcp::Socket>(handle)
        .connect(context, (SERVER_IP, TCP_PORT), 49152)
        .unwrap();
    let (mut received, mut sent, mut closed) = (Vec::new(), 0, false);
    let mut now = 0;
    for _ in 0..20_000 {
        now += 1000;
        stack.poll(now);
        client.poll(now);
        let socket = client.sockets.get_mut::<tcp::Socket>(handle);
        while socket.can_recv() {
            socket
                .recv(|data| {
                    received.extend_from_slice(data);
                    (data.len(), ())
                })
                .unwrap();
        }
        if received.len() >= GREETING.len() && sent < payload.len() && socket.can_send() {
            sent += socket.send_slice(&payload[sent..]).unwrap();
        }
        if received.len() == GREETING.len() + payload.len() && !closed {
            socket.close();
            closed = true;
        }
        if closed
            && !socket.is_open()
            && stack.report().tcp_connections == 1
            && stack.report().tcp_exchanges + stack.report().tcp_mismatched_bytes > 0
        {
            break;
        }
    }
    let echo = received.split_off(GREETING.len().min(received.len()));
    (received, echo, stack.report())
}

#[test]
fn tcp_greets_and_echoes_the_known_payload() {
    let payload: Vec<u8> = (0..PAYLOAD_LEN).map(pattern).collect();
    let (greeting, echo, report) = tcp_exchange(&payload);
    assert_eq!(greeting, GREETING);
    assert_eq!(echo, payload);
    assert_eq!(report.tcp_exchanges, 1);
    assert_eq!(report.tcp_mismatched_bytes, 0);
    assert_eq!(report.tcp_bytes_echoed, PAYLOAD_LEN as u64);
}

#[test]
fn a_corrupted_payload_is_echoed_but_not_counted_as_an_exchange() {
    let mut payload: Vec<u8> = (0..PAYLOAD_LEN).map(pattern).collect();
    payload[5000] ^= 0x20;
    let (_, echo, report) = tcp_exchange(&payload);
    assert_eq!(echo, payload);
    assert_eq!(report.tcp_mismatched_bytes, 1);
    assert_eq!(report.tcp_exchanges, 0);
}

#[test]
fn udp_datagrams_are_echoed_to_their_sender() {
    let (_queues, server, client_end) = wire();
    let mut stack = Stack::new(server, config(), 0).unwrap();
    let mut client = Client::new(client_end);
    let mut socket = udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 2048]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 2048]),
    );
    socket.bind(40000).unwrap();
    let handle = client.sockets.add(socket);
    client
        .sockets
        .get_mut::<udp::Socket>(handle)
        .send_slice(b"moat udp probe", (SERVER_IP, UDP_PORT))
        .unwrap();
    let mut now = 0;
    let mut reply = None;
    for _ in 0..100 {
        now += 1000;
        client.poll(now);
        stack.poll(now);
        client.poll(now);
        let socket = client.sockets.get_mut::<udp::Socket>(handle);
        if let Ok((data, meta)) = socket.recv() {
            reply = Some((data.to_vec(), meta.endpoint));
            break;
        }
    }
    let (data, from) = reply.expect("an echo");
    assert_eq!(data, b"moat udp probe");
    assert_eq!(from, IpEndpoint::new(SERVER_IP.into(), UDP_PORT));
    assert_eq!(stack.report().udp_datagrams_echoed, 1);
}

#[test]
fn bad_addresses_and_gateways_are_refused() {
    let (_, server, _) = wire();
    let mut bad = config();
    bad.gateway = Some(Ipv4Address::new(10, 0, 3, 2));
    assert!(matches!(
        Stack::new(server, bad, 0),
        Err(StackError::GatewayOutsideSubnet { .. })
    ));
    for address in [
        Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 0), 24),
        Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 255), 24),
        Ipv4Cidr::new(Ipv4Address::new(224, 0, 0, 1), 24),
        Ipv4Cidr::new(SERVER_IP, 0),
    ] {
        let (_, server, _) = wire();
        let config = StackConfig {
            address,
            gateway: None,
            random_seed: 1,
        };
        assert_eq!(
            Stack::new(server, config, 0).err(),
            Some(StackError::BadAddress(address))
        );
    }
}

#[test]
fn the_pattern_is_not_periodic_over_the_payload() {
    let payload: Vec<u8> = (0..PAYLOAD_LEN).map(pattern).collect();
    for period in [1, 2, 4, 256, 1024, 4096] {
        assert!(
            payload[period..].iter().zip(&payload).any(|(a, b)| a != b),
            "period {period}"
        );
    }
}
