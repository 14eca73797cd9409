#!/bin/sh
# mkbundle.sh DIR [ARGS...]: an OCI bundle at DIR whose rootfs is busybox-static
# (one binary plus its applet links), with pyrunc's default config adjusted to
# run ARGS (default: sh -c 'echo hello from pyrunc; id; hostname') without a terminal.
set -eu
dir=${1:?usage: mkbundle.sh DIR [ARGS...]}
shift
busybox=$(command -v busybox) || { echo "mkbundle: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/tmp" "$dir/rootfs/root"
cp "$busybox" "$dir/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ -e "$dir/rootfs/bin/$applet" ] || ln -s busybox "$dir/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/rootfs/etc/group"
chmod 1777 "$dir/rootfs/tmp"
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYRUNC_PYTHON:-$here/.venv/bin/python}
rm -f "$dir/config.json"
[ $# -gt 0 ] || set -- sh -c 'echo hello from pyrunc; id; hostname'
"$py" - "$dir/config.json" "$@" <<'PY'
import json, sys
from pyrunc.cli.spec import default_config
cfg = default_config(rootless=False)
cfg["process"]["terminal"] = False
cfg["process"]["args"] = sys.argv[2:]
with open(sys.argv[1], "w") as f:
    json.dump(cfg, f, indent=2)
PY
