"""Magnitude pruning, the paper's second baseline pirate.

Global unstructured L1 pruning (``torch.nn.utils.prune.global_unstructured`` with
``L1Unstructured``): the ``rate`` fraction of smallest-magnitude weights over *all* conv and
linear weight tensors together is zeroed, then ``prune.remove`` makes the zeros permanent (plain
parameters again, no masks or hooks), so the entry saves, exports and loads like any other.
Biases, batch-norm and the normalisation layer are left alone. The measured sparsity over the
pruned tensors is recorded (it can exceed ``rate`` when weights were already exactly zero).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from torch.nn.utils import prune

from models.datasets import ImageData
from models.entries import derive_config, finalize_entry
from models.errors import UserError
from models.modify.base import comparison_metrics, evaluate, resolve_parent
from models.repository import ModelConfig, load_model

RATE_MIN, RATE_MAX = 0.1, 0.9
PRUNABLE = (nn.Conv2d, nn.Linear)


def check_rate(rate: float) -> float:
    if not RATE_MIN <= rate <= RATE_MAX:
        raise UserError(f"pruning rate must be in [{RATE_MIN}, {RATE_MAX}], got {rate}")
    return rate


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, "weight")`` for every conv and linear layer of ``model``."""
    return [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]


def sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries over all conv and linear weights."""
    tensors = [getattr(m, name).detach() for m, name in prunable_weights(model)]
    total = sum(t.numel() for t in tensors)
    return sum(int((t == 0).sum()) for t in tensors) / max(1, total)


def prune_model(model: nn.Module, rate: float) -> float:
    """Prune ``model`` in place (global L1 over conv + linear weights, made permanent);
    return the measured sparsity of those weights."""
    check_rate(rate)
    targets = prunable_weights(model)
    if not targets:
        raise UserError("model has no conv or linear layers to prune")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=rate)
    for module, name in targets:
        prune.remove(module, name)
    return sparsity(model)


def prune_entry(parent: str | Path, out: str | Path, rate: float, test: ImageData) -> ModelConfig:
    """Write ``out``: the pruned parent, with lineage ``prune`` {rate, scope, measured_sparsity}
    and metrics (test accuracy, parent accuracy and label agreement on ``test``)."""
    parent, out = Path(parent), Path(out)
    check_rate(rate)
    parent_config, parent_ref = resolve_parent(parent, out)
    model, _ = load_model(parent)
    before = evaluate(model, test)
    measured = prune_model(model, rate)
    after = evaluate(model, test)
    config = derive_config(parent_config, parent_ref, out.name, "prune", {
        "rate": rate, "scope": "global-l1", "layers": "conv+linear",
        "measured_sparsity": round(measured, 6)}, seed=None,
        preprocessing=parent_config.preprocessing)
    extra = {"sparsity": round(measured, 6), **comparison_metrics(before, after, len(test))}
    return finalize_entry(out, model, config, test, extra_metrics=extra)

