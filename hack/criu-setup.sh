#!/bin/bash
# criu-setup.sh: criu >= 4 at /usr/local/sbin/criu, built from Debian trixie's source with
# bookworm's build dependencies (bookworm's criu 3.17.1 fails `criu check` on current
# kernels: "vdso: Unexpected rt vDSO area bounds"). The host's apt sources are never touched:
# trixie's source index is read through a private apt configuration under $cache.
# Cached: once built, a run only checks the stamp and runs `criu check`.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "criu-setup.sh: run as root" >&2; exit 1; }
want=4.1.1                       # trixie's upstream version
debver=4.1.1-1                   # trixie's source package version
cache=/var/cache/pyrunc-criu     # private apt state, source and build
bin=/usr/local/sbin/criu
stamp=$cache/installed.stamp     # "<orig tarball> <sha256 of the orig tarball>" of the binary at $bin

# A kernel criu cannot work on is the host's fact, not a broken set-up: said, and the
# checkpoint tests skip naming it (`pyrunc check` says it too).
check() {
  out=$("$bin" check 2>&1) || echo "criu-setup.sh: warning: $bin check fails here: $(tail -n1 <<<"$out")" >&2
}
if [ -x "$bin" ] && [ -s "$stamp" ] && "$bin" --version 2>/dev/null | grep -q "Version: $want"; then
  check; exit 0
fi

mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$cache/src"
cat > "$cache/apt/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
EOF
papt=(-o Dir::Etc::SourceList="$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$cache/apt/lists" -o Dir::Cache="$cache/apt"
      -o Dir::State::status=/var/lib/dpkg/status -o APT::Sandbox::User=root)
apt-get "${papt[@]}" update -qq

cd "$cache/src"
rec=$(apt-cache "${papt[@]}" showsrc criu | awk -v v="$debver" '/^Package:/{keep=0} /^Version:/{keep=($2==v)} keep')
# The mirror may hold only the orig tarball (not the .dsc): fetch that alone, its sha256
# checked against trixie's signed Sources index (apt-helper refuses any other content).
orig=criu_$want.orig.tar.xz
sha=$(awk -v f="$orig" '/^Checksums-Sha256:/{on=1; next} /^[^ ]/{on=0} on && $3==f {print $1; exit}' <<<"$rec")
[ -n "$sha" ] || { echo "criu-setup.sh: $orig: not in trixie's Sources index" >&2; exit 1; }
url=$(apt-get "${papt[@]}" source --print-uris -qq "criu=$debver" | tr -d "'" | awk -v f="$orig" '$2==f {print $1}')
[ -s "$orig" ] && echo "$sha  $orig" | sha256sum -c --status ||
  /usr/lib/apt/apt-helper -qq download-file "$url" "$orig" "SHA256:$sha"
deps=$(sed -n '/^Build-Depends:/{s/^Build-Depends://p;q}' <<<"$rec" | tr ',' '\n' |
       sed 's/[[(<].*//; s/|.*//; s/ //g' | grep -v -e '^$' -e '^debhelper' -e '^asciidoc' -e '^xmlto' -e '^dh-' -e '^pybuild' -e '^python3' || true)
# bookworm's packages for trixie's Build-Depends (debhelper, python and docs are not needed
# for `make criu`)
need=(gcc make xz-utils)
apt-cache show gcc >/dev/null 2>&1 || apt-get update -qq  # a fresh machine's host lists
for d in $deps; do
  apt-cache show "$d" >/dev/null 2>&1 && need+=("$d")
done
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

rm -rf build && mkdir build && tar -C build --strip-components=1 -xf "$orig"
make -C build -j"$(nproc)" criu >"$cache/build.log" 2>&1 ||
  { echo "criu-setup.sh: make failed, see $cache/build.log" >&2; exit 1; }
install -D -m 755 build/criu/criu "$bin"
rm -rf build
echo "$orig $sha" > "$stamp"
check
