"""`crictl completion bash|zsh|fish`: the scripts upstream prints, generated from the command tree.

bash and zsh list the commands (with aliases) and the global flags, as crictl's completion.go
does; fish follows urfave/cli's ToFishCompletion (fish.go), including its repetitions.
"""

from __future__ import annotations

from crictl import cli
from crictl.cmdutil import show_help
from crictl.errors import CliError

_BASH = """_crictl() {
    local cur opts base
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    opts="%s"
    COMPREPLY=( $(compgen -W "${opts}" -- ${cur}) )
    return 0
}

complete -F _crictl crictl"""

_ZSH = """#compdef crictl

_crictl() {
  local -a cmds
  cmds=('%s')
  _describe 'commands' cmds

  local -a opts
  opts=('%s')
  _describe 'global options' opts

  return
}

compdef _crictl crictl"""


def _app_commands(app: cli.App) -> list[cli.Command]:
    return [app.load(c) for c in sorted(app.commands, key=lambda c: c.name)]


def _app_flags(app: cli.App) -> list[cli.Flag]:
    return [*sorted((f for f in app.flags if not f.hidden), key=lambda f: f.name), cli.HELP_FLAG, cli.VERSION_FLAG]


def bash_script(app: cli.App) -> str:
    words = [n for c in [*_app_commands(app), cli.HELP_COMMAND] if not c.hidden for n in c.names()]
    words += ["--" + f.name for f in _app_flags(app)]
    return _BASH % "\n".join(words)


def zsh_script(app: cli.App) -> str:
    cmds = [f"{n}:{c.usage}" for c in [*_app_commands(app), cli.HELP_COMMAND] if not c.hidden for n in c.names()]
    opts = ["--" + f.name for f in _app_flags(app)]
    return _ZSH % ("' '".join(cmds), "' '".join(opts))


def _fish_escape(text: str) -> str:
    return text.replace("'", "\\'")


def _fish_helper(app: cli.App, previous: list[str]) -> str:
    return f"__fish_seen_subcommand_from {' '.join(previous)}" if previous else f"__fish_{app.name}_no_subcommand"


def _fish_flags(app: cli.App, flags: list[cli.Flag], previous: list[str]) -> list[str]:
    lines = []
    for flag in flags:
        line = f"complete -c {app.name} -n '{_fish_helper(app, previous)}'" + ("" if flag.takes_file else " -f")
        for i, name in enumerate(flag.names()):
            line += f" -l {name}" if i == 0 else f" -s {name}"
        if flag.takes_value():
            line += " -r"
        if flag.usage:
            line += f" -d '{_fish_escape(flag.usage)}'"
        lines.append(line)
    return lines


def _fish_commands(
    app: cli.App, commands: list[cli.Command], all_names: list[str], previous: list[str], running: str
) -> list[str]:
    lines: list[str] = []
    for command in commands:
        if command.hidden:
            continue
        entry = f"complete -r -c {app.name} -n '{_fish_helper(app, previous)}' -a '{' '.join(command.names())}'"
        if command.usage:
            entry += f" -d '{_fish_escape(command.usage)}'"
        lines += _fish_flags(app, [cli.HELP_FLAG], command.names())
        all_names += command.names()
        lines.append(entry)
        # Only the running command has been set up by urfave: its flags then include --help
        # and its subcommands the implicit help command.
        set_up = command.name == running
        flags = [*(sorted(command.flags, key=lambda f: f.name) if command.sort_flags else command.flags)]
        flags = [f for f in flags if not f.hidden] + ([cli.HELP_FLAG] if set_up else [])
        lines += _fish_flags(app, flags, command.names())
        subs = [*command.subcommands, cli.HELP_COMMAND] if set_up else command.subcommands
        if subs:
            lines += _fish_commands(app, subs, all_names, command.names(), running)
    return lines


def fish_script(app: cli.App) -> str:
    all_names: list[str] = []
    lines = _fish_flags(app, _app_flags(app), [])
    lines += _fish_flags(app, [cli.HELP_FLAG], [])
    lines += _fish_flags(app, [cli.VERSION_FLAG], [])
    lines += _fish_commands(app, [*_app_commands(app), cli.HELP_COMMAND], all_names, [], "completion")
    head = f"""# {app.name} fish shell completion

function __fish_{app.name}_no_subcommand --description 'Test if there has been any subcommand yet'
    for i in (commandline -opc)
        if contains -- $i{"".join(" " + n for n in all_names)}
            return 1
        end
    end
    return 0
end

"""
    return head + "".join(line + "\n" for line in lines)


@cli.command(
    "completion", help="Output shell completion code", args_usage="SHELL",
    description="""Output shell completion code for bash, zsh or fish.

Examples:

    # Installing bash completion on Linux
    source <(crictl completion bash)

    # Installing zsh completion on Linux
    source <(crictl completion zsh)

    # Installing fish completion on Linux
    crictl completion fish | source
\t""",
)  # fmt: skip
@cli.argument("shell")
@cli.pass_context
def completion_command(ctx: cli.Context, shell: tuple[str, ...]) -> None:
    app = ctx.find_root().app
    assert app is not None
    if len(shell) > 1:
        show_help()
    which = shell[0] if shell else "bash"
    if which == "bash":
        print(bash_script(app))
    elif which == "zsh":
        print(zsh_script(app))
    elif which == "fish":
        print(fish_script(app))
    else:
        raise CliError("only bash, zsh or fish are supported")


COMMANDS = [completion_command]
