//! Linux as oracle: boots Debian's stock Linux kernel on the same QEMU machine Moat boots on and
//! records what Linux sees (PCI functions, IOMMU groups, DMAR/IOMMU log lines), so that Moat's
//! own view can be compared against it.
//!
//! - [`ensure_linux`] downloads `linux-image-amd64`'s real kernel package and `busybox-static`
//!   with `apt-get download`, unpacks them with `dpkg -x` and builds a gzip-compressed cpio
//!   (newc) initramfs whose `/init` is `oracle/init.sh`. Everything is cached in the directory
//!   the caller passes (normally `<workspace>/.cache/linux`, which git ignores).
//! - [`boot_linux`] boots that guest with extra QEMU device arguments and parses its report
//!   into a [`LinuxReport`].
//! - [`parse_moat_pci`] reads the `pci:` lines of Moat's boot report; [`compare`] diffs the two
//!   device lists.
//! - [`parse_moat_groups`] reads Moat's `iommu group N:` lines; [`compare_groups`] compares the
//!   two partitions of the devices into IOMMU groups.
//! - [`topologies`] names the QEMU device sets worth comparing.
//!
//! Submodules, one concept each: `guest` (packages and cache), `initramfs` (building the
//! initramfs), `boot` (QEMU), `report` (parsing both reports, comparing PCI functions),
//! `groups` (IOMMU groups) and `topology`.

mod boot;
mod groups;
mod guest;
mod initramfs;
mod modules;
mod report;
mod topology;

pub(crate) use boot::{LINUX_BOOT_TIMEOUT, boot_linux};
pub(crate) use groups::{Groups, compare_groups, parse_moat_groups};
pub(crate) use guest::{InitramfsSpec, LinuxGuest, ensure_linux, ensure_linux_with};
pub(crate) use report::{LinuxReport, compare, parse_linux_report, parse_moat_pci};
pub(crate) use topology::topologies;

/// The guest's `/init`: a busybox shell script that prints the report and powers off.
const INIT_SCRIPT: &str = include_str!("oracle/init.sh");

/// The line the guest prints before its report.
const BEGIN_MARKER: &str = "oracle-begin";
/// The line the guest prints after its report.
const END_MARKER: &str = "oracle-end";

#[cfg(test)]
mod tests;
