#!/usr/bin/env bash
# hack/test-systemd.sh [PYTEST ARGS...]
# The systemd cgroup driver (--systemd-cgroup) against a real systemd: this host has no
# systemd as PID 1, so the tests run in a qemu guest where it is (hack/v2-guest.sh with
# V2_INIT=systemd: the host's own systemd 252 and dbus-daemon), booted twice: a pure
# cgroup v2 hierarchy, then a hybrid one (v1 controllers, systemd's unified tree beside).
# Runs tests/test_systemd_driver.py and tests/cgroups/test_systemd_pure.py in each; the
# engines through systemd are in the same boots when SYSTEMD_ENGINES=1.
# Exits non-zero if either boot's tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || { echo "test-systemd: $py not found (hack/setup.sh creates .venv)" >&2; exit 2; }
tests=(env PYTHONPATH=runtime PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest -p no:cacheprovider -q -rs
  tests/test_systemd_driver.py tests/cgroups/test_systemd_pure.py)
if [ "${SYSTEMD_ENGINES:-0}" = 1 ]; then
  # the engines' image is built here: under emulation that alone takes minutes
  images=$(mktemp -d /tmp/pyrunc-systemd-images.XXXXXX); trap 'rm -rf "$images"' EXIT
  sh hack/mkimage.sh "$images" >/dev/null
  tests=(env ENGINE_IMAGES="$images" ENGINE_TIMEOUT=300 "${tests[@]}" tests/engines/test_systemd_engines.py)
fi
tests+=("$@")
rc=0
for hybrid in 0 1; do
  echo "== systemd guest, $([ $hybrid = 1 ] && echo hybrid || echo 'pure v2') cgroups"
  V2_INIT=systemd V2_HYBRID=$hybrid hack/v2-guest.sh "${tests[@]}" || rc=$?
done
exit $rc
