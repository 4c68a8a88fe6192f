//! The stack: a smoltcp interface on the configured address and route, and the services.
//!
//! TCP on [`TCP_PORT`]: on every connection, send [`GREETING`]; echo every byte received,
//! checking it against [`pattern`]; when the peer closes, close too; an exchange counts as
//! complete when exactly [`PAYLOAD_LEN`] matching bytes were echoed. Then listen again.
//! UDP on [`UDP_PORT`]: echo every datagram to its sender.

use crate::phy::{FrameCounters, Phy};
use crate::{GREETING, Nic, PAYLOAD_LEN, TCP_PORT, UDP_PORT, pattern};
use alloc::vec;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// TCP buffers: a few segments each way.
const TCP_BUFFER: usize = 8 * 1024;
/// UDP: datagrams and bytes buffered each way.
const UDP_DATAGRAMS: usize = 8;
const UDP_BUFFER: usize = 8 * 1024;

/// The interface's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackConfig {
    /// Our address and prefix.
    pub address: Ipv4Cidr,
    /// The default gateway, if any; it must be inside `address`'s subnet.
    pub gateway: Option<Ipv4Address>,
    /// Seed for smoltcp (TCP initial sequence numbers, ephemeral ports).
    pub random_seed: u64,
}

/// Why the stack could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackError {
    /// The NIC's MAC address is not a unicast address.
    MacNotUnicast([u8; 6]),
    /// The address is unspecified, broadcast, multicast or the subnet's network/broadcast
    /// address.
    BadAddress(Ipv4Cidr),
    /// The gateway is not inside the address's subnet (or is the address itself).
    GatewayOutsideSubnet {
        /// The gateway.
        gateway: Ipv4Address,
        /// Our address.
        address: Ipv4Cidr,
    },
}

/// What the services did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// TCP connections accepted.
    pub tcp_connections: u64,
    /// TCP exchanges complete: greeting sent, [`PAYLOAD_LEN`] matching bytes echoed, closed.
    pub tcp_exchanges: u64,
    /// Bytes received on TCP that did not match [`pattern`] (echoed anyway).
    pub tcp_mismatched_bytes: u64,
    /// TCP bytes echoed, over all connections.
    pub tcp_bytes_echoed: u64,
    /// UDP datagrams echoed.
    pub udp_datagrams_echoed: u64,
    /// Frame counters from the adapter.
    pub frames: FrameCounters,
}

/// Per-connection TCP state.
#[derive(Clone, Copy, Default)]
struct Session {
    open: bool,
    greeted: bool,
    received: usize,
    matched: usize,
}

/// The interface, its sockets and the services' state.
pub struct Stack<N: Nic> {
    phy: Phy<N>,
    interface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
    udp: SocketHandle,
    session: Session,
    report: Report,
}

fn check(config: &StackConfig) -> Result<(), StackError> {
    let address = config.address;
    let ip = address.address();
    let prefix = address.prefix_len();
    let network = address.network().address();
    let broadcast = address.broadcast();
    let host_part_edge = prefix < 31 && (ip == network || Some(ip) == broadcast);
    if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || prefix == 0
        || host_part_edge
    {
        return Err(StackError::BadAddress(address));
    }
    if let Some(gateway) = config.gateway
        && (!address.contains_addr(&gateway) || gateway == ip || Some(gateway) == broadcast)
    {
        return Err(StackError::GatewayOutsideSubnet { gateway, address });
    }
    Ok(())
}

