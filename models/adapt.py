"""The data-limited pirate (seed paper, section 4): adapt a stolen copy to its own preprocessing.

The pirate serves ``f^g(g(x))``: ``g`` is a random transform (CSRP, or RDG as the paper's
ablation) and ``f^g`` is the stolen model fine-tuned (all layers) on ``g``-augmented clean data,
a seeded ``fraction`` of the training set, for a few epochs. With ``epochs = 0`` it is the
data-free pirate: the same weights, served behind ``g``.

* ``as_transform(spec_or_module, input_shape)``: the transform, built once from a config.json
  spec (``UserError`` naming the option and its range) and checked against the input; a built
  module passes through, so a command line that parsed ``--transform`` once never parses again;
* ``batch_transform(module)``: the transform as the ``(images, generator) -> images`` callable
  that ``models.training.fit`` and ``accuracy`` take (fresh per-sample draws);
* ``accuracy_under(...)``: top-1/top-5 over ``repeats`` independent draws, draw ``r`` seeded with
  ``seed + r`` so that two models evaluated with the same seed see the very same draws;
* ``adapt_model`` / ``adapt_entry``: the fine-tuning loop (``models.modify.finetune``, i.e.
  ``models.training.fit``: random crop + flip, *then* the transform) and the repository entry
  whose config carries the preprocessing, so the server applies the same ``g`` at inference.

CSRP backend: ``models.transforms.csrp`` picks a ``torch.compile``-fused kernel on CPU for
batches of >= 2**16 elements when no pixel gradient is needed (``backend="auto"``), which costs a
compile on first use (measured here: ~10 s) and a dynamic-shape recompile on the next new batch
size (~4 s; a fine-tuning run meets three sizes: the full batches, the last partial batch and
the evaluation batch). Training needs gradients with respect to the weights only, so the
transform runs under ``torch.no_grad`` either way, but it is also a negligible part of a step:
about 0.3 ms eager for 128 x 1 x 28 x 28 against 0.7-5 s for a ResNet-20 forward + backward on
this 2-core machine. The default here is therefore ``backend="eager"`` (no compile, no
recompiles); ``"auto"`` / ``"compiled"`` stay available for long runs on large images.
"""

from __future__ import annotations

import math
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.atomic import atomic_dir, write_json
from models.datasets import ImageData
from models.entries import derive_config, finalize_entry
from models.errors import UserError
from models.modify.base import comparison_metrics, evaluate, resolve_parent
from models.modify.finetune import finetune, relative_change
from models.repository import (
    CONFIG_FILE,
    ONNX_FILE,
    WEIGHTS_FILE,
    ModelConfig,
    load_model,
)
from models.runtime import load_predictor
from models.training import BatchTransform, TrainSettings, accuracy
from models.transforms import RandomTransform, build_transform

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LR",
    "DEFAULT_REPEATS",
    "DrawAccuracy",
    "accuracy_under",
    "adapt_entry",
    "adapt_model",
    "adapt_modification",
    "as_transform",
    "batch_transform",
    "check_adapt",
    "data_free_modification",
]

DEFAULT_LR = 0.01
DEFAULT_BATCH_SIZE = 128
DEFAULT_REPEATS = 5


def adapt_modification(spec: dict[str, Any]) -> str:
    """Lineage ``modification`` of a fine-tuned (data-limited) pirate: ``adapt-<transform>``."""
    return f"adapt-{spec['name']}"


def data_free_modification(spec: dict[str, Any]) -> str:
    """Lineage ``modification`` of a data-free pirate: ``<transform>-data-free``."""
    return f"{spec['name']}-data-free"


# --------------------------------------------------------------------------------------------
# specs and transforms
# --------------------------------------------------------------------------------------------


