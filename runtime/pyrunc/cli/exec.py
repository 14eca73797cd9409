"""exec [flags] ID CMD [ARGS...] | exec --process FILE ID: run a process in an existing container.

As runc: any failure after the arguments are parsed exits 255, so callers can tell
it from the exit status of the process itself.
"""
from __future__ import annotations

import posix

from pyrunc import crash, fs
from pyrunc import state as st
from pyrunc.cli.args import INT, LIST, STR, Flag, parse
from pyrunc.errors import InvalidStatus, PyruncError, UsageError, context

FLAGS = [
    Flag("--process,-p", STR), Flag("--tty,-t"), Flag("--console-socket", STR), Flag("--detach,-d"),
    Flag("--pid-file", STR), Flag("--env,-e", LIST), Flag("--cwd", STR), Flag("--user,-u", STR),
    Flag("--additional-gids,-g", LIST), Flag("--cap,-c", LIST), Flag("--no-new-privs"),
    Flag("--apparmor", STR), Flag("--process-label", STR), Flag("--preserve-fds", INT, 0),
    Flag("--cgroup", LIST), Flag("--ignore-paused"),
]
# Fields a --process file may leave out that then come from the container's own process
# (runc does this for rlimits, labels and no_new_privs; we also keep the container's
# capabilities rather than running the process with the runtime's full set).
INHERITED = ("capabilities", "rlimits", "noNewPrivileges", "apparmorProfile", "selinuxLabel",
             "oomScoreAdj", "scheduler", "ioPriority", "execCPUAffinity")


def main(cmd: str, g, argv: list[str]) -> int:
    opts, pos = parse(FLAGS, argv, stop_at_positional=True)
    if not pos:
        raise UsageError('"exec" requires the container id')
    cid, args = pos[0], pos[1:]
    if not opts["process"] and not args:
        raise UsageError('"exec" requires a command after the container id (or --process FILE)')
    try:
        with context(f"{cmd} {cid}"):
            status = _exec(g, cid, args, opts)
    except PyruncError as exc:
        exc.exit_code = 255
        raise
    return status


def _exec(g, cid: str, args: list[str], opts: dict) -> int:
    from pyrunc.process.children import block_signals, wait
    from pyrunc.process.exec import Job, spawn
    from pyrunc.syscalls import calls as sc

    c = st.load(g.root, cid, shared=True)
    try:
        status = c.status()
        if status == "paused" and not opts["ignore_paused"]:
            raise PyruncError(f"cannot exec in a paused container ({cid!r}): use --ignore-paused to override")
        if status not in ("created", "running", "paused"):
            raise InvalidStatus(cid, "exec", status)
        config = _saved_config(c)
        process = _process(config.get("process") or {}, args, opts)
        job = Job(process, config, opts["preserve_fds"])
        job.open_init(c)
        cgroup = _cgroup(c.cgroup(), opts["cgroup"])
        state = {"ociVersion": st.OCI_VERSION, "id": cid, "status": status, "pid": c.pid,
                 "bundle": c.data["bundle"], "annotations": c.data.get("annotations") or {}}
    finally:
        c.close()  # the child must not hold the lock, and nobody should wait for our process
    crash.point("exec", "loaded")
    console = None
    try:
        if process.get("terminal") or opts["console_socket"]:
            from pyrunc.linux.terminal import HostConsole
            console = HostConsole(bool(process.get("terminal")), opts["console_socket"], opts["detach"])
            job.console_fd = console.child_fd()
        if not opts["detach"]:
            # after a pid-namespace fork the process is our grandchild: adopt it to wait for it
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
            # from before the fork: a signal sent as soon as the process runs is relayed, not lost
            block_signals()
        pid = spawn(job, cgroup, state)
    finally:
        job.close()
    crash.point("exec", "exec-done")
    master = console.created() if console is not None else None
    if opts["pid_file"]:
        from pyrunc.lifecycle import write_pid_file
        write_pid_file(opts["pid_file"], pid)
        crash.point("exec", "pid-file")
    if opts["detach"]:
        return 0
    if master is None:
        return wait(pid)
    from pyrunc.linux.terminal import relay
    block_signals()  # before relay starts its threads
    return relay(master, lambda on_winch: wait(pid, on_winch))


def _saved_config(c: st.Container) -> dict:
    from pyrunc import jsonio

    with open(posix.open("config.json", posix.O_RDONLY | posix.O_CLOEXEC, dir_fd=c.dir_fd), "rb") as f:
        return jsonio.loads(f.read())  # type: ignore[return-value]


