"""Run mypy --strict on usage files: no Any leaks out of the public methods, misuse is caught."""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api
from readme_examples import block_with

HERE = Path(__file__).parent
# assert_type fails on an Any, so a leaking Any is caught without --disallow-any-expr.
MYPY = ["--strict", "--no-incremental", "--follow-imports=silent", "--no-error-summary"]


def test_public_api_types_are_precise_and_the_readme_example_checks(tmp_path: Path) -> None:
    # The README's main example is what a new user pastes first: it must pass --strict too.
    example = block_with("async with MailClient() as mail:  # key from BITRIX_MAIL_API_KEY")
    readme_example = tmp_path / "readme_example.py"
    readme_example.write_text(example)
    stdout, stderr, status = api.run([*MYPY, str(HERE / "usage.py"), str(readme_example)])
    assert status == 0, stdout + stderr


def test_misuse_is_reported_on_exactly_the_marked_lines() -> None:
    misuse = HERE / "misuse.py"
    lines = misuse.read_text().splitlines()
    marked = {n for n, line in enumerate(lines, start=1) if line.endswith("# type-error")}
    assert len(marked) == 7
    stdout, stderr, status = api.run([*MYPY, str(misuse)])
    assert status == 1, stdout + stderr
    reported = {int(n) for n in re.findall(r"misuse\.py:(\d+): error:", stdout)}
    assert reported == marked, stdout
