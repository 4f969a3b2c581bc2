"""Run mypy --strict on the usage file: no Any leaks out of the public methods."""

from __future__ import annotations

from pathlib import Path

from mypy import api


def test_public_api_types_are_precise() -> None:
    usage = Path(__file__).with_name("usage.py")
    stdout, stderr, status = api.run(
        # assert_type fails on an Any, so a leaking Any is caught without --disallow-any-expr.
        ["--strict", "--no-incremental", "--follow-imports=silent", str(usage)]
    )
    assert status == 0, stdout + stderr
