#!/bin/sh
# Install what the engine test lane (tests/engines) needs, from Debian's packages.
# Idempotent: does nothing (no apt-get update) when everything is already there.
# The engines are only installed: no daemon is enabled or started; the tests start
# their own containerd on a private socket and run podman with private storage.
set -eu

# package -> a binary it ships, so we can check without dpkg-query races.
need=""
for pair in containerd:/usr/bin/containerd containerd:/usr/bin/containerd-shim-runc-v2 \
    containerd:/usr/bin/ctr podman:/usr/bin/podman conmon:/usr/bin/conmon \
    busybox-static:/bin/busybox runc:/usr/sbin/runc; do
    pkg=${pair%%:*}
    bin=${pair#*:}
    if [ ! -x "$bin" ]; then
        case " $need " in *" $pkg "*) ;; *) need="$need $pkg" ;; esac
    fi
done

# busybox-static installs /bin/busybox; make sure it is the static one the image needs.
if [ -x /bin/busybox ] && ldd /bin/busybox >/dev/null 2>&1; then
    need="$need busybox-static"
fi

if [ -z "$need" ]; then
    echo "engines-setup: containerd, podman, conmon, runc and busybox-static already installed"
    exit 0
fi

echo "engines-setup: installing$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# --no-install-recommends keeps slirp/fuse-overlayfs/etc. out: the lane needs none of them.
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $need

for bin in /usr/bin/containerd /usr/bin/podman /usr/bin/conmon /usr/sbin/runc; do
    [ -x "$bin" ] || { echo "engines-setup: $bin still missing" >&2; exit 1; }
done
echo "engines-setup: done"
