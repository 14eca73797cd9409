#!/bin/bash
# test.sh: install what the tests need, then run the whole suite (as root).
#   1. the main suite: real containers on this host (v1/hybrid cgroups), the engines lane
#      (containerd and podman driving pyrunc) and the schema checks;
#   2. the cgroup v2 lane: the cgroup tests again inside a qemu guest with a pure v2 hierarchy.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
hack/setup.sh --test
rc=0
.venv/bin/python -m pytest -q -p no:cacheprovider tests "$@" || rc=$?
if [ -z "${PYRUNC_SKIP_V2:-}" ] && [ -x hack/test-v2.sh ]; then
  hack/test-v2.sh || rc=$?
fi
exit $rc
