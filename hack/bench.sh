#!/bin/bash
# bench.sh [RUNS] [ROUNDS]: pyrunc against Debian's runc on the same busybox bundle, RUNS
# timings per operation; prints each median and the ratio pyrunc/runc. With ROUNDS > 1
# the whole set runs again and a last table gives each operation's median ratio over the
# rounds. This VM's speed drifts by 10-20% over a minute, so hack/benchtime.py runs the
# commands it compares interleaved, once each per round, rather than one after the other,
# in every order in turn; it also gives each command's CPU time (the "cpu ratio" columns),
# which does not depend on what ran before (see docs/performance.md, issue 30).
# "run-after-itself" is `run` timed the second of two in a row, as hyperfine would.
#
# The same timing also runs the floor, bare `python -I -S -c pass` (the venv's
# interpreter: no Python program starts sooner), and `runc --version` (runc's own start-up).
# "above floor" is pyrunc's median minus the floor: what is ours. "runc work" is runc's
# median minus its --version: an estimate of the kernel work the operation needs in any
# runtime. Issue 17's target: above floor <= runc work + 1.5 ms. "RSS" is each command's
# peak resident set (GNU time's %M, one run each).
# Targets are read off the table: a benchmark, never a test, nothing here asserts time.
#
# Two bundles, every operation timed on each: hack/mkbundle.sh's ("mkbundle": pyrunc's
# default config with a cgroup namespace, no ambient capabilities) and
# runc's own default ("runc-spec": `runc spec` with args `true` and no terminal, ociVersion
# 1.0.2-dev, ambient capabilities without inheritable ones), on the same busybox rootfs.
# BENCH_BUNDLES="mkbundle" (or "runc-spec") times one of them only; PYRUNC=PATH times another
# pyrunc (an older checkout's .venv/bin/pyrunc) against the same runc.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-30}
rounds=${2:-1}
pyrunc=${PYRUNC:-$here/.venv/bin/pyrunc}  # PYRUNC=<another checkout>/.venv/bin/pyrunc: measure that one
runc=$(command -v runc) || { echo "bench: apt-get install runc" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: apt-get install time" >&2; exit 1; }
py=$here/.venv/bin/python
work=$(mktemp -d /tmp/pyrunc-bench.XXXXXX)
# Container ids carry the runtime's name (@ID@ below): both runtimes derive the
# cgroup path from the id, and must not share one.
cleanup() {
  for rt in "$pyrunc" "$runc"; do
    for id in bench-run bench-csd bench-create bench-state bench-start bench-kill bench-delete bench-stopped; do
      "$rt" --root "$work/root-$(basename "$rt")" delete -f "$id-$(basename "$rt")" >/dev/null 2>&1 || true
    done
  done
  rm -rf "$work"
}
trap cleanup EXIT

kinds=${BENCH_BUNDLES:-mkbundle runc-spec}
runc_spec() {  # runc_spec DIR ARGS...: `runc spec`'s config on a copy of mkbundle's rootfs
  local dir=$1; shift
  mkdir -p "$dir"
  cp -a "$work/mkbundle/bundle/rootfs" "$dir/rootfs"
  (cd "$dir" && "$runc" spec)
  "$py" - "$dir/config.json" "$@" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    cfg = json.load(f)
cfg["process"]["terminal"] = False
cfg["process"]["args"] = sys.argv[2:]
with open(sys.argv[1], "w") as f:
    json.dump(cfg, f, indent=2)
PY
}
"$here/hack/mkbundle.sh" "$work/mkbundle/bundle" true >/dev/null
"$here/hack/mkbundle.sh" "$work/mkbundle/sleeper" sleep 100000 >/dev/null
runc_spec "$work/runc-spec/bundle" true
runc_spec "$work/runc-spec/sleeper" sleep 100000
cmd() {  # cmd RUNTIME ARGS...: the command line timed for that runtime
  local rt=$1 name; shift
  name=$(basename "$rt")
  echo "$rt --root $work/root-$name ${*//@ID@/-$name}"
}

# Every timing also runs the floor and runc's own start-up (see the top), interleaved
# with the two runtimes' commands round by round (hack/benchtime.py).
refs=("floor==$py -I -S -c pass" "runc-version==$runc --version")
bench() {  # bench NAME ARGS...: both runtimes' command
  local name=$1; shift
  "$py" "$here/hack/benchtime.py" "$out/$name.json" "$runs" 3 \
    "pyrunc==$(cmd "$pyrunc" "$@")" "runc==$(cmd "$runc" "$@")" "${refs[@]}"
}
bench_prepared() {  # bench_prepared NAME "PREPARE SCRIPT" ARGS...: each run after the runtime's PREPARE
  local name=$1 prep=$2 p r; shift 2
  p=${prep//@RT@/$(cmd "$pyrunc")}; p=${p//@ID@/-pyrunc}
  r=${prep//@RT@/$(cmd "$runc")}; r=${r//@ID@/-runc}
  "$py" "$here/hack/benchtime.py" "$out/$name.json" "$runs" 3 \
    "pyrunc=$p=$(cmd "$pyrunc" "$@")" "runc=$r=$(cmd "$runc" "$@")" "${refs[@]}"
}
bench_sh() {  # bench_sh NAME SCRIPT: the same for a script; @RT@ is the runtime command
  local name=$1 script=$2 p r
  p=${script//@RT@/$(cmd "$pyrunc")}; p=${p//@ID@/-pyrunc}
  r=${script//@RT@/$(cmd "$runc")}; r=${r//@ID@/-runc}
  "$py" "$here/hack/benchtime.py" "$out/$name.json" "$runs" 3 \
    "pyrunc==sh -c '$p'" "runc==sh -c '$r'" "${refs[@]}"
}
rss() {  # rss NAME "PREPARE SCRIPT" ARGS...: peak RSS (KiB) of one run of each runtime's command
  local name=$1 prep=$2 rt p; shift 2
  for rt in "$pyrunc" "$runc"; do
    p=${prep//@RT@/$(cmd "$rt")}; p=${p//@ID@/-$(basename "$rt")}
    sh -c "$p" >/dev/null 2>&1 || true
    /usr/bin/time -f %M -o "$work/rss/$name-$(basename "$rt")" $(cmd "$rt" "$@") >/dev/null 2>&1 || true
  done
}
for kind in $kinds; do
bundle=$work/$kind/bundle
sleeper=$work/$kind/sleeper
for rt in "$pyrunc" "$runc"; do
  $(cmd "$rt" delete -f bench-state@ID@) >/dev/null 2>&1 || true
  $(cmd "$rt" run -d -b "$sleeper" bench-state@ID@) >/dev/null 2>&1
done
# the prepare scripts: a fresh created container for start and delete, a running one for
# kill, a stopped one (its program ran and exited) for delete of a stopped container
fresh="@RT@ delete -f bench-@OP@@ID@ >/dev/null 2>&1; @RT@ create -b $bundle bench-@OP@@ID@"
running="@RT@ delete -f bench-kill@ID@ >/dev/null 2>&1; @RT@ run -d -b $sleeper bench-kill@ID@"
stopped="@RT@ delete -f bench-stopped@ID@ >/dev/null 2>&1; @RT@ create -b $bundle bench-stopped@ID@ && \
@RT@ start bench-stopped@ID@ && sleep 0.05"
for round in $(seq "$rounds"); do
  out=$work/results/$kind/$round
  mkdir -p "$out"
  bench run run -b "$bundle" bench-run@ID@
  # the same, each command run twice in a row and the second timed: runc after runc
  BENCHTIME_REPEAT=2 bench run-after-itself run -b "$bundle" bench-run@ID@
  bench_sh create-start-delete "@RT@ create -b $bundle bench-csd@ID@ && @RT@ start bench-csd@ID@ && @RT@ delete -f bench-csd@ID@"
  # create alone: the container work, without the two extra interpreter start-ups of start and delete
  bench_prepared create "@RT@ delete -f bench-create@ID@" create -b "$bundle" bench-create@ID@
  bench_prepared start "${fresh//@OP@/start}" start bench-start@ID@
  bench_prepared kill "$running" kill bench-kill@ID@ KILL
  bench_prepared delete "${fresh//@OP@/delete}" delete -f bench-delete@ID@
  bench_prepared delete-stopped "$stopped" delete -f bench-stopped@ID@
  bench state state bench-state@ID@
  bench list list
  bench exec exec bench-state@ID@ true  # into the running sleeper
  # 100 sequential `run` of `true` (crun's README compares runtimes with this test): one
  # run each, so the floor and runc --version are not timed here.
  seq100="for i in \$(seq 100); do @RT@ run -b $bundle bench-run@ID@ || exit 1; done"
  p=${seq100//@RT@/$(cmd "$pyrunc")}; r=${seq100//@RT@/$(cmd "$runc")}
  "$py" "$here/hack/benchtime.py" "$out/seq100.json" 1 0 "pyrunc==sh -c '${p//@ID@/-pyrunc}'" \
    "runc==sh -c '${r//@ID@/-runc}'"
done
done
bundle=$work/mkbundle/bundle
fresh="@RT@ delete -f bench-@OP@@ID@ >/dev/null 2>&1; @RT@ create -b $bundle bench-@OP@@ID@"
running="@RT@ delete -f bench-kill@ID@ >/dev/null 2>&1; @RT@ run -d -b $work/mkbundle/sleeper bench-kill@ID@"
mkdir -p "$work/rss"
rss run "@RT@ delete -f bench-run@ID@" run -b "$bundle" bench-run@ID@
rss create "@RT@ delete -f bench-create@ID@" create -b "$bundle" bench-create@ID@
rss start "${fresh//@OP@/start}" start bench-start@ID@
rss kill "$running" kill bench-kill@ID@ KILL
rss delete "${fresh//@OP@/delete}" delete -f bench-delete@ID@
rss state true state bench-state@ID@
rss list true list
rss exec true exec bench-state@ID@ true

"$py" - "$work/results" "$work/rss" <<'PY'
import json, pathlib, statistics, sys
head = (f"{'operation':<20}{'pyrunc ms':>10}{'runc ms':>9}{'ratio':>7}{'floor':>7}{'above floor':>12}"
        f"{'runc work':>10}{'target':>8}{'cpu ratio':>10}")
for kind in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    ratios: dict[str, list[float]] = {}
    cpu_ratios: dict[str, list[float]] = {}  # CPU time (user + system) pyrunc/runc
    print(f"== bundle: {kind.name}")
    for rnd in sorted(kind.iterdir(), key=lambda p: int(p.name)):
        print(head)
        for f in sorted(rnd.glob("*.json")):
            rows = json.loads(f.read_text())["results"]
            res = {r["command"]: r["median"] * 1000 for r in rows}
            cpu = {r["command"]: r["cpu_median"] for r in rows}
            ratios.setdefault(f.stem, []).append(res["pyrunc"] / res["runc"])
            cpu_ratios.setdefault(f.stem, []).append(cpu["pyrunc"] / cpu["runc"])
            if f.stem == "seq100":
                print(f"{'100 x run (s)':<20}{res['pyrunc'] / 1000:>10.2f}{res['runc'] / 1000:>9.2f}"
                      f"{res['pyrunc'] / res['runc']:>7.2f}")
                continue
            above, work = res["pyrunc"] - res["floor"], res["runc"] - res["runc-version"]
            met = "met" if above <= work + 1.5 else f"+{above - work - 1.5:.1f}"
            print(f"{f.stem:<20}{res['pyrunc']:>10.1f}{res['runc']:>9.1f}{res['pyrunc'] / res['runc']:>7.2f}"
                  f"{res['floor']:>7.1f}{above:>12.1f}{work:>10.1f}{met:>8}{cpu['pyrunc'] / cpu['runc']:>10.2f}")
        print()
    if len(next(iter(ratios.values()))) > 1:
        print(f"{'operation':<20}{'median ratio':>13}{'cpu ratio':>10}   per round ({kind.name})")
        for name, rs in sorted(ratios.items()):
            print(f"{name:<20}{statistics.median(rs):>13.2f}{statistics.median(cpu_ratios[name]):>10.2f}   "
                  f"{' '.join(f'{r:.2f}' for r in rs)}")
        print()
rss = pathlib.Path(sys.argv[2])
print(f"{'peak RSS (MiB)':<20}{'pyrunc':>10}{'runc':>9}")
for f in sorted(rss.glob("*-pyrunc")):
    op = f.name.removesuffix("-pyrunc")
    mib = [int(p.read_text().split()[-1]) / 1024 if p.exists() and p.read_text().split() else float("nan")
           for p in (f, rss / f"{op}-runc")]
    print(f"{op:<20}{mib[0]:>10.1f}{mib[1]:>9.1f}")
PY