impl<N: Nic> Stack<N> {
    /// Brings the interface up on `nic` with `config` and opens the services.
    pub fn new(nic: N, config: StackConfig, now_us: u64) -> Result<Self, StackError> {
        check(&config)?;
        let mac = nic.mac_address();
        let ethernet = EthernetAddress(mac);
        if !ethernet.is_unicast() {
            return Err(StackError::MacNotUnicast(mac));
        }
        let mut phy = Phy::new(nic, config.address.address());
        let mut interface_config = Config::new(HardwareAddress::Ethernet(ethernet));
        interface_config.random_seed = config.random_seed;
        let mut interface = Interface::new(
            interface_config,
            &mut phy,
            Instant::from_micros(now_us as i64),
        );
        interface.update_ip_addrs(|addresses| {
            // One address on a fresh interface: the table has room for it.
            let _ = addresses.push(IpCidr::Ipv4(config.address));
        });
        if let Some(gateway) = config.gateway {
            // A fresh route table has room for the default route.
            let _ = interface.routes_mut().add_default_ipv4_route(gateway);
        }
        let mut sockets = SocketSet::new(vec![]);
        let tcp = sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        ));
        let mut udp_socket = udp::Socket::new(
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_DATAGRAMS],
                vec![0; UDP_BUFFER],
            ),
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_DATAGRAMS],
                vec![0; UDP_BUFFER],
            ),
        );
        // A fresh socket binds to a non-zero port.
        let _ = udp_socket.bind(UDP_PORT);
        let udp = sockets.add(udp_socket);
        Ok(Self {
            phy,
            interface,
            sockets,
            tcp,
            udp,
            session: Session::default(),
            report: Report::default(),
        })
    }

    /// Moves frames through the interface and runs the services once; call again when the
    /// NIC raised an interrupt or [`poll_delay_us`](Self::poll_delay_us) passed.
    pub fn poll(&mut self, now_us: u64) {
        let now = Instant::from_micros(now_us as i64);
        // Services first and again after the interface: data they queue goes out in this call.
        for _ in 0..2 {
            self.interface.poll(now, &mut self.phy, &mut self.sockets);
            self.serve_tcp();
            self.serve_udp();
        }
        self.interface.poll(now, &mut self.phy, &mut self.sockets);
        self.report.frames = self.phy.counters();
    }

    /// How long until smoltcp needs a poll for its own timers (retransmits, ARP), if at all.
    pub fn poll_delay_us(&mut self, now_us: u64) -> Option<u64> {
        let now = Instant::from_micros(now_us as i64);
        self.interface
            .poll_delay(now, &self.sockets)
            .map(|delay| delay.total_micros())
    }

    /// What the services did so far.
    pub fn report(&self) -> Report {
        self.report
    }

    /// The NIC, mutably (for waiting on its interrupts between polls).
    pub fn nic_mut(&mut self) -> &mut N {
        self.phy.nic_mut()
    }

    /// The NIC.
    pub fn nic(&self) -> &N {
        self.phy.nic()
    }

    fn serve_tcp(&mut self) {
        let socket = self.sockets.get_mut::<tcp::Socket>(self.tcp);
        if !socket.is_open() {
            if self.session.open {
                let complete =
                    self.session.received == PAYLOAD_LEN && self.session.matched == PAYLOAD_LEN;
                self.report.tcp_exchanges += u64::from(complete);
            }
            self.session = Session::default();
            // Listening on a closed socket with a non-zero port cannot fail.
            let _ = socket.listen(TCP_PORT);
            return;
        }
        if socket.is_active() && !self.session.open {
            self.session.open = true;
            self.report.tcp_connections += 1;
        }
        if socket.may_send()
            && !self.session.greeted
            && socket.send_capacity() - socket.send_queue() >= GREETING.len()
        {
            // The free space was checked: the whole greeting is queued.
            let _ = socket.send_slice(GREETING);
            self.session.greeted = true;
        }
        let mut chunk = [0u8; 1024];
        while self.session.greeted && socket.can_recv() {
            let room = (socket.send_capacity() - socket.send_queue()).min(chunk.len());
            if room == 0 {
                break;
            }
            let Ok(count) = socket.recv_slice(&mut chunk[..room]) else {
                break;
            };
            if count == 0 {
                break;
            }
            for (offset, byte) in chunk[..count].iter().enumerate() {
                if *byte == pattern(self.session.received + offset) {
                    self.session.matched += 1;
                } else {
                    self.report.tcp_mismatched_bytes += 1;
                }
            }
            self.session.received += count;
            // `room` bytes were free: everything received is queued.
            let _ = socket.send_slice(&chunk[..count]);
            self.report.tcp_bytes_echoed += count as u64;
        }
        if !socket.may_recv() && socket.may_send() && !socket.can_recv() && socket.send_queue() == 0
        {
            socket.close();
        }
    }

    fn serve_udp(&mut self) {
        let socket = self.sockets.get_mut::<udp::Socket>(self.udp);
        let mut datagram = [0u8; 1500];
        while socket.can_recv() && socket.can_send() {
            let Ok((count, metadata)) = socket.recv_slice(&mut datagram) else {
                break;
            };
            if socket
                .send_slice(&datagram[..count], metadata.endpoint)
                .is_ok()
            {
                self.report.udp_datagrams_echoed += 1;
            }
        }
    }
}
