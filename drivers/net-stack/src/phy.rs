//! smoltcp's `phy::Device` over a [`Nic`]: a received frame is copied out of the driver into
//! a buffer here (so the receive and transmit tokens borrow different fields), and a frame
//! smoltcp builds is copied into the driver's per-frame DMA region. Frames are also counted
//! by kind for the report (ARP requests and ICMP echo requests addressed to us).

use crate::Nic;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, EthernetFrame, EthernetProtocol, Icmpv4Message, Icmpv4Packet,
    IpProtocol, Ipv4Address, Ipv4Packet,
};

/// Largest Ethernet frame (no CRC) for a 1500-byte MTU.
const FRAME_LEN: usize = 1514;
/// Receive errors tolerated in one `receive` call before it gives up for this poll.
const ERRORS_PER_POLL: usize = 64;

/// What crossed the adapter, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCounters {
    /// Frames received from the NIC.
    pub received: u64,
    /// Frames handed to the NIC.
    pub transmitted: u64,
    /// Frames the NIC reported bad (dropped).
    pub receive_errors: u64,
    /// Frames the NIC refused to queue (dropped; TCP retransmits).
    pub transmit_errors: u64,
    /// ARP requests for our address.
    pub arp_requests: u64,
    /// ARP replies we sent.
    pub arp_replies: u64,
    /// ICMP echo requests to our address.
    pub echo_requests: u64,
    /// ICMP echo replies we sent.
    pub echo_replies: u64,
}

/// The adapter: the NIC, one receive and one transmit buffer, the counters.
pub struct Phy<N: Nic> {
    nic: N,
    address: Ipv4Address,
    rx: [u8; 2048],
    tx: [u8; FRAME_LEN],
    counters: FrameCounters,
}

impl<N: Nic> Phy<N> {
    /// Wraps `nic`; `address` is ours (for counting requests addressed to us).
    pub fn new(nic: N, address: Ipv4Address) -> Self {
        Self {
            nic,
            address,
            rx: [0; 2048],
            tx: [0; FRAME_LEN],
            counters: FrameCounters::default(),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> FrameCounters {
        self.counters
    }

    /// The NIC.
    pub fn nic(&self) -> &N {
        &self.nic
    }

    /// The NIC, mutably (for waiting on its interrupts).
    pub fn nic_mut(&mut self) -> &mut N {
        &mut self.nic
    }
}

/// A frame's kind, for the counters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ArpRequest,
    ArpReply,
    EchoRequest,
    EchoReply,
    Other,
}

/// Classifies `frame`; `ours` is the address requests must target (or replies come from).
fn classify(frame: &[u8], ours: Ipv4Address) -> Kind {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return Kind::Other;
    };
    match ethernet.ethertype() {
        EthernetProtocol::Arp => match ArpPacket::new_checked(ethernet.payload()) {
            Ok(arp)
                if arp.operation() == ArpOperation::Request
                    && arp.target_protocol_addr() == ours.octets() =>
            {
                Kind::ArpRequest
            }
            Ok(arp)
                if arp.operation() == ArpOperation::Reply
                    && arp.source_protocol_addr() == ours.octets() =>
            {
                Kind::ArpReply
            }
            _ => Kind::Other,
        },
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(ethernet.payload()) else {
                return Kind::Other;
            };
            if ip.next_header() != IpProtocol::Icmp {
                return Kind::Other;
            }
            match Icmpv4Packet::new_checked(ip.payload()).map(|icmp| icmp.msg_type()) {
                Ok(Icmpv4Message::EchoRequest) if ip.dst_addr() == ours => Kind::EchoRequest,
                Ok(Icmpv4Message::EchoReply) if ip.src_addr() == ours => Kind::EchoReply,
                _ => Kind::Other,
            }
        }
        _ => Kind::Other,
    }
}

/// A received frame, already copied out of the driver.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room for one frame to send.
pub struct TxToken<'a, N: Nic> {
    nic: &'a mut N,
    buffer: &'a mut [u8; FRAME_LEN],
    counters: &'a mut FrameCounters,
    address: Ipv4Address,
}

impl<N: Nic> phy::TxToken for TxToken<'_, N> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // smoltcp never asks for more than the MTU it was given; clamp anyway, and let the
        // driver refuse a frame of the wrong size.
        let len = len.min(FRAME_LEN);
        let result = f(&mut self.buffer[..len]);
        let frame = &self.buffer[..len];
        match self.nic.transmit(frame) {
            Ok(()) => {
                self.counters.transmitted += 1;
                match classify(frame, self.address) {
                    Kind::ArpReply => self.counters.arp_replies += 1,
                    Kind::EchoReply => self.counters.echo_replies += 1,
                    _ => {}
                }
            }
            Err(_) => self.counters.transmit_errors += 1,
        }
        result
    }
}

impl<N: Nic> phy::Device for Phy<N> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, N>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_, N>)> {
        for _ in 0..ERRORS_PER_POLL {
            match self.nic.receive(&mut self.rx) {
                Ok(Some(len)) => {
                    self.counters.received += 1;
                    match classify(&self.rx[..len], self.address) {
                        Kind::ArpRequest => self.counters.arp_requests += 1,
                        Kind::EchoRequest => self.counters.echo_requests += 1,
                        _ => {}
                    }
                    return Some((
                        RxToken {
                            frame: &self.rx[..len],
                        },
                        TxToken {
                            nic: &mut self.nic,
                            buffer: &mut self.tx,
                            counters: &mut self.counters,
                            address: self.address,
                        },
                    ));
                }
                Ok(None) => return None,
                Err(_) => self.counters.receive_errors += 1,
            }
        }
        None
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_, N>> {
        if !self.nic.can_transmit() {
            return None;
        }
        Some(TxToken {
            nic: &mut self.nic,
            buffer: &mut self.tx,
            counters: &mut self.counters,
            address: self.address,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut capabilities = DeviceCapabilities::default();
        capabilities.medium = Medium::Ethernet;
        capabilities.max_transmission_unit = FRAME_LEN;
        capabilities.max_burst_size = Some(1);
        capabilities
    }
}
