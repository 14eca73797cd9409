#!/usr/bin/env bash
# hack/v2-guest.sh CMD [ARG...]
#
# Run CMD as root inside a throwaway qemu guest whose only cgroup hierarchy is
# cgroup v2 (cgroup_no_v1=all, every controller enabled at the root), then print
# its stdout and stderr and exit with its status. pyrunc's host is hybrid v1, so
# this is where the v2 code paths meet a real kernel.
#
# The guest runs Debian's kernel (apt: linux-image-amd64, qemu-system-x86,
# busybox-static). Its / is this host's / over 9p, read-only, under a tmpfs
# overlay: everything is visible, writes vanish at power-off. CMD runs in the
# current directory with the exported environment, stdin /dev/null, in the root
# cgroup; /dev/vda is a blank 16 MiB scratch disk. Emulated (TCG): a stock kernel
# cannot boot on a PVM /dev/kvm, and guest code is 10-40x slower, so batch
# checks into one boot.
#
# Knobs: V2_TIMEOUT (s, default 900; exit 124), V2_MEM (default 2G),
#        V2_CPUS (default: host cpus), V2_VERBOSE=1 (print the guest console),
#        V2_INIT=systemd (systemd as PID 1 with a system bus; see below), and with it
#        V2_HYBRID=1 (v1 controllers beside systemd's cgroup2: a hybrid host).
# Exit 125: the guest never reported CMD's status.
set -euo pipefail

