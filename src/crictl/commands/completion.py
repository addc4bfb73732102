"""`crictl completion bash|zsh|fish`: scripts generated from the command tree.

Beyond crictl, the scripts complete container IDs, pod IDs and image IDs by calling
`crictl ps -aq`, `crictl pods -q` and `crictl images -q` with the global flags already typed.
"""

from __future__ import annotations

from crictl import cli
from crictl.cmdutil import show_help
from crictl.errors import CliError

CONTAINER_ID_COMMANDS = ("attach", "checkpoint", "exec", "inspect", "logs", "rm", "start", "stats", "stop", "update")
POD_ID_COMMANDS = ("inspectp", "port-forward", "rmp", "statsp", "stopp", "create")
IMAGE_ID_COMMANDS = ("inspecti", "rmi")
VALUE_GLOBAL_FLAGS = ("-c", "--config", "-r", "--runtime-endpoint", "-i", "--image-endpoint", "-t", "--timeout",
                      "--max-retries")  # fmt: skip


def _tree(ctx: cli.Context) -> tuple[cli.Group, list[tuple[str, cli.Command]]]:
    from crictl.main import ALIASES

    root = ctx.find_root()
    group = root.command
    assert isinstance(group, cli.Group)
    entries: list[tuple[str, cli.Command]] = []
    for name in sorted(group.list_commands(root)):
        cmd = group.get_command(root, name)
        if cmd is None or cmd.hidden:
            continue
        entries.append((name, cmd))
        entries.extend((alias, cmd) for alias, target in sorted(ALIASES.items()) if target == name)
    return group, entries


def _flags(cmd: cli.Command) -> list[str]:
    names: list[str] = []
    for param in cmd.params:
        if isinstance(param, cli.Option):
            names.extend(param.opts)
    return names


def _value_flags(cmd: cli.Command) -> list[str]:
    names: list[str] = []
    for param in cmd.params:
        if isinstance(param, cli.Option) and not param.is_flag:
            names.extend(param.opts)
    return names


def _short(cmd: cli.Command) -> str:
    return cmd.get_short_help_str(limit=200).replace("'", "").replace('"', "")


def bash_script(ctx: cli.Context) -> str:
    group, entries = _tree(ctx)
    commands = " ".join(name for name, _ in entries)
    global_flags = " ".join(_flags(group))
    flag_cases = "\n".join(f'            {name}) opts="{" ".join(_flags(cmd))}";;' for name, cmd in entries)
    value_flags = "|".join(VALUE_GLOBAL_FLAGS)
    return f"""_crictl_ids() {{
    crictl "${{_crictl_global[@]}}" "$@" 2>/dev/null
}}

_crictl() {{
    local cur cmd="" i opts
    local -a _crictl_global=()
    COMPREPLY=()
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    for ((i=1; i<COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            {value_flags})
                _crictl_global+=("${{COMP_WORDS[i]}}" "${{COMP_WORDS[i+1]}}"); ((i++));;
            -*) _crictl_global+=("${{COMP_WORDS[i]}}");;
            *) cmd="${{COMP_WORDS[i]}}"; break;;
        esac
    done
    if [[ -z "$cmd" ]]; then
        COMPREPLY=( $(compgen -W "{commands} {global_flags}" -- "$cur") )
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        case "$cmd" in
{flag_cases}
            *) opts="";;
        esac
        COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
        return 0
    fi
    case "$cmd" in
        {"|".join(CONTAINER_ID_COMMANDS)})
            COMPREPLY=( $(compgen -W "$(_crictl_ids ps -aq)" -- "$cur") );;
        {"|".join(POD_ID_COMMANDS)})
            COMPREPLY=( $(compgen -W "$(_crictl_ids pods -q)" -- "$cur") );;
        {"|".join(IMAGE_ID_COMMANDS)})
            COMPREPLY=( $(compgen -W "$(_crictl_ids images -q)" -- "$cur") );;
        completion)
            COMPREPLY=( $(compgen -W "bash zsh fish" -- "$cur") );;
        help)
            COMPREPLY=( $(compgen -W "{commands}" -- "$cur") );;
        *)
            COMPREPLY=( $(compgen -f -- "$cur") );;
    esac
    return 0
}}
complete -F _crictl crictl"""


