//! The network scenarios' host side: the guest's e1000e driver and smoltcp stack against
//! peers nobody here wrote.
//!
//! - `net-slirp`: QEMU user networking forwards a host TCP and UDP port to the guest. While the
//!   guest runs, this file's client waits for the TCP greeting (a host connect succeeds at once
//!   even before the guest listens: only bytes prove the guest), sends a known 16 KiB payload,
//!   checks every echoed byte, and echoes a UDP datagram. After the run it reads the pcap QEMU
//!   wrote (`filter-dump`) for the guest's ARP reply to slirp and its greeting segment.
//! - `net-tap-ping`: the guest on a tap link in a network namespace of its own; the host Linux
//!   kernel resolves the guest's MAC with its own ARP for `ping` (iputils), which checks three
//!   ICMP echo replies (and their data); then `arping` checks two ARP replies from the guest's
//!   MAC.
//!
//! The constants mirror drivers/net-stack/src/lib.rs; the pattern is implemented again here.

use crate::qemu::{self, Boot, Firmware, Machine};
use moat_tests::{After, During, Expect, OutcomeKind, Scenario};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TCP_PORT: u16 = 7777;
const UDP_PORT: u16 = 7778;
const GREETING: &[u8] = b"moat e1000e tcp echo ready\n";
const PAYLOAD_LEN: usize = 16 * 1024;
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const UDP_PROBE: &[u8] = b"moat udp probe: 0123456789abcdef";

/// Wall-clock limit of a network scenario: boot, the guest's 90 s serving budget, slack.
const NET_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the appliance run lasts (it ends only by this limit): boot and slirp's ARP retry
/// (about 6 s) fit well within it.
const APPLIANCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Byte `index` of the known payload (the guest checks the same function).
fn pattern(index: usize) -> u8 {
    let mixed = (index as u32).wrapping_mul(2_654_435_761);
    (mixed >> 24) as u8 ^ (index >> 8) as u8
}

