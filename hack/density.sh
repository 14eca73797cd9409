#!/bin/bash
# density.sh [N ...]: what created-but-not-started containers cost, pyrunc beside Debian's
# runc in the same run (default N: 100 and 500). For each N and runtime: the time to create
# N containers one after another, the PSS their waiting inits hold (total and per init, from
# /proc/<pid>/smaps_rollup: shared pages are divided among their users, so N inits of one
# binary pay its text once between them), the RSS per init, and the time to `delete -f` all N.
# PYRUNC=/path/to/pyrunc measures another pyrunc (e.g. an older checkout's .venv/bin/pyrunc).
# A benchmark: it prints figures and asserts nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- 100 500
pyrunc=${PYRUNC:-$here/.venv/bin/pyrunc}
runc=$(command -v runc) || { echo "density: apt-get install runc" >&2; exit 1; }
work=$(mktemp -d /tmp/pyrunc-density.XXXXXX)
ids() { seq -f "dens%g-$2" "$1"; }  # ids N NAME: the runtime's name in the id keeps cgroup paths apart
cleanup() {
  for rt in "$pyrunc" "$runc"; do
    local root=$work/root-$(basename "$rt")
    [ -d "$root" ] || continue
    for id in $(ls "$root"); do "$rt" --root "$root" delete -f "$id" >/dev/null 2>&1 || true; done
  done
  rm -rf "$work"
}
trap cleanup EXIT
"$here/hack/mkbundle.sh" "$work/bundle" sleep 1000 >/dev/null  # never started: the init waits

now() { date +%s.%N; }
printf '%-8s%6s%12s%14s%12s%14s%14s%12s\n' runtime N "create s" "ms/container" "PSS MiB" "PSS KiB/init" \
  "RSS KiB/init" "delete s"
for n in "$@"; do
  for rt in "$pyrunc" "$runc"; do
    name=$(basename "$rt")
    root=$work/root-$name
    t0=$(now)
    for id in $(ids "$n" "$name"); do "$rt" --root "$root" create -b "$work/bundle" "$id" >/dev/null; done
    t1=$(now)
    sleep 1  # pyrunc's init enters the sealed launcher just after create returns
    read -r pss rss < <("$rt" --root "$root" list -f json | python3 -c '
import json, sys
pss = rss = 0
for c in json.load(sys.stdin):
    with open("/proc/%d/smaps_rollup" % c["pid"]) as f:
        kb = {l.split()[0]: int(l.split()[1]) for l in f if l.split()[0] in ("Pss:", "Rss:")}
    pss, rss = pss + kb["Pss:"], rss + kb["Rss:"]
print(pss, rss)')
    t2=$(now)
    for id in $(ids "$n" "$name"); do "$rt" --root "$root" delete -f "$id" >/dev/null; done
    t3=$(now)
    python3 -c 'import sys
name, n, t0, t1, pss, rss, t2, t3 = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
print(f"{name:<8}{n:>6}{t1 - t0:>12.2f}{(t1 - t0) / n * 1000:>14.1f}{pss / 1024:>12.1f}{pss / n:>14.0f}"
      f"{rss / n:>14.0f}{t3 - t2:>12.2f}")' "$name" "$n" "$t0" "$t1" "$pss" "$rss" "$t2" "$t3"
  done
done
