#!/bin/sh
# Install what the engine test lane (tests/engines) needs, from Debian's packages:
# containerd (its CRI plugin included), podman + conmon, catatonit (podman run --init),
# buildah (image builds), the CNI plugins the CRI tests network their pods with, runc to
# compare with.
# Idempotent: does nothing (no apt-get update) when everything is already there.
# The engines are only installed: no daemon is enabled or started; the tests start
# their own containerd on a private socket and run podman with private storage.
set -eu

# package:a file it ships, so we can check without dpkg-query races.
pairs="containerd:/usr/bin/containerd containerd:/usr/bin/containerd-shim-runc-v2
    containerd:/usr/bin/ctr podman:/usr/bin/podman conmon:/usr/bin/conmon buildah:/usr/bin/buildah
    busybox-static:/bin/busybox runc:/usr/sbin/runc catatonit:/usr/libexec/podman/catatonit
    containernetworking-plugins:/usr/lib/cni/bridge containernetworking-plugins:/usr/lib/cni/host-local
    containernetworking-plugins:/usr/lib/cni/loopback"

missing() {
    for pair in $pairs; do
        [ -x "${pair#*:}" ] || echo "${pair%%:*}"
    done | sort -u | tr '\n' ' '
}
need=$(missing)

# busybox-static installs /bin/busybox; make sure it is the static one the image needs.
if [ -x /bin/busybox ] && ldd /bin/busybox >/dev/null 2>&1; then
    need="$need busybox-static"
fi

if [ -z "${need% }" ]; then
    echo "engines-setup: containerd, podman, conmon, catatonit, buildah, CNI plugins, runc and busybox-static already installed"
    exit 0
fi

echo "engines-setup: installing $need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# --no-install-recommends keeps slirp/fuse-overlayfs/etc. out: the lane needs none of them.
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $need

still=$(missing)
[ -z "${still% }" ] || { echo "engines-setup: still missing after install: $still" >&2; exit 1; }
echo "engines-setup: done"
