"""The default zoo (docs/design.md 4): a population of suspects around one Fashion-MNIST
ResNet-20 target, built by ``python -m models zoo`` and shipped in ``zoo/``.

* ``plan``: every entry as data (role, attack category, recipe); ``default_plan()``;
* ``steps``: how each kind of entry is made;
* ``build``: local and Ray executors (resumable, parents first, failures reported and skipped);
* ``manifest``: ``population.json``, the roles every evaluation reads.

Entries that are only ever queried are shipped ONNX-only to keep the repository small; the
target keeps its safetensors weights (white-box fingerprinting).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from models.atomic import write_json
from models.errors import UserError
from models.repository import CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE, load_config, save_entry
from models.zoo.build import EXECUTORS, Record, check_order, run_local, run_ray
from models.zoo.manifest import MANIFEST_FILE, Manifest, load_manifest, write_manifest
from models.zoo.plan import (
    CALIBRATION_NEGATIVES,
    ROLES,
    ZOO_CSRP,
    ZOO_CSRP_STRONG,
    ZOO_CSRP_WEAK,
    ZOO_RDG,
    ZOO_RDG_MATCHED,
    PlanEntry,
    default_plan,
)
from models.zoo.steps import DataSpec

__all__ = [
    "CALIBRATION_NEGATIVES",
    "EXECUTORS",
    "MANIFEST_FILE",
    "ROLES",
    "ZOO_CSRP",
    "ZOO_CSRP_STRONG",
    "ZOO_CSRP_WEAK",
    "ZOO_RDG",
    "ZOO_RDG_MATCHED",
    "DataSpec",
    "Manifest",
    "PlanEntry",
    "build_zoo",
    "default_plan",
    "load_manifest",
    "onnx_only",
    "write_manifest",
]


def onnx_only(entry: Path) -> None:
    """Drop an entry's safetensors weights (it is only ever queried, never differentiated)."""
    config = load_config(entry)
    if not (entry / ONNX_FILE).is_file():
        raise FileNotFoundError(f"{entry}: no {ONNX_FILE}")
    (entry / WEIGHTS_FILE).unlink(missing_ok=True)
    if config.backend != "onnx":
        save_entry(entry, config.model_copy(update={"backend": "onnx"}),
                   onnx_bytes=(entry / ONNX_FILE).read_bytes())


@contextmanager
def _locked(zoo: Path) -> Iterator[None]:
    """Hold a lock on the zoo folder itself (two builds into one zoo merge their records,
    never lose them; no lock file is left behind); a no-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(zoo, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _record_build(zoo: Path, records: dict[str, Record], calibration: int,
                  plan: Sequence[PlanEntry]) -> None:
    """Merge ``records`` into BUILD.json and rewrite population.json (under the lock)."""
    build_file = zoo / "BUILD.json"
    with _locked(zoo):
        earlier = json.loads(build_file.read_text()).get("steps", {}) \
            if build_file.is_file() else {}
        steps: dict[str, Any] = dict(earlier)
        for name, record in records.items():
            # an entry that already existed keeps the record of the run that built it
            steps[name] = earlier.get(name, record) if record["status"] == "existing" \
                else record
        write_json(build_file, {"steps": steps, "calibration_negatives": calibration,
                                "csrp": ZOO_CSRP, "rdg": ZOO_RDG,
                                "rdg_matched": ZOO_RDG_MATCHED})
        write_manifest(zoo, plan)


def build_zoo(zoo: Path, calibration: int = CALIBRATION_NEGATIVES,
              only: Sequence[str] | None = None, *, plan: Sequence[PlanEntry] | None = None,
              executor: str = "local", address: str | None = None,
              data: DataSpec | None = None, gpus_per_task: float = 0.0,
              jobs: int = 1) -> dict[str, Record]:
    """Build (or finish building) the zoo's entries; write BUILD.json and population.json.

    ``plan`` defaults to :func:`default_plan` with ``calibration`` independents; ``only``
    restricts the build to some entries (their parents must exist); ``jobs`` local worker
    processes. Every finished entry is slimmed and recorded at once, so a build stopped at any
    point keeps what it finished. Returns each entry's record (``built`` with seconds,
    ``failed`` with the error, or ``skipped``; an entry that existed keeps the record of the
    run that built it, else ``existing``).
    """
    if executor not in EXECUTORS:
        raise UserError(f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    zoo = Path(zoo)
    zoo.mkdir(parents=True, exist_ok=True)
    full_plan = list(plan) if plan is not None else default_plan(calibration)
    unknown = sorted(set(only or ()) - {e.name for e in full_plan})
    if unknown:
        raise UserError(f"no zoo entry {', '.join(map(repr, unknown))} in the plan")
    chosen = [e for e in full_plan if not only or e.name in only]
    check_order(chosen, zoo)
    data = data or DataSpec()
    # parents keep their weights until the end (a child may fine-tune them)
    keep = {"target"} | {entry.parent for entry in full_plan if entry.parent}
    roles = {entry.name: entry.role for entry in full_plan}

    def on_record(name: str, record: Record) -> None:
        print(json.dumps({name: record}), flush=True)
        if record["status"] == "built" and roles[name] != "target" and name not in keep:
            onnx_only(zoo / name)
        if record["status"] != "existing":
            _record_build(zoo, {name: record}, calibration, full_plan)

    if executor == "ray":
        records = run_ray(chosen, zoo, data, on_record, address, gpus_per_task)
    else:
        records = run_local(chosen, zoo, data, on_record, jobs)
    for entry in full_plan:  # idempotent: also slims entries trained by hand
        if entry.role != "target" and (zoo / entry.name / CONFIG_FILE).is_file():
            onnx_only(zoo / entry.name)
    _record_build(zoo, records, calibration, full_plan)
    steps = json.loads((zoo / "BUILD.json").read_text())["steps"]
    failed = [n for n, r in records.items() if r["status"] in ("failed", "skipped")]
    if failed:
        print(f"{len(failed)} entr{'y' if len(failed) == 1 else 'ies'} not built: "
              f"{', '.join(failed)}", file=sys.stderr)
    return {name: steps[name] for name in records}
