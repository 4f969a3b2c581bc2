"""``bitrix-mail completion bash|zsh|fish``: a shell completion script, generated.

Owns the scripts. They are generated from the parser itself (its commands, actions and
option flags, as :class:`~bitrix_mail_async.cli.parsing.CliParser` records them), so they
never drift from the commands; they complete command names, actions, options and the values
of a positional with fixed choices (``completion SHELL``, ``api METHOD``); files are left to
the shell's default. zsh loads the bash script through ``bashcompinit``.
"""

from __future__ import annotations

import argparse
from typing import Final

import attrs

from bitrix_mail_async.cli.failures import EXIT_OK
from bitrix_mail_async.cli.options import GLOBAL_OPTIONS
from bitrix_mail_async.cli.parsing import CliParser, Command

__all__ = ["COMMAND", "Node", "script", "tree"]

_PROG: Final = "bitrix-mail"
_FUNCTION: Final = "_bitrix_mail"


@attrs.frozen
class Node:
    """One place in the command tree: its path, subcommands, options, positional values."""

    path: tuple[str, ...]
    commands: tuple[tuple[str, str], ...]  # (name, help)
    options: tuple[str, ...]
    values: tuple[str, ...] = ()


def tree(parser: CliParser) -> list[Node]:
    """Every node below (and including) ``parser``, depth first; unlisted commands left out."""
    nodes: list[Node] = []

    def visit(current: CliParser, path: tuple[str, ...]) -> None:
        shown = {n: p for n, p in current.commands.items() if not p.hidden}
        flags = [f for o in GLOBAL_OPTIONS if o.scope in current.global_scopes for f in o.flags]
        options = tuple(dict.fromkeys([*current.option_flags, *flags]))
        commands = tuple((n, p.help_text) for n, p in shown.items())
        nodes.append(Node(path, commands, options, tuple(dict.fromkeys(current.choices))))
        for name, child in shown.items():
            visit(child, (*path, name))

    visit(parser, ())
    return nodes


def _key(node: Node) -> str:
    return "/".join(node.path)


def _words(node: Node) -> str:
    return " ".join([*(name for name, _ in node.commands), *node.values, *node.options])


def _bash(nodes: list[Node]) -> str:
    steps = " | ".join(f"{'/'.join(n.path[:-1])}/{n.path[-1]}" for n in nodes if n.path)
    cases = "\n".join(f'        "{_key(n)}") words="{_words(n)}" ;;' for n in nodes)
    return f"""\
# {_PROG} completion for bash; load it with: source <({_PROG} completion bash)
{_FUNCTION}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path="" word words i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case "$path/$word" in
            {steps}) path="${{path:+$path/}}$word" ;;
        esac
    done
    case "$path" in
{cases}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F {_FUNCTION} {_PROG}
"""


def _zsh(nodes: list[Node]) -> str:
    return (
        f"#compdef {_PROG}\n"
        f"# {_PROG} completion for zsh; load it with: source <({_PROG} completion zsh)\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + _bash(nodes).split("\n", 1)[1]
    )


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_condition(node: Node) -> str:
    if not node.path:
        return "__fish_use_subcommand"
    seen = "; and ".join(f"__fish_seen_subcommand_from {name}" for name in node.path)
    if node.commands:
        names = " ".join(name for name, _ in node.commands)
        seen += f"; and not __fish_seen_subcommand_from {names}"
    return seen


def _fish(nodes: list[Node]) -> str:
    lines = [f"# {_PROG} completion for fish; save it as ~/.config/fish/completions/{_PROG}.fish"]
    for node in nodes:
        condition = _fish_quote(_fish_condition(node))
        for name, text in node.commands:
            lines.append(f"complete -c {_PROG} -n {condition} -f -a {name} -d {_fish_quote(text)}")
        for value in node.values:
            lines.append(f"complete -c {_PROG} -n {condition} -f -a {_fish_quote(value)}")
        for flag in node.options:
            kind = "-l" if flag.startswith("--") else "-s"
            lines.append(f"complete -c {_PROG} -n {condition} {kind} {flag.lstrip('-')}")
    return "\n".join(lines) + "\n"


_SHELLS: Final = {"bash": _bash, "zsh": _zsh, "fish": _fish}


def script(shell: str, parser: CliParser) -> str:
    """The completion script of ``shell`` for the commands of ``parser``."""
    return _SHELLS[shell](tree(parser))


def run_completion(args: argparse.Namespace) -> int:
    """The ``completion`` handler: print the script."""
    # Imported here: the parser is assembled by the package, which imports this module.
    from bitrix_mail_async.cli import build_parser

    print(script(args.shell, build_parser()), end="")
    return EXIT_OK


def _completion_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=tuple(_SHELLS), metavar="SHELL", help="bash, zsh or fish")


COMMAND: Final = Command(
    "completion",
    run_completion,
    help="print a shell completion script (bash, zsh or fish)",
    description="Print a completion script for bash, zsh or fish: commands, actions and "
    "options complete with Tab.",
    example=f"source <({_PROG} completion bash)        # bash; zsh likewise with zsh\n"
    f"{_PROG} completion fish > ~/.config/fish/completions/{_PROG}.fish",
    arguments=_completion_arguments,
    gateway=False,
    usage="SHELL",
)