def zsh_script(ctx: cli.Context) -> str:
    group, entries = _tree(ctx)
    described = " ".join(f"'{name}:{_short(cmd)}'" for name, cmd in entries)
    global_flags = " ".join(_flags(group))
    flag_cases = "\n".join(f"      {name}) compadd -- {' '.join(_flags(cmd))};;" for name, cmd in entries)
    value_flags = "|".join(VALUE_GLOBAL_FLAGS)
    return f"""#compdef crictl

_crictl_ids() {{
  local -a ids
  ids=(${{(f)"$(crictl "${{_crictl_global[@]}}" "$@" 2>/dev/null)"}})
  compadd -- $ids
}}

_crictl() {{
  local -a cmds _crictl_global
  local cmd="" i
  cmds=({described})
  for ((i=2; i<CURRENT; i++)); do
    case "${{words[i]}}" in
      {value_flags}) _crictl_global+=("${{words[i]}}" "${{words[i+1]}}"); ((i++));;
      -*) _crictl_global+=("${{words[i]}}");;
      *) cmd="${{words[i]}}"; break;;
    esac
  done
  if [[ -z "$cmd" ]]; then
    if [[ "$PREFIX" == -* ]]; then
      compadd -- {global_flags}
    else
      _describe 'commands' cmds
    fi
    return
  fi
  if [[ "$PREFIX" == -* ]]; then
    case "$cmd" in
{flag_cases}
    esac
    return
  fi
  case "$cmd" in
    {"|".join(CONTAINER_ID_COMMANDS)}) _crictl_ids ps -aq;;
    {"|".join(POD_ID_COMMANDS)}) _crictl_ids pods -q;;
    {"|".join(IMAGE_ID_COMMANDS)}) _crictl_ids images -q;;
    completion) compadd -- bash zsh fish;;
    help) _describe 'commands' cmds;;
    *) _files;;
  esac
}}

if [[ "${{funcstack[1]}}" == "_crictl" ]]; then
  _crictl "$@"
else
  compdef _crictl crictl
fi"""


def fish_script(ctx: cli.Context) -> str:
    group, entries = _tree(ctx)
    names = " ".join(name for name, _ in entries)
    lines = [
        "function __crictl_global_args",
        "    set -l tokens (commandline -opc)",
        "    set -e tokens[1]",
        "    set -l out",
        "    while set -q tokens[1]",
        "        switch $tokens[1]",
        f"            case {' '.join(VALUE_GLOBAL_FLAGS)}",
        "                set out $out $tokens[1] $tokens[2]",
        "                set -e tokens[1]",
        "            case '-*'",
        "                set out $out $tokens[1]",
        "            case '*'",
        "                break",
        "        end",
        "        set -e tokens[1]",
        "    end",
        "    printf '%s\\n' $out",
        "end",
        "",
        "function __crictl_ids",
        "    crictl (__crictl_global_args) $argv 2>/dev/null",
        "end",
        "",
        "complete -c crictl -f",
    ]
    for param in group.params:
        if isinstance(param, cli.Option):
            lines.append(_fish_option("__fish_use_subcommand", param))
    for name, cmd in entries:
        lines.append(f"complete -c crictl -n '__fish_use_subcommand' -a '{name}' -d '{_short(cmd)}'")
    for name, cmd in entries:
        for param in cmd.params:
            if isinstance(param, cli.Option):
                lines.append(_fish_option(f"__fish_seen_subcommand_from {name}", param))
    lines.append(
        f"complete -c crictl -n '__fish_seen_subcommand_from {' '.join(CONTAINER_ID_COMMANDS)}' "
        "-a '(__crictl_ids ps -aq)'"
    )
    lines.append(
        f"complete -c crictl -n '__fish_seen_subcommand_from {' '.join(POD_ID_COMMANDS)}' -a '(__crictl_ids pods -q)'"
    )
    lines.append(
        f"complete -c crictl -n '__fish_seen_subcommand_from {' '.join(IMAGE_ID_COMMANDS)}' "
        "-a '(__crictl_ids images -q)'"
    )
    lines.append("complete -c crictl -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'")
    lines.append(f"complete -c crictl -n '__fish_seen_subcommand_from help' -a '{names}'")
    return "\n".join(lines)


def _fish_option(condition: str, option: cli.Option) -> str:
    parts = [f"complete -c crictl -n '{condition}'"]
    for opt in option.opts:
        if opt.startswith("--"):
            parts.append(f"-l {opt[2:]}")
        elif len(opt) == 2:
            parts.append(f"-s {opt[1:]}")
        else:
            parts.append(f"-o {opt[1:]}")
    if not option.is_flag:
        parts.append("-r")
    text = (option.help or "").split("\n")[0].replace("'", "")
    if text:
        parts.append(f"-d '{text}'")
    return " ".join(parts)


@cli.command(
    "completion",

    help="Output shell completion code",
    epilog="""\b
Output shell completion code for bash, zsh or fish.
Examples:
    # Installing bash completion on Linux
    source <(crictl completion bash)

    # Installing zsh completion on Linux
    source <(crictl completion zsh)

    # Installing fish completion on Linux
    crictl completion fish | source""",
)
@cli.argument("shell", nargs=-1)
@cli.pass_context
def completion_command(ctx: cli.Context, shell: tuple[str, ...]) -> None:
    if len(shell) > 1:
        show_help()
    which = shell[0] if shell else "bash"
    if which == "bash":
        print(bash_script(ctx))
    elif which == "zsh":
        print(zsh_script(ctx))
    elif which == "fish":
        print(fish_script(ctx))
    else:
        raise CliError("only bash, zsh or fish are supported")


COMMANDS = [completion_command]
