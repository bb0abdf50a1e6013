"""Pinned requirements of an install, from the versions the tests ran with.

    .venv/bin/python docker/pin.py client > docker/requirements-client.txt
    .venv/bin/python docker/pin.py edge > docker/requirements-edge.txt

Walks the project's dependencies for the extras named (and every package they need, as
installed in this environment) with the markers evaluated for the images' platform (Linux
x86-64, CPython 3.11), and prints ``name==version`` per line. The images install these pins
from a wheelhouse, then the project with ``--no-deps``, so an image runs the versions the test
suite ran. Packages this environment holds under another name are mapped (the dev install has
the GPU build of ONNX Runtime; the edge image takes the CPU build of the same version).

Standard library only (``importlib.metadata``; ``packaging`` ships with pip): it runs in the
dev environment, but ``make wheelhouse`` then needs nothing but these files and pip.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
TARGET = {"sys_platform": "linux", "platform_machine": "x86_64", "platform_system": "Linux",
          "os_name": "posix", "python_version": "3.11", "python_full_version": "3.11.2",
          "implementation_name": "cpython", "platform_python_implementation": "CPython"}
#: installed here -> pinned under this name (same release series)
ALIASES = {"onnxruntime": "onnxruntime-gpu"}


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**TARGET, "extra": extra})
               for extra in (extras or {""}))


def project_requirements(extras: list[str]) -> list[Requirement]:
    """The project's requirements for ``extras``, its self-references expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    found: list[Requirement] = [Requirement(r) for r in project["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in optional[extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == "csrp-testbed":
                todo.extend(requirement.extras)
            else:
                found.append(requirement)
    return [r for r in found if _applies(r, set())]


def closure(roots: list[Requirement]) -> dict[str, str]:
    """``{name: version}`` of the roots and everything they need, as installed here."""
    pins: dict[str, str] = {}
    todo = [(r, set(r.extras)) for r in roots]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        installed = ALIASES.get(name, name)
        try:
            dist = metadata.distribution(installed)
        except metadata.PackageNotFoundError:
            sys.exit(f"error: {installed} is not installed here; run `make setup` first")
        key = (name, frozenset(extras))
        if name in pins and key in _done:
            continue
        _done.add(key)
        pins[name] = dist.version
        for text in dist.requires or []:
            child = Requirement(text)
            if _applies(child, extras):
                todo.append((child, set(child.extras)))
    return pins


_done: set[tuple[str, frozenset[str]]] = set()


def main(argv: list[str]) -> int:
    extras = [e for arg in argv for e in arg.split(",") if e]
    pins = closure(project_requirements(extras))
    print(f"# pinned by docker/pin.py {' '.join(argv)} from the tested environment")
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
