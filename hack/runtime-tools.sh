#!/bin/bash
# runtime-tools.sh [TEST...]: OCI runtime-tools' validation suite against a runtime.
#
# Builds the suite from ../shared/peers/runtime-tools-260e151.tar.gz (Debian's Go, its
# vendored modules, nothing downloaded) into a cache outside the checkout, then runs each
# validation test (all, or the TESTs named) one at a time against RUNTIME (default: the
# venv's pyrunc) with a state root and a TMPDIR of its own, and cleans what it left:
# containers, its bundles, the suite's fixed cgroup paths (/cgrouptest, testdir/cgrouptest)
# on every hierarchy. Prints one line per test and the totals of assertions ("N passed,
# N failed, N skipped"). Exits 1 when a test fails that conformance/runtime-tools-expected.txt
# does not list with its cause, or when a listed test passes: the list cannot go stale
# (except tests listed as "race", whose outcome is a race in the suite itself).
# RUNTIME_TOOLS_TAP=DIR keeps each test's TAP output there.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tarball=${RUNTIME_TOOLS_TARBALL:-$here/../shared/peers/runtime-tools-260e151.tar.gz}
cache=${PYRUNC_CACHE:-/var/cache/pyrunc}/runtime-tools-260e151
runtime=${RUNTIME:-$here/.venv/bin/pyrunc}
expected=$here/conformance/runtime-tools-expected.txt

if [ ! -f "$tarball" ]; then
  echo "runtime-tools: $tarball not found (it comes with ../shared): lane not run" >&2
  exit 0
fi
command -v go >/dev/null || { echo "runtime-tools: no go (hack/setup.sh --test installs golang-go)" >&2; exit 2; }

# -- build, once per tarball ---------------------------------------------------------------
if [ ! -f "$cache/.built" ] || [ "$tarball" -nt "$cache/.built" ]; then
  rm -rf "$cache" "$cache.tmp"
  mkdir -p "$cache.tmp"
  tar xzf "$tarball" -C "$cache.tmp" --strip-components=1
  (
    cd "$cache.tmp"
    export GOFLAGS=-mod=vendor GOPROXY=off CGO_ENABLED=0 GOCACHE="$cache.gocache"
    go build ./cmd/runtimetest
    for d in validation/*/; do
      n=$(basename "$d")
      [ "$n" = util ] || go build -o "validation/$n/$n.t" "./validation/$n"
    done
  )
  touch "$cache.tmp/.built"
  mv "$cache.tmp" "$cache"
  rm -rf "$cache.gocache"
fi

# -- run -----------------------------------------------------------------------------------
work=$(mktemp -d)
chmod 755 "$work"  # bundles live below it: a container's root in a user namespace must get through
trap 'cleanup; rm -rf --one-file-system "$work"' EXIT
# The suite calls "$RUNTIME create|start|state|kill|delete ...": give it a root of its own.
cat > "$work/runtime" <<EOF
#!/bin/sh
exec "$runtime" --root "$work/root" "\$@"
EOF
chmod 755 "$work/runtime"

cleanup() {  # whatever a test left: containers, its bundles, the suite's fixed cgroups
  local id
  for id in $(ls "$work/root" 2>/dev/null); do "$work/runtime" delete -f "$id" >/dev/null 2>&1 || true; done
  # A runtime may leave mounts in our namespace (runc does, for a container without a mount
  # namespace: its /proc, /dev, /sys inside the bundle): detach them, never rm through them.
  awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do echo "$m" >> "$work/leaked"; umount -l "$m"; done
  rm -rf --one-file-system "$work/root" "$work/tmp"
  mkdir -m 1777 "$work/tmp"
  # /cgrouptest at the top of each hierarchy, testdir/cgrouptest below the runtime's own
  # cgroup (a relative cgroupsPath); rmdir takes only what is empty, so nothing else goes.
  find /sys/fs/cgroup -mindepth 1 -depth -type d -path '*/cgrouptest*' -exec rmdir {} + 2>/dev/null || true
  find /sys/fs/cgroup -mindepth 1 -depth -type d -name testdir -exec rmdir {} + 2>/dev/null || true
}