fail() { echo "v2-guest: $*" >&2; exit 125; }
[ $# -gt 0 ] || fail "usage: $0 CMD [ARG...]"
[ "$(id -u)" = 0 ] || fail "needs root"
command -v qemu-system-x86_64 >/dev/null || fail "apt-get install qemu-system-x86"
BB=/bin/busybox; [ -x "$BB" ] || fail "apt-get install busybox-static"

KVER=
for k in $(ls /boot/vmlinuz-* 2>/dev/null | sort -rV); do
  v=${k#/boot/vmlinuz-}
  [ -e "/lib/modules/$v/kernel/fs/9p/9p.ko" ] && { KVER=$v; break; }
done
[ -n "$KVER" ] || fail "no Debian kernel with 9p in /boot (apt-get install linux-image-amd64)"

WORK=$(mktemp -d /tmp/v2-guest.XXXXXX)
QEMU_PID=
trap '[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
OUT=$WORK/out                      # shared read-write with the guest
mkdir -p "$OUT" "$WORK/ir"/{bin,proc,sys,dev,ro,rw,root}
cp "$BB" "$WORK/ir/bin/busybox"
# the modules to reach the host root, in dependency order, each once
modprobe -S "$KVER" -a --show-depends virtio_pci virtio_blk 9pnet_virtio 9p overlay \
  | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' > "$WORK/ir/modules"
while read -r ko; do cp "$ko" "$WORK/ir/bin/"; done < "$WORK/ir/modules"
sed -i 's|.*/|/bin/|' "$WORK/ir/modules"

# stage 1 (initramfs): assemble the root and hand over to stage 2
cat > "$WORK/ir/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
die() { echo "v2-guest init: $*"; echo o > /proc/sysrq-trigger; }
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
while read -r m; do insmod "$m" || die "insmod $m"; done < /modules
OUT=$(sed 's/.*v2out=\([^ ]*\).*/\1/' /proc/cmdline)
o=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o ro,cache=loose,$o host /ro || die "9p root"
mount -t tmpfs -o mode=755 tmpfs /rw && mkdir /rw/u /rw/w
mount -t overlay -o lowerdir=/ro,upperdir=/rw/u,workdir=/rw/w root /root || die overlay
mount -t 9p -o $o out "/root$OUT" || die "9p out"
for f in proc sys dev; do mount --move /$f /root/$f; done
exec switch_root /root /bin/busybox sh "$OUT/stage2"
EOF
chmod +x "$WORK/ir/init"

# stage 2 (PID 1 on the overlay root): cgroup2, then CMD
{
  printf 'cd %q || exit 125\n' "$PWD"
  export -p | grep -vE '^(declare -x|export) (PWD|OLDPWD|SHLVL|_)='
  printf 'exec'; printf ' %q' "$@"; echo
} > "$OUT/cmd.sh"
# V2_INIT=systemd: stage 2 hands PID 1 to the host's systemd, which runs CMD as a unit of a
# target of its own (pyrunc-lane.target: no sysinit, no udev, no getty) with a D-Bus system
# bus of its own, so that the systemd cgroup driver and the engines meet a real systemd.
cat > "$OUT/lane.sh" <<EOF
for i in \$(seq 50); do busctl --system status org.freedesktop.systemd1 >/dev/null 2>&1 && break; sleep 0.2; done
/bin/bash $OUT/cmd.sh < /dev/null > $OUT/stdout 2> $OUT/stderr
echo \$? > $OUT/rc
sync; echo o > /proc/sysrq-trigger
EOF
# dbus.socket and dbus.service of our own (/run/systemd/system comes before /lib's), without
# the default dependencies that would boot all of sysinit.target under emulation.
cat > "$OUT/systemd-units" <<EOF
mkdir -p /run/systemd/system
u=/run/systemd/system
printf '%s\n' '[Unit]' 'Description=pyrunc guest lane' 'Requires=pyrunc-lane.service' \
  'After=pyrunc-lane.service' > \$u/pyrunc-lane.target
printf '%s\n' '[Unit]' 'DefaultDependencies=no' 'Requires=dbus.service' 'After=dbus.service' '[Service]' \
  'Type=oneshot' 'ExecStart=/bin/bash $OUT/lane.sh' > \$u/pyrunc-lane.service
printf '%s\n' '[Unit]' 'DefaultDependencies=no' '[Socket]' 'ListenStream=/run/dbus/system_bus_socket' \
  > \$u/dbus.socket
printf '%s\n' '[Unit]' 'DefaultDependencies=no' 'Requires=dbus.socket' 'After=dbus.socket' '[Service]' \
  'ExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation' \
  > \$u/dbus.service
hostname v2guest
exec /lib/systemd/systemd --unit=pyrunc-lane.target --log-target=console --log-level=warning
EOF
cat > "$OUT/stage2" <<EOF
cd /
mount -t tmpfs -o mode=755 tmpfs /run
[ "${V2_INIT:-}" = systemd ] && . $OUT/systemd-units
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in \$(cat /sys/fs/cgroup/cgroup.controllers); do
  echo +\$c > /sys/fs/cgroup/cgroup.subtree_control || echo "v2-guest: cannot enable \$c" >&2
done
mount -t bpf bpf /sys/fs/bpf
hostname v2guest
ip link set lo up  # as on any host (criu's kernel feature probe connects to 127.0.0.1)
/bin/bash $OUT/cmd.sh < /dev/null > $OUT/stdout 2> $OUT/stderr
echo \$? > $OUT/rc
sync; echo o > /proc/sysrq-trigger; sleep 60
EOF

(cd "$WORK/ir" && find . | cpio -o -H newc --quiet) > "$WORK/initrd"
cgroups=cgroup_no_v1=all
[ "${V2_INIT:-}" = systemd ] && [ "${V2_HYBRID:-0}" = 1 ] && cgroups=systemd.unified_cgroup_hierarchy=0
truncate -s 16M "$WORK/disk"       # /dev/vda in the guest: a block device for io.* tests
timeout -k 5 "${V2_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max \
  -machine pc -m "${V2_MEM:-2G}" -smp "${V2_CPUS:-$(nproc)}" -bios /usr/share/qemu/qboot.rom \
  -nodefaults -no-user-config -display none -no-reboot -nic none -serial "file:$WORK/console" \
  -kernel "/boot/vmlinuz-$KVER" -initrd "$WORK/initrd" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init $cgroups tsc=reliable v2out=$OUT" \
  -drive "file=$WORK/disk,if=virtio,format=raw,cache=unsafe" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$OUT,mount_tag=out,security_model=none,multidevs=remap" \
  </dev/null >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!
set +e; wait "$QEMU_PID"; qrc=$?; set -e; QEMU_PID=
cat "$OUT/stdout" 2>/dev/null; cat "$OUT/stderr" >&2 2>/dev/null
[ "${V2_VERBOSE:-0}" = 1 ] && cat "$WORK/console" "$WORK/qemu.log" >&2
[ -s "$OUT/rc" ] && exit "$(cat "$OUT/rc")"
[ "$qrc" = 124 ] && { echo "v2-guest: timed out after ${V2_TIMEOUT:-900}s" >&2; exit 124; }
tail -20 "$WORK/console" "$WORK/qemu.log" >&2
fail "the guest did not report a status (qemu exit $qrc)"
