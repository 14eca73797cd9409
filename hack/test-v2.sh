#!/usr/bin/env bash
# hack/test-v2.sh [PYTEST ARGS...]
# The cgroup tests on a pure cgroup v2 kernel, all in one guest boot
# (hack/v2-guest.sh): the manager tests in tests/cgroups and the tests that run
# real pyrunc containers (tests/test_cgroup_commands.py, the same checks as on
# this host but reading the v2 files, and tests/test_cgroups_v2_containers.py),
# and the runtime killed at each step of create and delete (tests/test_crash.py:
# on v2, delete -f kills through cgroup.kill; SIGKILL only, _exit adds nothing there), and
# checkpoint/restore round trips (stdio on /dev/null, pipes, a terminal; the cgroup and its
# limits; a pre-dump, as this kernel tracks dirty pages).
# The containers need the project's venv (its pyrunc script and C extensions);
# PYTHON overrides it. Exits with pytest's status.
#
# CONFORMANCE_V2_RESULTS=FILE: in the same boot, also run the conformance
# suite's cgroup v2 tests (conformance/tests/test_cgroups_v2.py) against
# CONFORMANCE_RUNTIME (default: the venv's pyrunc) and write their results to
# FILE for `conformance/report.py --merge FILE`; their failures count too.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || { echo "test-v2: $py not found (hack/setup.sh creates .venv)" >&2; exit 2; }
tests=(env PYTHONPATH=runtime PYTHONDONTWRITEBYTECODE=1 PYRUNC_CRASH_MODES=kill "$py"
  -m pytest -p no:cacheprovider -q -rs
  tests/cgroups tests/test_cgroup_commands.py tests/test_cgroups_v2_containers.py
  tests/test_crash.py::test_create_killed_at_each_step tests/test_crash.py::test_delete_killed_at_each_step
  tests/test_checkpoint.py::test_devnull_round_trip tests/test_checkpoint.py::test_pipes_round_trip
  tests/test_checkpoint.py::test_terminal_round_trip tests/test_checkpoint_roundtrip.py::test_cgroup_namespace_and_limits
  tests/test_checkpoint_roundtrip.py::test_pre_dump_then_dump_with_parent "$@")
results=${CONFORMANCE_V2_RESULTS:-}
[ -n "$results" ] || exec hack/v2-guest.sh "${tests[@]}"

# The guest's writes vanish with it, so it prints the results after a marker
# line at the end of its stdout, and we cut them off here.
mark=@@conformance-v2-results@@
guest='rc=0; "$@" || rc=$?
cd conformance/tests && PYTHONDONTWRITEBYTECODE=1 "$CONF_PY" -m pytest -p no:cacheprovider -q -rs \
  --runtime "$CONF_RT" --req-report /tmp/conformance-v2.json test_cgroups_v2.py || rc=$?
echo "$CONF_MARK"; cat /tmp/conformance-v2.json; exit $rc'
out=$(mktemp); trap 'rm -f "$out"' EXIT
rc=0
CONF_PY=$(realpath -s "$py") CONF_RT=$(realpath -s "$(command -v "${CONFORMANCE_RUNTIME:-.venv/bin/pyrunc}")") \
  CONF_MARK=$mark \
  hack/v2-guest.sh bash -c "$guest" guest "${tests[@]}" > "$out" || rc=$?
sed "/^$mark\$/,\$d" "$out"
if grep -qx "$mark" "$out"; then sed "1,/^$mark\$/d" "$out" > "$results"; else rm -f "$results"; fi
exit $rc