def _process(base: dict, args: list[str], opts: dict) -> dict:
    """The process to run: a --process file, or the container's process with flags applied."""
    if opts["process"]:
        return _process_file(opts["process"], base, opts["tty"])
    proc = {**base, "args": args, "terminal": opts["tty"], "env": list(base.get("env") or []) + opts["env"]}
    user = dict(base.get("user") or {})
    if opts["user"]:
        uid, sep, gid = opts["user"].partition(":")
        if not uid.isdigit() or (sep and not gid.isdigit()):
            raise UsageError(f"--user {opts['user']!r}: expected UID[:GID] (numbers)")
        user["uid"] = int(uid)
        if sep:
            user["gid"] = int(gid)
    for g in opts["additional_gids"]:
        if not g.isdigit():
            raise UsageError(f"--additional-gids {g!r}: expected a number")
        user.setdefault("additionalGids", []).append(int(g))
    proc["user"] = user
    if opts["cwd"]:
        proc["cwd"] = opts["cwd"]
    if opts["apparmor"]:
        proc["apparmorProfile"] = opts["apparmor"]
    if opts["process_label"]:
        proc["selinuxLabel"] = opts["process_label"]
    if opts["no_new_privs"]:
        proc["noNewPrivileges"] = True
    if opts["cap"]:
        caps = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        # as runc: added to bounding, effective and permitted; ambient only if inheritable exists
        for kind in ("bounding", "effective", "permitted") + (("ambient",) if "inheritable" in caps else ()):
            caps.setdefault(kind, []).extend(cap for cap in opts["cap"] if cap not in caps.get(kind, []))
        proc["capabilities"] = caps
    return proc


def _process_file(path: str, base: dict, tty: bool) -> dict:
    from pyrunc.spec import procattrs
    from pyrunc.spec.load import check_schema, read_json

    label = f"--process {path}"
    doc = read_json(path, "--process")
    check_schema("process", doc, label)
    proc = dict(doc)  # type: ignore[arg-type]
    for key in INHERITED:
        if key not in proc and key in base:
            proc[key] = base[key]
    if tty:
        proc["terminal"] = True
    found = [f"{p}: {m}" for check in procattrs.CHECKS for p, m in check({"process": proc})]
    if found:
        raise PyruncError(f"{label}: {'; '.join(found)}")
    return proc


def _cgroup(cg, specs: list[str]):
    """--cgroup in runc's forms: SUB (every hierarchy), CTRL:SUB or CTRL1,CTRL2:SUB; SUB is
    taken below the container's cgroup ("/" is that cgroup itself) and must stay there."""
    if not specs:
        return cg
    from pyrunc.cgroups import load_manager

    dirs = dict(cg.dirs)
    seen: set[str] = set()
    for spec in specs:
        parts = spec.split(":")
        if len(parts) > 2 or not parts[-1] or (len(parts) == 1 and len(specs) > 1):
            raise UsageError(f"--cgroup {spec!r}: expected SUB, CTRL:SUB or CTRL1,CTRL2:SUB "
                             "(SUB alone only as the one --cgroup)")
        sub = parts[-1]
        ctrls = parts[0].split(",") if len(parts) == 2 else []
        for ctrl in ctrls:
            if not ctrl or ctrl in seen:
                raise UsageError(f"--cgroup {spec!r}: controller {ctrl!r} is empty or given twice")
            seen.add(ctrl)
        for key in _hierarchies(cg, spec, ctrls):
            base = cg.dirs[key]
            d = fs.normpath(f"{base}/{sub}")
            if d != base and not d.startswith(base + "/"):
                raise UsageError(f"--cgroup {spec!r}: {sub} is not a sub cgroup path of the container's "
                                 f"{key or 'cgroup2'} cgroup {base}")
            if not fs.isdir(d):
                raise PyruncError(f"--cgroup {spec!r}: {key or 'cgroup2'}: {d} does not exist")
            dirs[key] = d
    return load_manager({**cg.to_state(), "dirs": dirs})


def _hierarchies(cg, spec: str, ctrls: list[str]) -> list[str]:
    """The keys of cg.dirs that --cgroup SPEC moves: all for a bare SUB; on cgroup v2 the one
    directory, if it has the controllers; else each v1 hierarchy holding one of them."""
    if not ctrls:
        return list(cg.dirs)
    keys = []
    for ctrl in ctrls:
        found = [k for k in cg.dirs if k and ctrl in k.split(",")]
        if not found and cg.mode == "v2" and ctrl in _v2_controllers(cg.dirs[""]):
            found = [""]
        if not found:
            raise UsageError(f"--cgroup {spec!r}: controller {ctrl}: not in the container's cgroups "
                             f"({', '.join(k or 'cgroup2' for k in cg.dirs)})")
        keys += [k for k in found if k not in keys]
    return keys


def _v2_controllers(d: str) -> list[str]:
    try:
        with open(fs.join(d, "cgroup.controllers")) as f:
            return f.read().split()
    except OSError:
        return []
