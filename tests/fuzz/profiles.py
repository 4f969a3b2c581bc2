"""Which hypothesis profile the fuzz tests run under, and each test's share of it."""

from __future__ import annotations

from hypothesis import settings

from . import conftest  # noqa: F401  (registers the profiles when imported outside pytest)

__all__ = ["profile"]


def profile(share: float = 1.0) -> settings:
    """The loaded profile if one was asked for (``--hypothesis-profile``), else ``ci``.

    ``share`` scales its ``max_examples`` for a test whose examples cost more or less than
    the others'.
    """
    name = settings.get_current_profile_name()
    base = settings.get_profile("ci" if name == "default" else name)
    return settings(base, max_examples=max(1, round(base.max_examples * share)))
