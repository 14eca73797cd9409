"""Bundles for user-namespace tests (issue 9).

The container's setup runs as the host id its root maps to, without
capabilities over host-owned directories, so these bundles live in a
searchable directory outside pytest's 0700 tmp tree, with a rootfs owned by
that id (a private copy: the session rootfs hard-links busybox).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import Bundle, mounts_under, processes_rooted_under

HOST_ROOT = 100000
MAP = [{"containerID": 0, "hostID": HOST_ROOT, "size": 65536}]


def chown_tree(top: Path, uid: int, gid: int) -> None:
    """Own every entry; hard-linked files are replaced by copies first."""
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames + dirnames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if st.st_nlink > 1 and not os.path.islink(p) and os.path.isfile(p):
                tmp = p + ".copy"
                shutil.copy2(p, tmp)
                os.replace(tmp, p)
            os.lchown(p, uid, gid)
    os.lchown(top, uid, gid)


def userns_config(b: Bundle) -> Bundle:
    linux = b.config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [dict(m) for m in MAP]
    linux["gidMappings"] = [dict(m) for m in MAP]
    return b.write()


@pytest.fixture
def base(pyrunc) -> Iterator[Path]:
    """A searchable directory for bundles and bind sources; checked for leaks and removed."""
    d = Path(tempfile.mkdtemp(prefix="pyrunc-userns-"))
    os.chmod(d, 0o755)
    try:
        yield d
        for left in pyrunc.list_ids():
            pyrunc("delete", "--force", left, check=False)
        found = [f"mount {m}" for m in mounts_under(d)] + [f"process {p}" for p in processes_rooted_under(d)]
        assert not found, f"left behind: {found}"
    finally:
        shutil.rmtree(d)


@pytest.fixture
def make_bundle(base: Path, busybox_rootfs: Path) -> Callable[[str], Bundle]:
    """make_bundle(name): a busybox bundle whose root is host uid 100000 in a new user namespace."""
    def make(name: str = "bundle") -> Bundle:
        b = Bundle.make(base / name, busybox_rootfs)
        chown_tree(b.rootfs, HOST_ROOT, HOST_ROOT)
        return userns_config(b)
    return make
