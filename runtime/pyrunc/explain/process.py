"""What the init does once its mounts are made, and the hooks around it, in create's order
(process/init.py, process/become.py): names, hooks, sysctl, keyring, then the process it
becomes: user, capabilities, rlimits, no_new_privs, seccomp, LSM labels, cwd, program, env.
The values are the Plan's (the capability masks and the compiled seccomp program included)."""
from __future__ import annotations

from pyrunc import hooks
from pyrunc.syscalls import consts as k

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.explain import Report
    from pyrunc.explain.tree import Tree


def names(r: Report) -> None:
    p = r.plan
    for field, what in (("hostname", "sethostname"), ("domainname", "setdomainname")):
        value = getattr(p, field)
        if value is None:
            continue
        if p.has_ns("uts"):
            r.add("init", "system", what, field, f"{what}({value!r}) in its uts namespace")
        else:
            r.add("init", "system", "skip", field, f"{field} {value!r} is not set: no uts namespace of its own")
    if p.new_ns & k.CLONE_NEWNET:
        r.add("init", "system", "loopback", "linux.namespaces", "brings lo up in its new network namespace")


def _hooks(r: Report, kind: str) -> None:
    who, when = hooks.WHEN[kind]
    for i, hook in enumerate(hooks.of(r.plan.config, kind)):
        args = " ".join(hook.get("args") or [hook["path"]])
        timeout = f", timeout {hook['timeout']}s" if hook.get("timeout") else ""
        r.add(who, "hooks", kind, f"hooks.{kind}[{i}]", f"runs {hook['path']} ({args}){timeout}: {when}",
              executable=hook["path"], args=hook.get("args") or [hook["path"]])


def runtime_hooks(r: Report) -> None:
    _hooks(r, "prestart")
    _hooks(r, "createRuntime")


def container_hooks(r: Report) -> None:
    _hooks(r, "createContainer")


def net_devices(r: Report) -> None:
    for name, dev in (r.plan.config.get("linux", {}).get("netDevices") or {}).items():
        new = (dev or {}).get("name") or name
        r.add("parent", "system", "netdev", f"linux.netDevices[{name!r}]",
              f"moves the host's {name} into the container's network namespace as {new}, with its addresses")


def sysctl(r: Report) -> None:
    from pyrunc.spec.sysctl import proc_path

    for key, value in (r.plan.config.get("linux", {}).get("sysctl") or {}).items():
        r.add("init", "system", "write", f"linux.sysctl[{key!r}]", f"{proc_path(key)} <- {value}",
              file=proc_path(key), value=value)


def keyring(r: Report) -> None:
    if r.plan.no_new_keyring:
        r.add("init", "system", "skip", "process", "keeps the runtime's session keyring (--no-new-keyring)")
    else:
        r.add("init", "system", "keyctl", "process", f"joins a new session keyring _ses.{r.plan.id}")


def become(r: Report, tree: Tree) -> tuple[str, list[str]]:
    """process/become.py's steps; returns (program, env) for the execve at start."""
    from pyrunc.linux import execute
    from pyrunc.linux.rlimits import show

    p = r.plan
    proc, a, c = p.process, p.attrs, p.confine
    user = proc.get("user") or {}
    env = execute.final_env(proc, tree.host("/etc/passwd") or "/nonexistent")
    exe = execute.find_executable(proc["args"][0], env, tree.stat)  # raises what the init would
    r.add("init", "process", "umask", "process.user.umask", f"umask {user.get('umask', 0o022):04o}")
    for field, value, what in (("linux.memoryPolicy", a.mempolicy, "set_mempolicy"),
                               ("linux.personality", a.personality, "personality"),
                               ("process.scheduler", a.sched_attr, "sched_setattr"),
                               ("process.ioPriority", a.ioprio, "ioprio_set")):
        if value is not None:
            r.add("init", "process", what, field, f"{what}: {_get(p.config, field)}")
    for i, (_label, _res, soft, hard) in enumerate(a.rlimits):
        rl = proc["rlimits"][i]
        r.add("init", "process", "setrlimit", f"process.rlimits[{i}]",
              f"setrlimit {rl['type']} soft {show(soft)} hard {show(hard)}", type=rl["type"], soft=rl["soft"],
              hard=rl["hard"])
    for field, name in (("process.apparmorProfile", "AppArmor profile"), ("process.selinuxLabel", "SELinux label")):
        value = proc.get(field.split(".")[1])
        r.add("init", "process", "lsm", field,
              f"{name} {value!r} for the program (written to the exec attribute)" if value else f"{name}: none")
    sets = c.caps
    r.add("init", "process", "capabilities", "process.capabilities.bounding",
          f"bounding set: {_caps(sets.bounding)} (the rest dropped, keeping capabilities across the user switch)",
          caps=caps_list(sets.bounding))
    tty = "; the pty (owner uid only, group devpts' gid) its controlling terminal" if proc.get("terminal") else ""
    r.add("init", "process", "setsid", "process.terminal",
          f"setsid: the process leads a new session and process group{tty}")
    groups = user.get("additionalGids") or []
    r.add("init", "process", "user", "process.user",
          f"uid {user.get('uid', 0)}, gid {user.get('gid', 0)}, additional groups {groups or 'none'}",
          uid=user.get("uid", 0), gid=user.get("gid", 0), groups=groups)
    r.add("init", "process", "no_new_privs", "process.noNewPrivileges",
          "no_new_privs: set" if c.no_new_privs else "no_new_privs: not set")
    later = " (right after the seccomp filter: without no_new_privs installing it needs CAP_SYS_ADMIN)" \
        if c.deferred else ""
    for name in ("effective", "permitted", "inheritable", "ambient"):
        mask = getattr(sets, name)
        r.add("init", "process", "capabilities", f"process.capabilities.{name}", f"{name}: {_caps(mask)}{later}",
              caps=caps_list(mask))
    r.add("init", "process", "chdir", "process.cwd",
          f"chdir {proc.get('cwd', '/')} (resolved inside the rootfs, no magic links; made 0755 before "
          "pivot_root if missing): as root before the user switch, again as the user only if root was refused")
    prog = c.seccomp
    if prog is not None and prog.notify:
        r.add("init", "process", "seccomp", "linux.seccomp", _seccomp_text(p) + "; installed now: SCMP_ACT_NOTIFY",
              **_seccomp_detail(p))
        r.add("parent", "process", "seccomp", "linux.seccomp.listenerPath",
              f"sends the listener fd with the container's state to {prog.listener}")
    r.add("init", "process", "ready", "process",
          "reports ready to create, then becomes the sealed launcher (a static program in a write-sealed "
          "memfd: the program's execve is never the host Python's) and waits on exec.fifo; create records "
          "its pid in state.json and exits")
    return exe, env


