#!/usr/bin/env bash
# hack/test-systemd.sh [PYTEST ARGS...]
# The systemd cgroup driver (--systemd-cgroup) against a real systemd: this host has no
# systemd as PID 1, so the tests run in a qemu guest where it is (hack/v2-guest.sh with
# V2_INIT=systemd: the host's own systemd 252 and dbus-daemon), booted twice: a pure
# cgroup v2 hierarchy, then a hybrid one (v1 controllers, systemd's unified tree beside).
# Each boot runs tests/test_systemd_driver.py, tests/cgroups/test_systemd_pure.py and a
# checkpoint/restore round trip in a scope (tests/test_checkpoint.py); the
# v2 boot also runs podman (cgroup_manager systemd) and containerd's shim (SystemdCgroup)
# through pyrunc (tests/engines/test_systemd_engines.py; SYSTEMD_ENGINES=0 skips them).
# ~2 min per boot under emulation. Exits non-zero if either boot's tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || { echo "test-systemd: $py not found (hack/setup.sh creates .venv)" >&2; exit 2; }
# SYSTEMD_ROOTLESS=1: also the rootless test, as a user made in the guest (its writes vanish
# with it). Its user@UID.service boots sysinit.target, whose tmpfiles setup empties /tmp:
# run it from a checkout outside /tmp. Off by default (CI may clone into /tmp).
guest_user=(env)
[ "${SYSTEMD_ROOTLESS:-0}" = 1 ] && guest_user=(sh -c 'useradd -m pyruncsd && exec env SYSTEMD_TEST_USER=pyruncsd "$@"' guest)
tests=(PYTHONPATH=runtime PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest -p no:cacheprovider -q -rs
  tests/test_systemd_driver.py tests/cgroups/test_systemd_pure.py
  tests/test_checkpoint.py::test_round_trip_in_a_systemd_scope)
engines=()
if [ "${SYSTEMD_ENGINES:-1}" = 1 ]; then
  # the engines' image is built here: under emulation that alone takes minutes
  images=$(mktemp -d /tmp/pyrunc-systemd-images.XXXXXX); trap 'rm -rf "$images"' EXIT
  sh hack/mkimage.sh "$images" >/dev/null
  engines=(ENGINE_IMAGES="$images" ENGINE_TIMEOUT=300 ENGINE_SNAPSHOTTER=native)  # /: an overlay
fi
rc=0
echo "== systemd guest, pure cgroup v2"
if [ ${#engines[@]} -gt 0 ]; then
  V2_INIT=systemd hack/v2-guest.sh "${guest_user[@]}" env "${engines[@]}" "${tests[@]}" \
    tests/engines/test_systemd_engines.py "$@" || rc=$?
else
  V2_INIT=systemd hack/v2-guest.sh "${guest_user[@]}" env "${tests[@]}" "$@" || rc=$?
fi
echo "== systemd guest, hybrid cgroups (v1 controllers)"
V2_INIT=systemd V2_HYBRID=1 hack/v2-guest.sh "${guest_user[@]}" env "${tests[@]}" "$@" || rc=$?
exit $rc
