//! The QEMU device sets on which Moat's and Linux's views of the PCI topology and of the IOMMU
//! groups are compared.

/// QEMU device sets worth comparing, by name, as raw QEMU arguments to add to a q35 machine
/// with an `intel-iommu`. Every address is explicit so that BDFs are stable; devices under a
/// root or downstream port sit at slot 0, and every port has its own chassis/slot.
pub(crate) fn topologies() -> Vec<(&'static str, Vec<String>)> {
    let sets: [(&'static str, &[&str]); 6] = [
        (
            // Everything on pcie.0: a conventional endpoint, a PCIe endpoint with MSI-X and
            // a multifunction slot.
            "root-bus",
            &[
                "-device",
                "edu,addr=0x4.0",
                "-netdev",
                "user,id=n0,restrict=on",
                "-device",
                "e1000e,netdev=n0,addr=0x5.0",
                "-device",
                "edu,addr=0x6.0,multifunction=on",
                "-device",
                "edu,addr=0x6.1",
            ],
        ),
        (
            // A root port with an edu; another root port with a switch (upstream port and two
            // downstream ports), an edu and an NVMe controller (no drive: no namespaces).
            "ports-and-switch",
            &[
                "-device",
                "pcie-root-port,id=rp1,bus=pcie.0,addr=0x2.0,chassis=1,slot=1",
                "-device",
                "edu,bus=rp1,addr=0x0",
                "-device",
                "pcie-root-port,id=rp2,bus=pcie.0,addr=0x3.0,chassis=2,slot=2",
                "-device",
                "x3130-upstream,id=up1,bus=rp2,addr=0x0",
                "-device",
                "xio3130-downstream,id=dn1,bus=up1,addr=0x0,chassis=3,slot=3",
                "-device",
                "edu,bus=dn1,addr=0x0",
                "-device",
                "xio3130-downstream,id=dn2,bus=up1,addr=0x1,chassis=4,slot=4",
                "-device",
                "nvme,serial=oracle,bus=dn2,addr=0x0",
            ],
        ),
        (
            // Conventional PCI: two edus behind a PCIe-to-PCI bridge under a root port (they
            // alias to one requester ID), an edu behind a PCI-PCI bridge on pcie.0 and one
            // behind an i82801b11 (DMI-to-PCI) bridge on pcie.0; each bridge's devices share
            // its group.
            "pcie-pci-bridge",
            &[
                "-device",
                "pcie-root-port,id=rp1,bus=pcie.0,addr=0x2.0,chassis=1,slot=1",
                "-device",
                "pcie-pci-bridge,id=ppb1,bus=rp1,addr=0x0",
                "-device",
                "edu,bus=ppb1,addr=0x1",
                "-device",
                "edu,bus=ppb1,addr=0x2",
                "-device",
                "pci-bridge,id=pb1,bus=pcie.0,addr=0x7.0,chassis_nr=2",
                "-device",
                "edu,bus=pb1,addr=0x1",
                "-device",
                "i82801b11-bridge,id=dmi1,bus=pcie.0,addr=0xa.0",
                "-device",
                "edu,bus=dmi1,addr=0x3",
            ],
        ),
        (
            // Root ports stacked as functions of one multifunction slot, one of them without
            // ACS: Linux's grouping then depends on ACS and multifunction isolation.
            "multifunction-ports",
            &[
                "-device",
                "pcie-root-port,id=rp1,bus=pcie.0,addr=0x2.0,multifunction=on,chassis=1,slot=1",
                "-device",
                "pcie-root-port,id=rp2,bus=pcie.0,addr=0x2.1,chassis=2,slot=2",
                "-device",
                "pcie-root-port,id=rp3,bus=pcie.0,addr=0x2.2,chassis=3,slot=3,disable-acs=on",
                "-device",
                "edu,bus=rp1,addr=0x0",
                "-device",
                "edu,bus=rp2,addr=0x0",
                "-device",
                "edu,bus=rp3,addr=0x0",
            ],
        ),
        (
            // Root ports without ACS, each in a slot of its own: a pcie-root-port with
            // disable-acs=on and an ioh3420 (which never has ACS), an edu behind each; next to
            // them an ACS root port with a PCIe endpoint (e1000e) behind it.
            "ports-without-acs",
            &[
                "-device",
                "pcie-root-port,id=rp1,bus=pcie.0,addr=0x2.0,chassis=1,slot=1,disable-acs=on",
                "-device",
                "edu,bus=rp1,addr=0x0",
                "-device",
                "ioh3420,id=ioh1,bus=pcie.0,addr=0x3.0,chassis=2,slot=2",
                "-device",
                "edu,bus=ioh1,addr=0x0",
                "-device",
                "pcie-root-port,id=rp3,bus=pcie.0,addr=0x4.0,chassis=3,slot=3",
                "-netdev",
                "user,id=n0,restrict=on",
                "-device",
                "e1000e,netdev=n0,bus=rp3,addr=0x0",
            ],
        ),
        (
            // A pxb-pcie expander: a second root bus (0x40) that Linux finds through ACPI and
            // Moat by probing. On it a root port with an edu behind it, and a PCI-PCI bridge
            // (pxb-pcie takes only bridges) with an edu behind it.
            "pxb-expander",
            &[
                "-device",
                "pxb-pcie,id=pxb1,bus_nr=0x40,bus=pcie.0,addr=0x9.0",
                "-device",
                "pcie-root-port,id=rp1,bus=pxb1,addr=0x0,chassis=9,slot=9",
                "-device",
                "edu,bus=rp1,addr=0x0",
                "-device",
                "pci-bridge,id=pb1,bus=pxb1,addr=0x1,chassis_nr=10",
                "-device",
                "edu,bus=pb1,addr=0x2",
            ],
        ),
    ];
    sets.iter()
        .map(|(name, args)| (*name, args.iter().map(|a| (*a).to_string()).collect()))
        .collect()
}

#[cfg(test)]
mod tests;
