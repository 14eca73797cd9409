#!/bin/bash
# test.sh: install what the tests need, then run the whole suite (as root).
#   1. the main suite: real containers on this host (v1/hybrid cgroups), the engines lane
#      (containerd, podman and buildah driving pyrunc, image builds included) and the
#      schema checks;
#   2. the cgroup v2 lane: the cgroup tests again inside a qemu guest with a pure v2 hierarchy,
#      plus the conformance suite's v2-only tests;
#   2b. the systemd lane: the systemd cgroup driver and the engines through it, in a guest
#      booted with systemd as PID 1, on v2 and hybrid cgroups (hack/test-systemd.sh);
#   3. OCI runtime-tools' validation suite against pyrunc (hack/runtime-tools.sh), failing
#      on any test not in conformance/runtime-tools-expected.txt;
#   4. conformance: the requirement catalogue check, then the conformance suite against
#      pyrunc, reported per requirement with the v2 guest's results merged in.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
hack/setup.sh --test
rc=0
.venv/bin/python -m pytest -q -p no:cacheprovider tests "$@" || rc=$?
conf=$(mktemp -d)
trap 'rm -rf "$conf"' EXIT
if [ -z "${PYRUNC_SKIP_V2:-}" ] && [ -x hack/test-v2.sh ]; then
  CONFORMANCE_V2_RESULTS=$conf/v2.json hack/test-v2.sh || rc=$?
fi
if [ -z "${PYRUNC_SKIP_V2:-}" ]; then
  hack/test-systemd.sh || rc=$?
fi
hack/runtime-tools.sh || rc=$?
python3 conformance/catalogue.py check || rc=$?
merge=()
[ -s "$conf/v2.json" ] && merge=(--merge "$conf/v2.json")
.venv/bin/python conformance/report.py --runtime .venv/bin/pyrunc --strict "${merge[@]}" || rc=$?
exit $rc