def start_and_delete(r: Report, exe: str, env: list[str]) -> None:
    p = r.plan
    proc = p.process
    r.add("start", "process", "start", "process", "writes a byte into exec.fifo: the init goes on")
    _hooks(r, "startContainer")
    prog = p.confine.seccomp
    if prog is not None and not prog.notify:
        when = ("installed before the launcher, which then sets the capabilities (it needs CAP_SYS_ADMIN: "
                "no no_new_privs)" if p.confine.deferred else "installed by the launcher just before execve")
        r.add("init", "process", "seccomp", "linux.seccomp", f"{_seccomp_text(p)}; {when}", **_seccomp_detail(p))
    elif prog is None:
        r.add("init", "process", "seccomp", "linux.seccomp", "seccomp: no filter")
    r.add("init", "process", "execve", "process.args",
          f"execve {exe} {proc['args']!r}" + (f" (found on PATH for {proc['args'][0]!r})" if exe != proc["args"][0]
                                              else ""), executable=exe, args=list(proc["args"]))
    r.add("init", "process", "env", "process.env", "env: " + " ".join(env), env=env)
    sets = exec_caps(p)
    rule = "uid 0: bounding | inheritable" if _uid(p) == 0 else "not uid 0: ambient only"
    rule += ", cut to permitted by no_new_privs" if _uid(p) == 0 and p.confine.no_new_privs else ""
    r.add("init", "process", "capabilities", "process.capabilities",
          f"after execve of a file without file capabilities or set-id bits: permitted = effective = "
          f"{_caps(sets['permitted'])} ({rule})", **{k: caps_list(v) for k, v in sets.items()})
    _hooks(r, "poststart")
    r.add("delete", "cgroup", "destroy", "linux.cgroupsPath",
          "kills what is left in the cgroup and removes its directories (and the parents create made)")
    _hooks(r, "poststop")


def _uid(p) -> int:
    return (p.process.get("user") or {}).get("uid", 0)


def exec_caps(p) -> dict[str, int]:
    """The five sets of the program once execve ran (capabilities(7), "Transformation of
    capabilities during execve()"): uid 0 of its user namespace gets bounding | inheritable,
    cut to the old permitted set under no_new_privs; any other uid keeps only ambient."""
    s = p.confine.caps
    ambient = s.ambient & s.permitted & s.inheritable  # the kernel keeps ambient within both
    if _uid(p) == 0:
        permitted = s.bounding | s.inheritable | ambient
        if p.confine.no_new_privs:
            permitted &= s.permitted
    else:
        permitted = ambient
    return {"bounding": s.bounding, "effective": permitted, "permitted": permitted, "inheritable": s.inheritable,
            "ambient": ambient}


def _get(config: dict, dotted: str) -> object:
    for part in dotted.split("."):
        config = config[part]
    return config


def caps_list(mask: int) -> list[str]:
    from pyrunc.linux.caps import NAMES
    return [n for i, n in enumerate(NAMES) if mask >> i & 1]


def _caps(mask: int) -> str:
    return ", ".join(caps_list(mask)) or "none"


def _seccomp_detail(p) -> dict:
    prof = p.config["linux"]["seccomp"]
    return {"defaultAction": prof["defaultAction"], "rules": len(prof.get("syscalls") or []),
            "architectures": list(prof.get("architectures") or []), "notify": p.confine.seccomp.notify,
            "instructions": len(p.confine.seccomp.bpf) // 8}


def _seccomp_text(p) -> str:
    d = _seccomp_detail(p)
    archs = ", ".join(a.removeprefix("SCMP_ARCH_").lower() for a in d["architectures"]) or "the native one"
    return (f"seccomp: default {d['defaultAction']}, {d['rules']} rules, architectures {archs}, "
            f"{d['instructions']} BPF instructions{', notify' if d['notify'] else ''}")
