#!/bin/busybox sh
# /init of the block benchmark's Linux guest (built by xtask/src/bench/linux.rs). Loads the
# virtio-blk and NVMe drivers, reads each disk with `dd iflag=direct` (O_DIRECT: no page
# cache, one request per dd block) and prints one machine-readable line per cell:
#   bench-block: system=linux device=D mode=M domain=T workload=W qd=Q ios=N bytes=B ns=T overhead_ns=O
# `domain` is the device's IOMMU domain type as Linux reports it (DMA = translated,
# identity = pass-through). `overhead_ns` is the same commands with count=0: every process,
# open, seek and close, but no read; ns - overhead_ns is the time the reads took.
# A problem prints `bench-block-error: ...`. Parameters come from the kernel command line:
#   bench_vblk=BDF bench_nvme=BDF bench_rand=N bench_seq=N bench_jobs=J
# Random offsets come from the LCG x' = (x * 1103515245 + 12345) mod 2^31, block = (x >> 8)
# mod blocks, seeded with the job number (1 for queue depth 1, 1..J for J jobs): Moat's
# bench scenario uses the same sequence. Changing this file rebuilds the initramfs.

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
if [ -c /dev/console ]; then
    exec </dev/console >/dev/console 2>&1
fi

fail() {
    echo "bench-block-error: $*"
}

for module in $(cat /lib/modules/order); do
    insmod "/lib/modules/$module" || fail "insmod $module failed"
done

mode=strict
vblk= nvme= rand=0 seq=0 jobs=32
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        iommu=pt) mode=pass-through ;;
        bench_vblk=*) vblk=${arg#*=} ;;
        bench_nvme=*) nvme=${arg#*=} ;;
        bench_rand=*) rand=${arg#*=} ;;
        bench_seq=*) seq=${arg#*=} ;;
        bench_jobs=*) jobs=${arg#*=} ;;
    esac
done

# Microseconds of CLOCK_REALTIME (busybox `date` has no %N; adjtimex prints tv_usec).
now_us() {
    set -- $(adjtimex | awk '/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {print s, u}')
    echo $(( $1 * 1000000 + $2 ))
}

# The block device node of PCI function $1, once its driver created it (budget: 10 s).
node_of() {
    tries=0
    while [ $tries -lt 100 ]; do
        for path in /sys/bus/pci/devices/$1/virtio*/block/* /sys/bus/pci/devices/$1/nvme/nvme*/nvme*n1; do
            if [ -b "/dev/${path##*/}" ]; then
                echo "${path##*/}"
                return 0
            fi
        done
        sleep 0.1
        tries=$((tries + 1))
    done
    return 1
}

# $count reads of 4 KiB (count=1 per dd; count=0 for the overhead run) at LCG offsets.
random_reads() {
    i=0
    while [ $i -lt $reads ]; do
        seed=$(( (seed * 1103515245 + 12345) % 2147483648 ))
        dd if=$dev of=/dev/null bs=4096 count=$count skip=$(( (seed >> 8) % blocks )) iflag=direct 2>/dev/null ||
            fail "dd of $dev failed"
        i=$((i + 1))
    done
}

# $jobs processes of random_reads at once, each seeded with its number.
random_parallel() {
    job=1
    while [ $job -le $jobs ]; do
        seed=$job
        random_reads &
        job=$((job + 1))
    done
    wait
}

# One dd of $reads 128 KiB reads from block $start on.
sequential() {
    dd if=$dev of=/dev/null bs=131072 count=$(( count * reads )) skip=$start iflag=direct 2>/dev/null ||
        fail "dd of $dev failed"
}

# $jobs dds at once, each over its own slice.
sequential_parallel() {
    job=0
    while [ $job -lt $jobs ]; do
        start=$((job * reads))
        sequential &
        job=$((job + 1))
    done
    wait
}

# measure NAME QD IOS BYTES FUNCTION: times FUNCTION with count=1, then with count=0.
measure() {
    count=1
    t0=$(now_us); $5; t1=$(now_us)
    count=0
    t2=$(now_us); $5; t3=$(now_us)
    echo "bench-block: system=linux device=$name mode=$mode domain=$domain workload=$1 qd=$2 ios=$3 bytes=$4 ns=$(( (t1 - t0) * 1000 )) overhead_ns=$(( (t3 - t2) * 1000 ))"
}

bench() {
    name=$1
    node=$(node_of "$2") || { fail "device=$name: no block device for $2"; return; }
    dev=/dev/$node
    domain=$(cat /sys/bus/pci/devices/$2/iommu_group/type 2>/dev/null)
    blocks=$(( $(cat /sys/block/$node/size) / 8 ))
    # Warm-up, not reported: TCG translates each code path on its first run.
    count=1 reads=16 seed=99; random_reads
    count=1 reads=4 start=0; sequential
    reads=$rand seed=1; measure rand-4k 1 $rand $((rand * 4096)) random_reads
    reads=$((rand / jobs)); measure rand-4k $jobs $((reads * jobs)) $((reads * jobs * 4096)) random_parallel
    reads=$seq start=0; measure seq-128k 1 $seq $((seq * 131072)) sequential
    reads=$((seq / jobs)); measure seq-128k $jobs $((reads * jobs)) $((reads * jobs * 131072)) sequential_parallel
}

echo
echo bench-block-begin
[ -n "$vblk" ] && bench virtio-blk "$vblk"
[ -n "$nvme" ] && bench nvme "$nvme"
echo bench-block-end

poweroff -f
echo "bench-block-error: poweroff -f failed"
exit 1