census() {  # mounts, and the cgroup directories the suite can leave: its containers' (named by
            # their UUID ids) and its fixed paths; the lane must leave both as it found them
  find /sys/fs/cgroup -type d \( -regex '.*/[0-9a-f]\{8\}-[0-9a-f]\{4\}-[0-9a-f-]*' \
    -o -path '*cgrouptest*' -o -name testdir \) | sort
  awk '{print $5}' /proc/self/mountinfo | sort
}

declare -A cause=()
while IFS= read -r line; do
  case $line in ''|'#'*) continue ;; esac
  cause[${line%% *}]=${line#* }
done < "$expected"

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=($(cd "$cache/validation" && ls -d */ | tr -d / | grep -vx util))
ok=0; notok=0; skip=0; bad=0
census > "$work/census.before"
for n in "${tests[@]}"; do
  cleanup
  rc=0
  (cd "$cache" && TMPDIR="$work/tmp" RUNTIME="$work/runtime" timeout 120 "validation/$n/$n.t") > "$work/$n.tap" 2>&1 || rc=$?
  [ -z "${RUNTIME_TOOLS_TAP:-}" ] || { mkdir -p "$RUNTIME_TOOLS_TAP"; cp "$work/$n.tap" "$RUNTIME_TOOLS_TAP/"; }
  rm -f "$work/leaked"
  cleanup
  if [ -s "$work/leaked" ]; then
    echo "LEAK  $n left mounts in the runtime's namespace:"; sed 's/^/        /' "$work/leaked"; bad=1
  fi
  o=$(grep -c '^ok' "$work/$n.tap" || true)
  s=$(grep -ci '^ok.*# skip' "$work/$n.tap" || true)
  f=$(grep -c '^not ok' "$work/$n.tap" || true)
  ok=$((ok + o - s)); skip=$((skip + s)); notok=$((notok + f))
  # Some tests make no assertion: they pass by exiting 0 (with a plan of 1..0, or none). One
  # that gave up exits non-zero (util.Fatal), or says why in an "error" block without an assertion.
  plan=$(grep -x '1\.\.[0-9][0-9]*' "$work/$n.tap" | tail -1 || true)
  gave_up=no
  if { [ -z "$plan" ] || [ "$plan" = 1..0 ]; } && grep -q '^  *"error": "[^"]' "$work/$n.tap"; then gave_up=yes; fi
  if [ "$f" -eq 0 ] && [ "$rc" -eq 0 ] && [ $gave_up = no ]; then verdict=pass; else verdict=fail; fi
  counts="$((o - s)) ok, $f not ok, $s skipped"
  [ "$rc" -eq 0 ] || counts="$counts, exit $rc"
  if [ "${cause[$n]:-}" != "" ] && [ "${cause[$n]%%:*}" = race ]; then  # a race in the suite: either outcome says nothing of us
    echo "race  $n ($counts): $verdict this time, see conformance/runtime-tools-expected.txt"
  elif [ -n "${cause[$n]:-}" ]; then
    if [ $verdict = pass ]; then
      echo "XPASS $n ($counts): listed as expected to fail (${cause[$n]%%:*}); take it off the list"; bad=1
    else
      echo "xfail $n ($counts): ${cause[$n]%%:*}, see conformance/runtime-tools-expected.txt"
    fi
  elif [ $verdict = pass ]; then
    echo "pass  $n ($counts)"
  else
    echo "FAIL  $n ($counts)"; bad=1
    { grep '^not ok' "$work/$n.tap" || grep -m3 '"error"\|^pyrunc' "$work/$n.tap" || tail -3 "$work/$n.tap"; } |
      head -5 | sed 's/^/        /'
  fi
done
census > "$work/census.after"
if ! diff "$work/census.before" "$work/census.after" > "$work/census.diff"; then
  echo "LEAK  the lane left the host changed (< before, > after):"; sed 's/^/        /' "$work/census.diff"; bad=1
fi
echo "runtime-tools assertions: $ok passed, $notok failed, $skip skipped"
exit $bad
