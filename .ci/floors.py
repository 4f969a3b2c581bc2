#!/usr/bin/env python3
"""The dependency floors declared in pyproject.toml, as exact pins and as a check.

``python3 .ci/floors.py`` prints one ``name==version`` line for each runtime dependency (the
project's dependencies and every extra but the development ones) at its declared ``>=`` floor:
a pip constraints file, so ``.ci/run`` can run the suite at exactly the floors and they never
drift from pyproject.toml. A runtime dependency without a ``>=`` floor is an error.

``python .ci/floors.py --check`` (run inside the floors environment) exits 1 unless every one of
those packages is installed at exactly its floor.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# Extras that hold development tools, not what users install: their floors are not promised.
DEV_EXTRAS = frozenset({"test", "docs"})
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)$")
_FLOOR = re.compile(r"^>=\s*([0-9][0-9A-Za-z.+!-]*)$")


class FloorError(Exception):
    """pyproject.toml declares a runtime dependency this script cannot pin to a floor."""


def normalize(name: str) -> str:
    """Return the package name in its canonical form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def floor_of(requirement: str) -> tuple[str, str]:
    """Return ``(name, floor)`` for a requirement such as ``aiohttp>=3.14.0``."""
    match = _REQUIREMENT.match(requirement)
    if match is None:
        # Environment markers (";") would make the floor depend on the Python that runs this.
        raise FloorError(f"cannot read the requirement {requirement!r} (markers are not handled)")
    name, specifiers = match.groups()
    floors = [m.group(1) for part in specifiers.split(",") if (m := _FLOOR.match(part.strip()))]
    if len(floors) != 1:
        raise FloorError(f"{requirement!r} needs exactly one '>=' floor")
    return normalize(name), floors[0]


def runtime_floors(pyproject: Path = PYPROJECT) -> dict[str, str]:
    """Map each runtime dependency of ``pyproject`` to its floor."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    for extra, extra_requirements in project.get("optional-dependencies", {}).items():
        if extra not in DEV_EXTRAS:
            requirements.extend(extra_requirements)
    floors: dict[str, str] = {}
    for requirement in requirements:
        name, floor = floor_of(requirement)
        if floors.setdefault(name, floor) != floor:
            raise FloorError(f"{name} has two floors: {floors[name]} and {floor}")
    return floors


def _release(version: str) -> tuple[str, ...]:
    # "3.14" and "3.14.0" are the same release.
    parts = version.split(".")
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return tuple(parts)


def check_installed(floors: dict[str, str]) -> list[str]:
    """Return one line per package that is missing or not installed at exactly its floor."""
    problems = []
    for name, floor in sorted(floors.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}: not installed (floor {floor})")
            continue
        if _release(installed) != _release(floor):
            problems.append(f"{name}: {installed} installed, floor is {floor}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Print the floors as pins, or with --check compare them with what is installed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check the installed versions")
    args = parser.parse_args(argv)
    try:
        floors = runtime_floors()
    except FloorError as exc:
        print(f"floors: {exc}", file=sys.stderr)
        return 2
    if not args.check:
        print("\n".join(f"{name}=={floor}" for name, floor in sorted(floors.items())))
        return 0
    problems = check_installed(floors)
    for line in problems:
        print(f"floors: {line}", file=sys.stderr)
    if problems:
        return 1
    pinned = ", ".join(f"{name} {floor}" for name, floor in sorted(floors.items()))
    print(f"floors: installed at exactly {pinned}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
