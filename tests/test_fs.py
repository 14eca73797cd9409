"""pyrunc.fs against os.path: the same answers for the paths pyrunc handles (pure logic,
plus real directories for the helpers that ask the kernel)."""
import os
import posixpath
import subprocess

import pytest

from pyrunc import fs

PATHS = ["/", "//", "/a", "/a/", "a", "a/b", "a//b", "/a/./b", "/a/../b", "/../a", "../a", "a/../..",
         "./a", ".", "", "/a/b/..", "a/b/../../..", "/sys/fs/cgroup/memory/x/", "///a//b///"]


@pytest.mark.parametrize("path", PATHS)
def test_path_functions_match_posixpath(path):
    if path.startswith("//") and not path.startswith("///"):
        # POSIX lets "//" mean something else and posixpath keeps it; Linux does not
        assert fs.normpath(path) == posixpath.normpath(path[1:])
    elif path:
        assert fs.normpath(path) == posixpath.normpath(path)
        assert fs.abspath(path) == posixpath.abspath(path)
    assert fs.dirname(path) == posixpath.dirname(path)
    assert fs.basename(path) == posixpath.basename(path)
    for other in ("b", "/b", "b/", ""):
        assert fs.join(path, other) == posixpath.join(path, other)


@pytest.mark.parametrize("path,start", [("/a/b/c", "/a"), ("/a", "/a/b/c"), ("/a/b", "/a/b"), ("/x/y", "/a/b"),
                                        ("/", "/a"), ("/a/b/", "/a//"), ("a/b", "a")])
def test_relpath_matches_posixpath(path, start):
    assert fs.relpath(path, start) == posixpath.relpath(path, start)


def test_kernel_backed_helpers(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("")
    os.symlink("d", tmp_path / "link")
    assert fs.isdir(str(tmp_path / "d")) and fs.isdir(str(tmp_path / "link"))
    assert not fs.isdir(str(tmp_path / "f")) and not fs.isdir(str(tmp_path / "missing"))
    assert fs.exists(str(tmp_path / "f")) and not fs.exists(str(tmp_path / "missing"))
    assert fs.realpath(str(tmp_path / "link")) == os.path.realpath(tmp_path / "link")
    fs.makedirs(str(tmp_path / "x/y/z"), 0o711)
    fs.makedirs(str(tmp_path / "x/y/z"))  # exists: fine
    assert (tmp_path / "x/y/z").is_dir() and (tmp_path / "x/y/z").stat().st_mode & 0o777 == 0o711
    with pytest.raises(FileExistsError):
        fs.makedirs(str(tmp_path / "f"))
    (tmp_path / "x/y2").mkdir()
    found = fs.walk_dirs_bottom_up(str(tmp_path / "x"))
    assert sorted(found) == sorted(str(tmp_path / p) for p in ("x/y", "x/y/z", "x/y2"))
    assert found.index(str(tmp_path / "x/y/z")) < found.index(str(tmp_path / "x/y"))


def test_environment(monkeypatch):
    monkeypatch.setenv("PYRUNC_FS_TEST", "v=1")
    assert fs.getenv("PYRUNC_FS_TEST") == "v=1" and fs.getenv("PYRUNC_FS_UNSET") is None
    assert fs.environ()["PYRUNC_FS_TEST"] == "v=1"
    assert fs.exec_path() == os.get_exec_path()


def test_unescape_mountinfo():
    assert fs.unescape_mountinfo("/a\\040b\\011c\\012d\\134e") == "/a b\tc\nd\\e"
    assert fs.unescape_mountinfo("/plain/ü") == "/plain/ü"  # UTF-8 names are not escaped: left alone
    assert fs.unescape_mountinfo("/x\\0401") == "/x 1"  # exactly three octal digits


def test_unescape_mountinfo_reads_a_real_mount(tmp_path):
    """A tmpfs mounted on a directory whose name needs escaping, read back from mountinfo."""
    target = tmp_path / "with space\tand tab"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(target)], check=True)
    try:
        with open("/proc/self/mountinfo") as f:
            points = [fs.unescape_mountinfo(line.split()[4]) for line in f]
        assert str(target) in points
    finally:
        subprocess.run(["umount", str(target)], check=True)
