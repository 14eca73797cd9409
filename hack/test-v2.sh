#!/usr/bin/env bash
# hack/test-v2.sh [PYTEST ARGS...]
# The cgroup tests on a pure cgroup v2 kernel, all in one guest boot
# (hack/v2-guest.sh): the manager tests in tests/cgroups and the tests that run
# real pyrunc containers (tests/test_cgroup_commands.py, the same checks as on
# this host but reading the v2 files, and tests/test_cgroups_v2_containers.py).
# The containers need the project's venv (its pyrunc script and cffi build);
# PYTHON overrides it. Exits with pytest's status.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || { echo "test-v2: $py not found (hack/setup.sh creates .venv)" >&2; exit 2; }
exec hack/v2-guest.sh env PYTHONPATH=runtime PYTHONDONTWRITEBYTECODE=1 "$py" \
  -m pytest -p no:cacheprovider -q -rs \
  tests/cgroups tests/test_cgroup_commands.py tests/test_cgroups_v2_containers.py "$@"
