"""`pyrunc --help`, `pyrunc help [COMMAND]` and `pyrunc COMMAND -h`, laid out as runc's
(NAME, USAGE, DESCRIPTION, OPTIONS): scripts and people read it the same way.

Imported only when help is asked for. A command's options are the flags its parser
was given (args.HelpRequested carries them), so the help cannot list a flag the
command lacks; FLAG_HELP describes each.
"""
from __future__ import annotations

from pyrunc.cli.args import BOOL, Flag

ID = "<container-id>"
# command -> (arguments after the options, description)
USAGE: dict[str, tuple[str, str]] = {
    "create": (ID, "Sets the container up from the bundle's config.json (default: the current directory):\n"
                   "namespaces, cgroups, mounts and the init, which waits until `start`."),
    "start": (ID, "Lets the init of a created container execve the program of config.json's process."),
    "run": (ID, "create then start. In the foreground it forwards signals to the container and exits\n"
                "with its status (128+N when killed by signal N); the container is deleted after, unless --keep."),
    "state": (ID, "Prints the OCI state of the container as JSON."),
    "kill": (f"{ID} [signal]", "Sends a signal (a name such as KILL or SIGKILL, or a number from 0 to 64;\n"
                               "default SIGTERM) to the container's init, or with --all to all its processes.\n"
                               "Signal 0 only checks that the init is alive."),
    "delete": (ID, "Removes the container and everything it holds: its cgroups, its state, its processes\n"
                   "(a created container's waiting init is killed; a running one needs --force)."),
    "list": ("", "Lists the containers under --root."),
    "spec": ("", "Writes a default config.json into the bundle directory, for this host."),
    "features": ("", "Prints what this runtime implements, as runtime-spec's features JSON."),
    "check": ("", "Prints what this host offers containers, one fact a line; with --bundle, every request\n"
                  "of the bundle's config.json that this host cannot meet (exit 1)."),
    "explain": ("[container-id]", "Prints every step create takes for a bundle, in order, each with the\n"
                                  "config.json field it comes from; with the id of a container, each\n"
                                  "step checked against the kernel (exit 1 on a difference)."),
    "exec": (f"{ID} <command> [args...]  ||  -p process.json {ID}",
             "Runs one more process in the namespaces and cgroup of a created or running container."),
    "pause": (ID, "Freezes every process of the container."),
    "resume": (ID, "Thaws every process of a paused container."),
    "update": (ID, "Changes the container's resource limits (cgroups). --resources takes a\n"
                   "linux.resources JSON object; the flags change single values."),
    "events": (ID, "Prints the container's resource statistics and OOM events as JSON, every --interval."),
    "ps": (f"{ID} [ps options]", "Lists the processes of the container: a table from ps(1), or with\n"
                                 "--format json the array of their host pids."),
    "checkpoint": (ID, "criu dumps the running (or paused) container into --image-path; without\n"
                       "--leave-running or --pre-dump the container is gone after."),
    "restore": (ID, "Makes a container from the bundle and a checkpoint image (--image-path). In the\n"
                    "foreground it waits for the restored init, as run does; with --detach it returns."),
    "help": ("[command]", "Shows the commands, or the help of one command."),
}