/// A TCP port free on 127.0.0.1 whose UDP twin is free too (so concurrent runs do not meet).
fn free_port() -> Result<u16, String> {
    for _ in 0..20 {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port pair on 127.0.0.1".into())
}

/// The network scenarios; files go under `dir`.
pub(crate) fn scenarios(image: &Path, dir: &Path) -> Vec<Scenario> {
    let _ = std::fs::create_dir_all(dir);
    let mut list = Vec::new();
    for appliance in [false, true] {
        match free_port() {
            Ok(port) => list.push(slirp(image, dir, port, appliance)),
            Err(why) => eprintln!("xtask: net-slirp: {why}"),
        }
    }
    list.push(tap(image, dir));
    list
}

fn boot(image: &Path, cmdline: &str) -> Boot {
    Boot::Kernel {
        image: image.to_path_buf(),
        cmdline: cmdline.into(),
    }
}

/// `net-slirp`: `test=net-serve` serves until the host side is done, then exits. With
/// `appliance` (`net-appliance`), no test: the kernel boots with an address and idles forever,
/// serving from its idle loop, as an appliance does; the run must end by the wall-clock limit
/// (the kernel never exits on its own) after the host side got its answers.
fn slirp(image: &Path, dir: &Path, port: u16, appliance: bool) -> Scenario {
    let name = if appliance {
        "net-appliance"
    } else {
        "net-slirp"
    };
    let pcap = dir.join(format!("{name}.pcap"));
    let _ = std::fs::remove_file(&pcap);
    let machine = Machine {
        devices: [
            "-netdev".to_string(),
            format!(
                "user,id=n0,hostfwd=tcp:127.0.0.1:{port}-10.0.2.15:{TCP_PORT},\
                 hostfwd=udp:127.0.0.1:{port}-10.0.2.15:{UDP_PORT}"
            ),
            "-object".to_string(),
            format!("filter-dump,id=fd0,netdev=n0,file={}", pcap.display()),
            "-device".to_string(),
            "e1000e,netdev=n0".to_string(),
        ]
        .to_vec(),
        ..Machine::default()
    };
    let address = "drivers=e1000e net.ip=10.0.2.15/24 net.gw=10.0.2.2";
    let driver_line = "driver: 0000:00:01.0 e1000e group 1 space 1 domain 2: mac 52:54:00:12:34:56, link up, MSI-X, 10.0.2.15/24";
    let (cmdline, expect, timeout) = if appliance {
        (
            address.to_string(),
            Expect::failure(OutcomeKind::Timeout, [driver_line, "moat: ready"]),
            APPLIANCE_TIMEOUT,
        )
    } else {
        (
            format!("test=net-serve {address}"),
            Expect::success([
                driver_line,
                "net-serve: tcp connections 1 exchanges 1 echoed 16384 bytes, mismatched 0; udp echoed",
                "scenario `net-serve` passed",
            ]),
            NET_TIMEOUT,
        )
    };
    Scenario {
        name: name.into(),
        command: qemu::command(&machine, &boot(image, &cmdline), Firmware::Bios),
        timeout,
        expect,
        during: Some(During::new(move |deadline| {
            tcp_exchange(port, deadline)?;
            udp_echo(port, deadline)
        })),
        after: Some(After::new(move || check_pcap(&pcap))),
    }
}

/// Connects until the guest's greeting arrives, then sends the payload and checks the echo.
fn tcp_exchange(port: u16, deadline: Instant) -> Result<(), String> {
    let mut stream = loop {
        if Instant::now() >= deadline {
            return Err("no TCP greeting from the guest before the deadline".into());
        }
        // A refused or silent connection means the guest is not serving yet: try again.
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .map_err(|e| e.to_string())?;
            let mut greeting = vec![0; GREETING.len()];
            match read_exactly(&mut stream, &mut greeting, deadline) {
                Ok(()) if greeting == GREETING => break stream,
                Ok(()) => {
                    return Err(format!(
                        "greeting {:?}, expected {:?}",
                        String::from_utf8_lossy(&greeting),
                        String::from_utf8_lossy(GREETING)
                    ));
                }
                Err(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let payload: Vec<u8> = (0..PAYLOAD_LEN).map(pattern).collect();
    stream
        .write_all(&payload)
        .map_err(|e| format!("sending the payload: {e}"))?;
    let mut echo = vec![0; PAYLOAD_LEN];
    read_exactly(&mut stream, &mut echo, deadline).map_err(|e| format!("reading the echo: {e}"))?;
    if let Some(at) = (0..PAYLOAD_LEN).find(|&i| echo[i] != payload[i]) {
        return Err(format!(
            "echo byte {at} is {:#04x}, sent {:#04x}",
            echo[at], payload[at]
        ));
    }
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    // The guest closes after the echo: end of stream, and no byte more.
    let mut rest = [0u8; 64];
    loop {
        match stream.read(&mut rest) {
            Ok(0) => return Ok(()),
            Ok(n) => return Err(format!("{n} unexpected byte(s) after the echo")),
            Err(e)
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                    && Instant::now() < deadline => {}
            Err(e) => return Err(format!("waiting for the guest to close: {e}")),
        }
    }
}

/// Fills `buffer` from `stream` (whose reads time out) before `deadline`.
fn read_exactly(
    stream: &mut TcpStream,
    buffer: &mut [u8],
    deadline: Instant,
) -> Result<(), String> {
    let mut filled = 0;
    while filled < buffer.len() {
        match stream.read(&mut buffer[filled..]) {
            Ok(0) => {
                return Err(format!(
                    "end of stream after {filled} of {} bytes",
                    buffer.len()
                ));
            }
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "timed out after {filled} of {} bytes",
                        buffer.len()
                    ));
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Sends the probe until its echo comes back (UDP may be lost while slirp resolves the MAC).
fn udp_echo(port: u16, deadline: Instant) -> Result<(), String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let mut reply = [0u8; 1500];
    while Instant::now() < deadline {
        socket
            .send_to(UDP_PROBE, ("127.0.0.1", port))
            .map_err(|e| e.to_string())?;
        if let Ok((len, _)) = socket.recv_from(&mut reply) {
            return if &reply[..len] == UDP_PROBE {
                Ok(())
            } else {
                Err(format!(
                    "UDP echo {:?}",
                    String::from_utf8_lossy(&reply[..len])
                ))
            };
        }
    }
    Err("no UDP echo before the deadline".into())
}

/// Reads the pcap: the guest answered slirp's ARP request for 10.0.2.15 and sent its
/// greeting from port 7777.
fn check_pcap(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let frames = pcap_frames(&bytes)?;
    let guest_ip = [10, 0, 2, 15];
    let arp_reply = frames.iter().any(|f| {
        f.len() >= 42
            && f[6..12] == GUEST_MAC
            && f[12..14] == [0x08, 0x06]
            && f[20..22] == [0, 2]
            && f[22..28] == GUEST_MAC
            && f[28..32] == guest_ip
            && f[38..42] == [10, 0, 2, 2]
    });
    let greeting = frames.iter().any(|f| {
        f.len() > 54
            && f[6..12] == GUEST_MAC
            && f[12..14] == [0x08, 0x00]
            && f[23] == 6
            && f[26..30] == guest_ip
            && {
                let ip_header = usize::from(f[14] & 0xf) * 4;
                let tcp = 14 + ip_header;
                f.len() > tcp + 20 && f[tcp..tcp + 2] == TCP_PORT.to_be_bytes() && {
                    let data = tcp + usize::from(f[tcp + 12] >> 4) * 4;
                    f.get(data..).is_some_and(|d| d.starts_with(GREETING))
                }
            }
    });
    match (arp_reply, greeting) {
        (true, true) => Ok(()),
        _ => Err(format!(
            "{}: {} frames; guest ARP reply to 10.0.2.2: {arp_reply}; greeting segment: {greeting}",
            path.display(),
            frames.len()
        )),
    }
}

/// The frames of a classic little-endian pcap file (what QEMU's filter-dump writes).
fn pcap_frames(bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    if word(0) != Some(0xa1b2_c3d4) {
        return Err("not a little-endian pcap file".into());
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let len = word(at + 8).ok_or("truncated record header")? as usize;
        let frame = bytes.get(at + 16..at + 16 + len).ok_or("truncated frame")?;
        frames.push(frame);
        at += 16 + len;
    }
    Ok(frames)
}

fn tap(image: &Path, dir: &Path) -> Scenario {
    let arping_log = dir.join("net-tap-arping.txt");
    let ping_log = dir.join("net-tap-ping.txt");
    let _ = std::fs::remove_file(&arping_log);
    let _ = std::fs::remove_file(&ping_log);
    let machine = Machine {
        devices: [
            "-netdev",
            "tap,id=n0,ifname=moat0,script=no,downscript=no",
            "-device",
            "e1000e,netdev=n0",
        ]
        .map(String::from)
        .to_vec(),
        ..Machine::default()
    };
    let cmdline = "test=net-ping drivers=e1000e net.ip=10.0.3.15/24 net.gw=10.0.3.1";
    let qemu = qemu::command(&machine, &boot(image, cmdline), Firmware::Bios);
    // A network namespace of its own (gone with the process): a tap link to the guest, the
    // host side 10.0.3.1. ping then arping run in the background; QEMU replaces the shell.
    let script = format!(
        "set -e; ip link set lo up; ip tuntap add dev moat0 mode tap; \
         ip addr add 10.0.3.1/24 dev moat0; ip link set moat0 up; \
         ( ping -c 3 -w 90 10.0.3.15 > {ping} 2>&1; echo \"exit $?\" >> {ping}; \
           arping -c 2 -w 10 -I moat0 10.0.3.15 > {arping} 2>&1; echo \"exit $?\" >> {arping} ) \
         < /dev/null > /dev/null 2>&1 & exec \"$@\"",
        arping = arping_log.display(),
        ping = ping_log.display()
    );
    let mut command = Command::new("unshare");
    command
        .args(["--net", "sh", "-c", &script, "sh"])
        .arg(qemu.get_program())
        .args(qemu.get_args());
    Scenario {
        name: "net-tap-ping".into(),
        command,
        timeout: NET_TIMEOUT,
        expect: Expect::success([
            "mac 52:54:00:12:34:56, link up, MSI-X, 10.0.3.15/24",
            "scenario `net-ping` passed",
        ]),
        during: None,
        after: Some(After::new(move || check_tap_logs(&arping_log, &ping_log))),
    }
}

/// Reads what arping and ping said; waits a little for them to write their exit lines.
fn check_tap_logs(arping: &PathBuf, ping: &PathBuf) -> Result<(), String> {
    let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    let finished = Instant::now() + Duration::from_secs(10);
    while Instant::now() < finished && !read(arping).contains("exit ") {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (arping, ping) = (read(arping), read(ping));
    let replies = arping
        .matches("reply from 10.0.3.15 [52:54:00:12:34:56]")
        .count();
    let echoes = ping.matches("bytes from 10.0.3.15: icmp_seq=").count();
    if replies >= 2
        && arping.contains("exit 0")
        && echoes >= 3
        && ping.contains("exit 0")
        && !ping.contains("wrong data")
    {
        Ok(())
    } else {
        Err(format!(
            "arping: {replies} replies from the guest's MAC; ping: {echoes} echo replies\n--- arping ---\n{arping}--- ping ---\n{ping}"
        ))
    }
}
