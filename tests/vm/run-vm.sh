#!/usr/bin/env bash
# run-vm.sh: boot Debian's 6.12 kernel under QEMU with an emulated NVMe ZNS drive, run one
# command inside, print its output and exit with its status.
#
#   tests/vm/run-vm.sh [options] -- COMMAND [ARGS...]
#
# The guest sees the host's root file system read-only (virtio-9p), so every host binary
# and library, the build tree included, is there at the same path; /tmp, /run and /var/tmp
# are writable overlays (tmpfs over the host's directories: guest writes stay in the guest),
# and a per-run work directory ($NYADS_VM_WORK inside the guest) is shared read-write. The command runs as root in the caller's working directory, after the kernel
# modules named by --modules are loaded and /dev/nvme0n1 and /dev/ng0n1 exist.
#
# The kernel comes from Debian's linux-image-6.12 package, downloaded once into
# $NYADS_VM_CACHE (default /var/cache/nyads-vm) and unpacked there; no guest image is built.
set -euo pipefail

usage() {
  cat <<USAGE
usage: $0 [options] -- COMMAND [ARGS...]
  --zns-size SIZE        size of the ZNS namespace image (default 256M)
  --zone-size SIZE       zone size (default 8M)
  --zone-capacity SIZE   zone capacity, <= zone size (default 6M)
  --max-open N           open-zone limit (default 6)
  --max-active N         active-zone limit (default 8)
  --zasl N               zone append size limit, 2^N x 4 KiB (default 5: 128 KiB)
  --disk FILE            also attach FILE as a virtio disk (/dev/vda), e.g. for power-cut tests
  --modules "M..."       kernel modules to load before the command (default "nvme")
  --memory SIZE          guest memory (default 2G)
  --timeout SECONDS      kill the VM after this long (default 900)
  --keep-work DIR        use DIR as the shared work directory and keep it
USAGE
  exit 2
}

zns_size=256M zone_size=8M zone_cap=6M max_open=6 max_active=8 zasl=5
modules="nvme" memory=2G timeout_s=900 disk="" keep_work=""
while [ $# -gt 0 ]; do
  case "$1" in
    --zns-size) zns_size=$2; shift 2 ;;
    --zone-size) zone_size=$2; shift 2 ;;
    --zone-capacity) zone_cap=$2; shift 2 ;;
    --max-open) max_open=$2; shift 2 ;;
    --max-active) max_active=$2; shift 2 ;;
    --zasl) zasl=$2; shift 2 ;;
    --disk) disk=$2; shift 2 ;;
    --modules) modules=$2; shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --keep-work) keep_work=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "run-vm.sh: unknown option '$1'" >&2; usage ;;
  esac
