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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from models.atomic import write_json
from models.datasets import ImageData, dataset_info
from models.entries import derive_config, finalize_entry, new_config
from models.errors import UserError
from models.modify import distill_entry, finetune, prune_model
from models.provenance import code_version, utc_now
from models.repository import Lineage, build_classifier, load_config, load_model
from models.training import TrainSettings, fit, seed_everything
from verifier_client.fingerprints import ModelPools
from verifier_client.pool_settings import PoolSettings

POOLS_FORMAT = "csrp-cae-pools"
POOLS_FILE = "pools.json"


def _relative(path: Path, base: Path) -> str:
    return os.path.relpath(path.resolve(), base.resolve())


class _PoolBuilder:
    """Writes the pool entries one kind at a time and keeps their ``pools.json`` records."""

    def __init__(self, target: Path, train: ImageData, test: ImageData, settings: PoolSettings,
                 pools_path: Path, show_progress: bool) -> None:
        self.target, self.train, self.test, self.settings = target, train, test, settings
        self.pools_path, self.show_progress = pools_path, show_progress
        self.config = load_config(target)
        if list(train.images.shape[1:]) != self.config.input_shape:
            raise UserError(f"training images {list(train.images.shape[1:])} do not fit the "
                            f"target's input shape {self.config.input_shape}")
        self.model, _ = load_model(target)
        self.surrogates: list[dict[str, Any]] = []
        self.references: list[dict[str, Any]] = []

    def _record(self, out: Path, kind: str, seed: int | None, config: Any) -> dict[str, Any]:
        return {"name": out.name, "path": _relative(out, self.pools_path.parent), "kind": kind,
                "seed": seed, "test_top1": config.metrics.get("test_top1")}

    def _surrogate_config(self, name: str, kind: str, seed: int | None,
                          extra: dict[str, Any]) -> Any:
        return derive_config(self.config, str(self.target), name, kind,
                             {"role": "surrogate", "pool_target": str(self.target), **extra},
                             seed, preprocessing=None)

    def distill(self, index: int, out: Path) -> None:
        """A fresh model trained on the target's labels (``models.modify.distill_entry``)."""
        s, seed = self.settings, self.settings.seed + 100 + index
        subset = self.train.subset(s.fraction, seed)
        extra = {"role": "surrogate", "fraction": s.fraction, "pool_target": str(self.target),
                 "labels": "target-hard-labels"}
        config = distill_entry(self.target, out, subset, self.test, epochs=s.epochs, lr=s.lr,
                               seed=seed, parameters=extra, show_progress=self.show_progress)
        self.surrogates.append(self._record(out, "distill", seed, config))

    def finetune(self, index: int, out: Path) -> None:
        s, seed = self.settings, self.settings.seed + 200 + index
        subset = self.train.subset(s.fraction, seed)
        config = self._surrogate_config(out.name, "finetune", seed, {
            "epochs": s.finetune_epochs, "fraction": s.fraction, "lr": s.finetune_lr,
            "layers": "all", "train_samples": len(subset)})
        model = copy.deepcopy(self.model)
        finetune(model, subset, TrainSettings(epochs=s.finetune_epochs, lr=s.finetune_lr,
                                              seed=seed),
                 description=f"finetune {out.name}", show_progress=self.show_progress)
        self.surrogates.append(self._record(out, "finetune", seed,
                                            finalize_entry(out, model, config, self.test)))

    def prune(self, index: int, out: Path) -> None:
        model = copy.deepcopy(self.model)
        measured = prune_model(model, self.settings.prune_rate)
        config = self._surrogate_config(out.name, "prune", None, {
            "rate": self.settings.prune_rate, "scope": "global-l1",
            "measured_sparsity": round(measured, 6)})
        self.surrogates.append(self._record(out, "prune", None,
                                            finalize_entry(out, model, config, self.test)))

    def reference(self, index: int, out: Path) -> None:
        s, seed = self.settings, self.settings.seed + index
        subset = self.train.subset(s.fraction, seed)
        lineage = Lineage(modification="train", seed=seed, parameters={
            "role": "reference", "pool_target": str(self.target), "epochs": s.epochs,
            "fraction": s.fraction, "lr": s.lr, "train_samples": len(subset)})
        config = new_config(out.name, self.config.arch, dataset_info(self.config.dataset),
                            lineage)
        seed_everything(seed)
        model = build_classifier(config).train()
        fit(model, subset, TrainSettings(epochs=s.epochs, lr=s.lr, seed=seed),
            description=f"reference {out.name}", show_progress=self.show_progress)
        self.references.append(self._record(out, "independent", seed,
                                            finalize_entry(out, model, config, self.test)))


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
    pools_path = Path(pools_file) if pools_file is not None else out_s / POOLS_FILE
    builder = _PoolBuilder(target, train, test, settings, pools_path, show_progress)
    for index in range(settings.distill):
        builder.distill(index, out_s / f"sur-distill-{index + 1}")
    for index in range(settings.finetune):
        builder.finetune(index, out_s / f"sur-finetune-{index + 1}")
    for index in range(settings.prune):
        builder.prune(index, out_s / f"sur-prune-{index + 1}")
    for index in range(settings.references):
        builder.reference(index, out_r / f"ref-{index + 1}")
    manifest = {"format": POOLS_FORMAT, "format_version": 1,
                "target": {"path": str(target), "name": builder.config.name,
                           "arch": builder.config.arch},
                "surrogates": builder.surrogates, "references": builder.references,
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