def as_transform(transform: dict[str, Any] | RandomTransform | None,
                 input_shape: Sequence[int] | None = None) -> RandomTransform | None:
    """The transform a spec names, built once (a built one passes through); ``UserError`` when
    the spec is malformed or, given ``input_shape`` ``[C, H, W]``, the transform cannot work on
    it (e.g. a CSRP padding that makes the image vanish)."""
    try:
        module = transform if isinstance(transform, RandomTransform) else \
            build_transform(transform)
        if module is not None and input_shape is not None:
            module.check_fits(input_shape)
    except ValueError as error:
        raise UserError(str(error)) from None
    return module


def batch_transform(spec: dict[str, Any] | nn.Module | None,
                    backend: str = "eager") -> BatchTransform | None:
    """``spec`` (or a built transform module) as ``transform(images, generator)`` for
    ``fit`` / ``accuracy``: fresh per-sample parameters from ``generator`` every call, run under
    ``torch.no_grad`` (the pixels never need a gradient here). ``backend`` is the kernel a
    transform with several uses (``RandomTransform.set_kernel``; see the module docstring for why
    ``"eager"`` is the default)."""
    module = spec if isinstance(spec, nn.Module) else build_transform(spec)
    if module is None:
        return None
    if isinstance(module, RandomTransform):
        module.set_kernel(backend)

    def apply(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            return module(images, generator)

    return apply


# --------------------------------------------------------------------------------------------
# accuracy over random draws
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrawAccuracy:
    """Top-1/top-5 of one model on one dataset, one value per transform draw.

    Draw ``r`` used a generator seeded with ``seeds[r]``; without a transform there is a single
    (deterministic) draw and the spread is 0.
    """

    top1s: list[float]
    top5s: list[float]
    seeds: list[int] = field(default_factory=list)
    samples: int = 0

    @property
    def repeats(self) -> int:
        return len(self.top1s)

    @property
    def top1(self) -> float:
        return statistics.fmean(self.top1s)

    @property
    def top5(self) -> float:
        return statistics.fmean(self.top5s)

    @property
    def top1_std(self) -> float:
        return statistics.stdev(self.top1s) if len(self.top1s) > 1 else 0.0

    @property
    def top5_std(self) -> float:
        return statistics.stdev(self.top5s) if len(self.top5s) > 1 else 0.0

    def summary(self, prefix: str = "") -> dict[str, float | int]:
        """Mean, sample standard deviation, min and max of top-1 and top-5 (4 decimals)."""
        out: dict[str, float | int] = {}
        for name, values, std in (("top1", self.top1s, self.top1_std),
                                  ("top5", self.top5s, self.top5_std)):
            out[f"{prefix}{name}"] = round(statistics.fmean(values), 4)
            out[f"{prefix}{name}_std"] = round(std, 4)
            out[f"{prefix}{name}_min"] = round(min(values), 4)
            out[f"{prefix}{name}_max"] = round(max(values), 4)
        out[f"{prefix}repeats"] = self.repeats
        return out


def accuracy_under(logits_fn: Callable[[torch.Tensor], torch.Tensor], data: ImageData,
                   transform: dict[str, Any] | nn.Module | None, repeats: int = DEFAULT_REPEATS,
                   seed: int = 0, batch_size: int = 500,
                   backend: str = "eager") -> DrawAccuracy:
    """Accuracy of ``logits_fn`` (a torch module or ``Predictor.logits``) on ``data`` under
    ``transform`` (a spec, a module or ``None``), over ``repeats`` independent draws.

    Draw ``r`` is ``models.training.accuracy`` with a generator seeded ``seed + r``: every
    sample gets its own parameters, and two models evaluated with the same ``seed`` and
    ``batch_size`` see identical draws (a paired comparison). ``None`` runs one clean pass.
    """
    if repeats < 1:
        raise UserError(f"repeats must be >= 1, got {repeats}")
    fn = batch_transform(transform, backend)
    draws = range(repeats) if fn is not None else range(1)
    top1s, top5s, seeds = [], [], []
    for r in draws:
        result = accuracy(logits_fn, data, fn, repeats=1, seed=seed + r, batch_size=batch_size)
        top1s.append(result.top1)
        top5s.append(result.top5)
        seeds.append(seed + r)
    return DrawAccuracy(top1s, top5s, seeds, len(data))


# --------------------------------------------------------------------------------------------
# the pirate
# --------------------------------------------------------------------------------------------


def check_adapt(epochs: int, fraction: float, lr: float, batch_size: int = DEFAULT_BATCH_SIZE,
                repeats: int = DEFAULT_REPEATS) -> None:
    """``UserError`` naming the first bad setting (``epochs = 0`` is the data-free pirate)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise UserError(f"--epochs must be an integer >= 0 (0 = data-free), got {epochs}")
    if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
        raise UserError(f"--fraction (the pirate's share of the training set) must be in "
                        f"(0, 1], got {fraction}")
    if not (math.isfinite(lr) and 0.0 < lr <= 10.0):
        raise UserError(f"--lr must be in (0, 10], got {lr}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    if repeats < 1:
        raise UserError(f"--repeats must be >= 1, got {repeats}")


def adapt_model(model: nn.Module, train: ImageData,
                spec: dict[str, Any] | RandomTransform, epochs: int,
                lr: float = DEFAULT_LR, seed: int = 0, batch_size: int = DEFAULT_BATCH_SIZE,
                backend: str = "eager", description: str = "adapt",
                show_progress: bool = True) -> nn.Module:
    """Fine-tune all layers of ``model`` in place on ``train`` seen through ``spec``.

    Every batch: seeded random crop + flip, then the transform with fresh per-sample parameters,
    all drawn from one generator seeded by ``seed`` (``models.training.fit`` via
    ``models.modify.finetune``): SGD + Nesterov, one-cycle cosine schedule peaking at ``lr``.
    Returns the model in eval mode.
    """
    transform = batch_transform(spec, backend)
    if transform is None:
        raise UserError("adaptation needs a transform (e.g. csrp or rdg); plain fine-tuning is "
                        "`python -m models modify ftal`")
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    return finetune(model, train, settings, transform=transform, description=description,
                    show_progress=show_progress)


def _augment_label(spec: dict[str, Any]) -> str:
    return f"random-crop+hflip, then {spec['name']} (fresh per-sample draws every batch)"


def adapt_entry(parent: str | Path, out: str | Path, transform: dict[str, Any] | RandomTransform,
                train: ImageData | None, test: ImageData, epochs: int = 2,
                fraction: float = 0.05, lr: float = DEFAULT_LR, seed: int = 0,
                batch_size: int = DEFAULT_BATCH_SIZE, repeats: int = DEFAULT_REPEATS,
                backend: str = "eager", show_progress: bool = True) -> ModelConfig:
    """Write ``out``: the parent adapted to ``spec`` (``epochs >= 1``) or, for ``epochs = 0``,
    the parent's files unchanged behind ``spec`` (the data-free pirate).

    ``config.preprocessing`` is ``spec``, so a server applies the transform at inference.
    Lineage: parent, ``adapt-<t>`` / ``<t>-data-free``, the transform's parameters, epochs,
    fraction and number of training samples (0 when data-free), lr, batch size, seed. Metrics:
    clean ``test_top1/5`` and ``parent_test_top1/5``, and under the transform (``repeats``
    draws, the same draws for parent and child) ``transform_top1/5`` with ``_std/_min/_max`` and
    ``parent_transform_top1/5`` likewise.

    A data-free entry copies the parent's ``model.safetensors`` and ``model.onnx`` byte for byte
    (so an ONNX-only parent, e.g. int8, works too); adapting needs the parent's safetensors.
    """
    parent, out = Path(parent), Path(out)
    check_adapt(epochs, fraction, lr, batch_size, repeats)
    parent_config, parent_ref = resolve_parent(parent, out)
    module = as_transform(transform, parent_config.input_shape)
    if module is None:
        raise UserError("adaptation needs a transform (e.g. csrp or rdg)")
    spec = module.spec()
    if epochs == 0:
        return _data_free_entry(parent, out, parent_config, parent_ref, module, test, seed,
                                repeats, backend)
    if train is None:
        raise UserError("adapting with --epochs >= 1 needs the training split")
    model, _ = load_model(parent)
    started = time.perf_counter()
    parent_clean = evaluate(model, test)
    parent_under = accuracy_under(model, test, module, repeats, seed, backend=backend)
    subset = train.subset(fraction, seed)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    train_started = time.perf_counter()
    adapt_model(model, subset, module, epochs, lr=lr, seed=seed, batch_size=batch_size,
                backend=backend, description=f"adapt {out.name}", show_progress=show_progress)
    train_seconds = time.perf_counter() - train_started
    child_clean = evaluate(model, test)
    child_under = accuracy_under(model, test, module, repeats, seed, backend=backend)
    parameters = {"transform": spec["name"], **_spec_parameters(spec), "epochs": epochs,
                  "fraction": fraction, "train_samples": len(subset), "lr": lr,
                  "batch_size": batch_size, "layers": "all",
                  "optimizer": "sgd-nesterov-0.9-wd5e-4-onecycle", "augment": _augment_label(spec),
                  "eval_repeats": repeats}
    if parent_config.preprocessing is not None:
        parameters["parent_preprocessing"] = parent_config.preprocessing
    config = derive_config(parent_config, parent_ref, out.name, adapt_modification(spec),
                           parameters, seed=seed, preprocessing=spec)
    extra = {**comparison_metrics(parent_clean, child_clean, len(test)),
             **child_under.summary("transform_"), **parent_under.summary("parent_transform_"),
             "transform_seed": seed, "weight_relative_change":
                 round(relative_change(initial, model), 6),
             "train_seconds": round(train_seconds, 1),
             "seconds": round(time.perf_counter() - started, 1)}
    return finalize_entry(out, model, config, test, extra_metrics=extra)


def _spec_parameters(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "name"}


def _data_free_entry(parent: Path, out: Path, parent_config: ModelConfig, parent_ref: str,
                     module: RandomTransform, test: ImageData, seed: int, repeats: int,
                     backend: str) -> ModelConfig:
    started = time.perf_counter()
    spec = module.spec()
    predictor = load_predictor(parent)
    clean = evaluate(predictor.logits, test)
    under = accuracy_under(predictor.logits, test, module, repeats, seed, backend=backend)
    parameters = {"transform": spec["name"], **_spec_parameters(spec), "epochs": 0,
                  "fraction": 0.0, "train_samples": 0, "eval_repeats": repeats}
    if parent_config.preprocessing is not None:
        parameters["parent_preprocessing"] = parent_config.preprocessing
    config = derive_config(parent_config, parent_ref, out.name,
                           data_free_modification(spec), parameters, seed=seed,
                           preprocessing=spec)
    metrics = {"test_top1": round(clean.top1, 4), "test_top5": round(clean.top5, 4),
               **comparison_metrics(clean, clean, len(test)),
               **under.summary("transform_"), **under.summary("parent_transform_"),
               "transform_seed": seed, "weight_relative_change": 0.0,
               "seconds": round(time.perf_counter() - started, 1)}
    for key in ("onnx_max_abs_logit_diff",):
        if key in parent_config.metrics:
            metrics[key] = parent_config.metrics[key]
    config = config.model_copy(update={"name": out.name, "metrics": metrics})
    with atomic_dir(out) as tmp:
        for name in (WEIGHTS_FILE, ONNX_FILE):
            if (parent / name).is_file():
                shutil.copyfile(parent / name, tmp / name)
        write_json(tmp / CONFIG_FILE, config.model_dump(mode="json"))
    return config
