#!/bin/busybox sh
# /init of the Linux-oracle initramfs (built by xtask/src/oracle.rs). Prints what Linux sees
# between the `oracle-begin` and `oracle-end` marker lines, then powers the machine off:
#   pci BDF VENDOR DEVICE CLASS   one per PCI function, values exactly as sysfs has them
#   group N BDF                   one per IOMMU group member
#   dmesg TEXT                    every kernel log line matching DMAR|IOMMU|iommu
# Changing this file makes the next `ensure_linux` rebuild the initramfs.

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
if [ -c /dev/console ]; then
    exec </dev/console >/dev/console 2>&1
fi

echo
echo oracle-begin
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    echo "pci ${d##*/} $(cat "$d/vendor") $(cat "$d/device") $(cat "$d/class")"
done
for g in /sys/kernel/iommu_groups/*; do
    [ -d "$g/devices" ] || continue
    for d in "$g"/devices/*; do
        [ -e "$d" ] || continue
        echo "group ${g##*/} ${d##*/}"
    done
done
dmesg | grep -E 'DMAR|IOMMU|iommu' | sed 's/^/dmesg /'
echo oracle-end

poweroff -f
# Only reached if poweroff failed: a panic with panic=-1 and -no-reboot still ends QEMU.
echo "oracle: poweroff -f failed"
exit 1
