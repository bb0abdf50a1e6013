"""CAE's model pools (Lukas, Zhang, Kerschbaum, ICLR 2021): surrogates and references.

* **Surrogates** stand for stolen copies and are derived from the target: ``distill`` (a fresh
  model of the target's architecture trained on the *target's* labels for a seeded data
  fraction), ``finetune`` (the target fine-tuned, all layers, on a seeded fraction) and ``prune``
  (the target with global L1 magnitude pruning at ``prune_rate``, made permanent).
* **References** stand for independent models: fresh models trained on the true labels of a
  seeded data fraction. Their seeds start at ``seed`` (default 1000), apart from the seeds the
  zoo gives the independent models used for calibration (low hundreds), so the CAE pools never
  include a model that later decides a verdict.

Every model is a repository entry (weights + ONNX + config) whose lineage records its role
(``lineage.parameters.role``: "surrogate" or "reference") and how it was made; ``pools.json``
lists which is which, with paths relative to its own folder, and ``load_pools`` reads it back.
Defaults are cheap (one epoch-ish on 10 % of the data); raise ``epochs``/``fraction`` for
stronger pools.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from models.atomic import write_json
from models.datasets import ImageData, dataset_info
from models.entries import derive_config, finalize_entry, new_config
from models.errors import UserError
from models.modify import finetune, prune_model
from models.provenance import code_version, utc_now
from models.repository import Lineage, build_classifier, load_config, load_model
from models.training import TrainSettings, fit, seed_everything
from verifier_client.fingerprints import ModelPools

POOLS_FORMAT = "csrp-cae-pools"
POOLS_FILE = "pools.json"


@dataclass(frozen=True)
class PoolSettings:
    """How many of each kind, and how much training they get."""

    distill: int = 1
    finetune: int = 1
    prune: int = 1
    references: int = 2
    epochs: int = 2
    finetune_epochs: int = 1
    fraction: float = 0.1
    lr: float = 0.1
    finetune_lr: float = 0.01
    prune_rate: float = 0.3
    seed: int = 1000

    def check(self) -> None:
        if min(self.distill, self.finetune, self.prune, self.references) < 0:
            raise UserError("pool sizes must be >= 0")
        if self.distill + self.finetune + self.prune < 1:
            raise UserError("need at least one surrogate (distill, finetune or prune)")
        if self.references < 1:
            raise UserError("need at least one reference model")
        if self.epochs < 1 or self.finetune_epochs < 1:
            raise UserError("epochs must be >= 1")
        if not 0.0 < self.fraction <= 1.0:
            raise UserError(f"fraction must be in (0, 1], got {self.fraction}")
        if not 0.0 < self.prune_rate < 1.0:
            raise UserError(f"prune rate must be in (0, 1), got {self.prune_rate}")
        if not (self.lr > 0 and self.finetune_lr > 0):
            raise UserError("learning rates must be > 0")


def _relative(path: Path, base: Path) -> str:
    return os.path.relpath(path.resolve(), base.resolve())


def build_pools(target: str | Path, out_surrogates: str | Path, out_references: str | Path,
                train: ImageData, test: ImageData, settings: PoolSettings | None = None,
                pools_file: str | Path | None = None, show_progress: bool = True
                ) -> dict[str, Any]:
    """Train the pools into two repositories and write ``pools.json``; return its content.

    ``train`` is the split the subsets are drawn from, ``test`` is used for each entry's
    recorded accuracy. ``pools_file`` defaults to ``<out_surrogates>/pools.json``.
    """
    settings = settings or PoolSettings()
    settings.check()
    target, out_s, out_r = Path(target), Path(out_surrogates), Path(out_references)
    target_config = load_config(target)
    if list(train.images.shape[1:]) != target_config.input_shape:
        raise UserError(f"training images {list(train.images.shape[1:])} do not fit the "
                        f"target's input shape {target_config.input_shape}")
    target_model, _ = load_model(target)
    pools_path = Path(pools_file) if pools_file is not None else out_s / POOLS_FILE
    info = dataset_info(target_config.dataset)
    surrogates: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []

    def record(out: Path, kind: str, seed: int | None, config: Any) -> dict[str, Any]:
        return {"name": out.name, "path": _relative(out, pools_path.parent), "kind": kind,
                "seed": seed, "test_top1": config.metrics.get("test_top1")}

    def surrogate_config(name: str, kind: str, seed: int | None, extra: dict[str, Any]) -> Any:
        return derive_config(target_config, str(target), name, kind,
                             {"role": "surrogate", "pool_target": str(target), **extra}, seed,
                             preprocessing=None)

    for index in range(settings.distill):
        seed = settings.seed + 100 + index
        out = out_s / f"sur-distill-{index + 1}"
        subset = train.subset(settings.fraction, seed)
        with torch.no_grad():
            labels = torch.cat([target_model(subset.floats(slice(s, s + 500))).argmax(1)
                                for s in range(0, len(subset), 500)])
        distilled = ImageData(subset.info, subset.split, subset.images, labels,
                              source=f"{subset.source} labelled by {target}")
        config = surrogate_config(out.name, "distill", seed, {
            "epochs": settings.epochs, "fraction": settings.fraction, "lr": settings.lr,
            "labels": "target-hard-labels", "train_samples": len(subset)})
        seed_everything(seed)
        model = build_classifier(config).train()
        fit(model, distilled, TrainSettings(epochs=settings.epochs, lr=settings.lr, seed=seed),
            description=f"distill {out.name}", show_progress=show_progress)
        surrogates.append(record(out, "distill", seed, finalize_entry(out, model, config, test)))

    for index in range(settings.finetune):
        seed = settings.seed + 200 + index
        out = out_s / f"sur-finetune-{index + 1}"
        subset = train.subset(settings.fraction, seed)
        config = surrogate_config(out.name, "finetune", seed, {
            "epochs": settings.finetune_epochs, "fraction": settings.fraction,
            "lr": settings.finetune_lr, "layers": "all", "train_samples": len(subset)})
        model = copy.deepcopy(target_model)
        finetune(model, subset, TrainSettings(epochs=settings.finetune_epochs,
                                              lr=settings.finetune_lr, seed=seed),
                 description=f"finetune {out.name}", show_progress=show_progress)
        surrogates.append(record(out, "finetune", seed, finalize_entry(out, model, config, test)))

    for index in range(settings.prune):
        out = out_s / f"sur-prune-{index + 1}"
        model = copy.deepcopy(target_model)
        measured = prune_model(model, settings.prune_rate)
        config = surrogate_config(out.name, "prune", None, {
            "rate": settings.prune_rate, "scope": "global-l1",
            "measured_sparsity": round(measured, 6)})
        surrogates.append(record(out, "prune", None, finalize_entry(out, model, config, test)))

    for index in range(settings.references):
        seed = settings.seed + index
        out = out_r / f"ref-{index + 1}"
        subset = train.subset(settings.fraction, seed)
        lineage = Lineage(modification="train", seed=seed, parameters={
            "role": "reference", "pool_target": str(target), "epochs": settings.epochs,
            "fraction": settings.fraction, "lr": settings.lr, "train_samples": len(subset)})
        config = new_config(out.name, target_config.arch, info, lineage)
        seed_everything(seed)
        model = build_classifier(config).train()
        fit(model, subset, TrainSettings(epochs=settings.epochs, lr=settings.lr, seed=seed),
            description=f"reference {out.name}", show_progress=show_progress)
        references.append(record(out, "independent", seed,
                                 finalize_entry(out, model, config, test)))

    manifest = {"format": POOLS_FORMAT, "format_version": 1,
                "target": {"path": str(target), "name": target_config.name,
                           "arch": target_config.arch},
                "surrogates": surrogates, "references": references,
                "settings": asdict(settings), "code_version": code_version(),
                "created": utc_now()}
    write_json(pools_path, manifest)
    return manifest


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: pools file not found")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != POOLS_FORMAT:
        raise UserError(f"{path}: not a {POOLS_FORMAT} file")
    return manifest


def pool_paths(path: str | Path) -> tuple[list[Path], list[Path]]:
    """Surrogate and reference entry paths listed by a pools file."""
    path = Path(path)
    manifest = read_manifest(path)
    try:
        surrogates = [path.parent / item["path"] for item in manifest["surrogates"]]
        references = [path.parent / item["path"] for item in manifest["references"]]
    except (KeyError, TypeError):
        raise UserError(f"{path}: malformed pools file (surrogates/references)") from None
    return surrogates, references


def load_pools(surrogates: list[str | Path], references: list[str | Path],
               device: str | torch.device = "cpu") -> ModelPools:
    """Torch models of the given entries, with a description for the set's metadata."""
    if not surrogates or not references:
        raise UserError("CAE needs at least one surrogate and one reference model")
    both = [Path(p).resolve() for p in surrogates] + [Path(p).resolve() for p in references]
    if len(set(both)) != len(both):
        raise UserError("a model appears twice in the pools (or in both of them)")

    def describe(path: Path) -> dict[str, Any]:
        config = load_config(path)
        return {"path": str(path), "name": config.name, "arch": config.arch,
                "modification": config.lineage.modification, "seed": config.lineage.seed,
                "role": config.lineage.parameters.get("role")}

    s_paths, r_paths = [Path(p) for p in surrogates], [Path(p) for p in references]
    return ModelPools(surrogates=[load_model(p, device)[0] for p in s_paths],
                      references=[load_model(p, device)[0] for p in r_paths],
                      description={"surrogates": [describe(p) for p in s_paths],
                                   "references": [describe(p) for p in r_paths]})
