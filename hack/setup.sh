#!/bin/bash
# setup.sh [--test]: everything pyrunc needs on a fresh Debian 12, as root. Idempotent.
#   apt packages (busybox-static for rootfs, libseccomp, a compiler and Python's headers
#   for the C extensions), a .venv in the checkout with pyrunc installed (editable) and,
#   with --test, what the test suite drives: runc and crun to compare with, the engine lane's packages
#   (hack/engines-setup.sh: containerd, podman, conmon, catatonit, buildah, CNI plugins),
#   qemu and Debian's kernel for the cgroup-v2 guest lane, criu >= 4 (hack/criu-setup.sh), Go
#   to build OCI runtime-tools' validation suite, GNU time for benchmarks. Then the man pages
#   and the bash completion.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "setup.sh: run as root" >&2; exit 1; }

pkgs=(busybox-static libseccomp2 libseccomp-dev gcc iproute2 procps python3 python3-venv python3-dev)
if [ "${1:-}" = --test ]; then
  pkgs+=(runc crun uidmap qemu-system-x86 linux-image-amd64
         kmod cpio xz-utils zstd file e2fsprogs golang-go libcap2-bin time man-db)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "${1:-}" = --test ]; then
  sh "$here/hack/engines-setup.sh" >/dev/null
  bash "$here/hack/criu-setup.sh"  # criu >= 4 built from Debian's source, cached
fi

# Debian's python3, not whatever python3 comes first on PATH: it is built with PGO
# and LTO and links libpython and a dozen extension modules in statically, which
# makes every pyrunc command start ~1.5 ms sooner and run its Python ~15% faster
# than a default source build (pyenv's). Start-up time is pyrunc's main cost.
py=/usr/bin/python3
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup.sh: need Python >= 3.11" >&2; exit 1; }
if ! grep -qx "home = $(dirname "$py")" "$here/.venv/pyvenv.cfg" 2>/dev/null; then
  rm -rf "$here/.venv"  # made by another interpreter: its compiled modules would not match
  "$py" -m venv "$here/.venv"
fi
extras=net
[ "${1:-}" = --test ] && extras=test,net
"$here/.venv/bin/pip" install -q --disable-pip-version-check -e "$here[$extras]"
# Bytecode up front: callers may set PYTHONDONTWRITEBYTECODE, and compiling our
# modules (the generated validator above all) on every run would cost ~25 ms.
"$here/.venv/bin/python" -m compileall -q "$here/runtime/pyrunc" >/dev/null

# A leaner launcher than pip's console script (which imports `re`, ~7 ms, and runs
# `site`): python -I -S with the two paths pyrunc needs, and all of pyrunc's bytecode
# read from one file (runtime/pyrunc/codecache.py), start-up being our main cost.
site_dir=$("$here/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$here/.venv/bin/python" -I "$here/runtime/pyrunc/codecache.py" "$here/runtime/pyrunc" "$here/.venv/pyrunc.code" >/dev/null
cat > "$here/.venv/bin/pyrunc.tmp" <<LAUNCHER
#!$here/.venv/bin/python -IS
import sys
sys.path[:0] = ["$here/runtime", "$site_dir"]
from pyrunc import codecache
codecache.install("$here/.venv/pyrunc.code")
from pyrunc.cli import entry
entry()
LAUNCHER
chmod 755 "$here/.venv/bin/pyrunc.tmp"
mv -f "$here/.venv/bin/pyrunc.tmp" "$here/.venv/bin/pyrunc"

# pyrunc(8), pyrunc-COMMAND(8) and the bash completion, rendered from the command table
# and flags that --help prints (runtime/pyrunc/cli/docgen.py). Generated here rather than
# committed: made from the code just installed, they cannot drift from it, and no copy in
# git needs regenerating (and a test to catch it not being) whenever a flag changes.
man8=/usr/local/share/man/man8
completions=/usr/share/bash-completion/completions
[ -d "$completions" ] || completions=/etc/bash_completion.d
mkdir -p "$man8" "$completions"
"$here/.venv/bin/python" -m pyrunc.cli.docgen "$man8" "$completions/pyrunc"
