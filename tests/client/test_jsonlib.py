"""Both JSON backends agree on what the wire carries."""

from __future__ import annotations

import pytest

from bitrix_mail_async import _jsonlib

DOC = {"success": True, "data": {"items": [{"id": 1, "subject": "Привет ✓", "to": ["a@x.io"]}]}}


def test_backends_agree() -> None:
    raw = _jsonlib.std_dumps(DOC)
    assert _jsonlib.loads(raw) == _jsonlib.std_loads(raw) == DOC
    assert _jsonlib.std_loads(_jsonlib.dumps(DOC)) == DOC
    assert "Привет".encode() in raw  # UTF-8, not \\u escapes


@pytest.mark.parametrize("bad", [b'{"a": 1', b"<html>", b"\xff\xfe", b""])
def test_both_backends_raise_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the contract is "some ValueError"
        _jsonlib.std_loads(bad)
    with pytest.raises(ValueError):  # noqa: PT011 - the contract is "some ValueError"
        _jsonlib.loads(bad)
