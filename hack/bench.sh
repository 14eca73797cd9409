#!/bin/bash
# bench.sh [RUNS] [ROUNDS]: pyrunc against Debian's runc on the same busybox bundle, in one
# hyperfine run per operation; prints each median and the ratio pyrunc/runc. With ROUNDS > 1
# the whole set runs again (this VM's speed drifts by 10-20% over a minute, runc's too)
# and a last table gives each operation's median ratio over the rounds.
# Target: every ratio <= 1.0. A benchmark, never a test: nothing here asserts time.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-30}
rounds=${2:-1}
pyrunc=$here/.venv/bin/pyrunc
runc=$(command -v runc) || { echo "bench: apt-get install runc" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench: apt-get install hyperfine" >&2; exit 1; }
work=$(mktemp -d /tmp/pyrunc-bench.XXXXXX)
# Container ids carry the runtime's name (@ID@ below): both runtimes derive the
# cgroup path from the id, and must not share one.
cleanup() {
  for rt in "$pyrunc" "$runc"; do
    for id in bench-run bench-csd bench-create bench-state; do
      "$rt" --root "$work/root-$(basename "$rt")" delete -f "$id-$(basename "$rt")" >/dev/null 2>&1 || true
    done
  done
  rm -rf "$work"
}
trap cleanup EXIT

"$here/hack/mkbundle.sh" "$work/bundle" true >/dev/null
"$here/hack/mkbundle.sh" "$work/sleeper" sleep 100000 >/dev/null
cmd() {  # cmd RUNTIME ARGS...: the command line hyperfine runs for that runtime
  local rt=$1 name; shift
  name=$(basename "$rt")
  echo "$rt --root $work/root-$name ${*//@ID@/-$name}"
}
for rt in "$pyrunc" "$runc"; do
  $(cmd "$rt" run -d -b "$work/sleeper" bench-state@ID@) >/dev/null
done

bench() {  # bench NAME ARGS...: one hyperfine run with both runtimes
  local name=$1; shift
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$out/$name.json" \
    -n pyrunc "$(cmd "$pyrunc" "$@")" -n runc "$(cmd "$runc" "$@")" >/dev/null
}
bench_prepared() {  # bench_prepared NAME "PREPARE ARGS" ARGS...: each run after the runtime's PREPARE
  local name=$1 prep=$2; shift 2
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$out/$name.json" \
    --prepare "$(cmd "$pyrunc" $prep)" -n pyrunc "$(cmd "$pyrunc" "$@")" \
    --prepare "$(cmd "$runc" $prep)" -n runc "$(cmd "$runc" "$@")" >/dev/null
}
bench_sh() {  # bench_sh NAME SCRIPT: the same for a script; @RT@ is the runtime command
  local name=$1 script=$2 p r
  p=${script//@RT@/$(cmd "$pyrunc")}; p=${p//@ID@/-pyrunc}
  r=${script//@RT@/$(cmd "$runc")}; r=${r//@ID@/-runc}
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$out/$name.json" \
    -n pyrunc "sh -c '$p'" -n runc "sh -c '$r'" >/dev/null
}
for round in $(seq "$rounds"); do
  out=$work/results/$round
  mkdir -p "$out"
  bench run run -b "$work/bundle" bench-run@ID@
  bench_sh create-start-delete "@RT@ create -b $work/bundle bench-csd@ID@ && @RT@ start bench-csd@ID@ && @RT@ delete -f bench-csd@ID@"
  # create alone: the container work, without the two extra interpreter start-ups of start and delete
  bench_prepared create "delete -f bench-create@ID@" create -b "$work/bundle" bench-create@ID@
  bench state state bench-state@ID@
  bench exec exec bench-state@ID@ true  # into the running sleeper
done

"$here/.venv/bin/python" - "$work/results" <<'PY'
import json, pathlib, statistics, sys
ratios: dict[str, list[float]] = {}
for rnd in sorted(pathlib.Path(sys.argv[1]).iterdir(), key=lambda p: int(p.name)):
    print(f"{'operation':<22}{'pyrunc ms':>11}{'runc ms':>10}{'ratio':>8}")
    for f in sorted(rnd.glob("*.json")):
        res = {r["command"]: r["median"] * 1000 for r in json.loads(f.read_text())["results"]}
        ratios.setdefault(f.stem, []).append(res["pyrunc"] / res["runc"])
        print(f"{f.stem:<22}{res['pyrunc']:>11.1f}{res['runc']:>10.1f}{res['pyrunc'] / res['runc']:>8.2f}")
    print()
if len(next(iter(ratios.values()))) > 1:
    print(f"{'operation':<22}{'median ratio':>13}   per round")
    for name, rs in sorted(ratios.items()):
        print(f"{name:<22}{statistics.median(rs):>13.2f}   {' '.join(f'{r:.2f}' for r in rs)}")
PY
