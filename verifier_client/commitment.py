"""Committed fingerprint sets: what a verifier may require before it judges a claim.

Liu et al., "False Claims against Model Ownership Resolution" (USENIX Security 2024), show that
an accuser can make an innocent model match samples crafted on a model of its own (transferable
adversarial examples, ``verifier_client.fingerprints.transfer``), and that the defences lie in
the protocol: the claim must be tied to the claimant's model, fixed before the suspect is known,
and judged against a null the claimant did not choose. This module gives the first two as a
registry; the third is the verifier calibrating the set on its own independents
(``calibrate``), which ``verifier_client.studies.false_claims`` measures.

A commitment (``commit``) records a set's SHA-256, method and size, the claimant's registered
model (its name and the SHA-256 of its ``model.onnx``) and the time of commitment (UTC). It is
accepted only when the registered model gives every sample of the set its recorded label: a set
is made on its target (every method keeps only samples the target labels as recorded), so a set
crafted on another model, such as the suspect, is refused. ``verify --commitments`` then checks
that every set it uses is committed, optionally before a given time (the suspect's release),
and prints the commitments it relied on.

The registry is one JSON file (``{"commitments": [...]}``), read with size and schema checks and
rewritten atomically.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.atomic import write_json
from models.config import ONNX_FILE, load_config
from models.errors import UserError
from models.files import read_regular_file
from models.provenance import utc_now

__all__ = ["Commitment", "check_committed", "commit_set", "load_registry", "model_digest"]

MAX_REGISTRY_BYTES = 16 * 1024 * 1024
HEX64 = r"^[0-9a-f]{64}$"


class Commitment(BaseModel):
    """One committed set (see the module doc)."""

    model_config = ConfigDict(extra="forbid")
    set_sha256: str = Field(pattern=HEX64)
    method: str = Field(min_length=1, max_length=64)
    n: int = Field(ge=1)
    model: str = Field(min_length=1, max_length=128)
    model_sha256: str = Field(pattern=HEX64)
    claimant: str = Field(default="", max_length=256)
    committed: datetime
    set_created: str | None = None


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    commitments: list[Commitment] = Field(default_factory=list)


def model_digest(entry: str | Path) -> str:
    """SHA-256 of an entry's ``model.onnx`` (the registered model's identity)."""
    data = read_regular_file(Path(entry) / ONNX_FILE, 2 * 1024 ** 3, "model file")
    return hashlib.sha256(data).hexdigest()


def load_registry(path: str | Path) -> Registry:
    """The registry at ``path`` (an empty one when the file does not exist yet)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return Registry()
    data = read_regular_file(path, MAX_REGISTRY_BYTES, "commitment registry")
    try:
        return Registry.model_validate_json(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: not a commitment registry ({where}: {first['msg']})") from None


def commit_set(fset: Any, entry: str | Path, registry_path: str | Path,
               claimant: str = "") -> Commitment:
    """Commit ``fset`` (a loaded ``FingerprintSet``) as made on the registered model ``entry``
    and append it to the registry; ``UserError`` when the model does not give every sample its
    label, or when the set is already committed to another model."""
    import numpy as np

    from models.runtime import load_predictor

    entry = Path(entry)
    config = load_config(entry)
    if fset.sha256 is None:
        raise UserError("commit a set loaded from its file (its SHA-256 is what is committed)")
    fset.check_input_shape(config.input_shape, f"model {entry}")
    predictor = load_predictor(entry)
    import torch

    labels = predictor.predict(torch.from_numpy(np.asarray(fset.images_array))).numpy()
    mismatched = int((labels != np.asarray(fset.labels_array)).sum())
    if mismatched:
        raise UserError(f"{fset.name}: {entry.name} gives {mismatched} of {fset.n} samples "
                        "another label than recorded; the set was not made on this model")
    registry = load_registry(registry_path)
    digest = model_digest(entry)
    for old in registry.commitments:
        if old.set_sha256 == fset.sha256:
            if old.model_sha256 != digest:
                raise UserError(f"{fset.name}: already committed to model {old.model} "
                                f"({old.committed.isoformat()})")
            return old
    record = Commitment(set_sha256=fset.sha256, method=fset.method, n=fset.n,
                        model=config.name, model_sha256=digest, claimant=claimant,
                        committed=datetime.fromisoformat(utc_now().replace("Z", "+00:00")),
                        set_created=fset.metadata.get("created"))
    registry.commitments.append(record)
    write_json(registry_path, json.loads(registry.model_dump_json()))
    return record


def check_committed(sets: list[Any], registry_path: str | Path,
                    committed_before: datetime | None = None) -> list[Commitment]:
    """The commitment of every set (``UserError`` naming the first set that has none, or whose
    commitment is not before ``committed_before``, or whose sets were committed to different
    models: one claim, one claimant's model)."""
    registry = load_registry(registry_path)
    by_hash = {c.set_sha256: c for c in registry.commitments}
    found = []
    for fset in sets:
        record = by_hash.get(fset.sha256 or "")
        if record is None:
            raise UserError(f"{fset.name}: not committed in {registry_path} (commit it before "
                            "verifying: python -m verifier_client commit)")
        if committed_before is not None and record.committed >= committed_before:
            raise UserError(f"{fset.name}: committed {record.committed.isoformat()}, not "
                            f"before {committed_before.isoformat()}")
        found.append(record)
    models = {c.model_sha256 for c in found}
    if len(models) > 1:
        raise UserError("the sets were committed to different models: one claim is made for "
                        "one registered model")
    return found
