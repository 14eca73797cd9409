#!/bin/bash
# model.sh [N]: the container model's promises, measured from real runs of podman driving
# pyrunc, and Debian's runc in the same run to compare with (default N: 50). A report: it
# prints figures and asserts nothing (no bar on times).
#   1. shared layers: a ~200 MB image (busybox, then one RUN step writing a 200 MB file,
#      built through pyrunc) and N running containers from it: the disk they use, against
#      N full copies; then one container appends to the big file and only that file is
#      copied up into its own writable layer;
#   2. start cost and density: the time to start the N, one after another; per running
#      container, the memory of conmon, of the container's process, and of the runtime
#      (none left once started: its peak while creating is shown);
#   3. the network types none, host, bridge and container:<other>: each container's network
#      namespace seen from the host, and its interfaces seen from inside; two bridge
#      containers both listen on port 80 and reach each other;
#   4. the PID namespace: the container's pid 1 is an ordinary process on the host.
# Everything is private: podman's config, overlay storage, network config and state under
# one temporary directory, a cgroup parent, a CNI bridge and subnet of its own with no
# gateway on the host (no host address, route or iptables rule); all of it is removed on
# exit, failure included. Run as root after hack/setup.sh --test. Disk: ~1 GB at peak.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-50}
pyrunc=${PYRUNC:-$here/.venv/bin/pyrunc}
runc=$(command -v runc) || { echo "model: apt-get install runc (hack/setup.sh --test)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "model: run as root" >&2; exit 1; }
for tool in podman conmon /usr/bin/time "$pyrunc"; do
  command -v "$tool" >/dev/null || { echo "model: $tool missing: run hack/setup.sh --test" >&2; exit 1; }
done
grep -qw overlay /proc/filesystems || { echo "model: the kernel has no overlay filesystem" >&2; exit 1; }

work=$(mktemp -d /var/tmp/pyrunc-model.XXXXXX)
chmod 755 "$work"
export CONTAINERS_CONF=$work/containers.conf CONTAINERS_STORAGE_CONF=$work/storage.conf TMPDIR=$work/tmp
tag=$(basename "$work" | cut -d. -f2 | tr 'A-Z' 'a-z')
cgparent=/pyrunc-model-$tag
net=pyrunc-model-$tag
bridge=pmodel$tag
img=localhost/model-big:latest
# Host directories podman and CNI make outside their configured roots: removed at the end
# when this run made them and they are empty again.
stray=(/run/netns /run/containers/networks /run/containers /var/lib/cni/results /var/lib/cni)
made=()
for d in "${stray[@]}"; do [ -e "$d" ] || made+=("$d"); done

cleanup() {
  set +e
  # Only ever on our own storage: never the host's (before the config is written, podman
  # would fall back to it).
  if [ -f "$CONTAINERS_STORAGE_CONF" ] && [ -f "$CONTAINERS_CONF" ]; then
    for _ in 1 2; do podman rm --all --force --time 0 >/dev/null 2>&1; done  # dependents first
    podman rmi --all --force >/dev/null 2>&1
  fi
  # conmon runs podman's cleanup of each removed container after it: wait for them all
  # (their command lines name our directory; the glob is expanded before cat and grep run).
  for _ in $(seq 150); do
    cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' '\n' | grep -qF -- "$work" || break
    sleep 0.1
  done
  ip link delete "$bridge" 2>/dev/null
  rm -f /var/lib/cni/results/"$net"-*
  for top in /sys/fs/cgroup/*; do
    [ -d "$top$cgparent" ] && find "$top$cgparent" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
  for d in "${made[@]}"; do  # podman bind-mounts /run/netns on itself
    [ -d "$d" ] && [ -z "$(ls -A "$d")" ] && { mountpoint -q "$d" && umount "$d"; rmdir "$d"; }
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- private podman: two runtimes by name, each a wrapper recording the peak RSS of its
# `create` (GNU time), overlay storage, a CNI network of our own.
mkdir -p "$work/bin" "$work/tmp" "$work/networks"
for rt in "$pyrunc" "$runc"; do
  name=$(basename "$rt")
  cat >"$work/bin/$name" <<EOF
#!/bin/sh
case " \$* " in *" create "*) exec /usr/bin/time -a -o $work/peak-$name -f %M $rt "\$@" ;; esac
exec $rt "\$@"
EOF
  chmod 755 "$work/bin/$name"
done
nofile=$(( $(ulimit -Hn) < 4096 ? $(ulimit -Hn) : 4096 ))
nproc=$(( $(ulimit -Hu) < 4096 ? $(ulimit -Hu) : 4096 ))
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
netns = "none"

[network]
network_config_dir = "$work/networks"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
lock_type = "file"
runtime = "pyrunc"
runtime_supports_json = ["pyrunc", "runc"]
static_dir = "$work/storage/libpod"
tmp_dir = "$work/state"
volume_path = "$work/storage/volumes"

[engine.runtimes]
pyrunc = ["$work/bin/pyrunc"]
runc = ["$work/bin/runc"]
EOF
cat >"$work/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/runroot"
EOF
subnet=$(cd "$here/tests/engines" && "$here/.venv/bin/python" -c 'from engine_drivers import free_subnet; print(free_subnet())')
# No gateway on the bridge and no masquerading: the host gets no address or route into the
# subnet, and no iptables rule; containers reach each other only.
cat >"$work/networks/$net.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "$net", "plugins": [{"type": "bridge", "bridge": "$bridge",
  "isGateway": false, "ipMasq": false,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet"}]], "dataDir": "$work/ipam"}}]}
EOF

say() { echo "model: $*" >&2; }
kib() { du -skx "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
pss() { awk '/^Pss:/ {s += $2} END {print s + 0}' "${@/%//smaps_rollup}" 2>/dev/null; }
inode() { stat -L -c %i "$1"; }
# listening PID: "yes" if port 80 (0050, state 0A) listens in PID's netns, read from the host
listening() { awk '$2 ~ /:0050$/ && $4 == "0A" {print "yes"; exit}' /proc/"$1"/net/tcp{,6}; }
# fetch CONTAINER ADDRESS: the page served on ADDRESS:80, from inside CONTAINER (busybox nc:
# the static busybox's wget crashes in glibc's resolver)
fetch() { podman exec "$1" sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 $2 80 | tail -n 1" || echo failed; }
run() { podman run --detach --cgroup-parent "$cgparent" "$@" >/dev/null; }
state() { podman inspect --format "$1" "${@:2}"; }
# layer_dirs IMAGE|CONTAINER: its overlay directories (upper first), one a line
layer_dirs() { state '{{.GraphDriver.Data.UpperDir}}:{{.GraphDriver.Data.LowerDir}}' "$1" | tr ':' '\n' | grep .; }

# --- the image
say "building $img (busybox + a 200 MB file) through pyrunc"
sh "$here/hack/mkimage.sh" "$work/image" >/dev/null
podman import "$work/image/busybox-rootfs.tar" localhost/busybox:latest >/dev/null 2>"$work/build.err" ||
  { cat "$work/build.err" >&2; exit 1; }
printf 'FROM localhost/busybox:latest\nRUN dd if=/dev/urandom of=/big bs=1M count=200 2>/dev/null\n' \
  >"$work/image/Containerfile"
# --network none: else the RUN step joins podman's default network, made on the host.
podman build --quiet --runtime pyrunc --network none -t "$img" "$work/image" >/dev/null 2>"$work/build.err" ||
  { cat "$work/build.err" >&2; exit 1; }
image_kib=$(kib $(layer_dirs "$img"))
nlayers=$(layer_dirs "$img" | wc -l)
big_layer_kib=$(kib "$(layer_dirs "$img" | head -1)")
host_net=$(inode /proc/self/ns/net)
host_pidns=$(inode /proc/self/ns/pid)
host_links=$(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | paste -sd' ')

declare -A r  # r[runtime.key]: the figures, printed at the end
for rt in pyrunc runc; do
  # --- 1 and 2: N containers, started one after another
  say "$rt: starting $n containers"
  before_kib=$(kib "$work/storage")
  rm -f "$work/peak-$rt"
  t0=$(date +%s.%N)
  for i in $(seq "$n"); do
    run --runtime "$rt" --name "$rt-$i" --network none "$img" sleep 1000000
  done
  t1=$(date +%s.%N)
  sleep 1
  after_kib=$(kib "$work/storage")
  names=$(seq -f "$rt-%g" "$n")
  # shellcheck disable=SC2086
  read -r -a conmons <<<"$(state '{{.State.ConmonPid}}' $names | sed 's|^|/proc/|' | tr '\n' ' ')"
  # shellcheck disable=SC2086
  read -r -a inits <<<"$(state '{{.State.Pid}}' $names | sed 's|^|/proc/|' | tr '\n' ' ')"
  # shellcheck disable=SC2086
  uppers=$(state '{{.GraphDriver.Data.UpperDir}}' $names)
  # shellcheck disable=SC2086
  r[$rt.upper_kib]=$(kib $uppers)
  r[$rt.upper_entries]=$(for u in $uppers; do (cd "$u" && find . -mindepth 1); done | sort | uniq -c |
                         awk '{printf "%s%s(%s)", sep, substr($2, 3), $1; sep = " "} END {if (!NR) printf "none"}')
  r[$rt.start_s]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  r[$rt.start_ms]=$(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN {printf "%.0f", (b - a) / n * 1000}')
  r[$rt.before_kib]=$before_kib
  r[$rt.after_kib]=$after_kib
  r[$rt.per_kib]=$(( (after_kib - before_kib) / n ))
  r[$rt.conmon_kib]=$(( $(pss "${conmons[@]}") / n ))
  r[$rt.init_kib]=$(( $(pss "${inits[@]}") / n ))
  r[$rt.peak_kib]=$(awk '/^[0-9]+$/ {s += $1; c++} END {printf "%.0f", c ? s / c : 0}' "$work/peak-$rt")
  # The runtime's processes would name their container; conmon (--cid) is the only one.
  # shellcheck disable=SC2086
  state '{{.Id}}' $names >"$work/ids"
  r[$rt.left]=$(( $(grep -laF -f "$work/ids" /proc/[0-9]*/cmdline 2>/dev/null | grep -vc "^/proc/$$/" || true) - n ))

  # One container changes one byte of the big file: overlay copies the whole file up.
  podman exec "$rt-1" sh -c 'echo changed >>/big'
  up1=$(state '{{.GraphDriver.Data.UpperDir}}' "$rt-1")
  r[$rt.copyup_kib]=$(kib "$up1")
  r[$rt.copyup_files]=$(cd "$up1" && find . -type f -printf '%P:%kK\n' | paste -sd' ')
  r[$rt.sizes]="$(podman exec "$rt-1" stat -c %s /big) / $(podman exec "$rt-2" stat -c %s /big)"
  r[$rt.copyup_total]=$(( $(kib "$work/storage") - after_kib ))
  say "$rt: removing them"
  # shellcheck disable=SC2086
  podman rm --force --time 0 $names >/dev/null

  # --- 3 and 4: the network types and the PID namespace
  say "$rt: network types"
  run --runtime "$rt" --name "$rt-none" --network none "$img" sleep 1000000
  run --runtime "$rt" --name "$rt-host" --network host "$img" sleep 1000000
  for web in web1 web2; do  # each serves its own hostname on port 80
    run --runtime "$rt" --name "$rt-$web" --hostname "$rt-$web" --network "$net" "$img" \
      sh -c 'mkdir /www && hostname >/www/index.html && exec httpd -f -p 80 -h /www'
  done
  run --runtime "$rt" --name "$rt-shared" --network "container:$rt-web1" "$img" sleep 1000000
  for web in web1 web2; do  # httpd takes a moment to listen
    pid=$(state '{{.State.Pid}}' "$rt-$web")
    for _ in $(seq 50); do [ -n "$(listening "$pid")" ] && break; sleep 0.1; done
  done
  for c in none host web1 web2 shared; do
    pid=$(state '{{.State.Pid}}' "$rt-$c")
    r[$rt.$c.pid]=$pid
    r[$rt.$c.net]=$(inode "/proc/$pid/ns/net")
    r[$rt.$c.links]=$(podman exec "$rt-$c" ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | paste -sd' ')
    r[$rt.$c.addr]=$(podman exec "$rt-$c" ip -o -4 addr | awk '$2 != "lo" {print $4}' | paste -sd' ')
    r[$rt.$c.port80]=$(listening "$pid")
  done
  ip2=${r[$rt.web2.addr]%%/*}
  ip1=${r[$rt.web1.addr]%%/*}
  r[$rt.web1_to_web2]=$(fetch "$rt-web1" "$ip2")
  r[$rt.web2_to_web1]=$(fetch "$rt-web2" "$ip1")
  r[$rt.shared_to_lo]=$(fetch "$rt-shared" 127.0.0.1)

  say "$rt: PID namespace"
  pid=${r[$rt.none.pid]}
  r[$rt.nspid]=$(awk '/^NSpid:/ {$1 = ""; print substr($0, 2)}' "/proc/$pid/status")
  r[$rt.pidns]=$(inode "/proc/$pid/ns/pid")
  r[$rt.host_start]=$(awk '{print $22}' "/proc/$pid/stat")
  r[$rt.in_start]=$(podman exec "$rt-none" awk '{print $22}' /proc/1/stat)
  r[$rt.in_pidns]=$(podman exec "$rt-none" stat -L -c %i /proc/1/ns/pid)
  r[$rt.in_ps]=$(podman exec "$rt-none" ps -o pid,args | awk 'NR > 1 && $2 != "ps" {print $1 " " $2 " " $3}' | tr '\n' ';')
  r[$rt.host_ps]=$(ps -o pid=,ppid=,args= -p "$pid" | awk '{print $1 " (parent " $2 ") " $3 " " $4}')
  r[$rt.parent]=$(cat "/proc/$(awk '{print $4}' "/proc/$pid/stat")/comm")
  podman rm --force --time 0 "$rt-shared" >/dev/null  # it depends on web1's netns
  podman rm --all --force --time 0 >/dev/null
done

# --- the report
row() { printf '  %-44s %-20s %s\n' "$@"; }
bar() { awk -v k="$1" -v max="$2" 'BEGIN {w = int(k / max * 50 + 0.5); if (w < 1) w = 1; s = ""; for (i = 0; i < w; i++) s = s "#"; print s}'; }
full_kib=$((n * image_kib))
echo "The container model, measured: $n containers from one image, podman $(podman --version | awk '{print $3}') + conmon, overlay storage"
echo "runtimes: pyrunc ($pyrunc), runc $("$runc" --version | awk 'NR == 1 {print $3}')"
echo
echo "1. Shared layers"
echo "  image $img: $nlayers layers, $(mib "$image_kib") MiB on disk, once (the RUN step's layer: $(mib "$big_layer_kib") MiB)"
row "" pyrunc runc
row "storage before: the images, MiB" "$(mib "${r[pyrunc.before_kib]}")" "$(mib "${r[runc.before_kib]}")"
row "storage with the $n running, MiB" "$(mib "${r[pyrunc.after_kib]}")" "$(mib "${r[runc.after_kib]}")"
row "  per container, KiB" "${r[pyrunc.per_kib]}" "${r[runc.per_kib]}"
row "  of which its writable layer, KiB" "$((r[pyrunc.upper_kib] / n))" "$((r[runc.upper_kib] / n))"
row "$n full copies of the image would be, MiB" "$(mib "$full_kib")" "$(mib "$full_kib")"
echo "  what the $n writable layers hold (entry: how many), pyrunc: ${r[pyrunc.upper_entries]}"
echo "                                                       runc: ${r[runc.upper_entries]}"
echo
for what in "image layers, once:$image_kib" "+ $n containers:$((image_kib + n * r[pyrunc.per_kib]))" \
            "$n full copies:$full_kib"; do
  printf '  %-28s %-52s %8s MiB\n' "${what%%:*}" "$(bar "${what##*:}" "$full_kib")" "$(mib "${what##*:}")"
done
echo
echo "  copy-up: container 1 appends 8 bytes to /big (200 MiB, in the image's layer)"
row "its writable layer's files (KiB)" "${r[pyrunc.copyup_files]}" "${r[runc.copyup_files]}"
row "its writable layer, MiB" "$(mib "${r[pyrunc.copyup_kib]}")" "$(mib "${r[runc.copyup_kib]}")"
row "storage grew by, MiB" "$(mib "${r[pyrunc.copyup_total]}")" "$(mib "${r[runc.copyup_total]}")"
row "/big size in container 1 / container 2" "${r[pyrunc.sizes]}" "${r[runc.sizes]}"
echo
echo "2. Start cost and density"
row "" pyrunc runc
row "start $n (podman run -d, one by one), s" "${r[pyrunc.start_s]}" "${r[runc.start_s]}"
row "  per container, ms" "${r[pyrunc.start_ms]}" "${r[runc.start_ms]}"
row "per running container, PSS KiB: conmon" "${r[pyrunc.conmon_kib]}" "${r[runc.conmon_kib]}"
row "  the container's process (sleep)" "${r[pyrunc.init_kib]}" "${r[runc.init_kib]}"
row "  the runtime: its processes left running" "${r[pyrunc.left]}" "${r[runc.left]}"
row "the runtime's peak RSS during create, KiB" "${r[pyrunc.peak_kib]}" "${r[runc.peak_kib]}"
echo
echo "3. Network types: each container's netns inode, read on the host from /proc/PID/ns/net,"
echo "   and what it sees inside (the host: netns $host_net, links $host_links; bridge: $net, $subnet)"
printf '  %-7s %-15s %-11s %-6s %-4s %-17s %s\n' runtime network netns "= of" :80 "IPv4 inside" "links inside"
for rt in pyrunc runc; do
  for c in none host web1 web2 shared; do
    mode=$c same=-
    case $c in web*) mode="bridge ($c)" ;; shared) mode="container:web1" ;; esac
    [ "${r[$rt.$c.net]}" = "$host_net" ] && same=host
    [ "$c" = shared ] && [ "${r[$rt.$c.net]}" = "${r[$rt.web1.net]}" ] && same=web1
    printf '  %-7s %-15s %-11s %-6s %-4s %-17s %s\n' "$rt" "$mode" "${r[$rt.$c.net]}" "$same" \
      "${r[$rt.$c.port80]:--}" "${r[$rt.$c.addr]:--}" "${r[$rt.$c.links]}"
  done
  echo "  $rt: web1 -> ${r[$rt.web2.addr]%%/*}:80 answers \"${r[$rt.web1_to_web2]}\"; web2 -> ${r[$rt.web1.addr]%%/*}:80 answers \"${r[$rt.web2_to_web1]}\"; container:web1 -> 127.0.0.1:80 answers \"${r[$rt.shared_to_lo]}\""
done
echo
echo "4. PID namespace (the host: pidns $host_pidns)"
for rt in pyrunc runc; do
  echo "  $rt: on the host pid ${r[$rt.host_ps]}, a child of ${r[$rt.parent]}; NSpid: ${r[$rt.nspid]}; pidns ${r[$rt.pidns]}"
  echo "         inside: ps: ${r[$rt.in_ps]} pidns ${r[$rt.in_pidns]}; start time (ticks) inside ${r[$rt.in_start]}, on the host ${r[$rt.host_start]}"
done
