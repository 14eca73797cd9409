"""benchtime.py OUT RUNS WARMUP NAME=PREPARE=COMMAND ...: time commands interleaved, for hack/bench.sh.

This VM's speed drifts by 10-20% within a minute. Timing one command's runs back to back
(as hyperfine does) lets that drift fall between two commands, and a millisecond-sized
difference such as "above floor" drowns in it. So every round here runs each command once,
after its PREPARE shell script (untimed; empty: none). The time is from posix_spawn to
the child's exit status; the spawn's own cost is the same for every command, and the
differences bench.sh reads cancel it.

The order matters too, on this VM: a command's wall time depends on what ran just before
it (runc's `run` took 24 ms after another runc `run` and 29 ms after a bare interpreter,
with the same CPU time: its threads wait longer for an idle vCPU to wake). A rotation of a
fixed order lets one command nearly always follow the same other one (it put runc's `run`
after pyrunc's in three rounds of four, never after itself), so the rounds go through
every permutation of the commands in turn: each follows each other as often. The CPU
time (user + system, the command and its children, from wait4) is kept beside the wall
time: it does not depend on that order.

With REPEAT (BENCHTIME_REPEAT, default 1) above 1, each command runs that many times in a
row and only the last run is timed: each command then follows itself (hyperfine's way,
where runc's `run` is at its fastest here).

OUT gets {"results": [{"command": NAME, "median": seconds, "times": [...], "cpu_median": seconds}, ...]}.
The WARMUP first rounds are not counted. A failing command aborts the benchmark.
PREPARE must not contain "=" (NAME=PREPARE=COMMAND is split at the first two).
"""
from __future__ import annotations

import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

def run_once(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                                           (os.POSIX_SPAWN_DUP2, null, 2)])
        _, status, usage = os.wait4(pid, 0)
        elapsed = time.perf_counter() - t0
    finally:
        os.close(null)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"benchtime: {' '.join(argv)}: exit status {os.waitstatus_to_exitcode(status)}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main() -> None:
    out, runs, warmup, specs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    cmds = []
    for spec in specs:
        name, prepare, command = spec.split("=", 2)
        cmds.append((name, prepare, shlex.split(command)))
    times: dict[str, list[float]] = {name: [] for name, _, _ in cmds}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in cmds}
    orders = list(itertools.permutations(cmds))
    repeat = int(os.environ.get("BENCHTIME_REPEAT", "1"))
    for rnd in range(warmup + runs):
        for name, prepare, argv in orders[rnd % len(orders)]:
            for _ in range(repeat):
                if prepare:
                    subprocess.run(["sh", "-c", prepare], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   check=False)
                wall, used = run_once(argv)
            if rnd >= warmup:
                times[name].append(wall)
                cpu[name].append(used)
    with open(out, "w") as f:
        json.dump({"results": [{"command": n, "median": statistics.median(ts), "times": ts,
                                "cpu_median": statistics.median(cpu[n])} for n, ts in times.items()]}, f)


if __name__ == "__main__":
    main()
