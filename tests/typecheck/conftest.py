"""Makes tests/readme_examples.py importable when only tests/typecheck is run."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
