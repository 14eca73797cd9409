"""pyrunc(8), pyrunc-COMMAND(8) and the bash completion, rendered from what `--help`
prints: the command table (cli.COMMANDS), help.py's texts and each command's own flags
(cli.command_flags), so the three cannot drift apart.

`python -m pyrunc.cli.docgen MANDIR COMPLETION` writes them (hack/setup.sh does, at
set-up time). Imported by nothing a command runs.
"""
from __future__ import annotations

import sys

from pyrunc import __version__, fs
from pyrunc.cli import COMMANDS, command_flags
from pyrunc.cli import help as h
from pyrunc.cli.args import BOOL, Flag

HEADER = '.TH {title} 8 "" "pyrunc {version}" "System Manager\'s Manual"\n'


def esc(text: str) -> str:
    """Text as roff reads it literally: backslashes and hyphens escaped, no line taken for
    a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in text.splitlines())


def option(names: list[str], value: str) -> str:
    """An OPTIONS entry's tag: `\\fB\\-\\-log\\fR \\fIFILE\\fR, ...`."""
    arg = f" \\fI{esc(value)}\\fR" if value else ""
    return ", ".join(f"\\fB{esc(n)}\\fR{arg}" for n in names)


def man_main() -> str:
    see = ",\n".join(f".BR pyrunc\\-{cmd} (8)" for cmd in COMMANDS)
    cmds = "".join(f".TP\n.B {cmd}\n{esc(line)}: \\fBpyrunc\\-{cmd}\\fR(8)\n" for cmd, (_, line) in COMMANDS.items())
    opts = "".join(f".TP\n{option(names, value)}\n{esc(text)}\n" for names, value, text in h.GLOBAL)
    return (HEADER.format(title="PYRUNC", version=__version__)
            + f".SH NAME\npyrunc \\- {esc(h.SUMMARY)}\n"
            ".SH SYNOPSIS\n.B pyrunc\n[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIcommand options\\fR]"
            " [\\fIarguments\\fR...]\n"
            ".SH DESCRIPTION\npyrunc creates and runs containers from OCI bundles, as runc does and with its\n"
            "command line, so that container engines (containerd, CRI\\-O, podman) can run it in\n"
            "runc's place.\n.PP\nEach command has its own page, \\fBpyrunc\\-\\fICOMMAND\\fR(8), and its help,\n"
            "\\fBpyrunc help\\fR \\fICOMMAND\\fR.\n"
            f".SH COMMANDS\n{cmds}.TP\n.B help, h\n{esc(h.HELP_LINE)}\n"
            f".SH GLOBAL OPTIONS\n{opts}.SH SEE ALSO\n{see}\n")


def man_command(cmd: str, flags: list[Flag]) -> str:
    args, description = h.USAGE[cmd]
    synopsis = " ".join(filter(None, ["[\\fIcommand options\\fR]" if flags else "", esc(args)]))
    out = [HEADER.format(title=f"PYRUNC\\-{cmd.upper()}", version=__version__),
           f".SH NAME\npyrunc\\-{cmd} \\- {esc(COMMANDS[cmd][1])}\n",
           f".SH SYNOPSIS\n.B pyrunc {cmd}\n" + (synopsis and synopsis + "\n"),
           f".SH DESCRIPTION\n{esc(description)}\n"]
    if flags:
        out.append(".SH OPTIONS\n" + "".join(
            f".TP\n{option(f.names, '' if f.kind == BOOL else 'value')}\n{esc(h.flag_text(f))}\n" for f in flags))
    out.append(".SH SEE ALSO\n.BR pyrunc (8)\n")
    return "".join(out)


def flag_names(flags: list[Flag], kind: str) -> str:
    """The names of the flags that take a value (kind "value") or not ("bool")."""
    return " ".join(n for f in flags if (f.kind == BOOL) == (kind == "bool") for n in f.names)


def completion(flags: dict[str, list[Flag]]) -> str:
    """A bash completion: commands, each command's flags, container ids (`pyrunc list -q`,
    with the --root given) where a command takes one, file names for flags' values."""
    gbool = " ".join(n for names, value, _ in h.GLOBAL if not value for n in names)
    gvalue = " ".join(n for names, value, _ in h.GLOBAL if value for n in names)
    cases = "".join(
        f"                {cmd}) bools=\"{flag_names(fl, 'bool')}\" values=\"{flag_names(fl, 'value')}\""
        f" ids={int('container-id' in h.USAGE[cmd][0])};;\n" for cmd, fl in flags.items())
    names = " ".join(COMMANDS)
    return f"""# bash completion for pyrunc: generated from its command table by pyrunc.cli.docgen
_pyrunc() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local bools="{gbool}" values="{gvalue}"
    local i w cmd="" root="" ids=0 nargs=0
    [[ $prev == "=" ]] && prev=${{COMP_WORDS[COMP_CWORD-2]}}  # bash splits --flag=value at "="
    [[ $cur == "=" ]] && cur=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        if [[ " $values " == *" $w "* ]]; then  # a flag and its value (--flag value, --flag=value)
            [[ ${{COMP_WORDS[i+1]}} == "=" ]] && ((i++))
            ((i++))
            [[ -z $cmd && $w == --root ]] && root=${{COMP_WORDS[i]}}
        elif [[ $w == -* ]]; then
            :
        elif [[ -z $cmd ]]; then
            cmd=$w
            case $cmd in
{cases}                help|h) bools="" values="" ids=0;;
                *) return;;
            esac
        else
            ((nargs++))
        fi
    done
    if [[ " $values " == *" $prev "* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$bools $values" -- "$cur"))
    elif [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "{names} help" -- "$cur"))
    elif [[ ($cmd == help || $cmd == h) && $nargs == 0 ]]; then
        COMPREPLY=($(compgen -W "{names}" -- "$cur"))
    elif ((ids && nargs == 0)); then
        COMPREPLY=($(compgen -W "$("${{COMP_WORDS[0]}}" ${{root:+--root "$root"}} list -q 2>/dev/null)" -- "$cur"))
    fi
}}
complete -o default -F _pyrunc pyrunc
"""


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m pyrunc.cli.docgen MANDIR COMPLETION-FILE\n")
        return 2
    mandir, comp = argv
    flags = {cmd: command_flags(cmd) for cmd in COMMANDS}
    pages = {"pyrunc.8": man_main(), **{f"pyrunc-{cmd}.8": man_command(cmd, fl) for cmd, fl in flags.items()}}
    for name, text in pages.items():
        with open(fs.join(mandir, name), "w") as out:
            out.write(text)
    with open(comp, "w") as out:
        out.write(completion(flags))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
