"""A griffe extension for the API reference: the docstrings' Sphinx markup, read as Markdown.

The docstrings are written for ``help()`` and Sphinx (``:class:`Page```, ``Example::``);
Markdown would show the roles as text. A role becomes a code span and ``::`` a colon (the
indented block after it already reads as code), so the reference looks as the source means it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|data|attr|mod|exc|obj):`~?([^`]+)`")
_LITERAL_BLOCK = re.compile(r"(\S)::$", re.M)


class SphinxRoles(griffe.Extension):
    """Rewrite each docstring once, as griffe loads its object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Turn ``:role:`name``` into ```name``` and a trailing ``::`` into ``:``."""
        if obj.docstring is not None:
            text = _ROLE.sub(r"`\1`", obj.docstring.value)
            obj.docstring.value = _LITERAL_BLOCK.sub(r"\1:", text)
