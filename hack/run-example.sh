#!/bin/bash
# run-example.sh: set up pyrunc, build the busybox example bundle and run it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/hack/setup.sh"
bundle=${EXAMPLE_BUNDLE:-/tmp/pyrunc-example}
rm -rf "$bundle"
mkdir -p "$bundle"
"$here/hack/mkbundle.sh" "$bundle" >/dev/null
cp "$here/hack/example/config.json" "$bundle/config.json"
exec "$here/.venv/bin/pyrunc" run --bundle "$bundle" "example-$$"
