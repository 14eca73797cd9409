"""checkpoint: criu dumps the container's process tree into an image directory. Without
--leave-running (or --pre-dump) the container is then gone, as with runc: its processes
were killed by criu, and `delete` removes its cgroup and state."""
from __future__ import annotations

import posix

from pyrunc import crash, fs, lifecycle
from pyrunc import state as st
from pyrunc.criu import options, stdio
from pyrunc.criu.binary import CriuError, tracks_memory
from pyrunc.criu.run import DUMP_TIMEOUT, criu, image_dir, work_dir
from pyrunc.errors import PyruncError, UsageError

# A lazy dump serves pages through a pipe criu grows to PIPE_MAX_SIZE pages (F_SETPIPE_SZ,
# rounded up by the kernel to 4 MiB); past fs.pipe-max-size that needs CAP_SYS_RESOURCE, and
# criu 4.1 ignores the EPERM, to fail mid-transfer: "page-pipe: splice: -1: Bad file descriptor".
LAZY_PIPE_SIZE = 4 << 20
PIPE_MAX_SIZE = "/proc/sys/fs/pipe-max-size"


def plan_of(c: st.Container):
    """The Plan of the config the container was created from (its bind mounts, namespaces)."""
    from pyrunc import jsonio
    from pyrunc.spec.plan import build

    with open(fs.join(c.dir, "config.json"), "rb") as f:
        config = jsonio.loads(f.read())
    return build(config, c.data["bundle"], c.id)


def dump_argv(c: st.Container, plan, opts: dict, images: str, criu_path: str) -> tuple[list[str], tuple[int, ...]]:
    """criu's arguments for this container (but the action and logging), and the fds it needs."""
    argv = ["--tree", str(c.pid), "--images-dir", images, "--root", plan.rootfs, *options.common(plan, opts)]
    cg = c.cgroup() if c.data.get("cgroup") else None
    cgroup_binds = options.cgroup_binds(plan, cg) if cg is not None else []
    freezer = cg.dir_of("freezer") or cg.unified if cg is not None else None
    if freezer:  # criu freezes the tree through it (one already frozen, paused, included)
        argv += ["--freeze-cgroup", freezer]
    for point, _src in options.bind_mounts(plan) + cgroup_binds:
        argv += ["--external", f"mnt[{point}]:{point}"]
    if options.has_terminal(plan):
        argv += ["--external", f"mnt[{options.CONSOLE}]:{options.CONSOLE}"]
    if (netns := options.external_netns(plan)) is not None:
        argv += ["--external", f"net[{_inode(netns)}]:{options.EXT_NETNS}"]
    if opts["parent_path"]:
        parent = opts["parent_path"]
        absolute = fs.normpath(parent if parent.startswith("/") else fs.join(images, parent))
        if not _has_pages(absolute):
            raise PyruncError(f"--parent-path {absolute}: not a (pre-)dump image (no pagemap-*.img)")
        argv += ["--prev-images-dir", fs.relpath(absolute, images)]
    if opts["pre_dump"] or opts["parent_path"]:
        if tracks_memory(criu_path):
            argv.append("--track-mem")
        elif opts["pre_dump"]:
            raise CriuError(f"--pre-dump: criu {criu_path}: this kernel does not track dirty memory "
                            "(criu check --feature mem_dirty_track fails)")
    if opts["leave_running"] and not opts["pre_dump"]:  # a pre-dump leaves it running anyway
        argv.append("--leave-running")
    if opts["lazy_pages"]:
        _check_lazy_pipes()
    if opts["page_server"]:
        addr, _, port = opts["page_server"].rpartition(":")
        if not addr or not port.isdigit():
            raise UsageError(f"--page-server {opts['page_server']!r}: use ADDRESS:PORT")
        # lazy: the dump itself serves the pages there; else it sends them to a page server
        argv += ([] if opts["lazy_pages"] else ["--page-server"]) + ["--address", addr, "--port", port]
    fds: tuple[int, ...] = ()
    if opts["status_fd"] is not None and opts["status_fd"] >= 0:
        argv += ["--status-fd", str(opts["status_fd"])]
        fds = (opts["status_fd"],)
    return argv, fds


def _check_lazy_pipes() -> None:
    from pyrunc.linux.caps import NAMES
    from pyrunc.syscalls import calls as sc

    if sc.capget()[0] >> NAMES.index("CAP_SYS_RESOURCE") & 1:
        return
    with open(PIPE_MAX_SIZE) as f:
        limit = int(f.read())
    if limit < LAZY_PIPE_SIZE:
        raise CriuError(f"--lazy-pages: criu's page server needs 4 MiB pipes: fs.pipe-max-size is {limit} and "
                        f"CAP_SYS_RESOURCE is missing (sysctl -w fs.pipe-max-size={LAZY_PIPE_SIZE})")


def _has_pages(path: str) -> bool:
    try:
        return any(n.startswith("pagemap-") for n in posix.listdir(path))
    except OSError:
        return False


def _inode(path: str) -> int:
    try:
        return posix.stat(path).st_ino
    except OSError as exc:
        raise PyruncError(f"linux.namespaces network path {path}: {exc.strerror}") from None


def checkpoint(c: st.Container, opts: dict, criu_path: str) -> None:
    lifecycle.require(c, "checkpoint")
    crash.point("checkpoint", "loaded")
    plan = plan_of(c)
    images = fs.abspath(opts["image_path"] or "checkpoint")
    argv, fds = dump_argv(c, plan, opts, images, criu_path)  # every check before a directory is made
    image_dir(images, create=True)
    work = work_dir(opts["work_path"], images)
    if not opts["pre_dump"]:
        argv += stdio.record(c.pid, images)
    crash.point("checkpoint", "dumping")
    criu(criu_path, "pre-dump" if opts["pre_dump"] else "dump", argv, work, timeout=DUMP_TIMEOUT, pass_fds=fds)
    crash.point("checkpoint", "dumped")
    if not (opts["pre_dump"] or opts["leave_running"]):
        lifecycle.delete(c, force=True)