done
[ $# -gt 0 ] || usage

cache=${NYADS_VM_CACHE:-/var/cache/nyads-vm}
log() { echo "run-vm: $*" >&2; }

for tool in qemu-system-x86_64 busybox depmod xz cpio; do
  command -v "$tool" >/dev/null || { log "missing $tool: run scripts/install-deps.sh"; exit 125; }
done

# 1. The kernel and its modules, once.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$cache/ready" ]; then
  log "fetching Debian's linux-image-6.12-amd64 into $cache (once)"
  pkg=$(apt-cache depends linux-image-6.12-amd64 2>/dev/null | awk '/Depends: linux-image-6.12/ {print $2; exit}')
  [ -n "$pkg" ] || { apt-get update -q >/dev/null; pkg=$(apt-cache depends linux-image-6.12-amd64 | awk '/Depends: linux-image-6.12/ {print $2; exit}'); }
  [ -n "$pkg" ] || { log "no linux-image-6.12-amd64 package found in apt"; exit 125; }
  rm -rf "$cache/root" "$cache"/*.deb
  (cd "$cache" && apt-get download -q "$pkg" >/dev/null 2>&1) || { log "apt-get download $pkg failed"; exit 125; }
  mkdir -p "$cache/root"
  dpkg-deb -x "$cache"/"$pkg"_*.deb "$cache/root"
  kver=$(ls "$cache/root/lib/modules")
  depmod -b "$cache/root" "$kver"
  rm -f "$cache"/*.deb
  echo "$kver" > "$cache/ready"
fi
kver=$(cat "$cache/ready")
kernel="$cache/root/boot/vmlinuz-$kver"

# 2. A tiny initramfs: busybox, the 9p modules, and an init that mounts the host root.
initrd="$cache/initrd-$(sha256sum "$0" | cut -c1-12).cpio"
if [ ! -f "$initrd" ]; then
  staging=$(mktemp -d)
  mkdir -p "$staging"/{bin,proc,sys,dev,host,modules}
  cp "$(command -v busybox)" "$staging/bin/busybox"
  for m in fs/netfs/netfs net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p fs/overlayfs/overlay; do
    xz -dc "$cache/root/lib/modules/$kver/kernel/$m.ko.xz" > "$staging/modules/$(basename "$m").ko"
  done
  cat > "$staging/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in netfs 9pnet 9pnet_virtio 9p overlay; do insmod /modules/$m.ko; done
for x in $(cat /proc/cmdline); do
  case $x in nyads.work=*) WORK=${x#nyads.work=} ;; esac
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host
# Writable /tmp, /run, /var/tmp that still show the host's files (a checkout or build tree
# may live there): an overlay of a tmpfs on the read-only host directory.
mkdir -p /rw && mount -t tmpfs tmpfs /rw
for d in tmp run var/tmp; do
  n=$(echo $d | tr / _)
  mkdir -p /rw/$n/upper /rw/$n/work
  mount -t overlay overlay -o lowerdir=/host/$d,upperdir=/rw/$n/upper,workdir=/rw/$n/work /host/$d
done
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs tmpfs /host/dev/shm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 work /host$WORK
chroot /host /bin/bash $WORK/guest.sh
sync
poweroff -f
INIT
  chmod +x "$staging/init"
  (cd "$staging" && find . | cpio -o -H newc --quiet) > "$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  rm -rf "$staging"
fi
flock -u 9

# 3. This run's work directory: the ZNS image, the guest script, the command's output.
if [ -n "$keep_work" ]; then
  work=$(realpath -m "$keep_work"); mkdir -p "$work"
else
  work=$(mktemp -d /tmp/nyads-vm.XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
truncate -s "$zns_size" "$work/zns.img"
rm -f "$work/rc" "$work/output"
{
  echo "#!/bin/bash"
  echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp NYADS_VM_WORK=$work NYADS_IN_VM=1"
  echo "export NYADS_VM_MODULES=$cache/root"
  echo "echo \"run-vm: guest ready after \$(cut -d' ' -f1 /proc/uptime) s\" > /dev/console"
  for m in $modules; do echo "modprobe -d $cache/root $m || { echo 'run-vm: modprobe $m failed'; echo 125 > $work/rc; exit; }"; done
  if [[ " $modules " == *" nvme "* ]]; then
    echo 'for i in $(seq 100); do [ -e /dev/nvme0n1 ] && [ -e /dev/ng0n1 ] && break; sleep 0.1; done'
    echo '[ -e /dev/nvme0n1 ] || { echo "run-vm: /dev/nvme0n1 did not appear"; echo 125 > '"$work"'/rc; exit; }'
  fi
  printf 'cd %q\n' "$PWD"
  printf '%q ' "$@"
  echo "> $work/output 2>&1"
  echo "echo \$? > $work/rc"
  echo "echo \"run-vm: command done after \$(cut -d' ' -f1 /proc/uptime) s\" > /dev/console"
} > "$work/guest.sh"

drive_args=()
if [ -n "$disk" ]; then
  drive_args=(-drive "file=$disk,format=raw,if=virtio,cache=writeback")
fi
# 4. Boot. Under software emulation a guest now and then resets before its kernel prints a
# line (seen about once in 30 boots on a loaded 2-core machine); a boot that never reached the
# guest script is tried again, up to three times, and said so.
boot() {
  timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp 2 -m "$memory" \
    -nographic -no-reboot -nodefaults -serial stdio \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 ${NYADS_VM_DEBUG:+earlyprintk=serial,ttyS0 }$([ -n "${NYADS_VM_DEBUG:-}" ] || echo "quiet loglevel=3 ")panic=-1 nyads.work=$work" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$work,mount_tag=work,security_model=none,multidevs=remap" \
    -device nvme,id=nvme0,serial=nyads01,zoned.zasl="$zasl" \
    -drive "file=$work/zns.img,id=zns0,format=raw,if=none" \
    -device "nvme-ns,drive=zns0,bus=nvme0,nsid=1,zoned=true,zoned.zone_size=$zone_size,zoned.zone_capacity=$zone_cap,zoned.max_open=$max_open,zoned.max_active=$max_active,logical_block_size=4096,physical_block_size=4096" \
    "${drive_args[@]}" > "$work/console" 2>&1
}
start=$(date +%s.%N)
for attempt in 1 2 3; do
  set +e
  boot
  qemu_rc=$?
  set -e
  if grep -q "run-vm: guest ready" "$work/console" || [ -f "$work/rc" ] || [ "$qemu_rc" -eq 124 ]; then break; fi
  log "the guest reset before it was ready (attempt $attempt, qemu exit $qemu_rc); console:"
  tail -n 5 "$work/console" | tr -d '\r' >&2
  truncate -s 0 "$work/zns.img" && truncate -s "$zns_size" "$work/zns.img"
done
end=$(date +%s.%N)

[ -f "$work/output" ] && cat "$work/output"
grep -h "^run-vm:" "$work/console" | tr -d '\r' >&2 || true
log "VM ran $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}') s (qemu exit $qemu_rc)"
if [ ! -f "$work/rc" ]; then
  log "the command did not finish (timeout or guest failure); console:"
  tail -n 40 "$work/console" | tr -d '\r' >&2
  exit 125
fi
exit "$(cat "$work/rc")"
