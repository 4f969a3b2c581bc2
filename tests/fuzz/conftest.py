"""Hypothesis profiles of the fuzz suite: ``ci`` (the default here) and ``long`` (local runs).

``python -m pytest tests/fuzz --hypothesis-profile=long`` runs the long one. The profiles are
only registered here, never loaded: the fuzz tests take theirs through :func:`profile`, so the
settings of every other test directory stay what they were.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

# No explain phase: it reruns a failing example under coverage, minutes for these examples.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)

# Sized so that the whole suite takes about 60 s on a loaded 2-core machine.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=100,
    print_blob=True,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    derandomize=False,
    deadline=None,
    max_examples=1000,
    print_blob=True,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
