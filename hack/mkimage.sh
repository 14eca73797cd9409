#!/bin/sh
# Build a tiny busybox image from the host's busybox-static, without any registry:
#   OUT/busybox-rootfs.tar  - a plain rootfs tarball, for `podman import`
#   OUT/busybox-oci.tar     - an OCI image layout tarball, for `ctr image import`,
#                             naming the image localhost/busybox:latest (Cmd /bin/sh)
#   OUT/pause-oci.tar       - the same layer as a pod sandbox ("pause") image for
#                             containerd's CRI, localhost/pause:busybox: a shell as the pod's
#                             pid 1 that reaps orphans and exits on SIGTERM/SIGINT
# Usage: hack/mkimage.sh OUTDIR
set -eu

out=${1:?usage: $0 OUTDIR}
busybox=${BUSYBOX:-/bin/busybox}

# A static binary is required: the rootfs has no libc.
if [ ! -x "$busybox" ]; then
    echo "mkimage: $busybox not readable (install busybox-static)" >&2
    exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
    echo "mkimage: $busybox is dynamically linked (install busybox-static)" >&2
    exit 1
fi

mkdir -p "$out"
work=$(mktemp -d "$out/.mkimage.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- rootfs ---
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" \
    "$rootfs/tmp" "$rootfs/root" "$rootfs/home/app" "$rootfs/run" "$rootfs/var/tmp"
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
cp "$busybox" "$rootfs/bin/busybox"
chmod 755 "$rootfs/bin/busybox"
# One symlink per applet; busybox dispatches on argv[0].
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
app:x:1000:
nogroup:x:65534:
EOF
chown 1000:1000 "$rootfs/home/app"

# Reproducible tarball: sorted names, fixed mtime and owners.
tarit() { tar --sort=name --mtime=@0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" -cf "$2" .; }
tarit "$rootfs" "$work/layer.tar"
cp "$work/layer.tar" "$out/busybox-rootfs.tar"

# --- OCI layout ---
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
layer_sha=$(sha "$work/layer.tar")
layer_size=$(size "$work/layer.tar")

case $(uname -m) in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
esac

# oci_image REF CMD_JSON TARBALL: the busybox layer with its own config and name.
oci_image() {
    ref=$1 cmd=$2 tarball=$3
    oci=$work/oci
    rm -rf "$oci"
    mkdir -p "$oci/blobs/sha256"
    cp "$work/layer.tar" "$oci/blobs/sha256/$layer_sha"
    cat >"$work/config.json" <<EOF
{
  "architecture": "$arch",
  "os": "linux",
  "config": {"Env": ["PATH=/bin"], "Cmd": $cmd, "WorkingDir": "/"},
  "rootfs": {"type": "layers", "diff_ids": ["sha256:$layer_sha"]},
  "history": [{"created_by": "hack/mkimage.sh"}]
}
EOF
config_sha=$(sha "$work/config.json")
config_size=$(size "$work/config.json")
mv "$work/config.json" "$oci/blobs/sha256/$config_sha"

cat >"$work/manifest.json" <<EOF
{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:$config_sha",
    "size": $config_size
  },
  "layers": [{
    "mediaType": "application/vnd.oci.image.layer.v1.tar",
    "digest": "sha256:$layer_sha",
    "size": $layer_size
  }]
}
EOF
manifest_sha=$(sha "$work/manifest.json")
manifest_size=$(size "$work/manifest.json")
mv "$work/manifest.json" "$oci/blobs/sha256/$manifest_sha"

# containerd names the imported image from io.containerd.image.name.
cat >"$oci/index.json" <<EOF
{
  "schemaVersion": 2,
  "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:$manifest_sha",
    "size": $manifest_size,
    "platform": {"architecture": "$arch", "os": "linux"},
    "annotations": {
      "io.containerd.image.name": "$ref",
      "org.opencontainers.image.ref.name": "${ref##*:}"
    }
  }]
}
EOF
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
tarit "$oci" "$3"
echo "$3"
}

echo "$out/busybox-rootfs.tar"
oci_image localhost/busybox:latest '["/bin/sh"]' "$out/busybox-oci.tar"
oci_image localhost/pause:busybox \
    '["/bin/sh", "-c", "trap \"exit 0\" INT TERM; while :; do sleep 86400 & wait; done"]' \
    "$out/pause-oci.tar"
