//! `net.ip=A.B.C.D/N` and `net.gw=A.B.C.D`: the address the network driver's stack uses.
//! Each value is checked on its own here; whether the gateway lies inside the address's
//! subnet is checked where both are used (the network stack), and reported there.

use super::Rejection;
use core::net::Ipv4Addr;

/// An IPv4 address with its prefix length, from `net.ip=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4WithPrefix {
    /// The address.
    pub address: Ipv4Addr,
    /// The prefix length, 1..=32.
    pub prefix_len: u8,
}

const IP_WHY: &str =
    "net.ip takes a unicast IPv4 address and a prefix length 1-32, e.g. net.ip=10.0.2.15/24";
const GW_WHY: &str = "net.gw takes a unicast IPv4 address, e.g. net.gw=10.0.2.2";

/// Whether `address` can name one host.
fn unicast(address: Ipv4Addr) -> bool {
    !(address.is_unspecified() || address.is_broadcast() || address.is_multicast())
}

/// Parses `net.ip=`'s value.
pub(super) fn address(value: Option<&str>) -> Result<Ipv4WithPrefix, Rejection> {
    let (address, prefix) = value
        .and_then(|v| v.split_once('/'))
        .ok_or(Rejection::Malformed(IP_WHY))?;
    let address: Ipv4Addr = address.parse().map_err(|_| Rejection::Malformed(IP_WHY))?;
    // `u8::from_str` accepts a leading '+'; a prefix is digits only.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::Malformed(IP_WHY));
    }
    let prefix_len: u8 = prefix.parse().map_err(|_| Rejection::Malformed(IP_WHY))?;
    if !(1..=32).contains(&prefix_len) || !unicast(address) {
        return Err(Rejection::Malformed(IP_WHY));
    }
    Ok(Ipv4WithPrefix {
        address,
        prefix_len,
    })
}

/// Parses `net.gw=`'s value.
pub(super) fn gateway(value: Option<&str>) -> Result<Ipv4Addr, Rejection> {
    let gateway: Ipv4Addr = value
        .ok_or(Rejection::Malformed(GW_WHY))?
        .parse()
        .map_err(|_| Rejection::Malformed(GW_WHY))?;
    if !unicast(gateway) {
        return Err(Rejection::Malformed(GW_WHY));
    }
    Ok(gateway)
}
