//! The driver-table scenarios on the showcase machine (`cargo xtask run`'s): every driver
//! starts on its device, and the edu driver is used through the table and removed again.

use super::{kernel, showcase};
use moat_tests::{Expect, Scenario};
use std::path::Path;

/// `drivers-showcase` and `driver-edu-lifecycle`.
pub(crate) fn scenarios(image: &Path, disks: &Path) -> Vec<Scenario> {
    vec![
        kernel(
            "drivers-showcase",
            &showcase(disks, "drivers-showcase"),
            image,
            "poweroff drivers=all",
            // Each edu, the nvme, the virtio-blk and the e1000e is its driver's, in its own space
            // and domain (the e1000e up with no address: no net.ip); the second edu of the
            // bridged group cannot get a second owner and stays blocked, said so.
            Expect::success([
                "driver: 0000:00:01.0 edu group 1 space 1 domain 2: alive, 12! = 479001600, DMA round trip with MSI ok",
                "driver: 0000:00:02.0 nvme group 2 space 2 domain 3: QEMU NVMe Ctrl, NVMe 1.4, namespace 1: 131072 blocks of 512 B",
                "driver: 0000:00:03.0 virtio-blk group 3 space 3 domain 4: 131072 sectors (64 MiB), features 0x300000200 (ACCESS_PLATFORM on)",
                "driver: 0000:00:04.0 e1000e group 4 space 4 domain 5: mac 52:54:00:12:34:56, link up, MSI-X, no address (net.ip= not given)",
                "driver: 0000:01:00.0 edu group 8 space 5 domain 6: alive",
                "registry: 0000:00:01.0 group 1 state attached owner 1 (edu) space 1 domain 2",
                "driver: 0000:03:02.0: edu failed: bind: Busy (another owner holds its group",
            ]),
        ),
        kernel(
            "driver-edu-lifecycle",
            &showcase(disks, "driver-edu-lifecycle"),
            image,
            "test=driver-edu-lifecycle drivers=edu",
            Expect::success([
                "driver-edu: 0000:01:00.0: 10! = 3628800, DMA round trip ok",
                "driver-edu: removed: registry: 0000:01:00.0 group 8 state blocked owner - space - domain blocking",
                "driver-edu: frames free",
            ]),
        ),
    ]
}
