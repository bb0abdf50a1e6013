"""The population manifest (``<zoo>/population.json``): every entry of a zoo with its role.

Written by the zoo builder from its plan, read by every evaluation that needs roles (which
entries calibrate, which are held out, which are pirates and of what kind). Format::

    {"format": "csrp-testbed/population/v1", "target": "target", "code_version", "created",
     "entries": [{"name", "role", "category", "kind", "parent", "arch", "seed", "parameters"}]}

Reading checks it: a role no entry has (when asked for), an unknown role, a duplicate, or an
entry missing from the zoo is a one-line ``UserError``. ``sha256`` identifies the manifest in
every output that used it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.atomic import write_json
from models.errors import UserError
from models.provenance import code_version, utc_now
from models.repository import CONFIG_FILE
from models.zoo.plan import ROLES, PlanEntry

MANIFEST_FILE = "population.json"
MANIFEST_FORMAT = "csrp-testbed/population/v1"


def write_manifest(zoo: Path, plan: Sequence[PlanEntry], target: str = "target") -> Path:
    """Write the manifest of the plan's entries that exist in ``zoo`` (atomically)."""
    present = [e.describe() for e in plan if (zoo / e.name / CONFIG_FILE).is_file()]
    path = zoo / MANIFEST_FILE
    write_json(path, {"format": MANIFEST_FORMAT, "target": target, "code_version": code_version(),
                      "created": utc_now(), "entries": present})
    return path


@dataclass(frozen=True)
class Manifest:
    """A checked manifest: its entries (dicts as written), the zoo folder and the file's sha256."""

    zoo: Path
    target: str
    entries: tuple[dict[str, Any], ...]
    sha256: str

    def names(self, role: str) -> list[str]:
        """Entry names with ``role``; ``UserError`` when no entry has it."""
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        found = [e["name"] for e in self.entries if e["role"] == role]
        if not found:
            raise UserError(f"{self.zoo / MANIFEST_FILE}: no entry has the role {role!r}")
        return found

    def categories(self) -> dict[str, list[str]]:
        """Positive entries by attack category (in manifest order)."""
        out: dict[str, list[str]] = {}
        for entry in self.entries:
            if entry["role"] == "positive":
                out.setdefault(entry["category"], []).append(entry["name"])
        return out

    def heldout_categories(self) -> dict[str, list[str]]:
        """Held-out negatives by kind (architecture; ``independent-disjoint``: never saw the
        owner's private points), in manifest order."""
        out: dict[str, list[str]] = {}
        for entry in self.entries:
            if entry["role"] == "heldout-negative":
                out.setdefault(entry.get("category") or "held-out", []).append(entry["name"])
        return out

    def entry(self, name: str) -> dict[str, Any]:
        for entry in self.entries:
            if entry["name"] == name:
                return entry
        raise UserError(f"{self.zoo / MANIFEST_FILE}: no entry {name!r}")


def load_manifest(zoo: str | Path) -> Manifest:
    """Read and check ``<zoo>/population.json``."""
    zoo = Path(zoo)
    path = zoo / MANIFEST_FILE
    try:
        data = path.read_bytes()
        document = json.loads(data)
    except FileNotFoundError:
        raise UserError(f"{path}: no population manifest (build the zoo: python -m models zoo "
                        f"--out {zoo})") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable manifest ({error})") from None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT \
            or not isinstance(document.get("entries"), list):
        raise UserError(f"{path}: not a {MANIFEST_FORMAT} manifest")
    names: set[str] = set()
    for entry in document["entries"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise UserError(f"{path}: malformed entry {entry!r}")
        name = entry["name"]
        if entry.get("role") not in ROLES:
            raise UserError(f"{path}: entry {name!r} has unknown role {entry.get('role')!r}")
        if name in names:
            raise UserError(f"{path}: entry {name!r} is listed twice")
        if not (zoo / name / CONFIG_FILE).is_file():
            raise UserError(f"{path}: entry {name!r} is missing from {zoo}")
        names.add(name)
    target = str(document.get("target", "target"))
    if target not in names:
        raise UserError(f"{path}: the target {target!r} is not among the entries")
    return Manifest(zoo, target, tuple(document["entries"]), hashlib.sha256(data).hexdigest())
