//! Network scenarios: the e1000e driver the table started serves on the address from the
//! command line until the host side has done its part, then reports what it answered. The
//! bytes themselves are checked on the host (xtask), against peers nobody here wrote: QEMU's
//! user networking (TCP and UDP through `hostfwd`) and the host Linux kernel's own ARP and
//! ICMP (`ping`, `arping` over a tap link).

use crate::drivers::{self, E1000eDriver};
use alloc::format;
use alloc::string::String;
use moat_kernel::info;
use moat_net_stack::Report;

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[
    (
        "net-serve",
        "e1000e + smoltcp: serve until one TCP echo exchange and one UDP echo completed",
    ),
    (
        "net-ping",
        "e1000e + smoltcp: serve until three ICMP echo requests and three ARP requests were answered",
    ),
];

// TIMEOUT: the host side starts when the guest prints `moat: ready` and needs a few seconds
// under TCG (slirp resolves our MAC, retries after 6 s if its first ARP went unanswered);
// 90 s leaves room and stays below the scenario's wall-clock limit.
const SERVE_BUDGET_US: u64 = 90_000_000;

/// Runs `name`, or `None` if it is not one of these.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    let done: fn(&Report) -> bool = match name {
        "net-serve" => |r| r.tcp_exchanges >= 1 && r.udp_datagrams_echoed >= 1,
        // The host kernel's own resolution for ping, then arping's two requests.
        "net-ping" => |r| r.frames.echo_replies >= 3 && r.frames.arp_replies >= 3,
        _ => return None,
    };
    Some(serve(name, done))
}

fn serve(name: &str, done: fn(&Report) -> bool) -> Result<(), String> {
    let bdf = *drivers::devices_of("e1000e")
        .first()
        .ok_or("the table started no e1000e driver (drivers=e1000e and an e1000e needed)")?;
    info!("test", "{name}: serving on {bdf}");
    let (result, counters) = drivers::with::<E1000eDriver, _>(bdf, |driver| {
        (driver.serve(SERVE_BUDGET_US, done), driver.counters())
    })
    .ok_or("the e1000e's driver is not an E1000eDriver")?;
    let report = result?;
    let frames = report.frames;
    info!(
        "test",
        "{name}: tcp connections {} exchanges {} echoed {} bytes, mismatched {}; udp echoed {}",
        report.tcp_connections,
        report.tcp_exchanges,
        report.tcp_bytes_echoed,
        report.tcp_mismatched_bytes,
        report.udp_datagrams_echoed
    );
    info!(
        "test",
        "{name}: frames in {} out {}; arp requests {} replies {}; icmp echo requests {} replies {}; errors rx {} tx {}",
        frames.received,
        frames.transmitted,
        frames.arp_requests,
        frames.arp_replies,
        frames.echo_requests,
        frames.echo_replies,
        frames.receive_errors,
        frames.transmit_errors
    );
    info!("test", "{name}: driver {counters}");
    if report.tcp_mismatched_bytes != 0 {
        return Err(format!(
            "{} TCP bytes did not match the known payload",
            report.tcp_mismatched_bytes
        ));
    }
    Ok(())
}
