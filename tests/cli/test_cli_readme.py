"""docs/guides/command-line.md names every command, action and global option."""

from __future__ import annotations

from pathlib import Path

from bitrix_mail_async.cli import build_parser
from bitrix_mail_async.cli.completion import tree
from bitrix_mail_async.cli.options import GLOBAL_OPTIONS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "command-line.md"


def command_line_section(text: str) -> str:
    """The text of the page from its "# The command line" title, up to a next title if any."""
    start = text.index("# The command line\n")
    end = text.find("\n# ", start + 1)
    return text[start : end if end != -1 else len(text)]


def missing_from(section: str) -> list[str]:
    """Commands (``bitrix-mail messages list``) and global flags the section does not name."""
    missing = [
        f"bitrix-mail {' '.join(node.path)}"
        for node in tree(build_parser())
        if node.path and f"bitrix-mail {' '.join(node.path)}" not in section
    ]
    flags = [option.flags[-1] for option in GLOBAL_OPTIONS]
    return missing + [flag for flag in flags if f"`{flag}" not in section]


def test_the_check_finds_what_is_missing() -> None:
    section = "# The command line\n    bitrix-mail demo\n"
    missing = missing_from(command_line_section(section))
    assert "bitrix-mail messages crm-activity" in missing
    assert "--dry-run" in missing
    assert "bitrix-mail demo" not in missing


def test_readme_command_line_section_lists_every_command() -> None:
    section = command_line_section(PAGE.read_text(encoding="utf-8"))
    assert missing_from(section) == []
