"""What criu is told about a container, the same on dump and on restore so that the two
meet: its bind mounts (external: their sources are the host's), a network namespace it
joined by path, its criu configuration file, and the flags runc passes on.
"""
from __future__ import annotations

import posix
import stat

from pyrunc import fs
from pyrunc.errors import UsageError, context

CONFIG_ANNOTATION = "org.criu.config"   # a criu configuration file for this container
EXT_NETNS = "extRootNetNS"              # criu's key for a network namespace it did not make
# process.terminal: /dev/console is the pty slave bound in, its master outside the container;
# on restore the new terminal's slave is bound there instead
CONSOLE = "/dev/console"
# runc's flag -> criu's, for the plain switches both commands share
SWITCHES = {"tcp_established": "--tcp-established", "ext_unix_sk": "--ext-unix-sk",
            "shell_job": "--shell-job", "file_locks": "--file-locks", "auto_dedup": "--auto-dedup",
            "lazy_pages": "--lazy-pages"}
CGROUP_MODES = ("soft", "full", "strict", "ignore")
EMPTY_NS = {"network": "net"}


def bind_mounts(plan, make: bool = False) -> list[tuple[str, str]]:
    """(mount point inside the container, host source) of each bind mount: where the
    destination leads inside the rootfs (a symlink is followed, as create does). ``make``:
    restore makes missing mount points first, as create does (criu only mounts on them)."""
    from pyrunc.linux import paths

    out = []
    rootfd = posix.open(plan.rootfs, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        for op in plan.mounts:
            if not op.is_bind:
                continue
            if make:
                with context(op.label()):
                    is_dir = stat.S_ISDIR(posix.stat(op.source).st_mode)
                    posix.close(paths.make_path(rootfd, op.destination, is_dir)[0])
            out.append((paths.resolve_in_root(rootfd, op.destination), op.source))
    finally:
        posix.close(rootfd)
    return out


def cgroup_binds(plan, cg) -> list[tuple[str, str]]:
    """(mount point inside the container, host directory) of the cgroup directories a
    "cgroup" mount binds in when the container has no cgroup namespace of its own: criu
    cannot restore a bind of part of a cgroup hierarchy, so they are external, and on
    restore the new container's directories (``cg``) are bound there instead."""
    from pyrunc.linux import cgroupfs

    if plan.has_ns("cgroup"):
        return []
    out = []
    for op in plan.mounts:
        if op.fstype == "cgroup":
            for step in cgroupfs.steps(op, cg.dirs, cg.mounts, False):
                if step.kind == "bind":
                    out.append((step.target or op.destination, step.source))
    return out


def has_terminal(plan) -> bool:
    return bool(plan.config.get("process", {}).get("terminal"))


def external_netns(plan) -> str | None:
    """The path of a network namespace the container joined, not one it made."""
    for ns in plan.config.get("linux", {}).get("namespaces") or []:
        if ns["type"] == "network" and ns.get("path"):
            return ns["path"]
    return None


def common(plan, opts: dict) -> list[str]:
    """Flags for dump and restore alike: the passed-through switches, the cgroup mode,
    empty namespaces, and the container's criu configuration file."""
    argv = [flag for name, flag in SWITCHES.items() if opts.get(name)]
    mode = opts.get("manage_cgroups_mode") or "soft"
    if mode not in CGROUP_MODES:
        raise UsageError(f"--manage-cgroups-mode {mode!r}: use one of {', '.join(CGROUP_MODES)}")
    argv.append(f"--manage-cgroups={mode}")
    for ns in opts.get("empty_ns") or []:
        if ns not in EMPTY_NS:
            raise UsageError(f"--empty-ns {ns!r}: only network is supported")
        argv += ["--empty-ns", EMPTY_NS[ns]]
    conf = (plan.config.get("annotations") or {}).get(CONFIG_ANNOTATION)
    if conf:
        if not fs.exists(conf):
            raise UsageError(f"annotations[{CONFIG_ANNOTATION!r}] {conf}: no such file")
        argv += ["--config", conf]
    return argv


def described(plan, cg) -> list[tuple[str, str]]:
    """(config.json field, what criu is told on checkpoint and restore) for `explain`."""
    binds = [op for op in plan.mounts if op.is_bind]
    out = [(f"mounts[{op.index}]", f"bind mount {point} is external: dump --external mnt[{point}]:{point}, "
                                   f"restore --external mnt[{point}]:{src}")
           for op, (point, src) in zip(binds, bind_mounts(plan))]
    out += [("linux.namespaces", f"no cgroup namespace: cgroup bind {point} is external, restored from the new "
                                 f"container's {src}") for point, src in cgroup_binds(plan, cg)]
    if has_terminal(plan):
        out.append(("process.terminal", f"{CONSOLE} and the pty are external (--external tty[rdev:dev]): restore "
                                        "binds a new pty's slave there and sends its master to --console-socket"))
    if (path := external_netns(plan)) is not None:
        out.append(("linux.namespaces", f"network namespace {path} is external: --external net[inode]:{EXT_NETNS}, "
                                        f"restore --inherit-fd of it"))
    conf = (plan.config.get("annotations") or {}).get(CONFIG_ANNOTATION)
    if conf:
        out.append((f"annotations[{CONFIG_ANNOTATION!r}]", f"criu --config {conf}"))
    freezer = cg.dir_of("freezer") or cg.unified
    roots = ", ".join(f"{k or 'cgroup2'}:{d}" for k, d in sorted(cg.dirs.items()))
    out.append(("linux.cgroupsPath", f"dump --manage-cgroups=soft (--manage-cgroups-mode) --freeze-cgroup {freezer}; "
                                     f"restore into {roots} (--cgroup-root), limits written by pyrunc"))
    out.append(("process", "stdio: fds 0-2 recorded in descriptors.json; restore --inherit-fd from its own fds 0-2"))
    return out
