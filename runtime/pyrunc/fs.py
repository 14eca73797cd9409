"""The few path helpers pyrunc needs, on the builtin ``posix`` module alone.

pyrunc never imports ``os``: importing it costs ~1.1 ms (it builds the
collections.abc classes for os.environ), on a budget where runc's whole
`state` takes ~4 ms. ``posix`` is what ``os`` re-exports on Linux; these
replace os.path (whose module imports os) and the rest of os that pyrunc uses.
"""
import posix

_S_IFMT, _S_IFDIR = 0o170000, 0o040000


def join(a: str, *parts: str) -> str:
    for p in parts:
        if p.startswith("/"):
            a = p
        elif not a or a.endswith("/"):
            a += p
        else:
            a += "/" + p
    return a


def normpath(path: str) -> str:
    """Collapse '//', '.' and '..' lexically (os.path.normpath for POSIX paths)."""
    absolute = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
                continue
            if absolute:
                continue
        out.append(part)
    joined = "/".join(out)
    return ("/" + joined) if absolute else (joined or ".")


def abspath(path: str) -> str:
    return normpath(path if path.startswith("/") else join(posix.getcwd(), path))


def dirname(path: str) -> str:
    head = path[:path.rfind("/") + 1]
    return head.rstrip("/") or head


def basename(path: str) -> str:
    return path[path.rfind("/") + 1:]


def relpath(path: str, start: str) -> str:
    """``path`` relative to ``start`` (both made absolute first)."""
    p, s = abspath(path).split("/")[1:], abspath(start).split("/")[1:]
    p, s = [x for x in p if x], [x for x in s if x]
    n = 0
    while n < min(len(p), len(s)) and p[n] == s[n]:
        n += 1
    return "/".join([".."] * (len(s) - n) + p[n:]) or "."


def realpath(path: str) -> str:
    """Every symlink resolved, by the kernel: the path of an O_PATH fd."""
    fd = posix.open(path, posix.O_PATH | posix.O_CLOEXEC)
    try:
        return posix.readlink(f"/proc/self/fd/{fd}")
    finally:
        posix.close(fd)


def unescape_mountinfo(field: str) -> str:
    """A path field of /proc/<pid>/mountinfo: the kernel writes space, tab, newline and
    backslash as a backslash and three octal digits."""
    head, *rest = field.split("\\")
    return head + "".join(chr(int(p[:3], 8)) + p[3:] for p in rest)


def exists(path: str) -> bool:
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


def isdir(path: str) -> bool:
    try:
        return posix.stat(path).st_mode & _S_IFMT == _S_IFDIR
    except (OSError, ValueError):
        return False


def makedirs(path: str, mode: int = 0o777) -> None:
    """mkdir -p."""
    if isdir(path):
        return
    parent = dirname(path.rstrip("/"))
    if parent and parent != path:
        makedirs(parent, mode)
    try:
        posix.mkdir(path, mode)
    except FileExistsError:
        if not isdir(path):
            raise


def walk_dirs_bottom_up(top: str) -> list[str]:
    """Every directory below ``top``, children before parents (not ``top`` itself)."""
    found: list[str] = []
    try:
        entries = list(posix.scandir(top))
    except OSError:
        return found
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            found += walk_dirs_bottom_up(e.path)
            found.append(e.path)
    return found


def getenv(name: str) -> str | None:
    value = posix.environ.get(name.encode())
    return None if value is None else value.decode(errors="surrogateescape")


def environ() -> dict[str, str]:
    return {k.decode(errors="surrogateescape"): v.decode(errors="surrogateescape")
            for k, v in posix.environ.items()}


def exec_path() -> list[str]:
    return (getenv("PATH") or "/bin:/usr/bin").split(":")


def fsencode(s: str) -> bytes:
    return s.encode(errors="surrogateescape")
