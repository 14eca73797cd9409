"""The process steps of a live container checked against /proc/<pid>: status (ids, capability
sets, NoNewPrivs, Seccomp, Umask), limits, cwd, exe, cmdline, environ, oom_score_adj."""
from __future__ import annotations

from pyrunc.explain import DIFFERS, SAME, UNVERIFIED
from pyrunc.explain.live import link, read, status_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.explain import Entry
    from pyrunc.explain.live import Check

# RLIMIT_* numbers (0..15) -> the row of /proc/<pid>/limits
_LIMIT_ROWS = ("Max cpu time", "Max file size", "Max data size", "Max stack size", "Max core file size",
               "Max resident set", "Max processes", "Max open files", "Max locked memory", "Max address space",
               "Max file locks", "Max pending signals", "Max msgqueue size", "Max nice priority",
               "Max realtime priority", "Max realtime timeout")
_CAP_FIELDS = {"bounding": "CapBnd", "effective": "CapEff", "permitted": "CapPrm", "inheritable": "CapInh",
               "ambient": "CapAmb"}


def _same(want: object, now: object, show: str | None = None) -> tuple[str, str]:
    return (SAME, "") if want == now else (DIFFERS, show if show is not None else str(now))


def check(c: Check, e: Entry, started: bool) -> tuple[str, str]:
    f, p = c.fields, c.r.plan
    op = e.op
    if op == "capabilities":
        return _caps(c, e, started)
    if op == "user":
        return _user(c, e)
    if op == "no_new_privs":
        want = "1" if p.confine.no_new_privs or _self("NoNewPrivs") == "1" else "0"  # ours is inherited
        return _same(want, f.get("NoNewPrivs"), f"NoNewPrivs {f.get('NoNewPrivs')}")
    if op == "seccomp" and e.who == "init":
        filters = int(_self("Seccomp_filters") or 0) + (p.confine.seccomp is not None)
        now = f.get("Seccomp_filters", "0")
        return _same(str(filters), now, f"Seccomp {f.get('Seccomp')}, {now} filter(s); {filters} expected")
    if op == "umask":
        want = f"{(p.process.get('user') or {}).get('umask', 0o022):04o}"
        return _same(want, f.get("Umask"), f"umask {f.get('Umask')}")
    if op == "setrlimit":
        return _rlimit(c, e)
    if op == "oom_score_adj":
        want = str(p.attrs.oom_score_adj) if p.attrs.oom_score_adj is not None else read("/proc/self/oom_score_adj")
        return _same((want or "").strip(), (read(f"{c.proc}/oom_score_adj") or "").strip())
    if op == "chdir":
        return _same(c.r.tree.resolve(p.process.get("cwd", "/")), _inside(c, link(f"{c.proc}/cwd")))
    if op == "execve":
        exe = _inside(c, link(f"{c.proc}/exe"))
        args = [a for a in (read(f"{c.proc}/cmdline") or "").split("\0")][:-1]
        want = c.r.tree.resolve(e.detail["executable"])
        if exe != want:
            return DIFFERS, f"runs {exe}, not {want}"
        return _same(e.detail["args"], args, f"args {args}")
    if op == "env":
        from pyrunc.linux.execute import env_dict
        now = env_dict((read(f"{c.proc}/environ") or "").split("\0"))
        want = env_dict(e.detail["env"])
        return _same(want, now, " ".join(f"{k}={v}" for k, v in now.items()))
    if op == "lsm":
        asked = p.process.get(e.path.split(".")[1])
        if not asked:
            return SAME, ""
        now = (read(f"{c.proc}/attr/current") or "").strip("\0\n ")
        return _same(True, asked in now, now or "no label")
    if op in ("ready", "start"):
        return SAME, ""
    return UNVERIFIED, ""


def _self(field: str) -> str | None:
    """A field of this process's status: what the container inherits from the runtime."""
    return status_fields("self").get(field)


def _inside(c: Check, host: str | None) -> str | None:
    """A host path under the container's root, as the container names it."""
    if host is None:
        return None
    root = c.root.rstrip("/")
    if root and (host == root or host.startswith(root + "/")):
        return host[len(root):] or "/"
    return host


def _caps(c: Check, e: Entry, started: bool) -> tuple[str, str]:
    from pyrunc.explain.process import caps_list

    if e.path == "process.capabilities":  # the sets after execve
        wants = {name: e.detail[name] for name in _CAP_FIELDS}
    else:
        name = e.path.rsplit(".", 1)[1]
        if started or c.status != "created":
            if name in ("effective", "permitted"):
                return UNVERIFIED, "execve changed it: see the sets after execve"
        elif c.r.plan.confine.deferred:
            return UNVERIFIED, "held whole until the seccomp filter is installed, at start"
        wants = {name: e.detail["caps"]}
    wrong = []
    for name, want in wants.items():
        now = caps_list(int(c.fields.get(_CAP_FIELDS[name], "0"), 16))
        if now != want:
            wrong.append(f"{name}: {', '.join(now) or 'none'}")
    return (SAME, "") if not wrong else (DIFFERS, "; ".join(wrong))


def _user(c: Check, e: Entry) -> tuple[str, str]:
    from pyrunc.cgroups.delegate import to_host

    linux = c.r.plan.config.get("linux", {})
    userns = c.r.plan.has_ns("user")
    uids = linux.get("uidMappings") if userns else None
    gids = linux.get("gidMappings") if userns else None
    uid, gid = to_host(e.detail["uid"], uids), to_host(e.detail["gid"], gids)
    groups = sorted(to_host(g, gids) for g in e.detail["groups"])
    now_uid = [int(x) for x in c.fields.get("Uid", "").split()]
    now_gid = [int(x) for x in c.fields.get("Gid", "").split()]
    now_groups = sorted(int(x) for x in c.fields.get("Groups", "").split())
    ok = now_uid == [uid] * 4 and now_gid == [gid] * 4 and now_groups == groups
    return (SAME, "") if ok else (DIFFERS, f"Uid {now_uid} Gid {now_gid} Groups {now_groups} (host ids)")


def _rlimit(c: Check, e: Entry) -> tuple[str, str]:
    from pyrunc.linux.rlimits import show

    _label, res, soft, hard = c.r.plan.attrs.rlimits[int(e.path.rsplit("[", 1)[1].rstrip("]"))]
    row = _LIMIT_ROWS[res]
    for line in (read(f"{c.proc}/limits") or "").splitlines():
        if line.startswith(row):
            now = line[len(row):].split()[:2]
            return _same([show(soft), show(hard)], now, f"soft {now[0]} hard {now[1]}")
    return UNVERIFIED, f"no {row!r} in {c.proc}/limits"
