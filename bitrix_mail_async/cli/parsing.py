"""The records ``bitrix-mail`` commands are declared with, and the parser that remembers them.

Owns the two records a command module fills in: :class:`Command` (one subcommand: texts,
example, arguments, handler) and :class:`Group` (a command with actions, such as
``messages list``), and :class:`CliParser`, which remembers the tree of commands and their
option flags, so that help and shell completion come from the same records as the parser.
Argument types are :mod:`.arguments`', the global options :mod:`.options`'.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs

from bitrix_mail_async.cli.options import (
    CONNECTION,
    GLOBAL_OPTIONS,
    OUTPUT,
    add_global_options,
    global_note,
)

__all__ = ["CliParser", "Command", "Group", "Handler", "Subcommands"]

# Help text is wrapped to this many columns.
_WIDTH: Final = 79

#: Runs a parsed command line and returns the exit code.
Handler = Callable[[argparse.Namespace], int]


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser that remembers its commands, option flags and positional choices.

    Completion reads them: command names, ``--flags``, and the values a positional chooses
    from (``completion SHELL``: bash, zsh, fish).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Set first: the base class adds -h/--help through add_argument below.
        self.commands: dict[str, CliParser] = {}
        self.option_flags: list[str] = []
        self.choices: list[str] = []
        self.global_scopes: tuple[str, ...] = (OUTPUT, CONNECTION)
        self.help_text = ""
        self.hidden = False
        super().__init__(*args, **kwargs)

    def _remember(self, action: argparse.Action) -> argparse.Action:
        if action.help is not argparse.SUPPRESS:
            self.option_flags.extend(action.option_strings)
            if not action.option_strings and action.choices is not None:
                self.choices.extend(str(choice) for choice in action.choices)
        return action

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """Add an argument as argparse does, remembering its flags if it is an option."""
        return self._remember(super().add_argument(*args, **kwargs))

    def add_mutually_exclusive_group(self, **kwargs: Any) -> Any:
        """A group as argparse makes it, whose options are remembered too."""
        group = super().add_mutually_exclusive_group(**kwargs)
        add = group.add_argument
        # The group's own add_argument bypasses ours; wrap this one instance's method.
        setattr(group, "add_argument", lambda *a, **k: self._remember(add(*a, **k)))  # noqa: B010
        return group


class Subcommands(Protocol):
    """What argparse's ``add_subparsers()`` returns, as far as commands use it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add one subcommand's parser."""


def _print_help(parser: argparse.ArgumentParser) -> int:
    """Print ``parser``'s help on stdout: a group given no action shows what it offers."""
    parser.print_help()
    return 0


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command without arguments of its own."""


def _epilog(example: str, scopes: tuple[str, ...]) -> str:
    examples = example.strip().splitlines()
    lines = "\n".join(f"  {line}" for line in examples)
    text = f"{'examples' if len(examples) > 1 else 'example'}:\n{lines}"
    return f"{text}\n\n{global_note(scopes)}"


def _add_parser(
    subcommands: Subcommands,
    name: str,
    *,
    help: str,
    hidden: bool,
    description: str,
    **kwargs: Any,
) -> CliParser:
    parser = subcommands.add_parser(
        name,
        help=argparse.SUPPRESS if hidden else help,
        # Raw, so that examples keep their lines; the description is wrapped here instead.
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(description, _WIDTH),
        **kwargs,
    )
    if not isinstance(parser, CliParser):  # built by build_parser(), whose class is CliParser
        raise TypeError("bitrix-mail parsers must be CliParser instances")
    parser.hidden = hidden
    parser.help_text = help
    return parser


@attrs.frozen
class Command:
    """One subcommand: its texts, an example, which global options it takes, its handler.

    ``gateway`` adds the connection options and ``--dry-run`` (commands that talk to the
    gateway); every command takes the output options. ``usage`` is what the top-level help
    shows after the name (``MAILBOX_ID``); ``hidden`` keeps an old spelling working unlisted.
    """

    name: str
    handler: Handler
    help: str
    description: str
    example: str
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    gateway: bool = True
    usage: str = ""
    aliases: tuple[str, ...] = ()
    hidden: bool = False

    @property
    def scopes(self) -> tuple[str, ...]:
        """The global option scopes this command takes."""
        return (OUTPUT, CONNECTION) if self.gateway else (OUTPUT,)

    def add_to(self, subcommands: Subcommands, owner: CliParser, path: str = "") -> None:
        """Add this command's parser to ``subcommands`` (of ``owner``)."""
        parser = _add_parser(
            subcommands,
            self.name,
            help=self.help,
            hidden=self.hidden,
            aliases=list(self.aliases),
            description=self.description,
            epilog=_epilog(self.example, self.scopes),
        )
        owner.commands[self.name] = parser
        parser.global_scopes = self.scopes
        dests = add_global_options(parser, self.scopes, visible=False)
        self.arguments(parser)
        parser.set_defaults(
            handler=self.handler, command_path=f"{path}{self.name}", accepted=frozenset(dests)
        )


@attrs.frozen
class Group:
    """A command whose work is done by actions: ``messages list``, ``messages get``, ...

    ``default`` names the action run when none is given (``mailboxes`` lists them); without
    one, the group alone prints its help (``messages``), as asking for it would.
    """

    name: str
    help: str
    description: str
    example: str
    actions: tuple[Command, ...]
    default: str | None = None

    @property
    def usage(self) -> str:
        """The actions, as the top-level help lists them."""
        return "|".join(action.name for action in self.actions if not action.hidden)

    def add_to(self, subcommands: Subcommands, owner: CliParser, path: str = "") -> None:
        """Add the group's parser and, under it, one parser per action."""
        parser = _add_parser(
            subcommands,
            self.name,
            help=self.help,
            hidden=False,
            description=self.description,
            epilog=_epilog(self.example, (OUTPUT, CONNECTION)),
        )
        owner.commands[self.name] = parser
        add_global_options(parser, (OUTPUT, CONNECTION), visible=False)
        actions = parser.add_subparsers(
            dest="action", metavar="ACTION", prog=f"bitrix-mail {path}{self.name}"
        )
        if self.default is None:
            parser.set_defaults(
                handler=lambda args: _print_help(parser),
                command_path=f"{path}{self.name}",
                accepted=frozenset(o.dest for o in GLOBAL_OPTIONS),
            )
        for action in self.actions:
            action.add_to(actions, parser, f"{path}{self.name} ")
            if action.name == self.default:
                # Its options work on the group too: "mailboxes --json" is "mailboxes list --json".
                action.arguments(parser)
                dests = [o.dest for o in GLOBAL_OPTIONS if o.scope in action.scopes]
                parser.set_defaults(
                    handler=action.handler,
                    command_path=f"{path}{self.name}",
                    accepted=frozenset(dests),
                )