FLAG_HELP = {
    "bundle": "the bundle directory (holding config.json)",
    "pid_file": "write the pid of the process to this file",
    "console_socket": "a unix socket to send the pseudo-terminal's master fd to",
    "pidfd_socket": "a unix socket to send a pidfd of the init to (not supported yet)",
    "no_pivot": "enter the rootfs with MS_MOVE and chroot instead of pivot_root",
    "no_new_keyring": "keep the caller's session keyring instead of a new one",
    "preserve_fds": "pass N more file descriptors after stdio (and $LISTEN_FDS)",
    "detach": "return once the process runs, without waiting for it",
    "keep": "do not delete the container when it exits",
    "no_subreaper": "do not become the subreaper of the container's processes",
    "all": "send the signal to every process of the container's cgroup",
    "force": "kill the container first when it is running or paused",
    "format": "the output format",
    "quiet": "print only the container ids",
    "rootless": "a config for a user without privileges (user namespace, no network namespace)",
    "stats": "print the statistics once and exit",
    "interval": "how often to print the statistics",
    "process": "a JSON file holding the process (runtime-spec's process object)",
    "tty": "give the process a pseudo-terminal",
    "env": "add an environment variable KEY=VALUE",
    "cwd": "the working directory in the container",
    "user": "the user, UID[:GID]",
    "additional_gids": "an additional group id",
    "cap": "add a capability",
    "no_new_privs": "set no_new_privs for the process",
    "apparmor": "the AppArmor profile of the process",
    "process_label": "the SELinux label of the process",
    "cgroup": "a sub-cgroup of the container to run in: SUB, CTRL:SUB or CTRL1,CTRL2:SUB",
    "ignore_paused": "exec even in a paused container",
    "resources": "a file holding the linux.resources JSON object, or - for stdin",
    "memory": "memory limit (bytes, or with a k, m or g suffix)",
    "memory_reservation": "memory soft limit",
    "memory_swap": "memory plus swap limit; -1 for no limit",
    "kernel_memory": "kernel memory limit (cgroup v1 only)",
    "kernel_memory_tcp": "kernel TCP buffer memory limit (cgroup v1 only)",
    "cpu_share": "CPU shares, the weight against other cgroups",
    "cpu_quota": "CPU time allowed in each period (microseconds)",
    "cpu_period": "CPU CFS period (microseconds)",
    "cpu_burst": "CPU time a period may borrow from earlier ones (microseconds)",
    "cpu_rt_period": "CPU real-time period (microseconds)",
    "cpu_rt_runtime": "CPU real-time time allowed in each period (microseconds)",
    "cpu_idle": "1: the cgroup runs SCHED_IDLE",
    "cpuset_cpus": "the CPUs to run on (for example 0-2,4)",
    "cpuset_mems": "the memory nodes to allocate on",
    "pids_limit": "the most processes the container may have",
    "blkio_weight": "block I/O weight, 10 to 1000",
    "l3_cache_schema": "Intel RDT L3 cache schema (resctrl)",
    "mem_bw_schema": "Intel RDT memory bandwidth schema (resctrl)",
    "image_path": "the checkpoint image directory (default: ./checkpoint)",
    "work_path": "where criu writes its logs and work files (default: the image path)",
    "parent_path": "the image of a previous --pre-dump, relative to the image path",
    "leave_running": "leave the container running after the checkpoint",
    "pre_dump": "dump only the memory, leaving the container running (for a later --parent-path)",
    "tcp_established": "allow open TCP connections",
    "ext_unix_sk": "allow external unix sockets",
    "shell_job": "allow a shell job (the container's terminal)",
    "file_locks": "handle file locks",
    "lazy_pages": "leave the memory pages to be fetched on demand (criu's lazy pages)",
    "status_fd": "an fd to write to when the dump is done (with --lazy-pages)",
    "page_server": "ADDRESS:PORT of a criu page server",
    "manage_cgroups_mode": "criu's cgroup mode: soft, full, strict or ignore",
    "empty_ns": "a namespace to leave empty in the image (network)",
    "auto_dedup": "deduplicate the memory images against the parent's",
    "lsm_profile": "TYPE:NAME, the LSM profile of the restored process",
    "lsm_mount_context": "the SELinux mount context of the restored mounts",
}

# (names, the value's name or "", help), as printed under GLOBAL OPTIONS
GLOBAL: list[tuple[list[str], str, str]] = [
    (["--debug"], "", "log every step of the command at debug level"),
    (["--log"], "FILE", "write the log to FILE instead of stderr (opened at start)"),
    (["--log-format"], "text|json", "the log's format (default: text)"),
    (["--root"], "DIR", "where containers' state is kept (default: /run/pyrunc)"),
    (["--systemd-cgroup"], "", "make cgroups through systemd (cgroupsPath is slice:prefix:name)"),
    (["--rootless"], "true|false|auto", "run as a user without privileges (default: auto)"),
    (["--criu"], "PATH", "the criu binary for checkpoint and restore (default: /usr/local/sbin/criu, else PATH)"),
    (["--help", "-h"], "", "show help"),
    (["--version", "-v"], "", "print the version"),
]
SUMMARY = "an OCI runtime (runtime-spec 1.3.0) with runc's command line"
HELP_LINE = "show the commands, or the help of one command"


def usage(commands: dict[str, tuple[str, str]]) -> str:
    """`pyrunc --help`: every command (cli.COMMANDS: name -> (module, one line)) and the global flags."""
    width = max(map(len, commands)) + 2
    cmds = "".join(f"   {name:<{width}}{line}\n" for name, (_, line) in commands.items())
    opts = "".join(f"   {', '.join(names) + (value and ' ' + value):<28}{text}\n" for names, value, text in GLOBAL)
    return (f"NAME:\n   pyrunc - {SUMMARY}\n\n"
            "USAGE:\n   pyrunc [global options] command [command options] [arguments...]\n\n"
            f"COMMANDS:\n{cmds}   {'help, h':<{width}}{HELP_LINE}\n\nGLOBAL OPTIONS:\n{opts}")


def command(cmd: str, line: str, flags: list[Flag]) -> str:
    """`pyrunc CMD --help`."""
    args, description = USAGE[cmd]
    opts = " [command options]" if flags else ""
    out = [f"NAME:\n   pyrunc {cmd} - {line}\n\nUSAGE:\n   pyrunc {cmd}{opts} {args}".rstrip() + "\n\n",
           "DESCRIPTION:\n" + "".join(f"   {d}\n" for d in description.splitlines()) + "\n"]
    if flags:
        names = [", ".join(n + ("" if f.kind == BOOL else " value") for n in f.names) for f in flags]
        width = max(map(len, names)) + 2
        out.append("OPTIONS:\n" + "".join(f"   {name:<{width}}{flag_text(f)}\n" for name, f in zip(names, flags)))
    return "".join(out)


def flag_text(f: Flag) -> str:
    """A command flag's help, with its default where it has a value."""
    default = f" (default: {f.default})" if f.kind != BOOL and f.default not in (None, []) else ""
    return FLAG_HELP[f.name] + default
