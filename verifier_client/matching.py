"""In-process matching rate (docs/design.md 1): T = (1/N) * #{i : label(g(x_i)) == y_i}, R repeats.

For quick studies without a server: the suspect is a predictor (``models.runtime``, torch or
ONNX) or any logits function, optionally behind a randomized transform ``g`` (CSRP, RDG, as
built by ``models.transforms.build_transform``). Each repeat sends all N samples in one batch,
with fresh transform draws from one seeded generator, so a (set, model, transform, seed) replays
exactly. The set's images are already on the 8-bit grid: what is evaluated here is what a
UINT8 request would carry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from models.errors import UserError
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.votes import set_outcomes

#: Queries per model call (a Blind Walk set sends thousands).
QUERY_BATCH = 2048


class _Predicts(Protocol):
    def predict(self, images: Tensor) -> Tensor: ...


LogitsFn = Callable[[Tensor], Tensor]
Transform = Callable[..., Tensor]


@dataclass(frozen=True)
class MatchingResult:
    """Per-repeat matching rates and their summary."""

    method: str
    n: int
    repeats: int
    rates: list[float]
    mean: float
    std: float
    min: float
    max: float
    seed: int
    transform: dict[str, Any] | None

    def summary(self) -> dict[str, Any]:
        """``method, n, repeats, mr_mean, mr_std, mr_min, mr_max`` (the verifier's field names)
        plus the rates, seed and transform."""
        data = asdict(self)
        for key in ("mean", "std", "min", "max"):
            data[f"mr_{key}"] = data.pop(key)
        return data


def _labels_fn(model: _Predicts | LogitsFn) -> Callable[[Tensor], Tensor]:
    predict = getattr(model, "predict", None)
    if callable(predict):
        return lambda images: predict(images)
    if callable(model):
        return lambda images: model(images).argmax(1)
    raise TypeError("model must have .predict(images) or be a logits function")


def _describe(transform: Transform | None) -> dict[str, Any] | None:
    if transform is None:
        return None
    spec = getattr(transform, "spec", None)
    if callable(spec):
        return dict(spec())
    return {"name": type(transform).__name__}


def match_outcomes(model: _Predicts | LogitsFn, fset: FingerprintSet,
                   transform: Transform | None = None, repeats: int = 1,
                   seed: int = 0, votes: int = 1) -> Tensor:
    """Which fingerprints ``model`` (behind ``transform``) matches in each of ``repeats`` repeats:
    bool ``[repeats, N]``. Every query is one batch of all N samples with fresh transform draws
    from one generator seeded by ``seed``, so (set, model, transform, seed) replays exactly.
    With ``votes`` K, a repeat is K queries and scores each fingerprint's modal label (a
    majority vote; K x the queries)."""
    for value, name in ((repeats, "repeats"), (votes, "votes")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name} must be an integer >= 1, got {value!r}")
    labels_of = _labels_fn(model)
    generator = torch.Generator().manual_seed(seed)
    images = torch.from_numpy(fset.queries)
    answers = []
    for _ in range(repeats * votes):
        batch = images if transform is None else transform(images, generator=generator)
        with torch.inference_mode():
            predicted = torch.cat([labels_of(part).detach().cpu().to(torch.int64).flatten()
                                   for part in batch.split(QUERY_BATCH)])
        if predicted.shape != (len(images),):
            raise UserError(f"the model returned {predicted.numel()} labels for "
                            f"{len(images)} queries")
        answers.append(predicted.numpy())
    return torch.from_numpy(set_outcomes(fset, answers, votes))


def matching_rates(model: _Predicts | LogitsFn, fset: FingerprintSet,
                   transform: Transform | None = None, repeats: int = 1,
                   seed: int = 0) -> MatchingResult:
    """Matching rate of ``model`` (behind ``transform``) on ``fset``, ``repeats`` times.

    Args:
        model: a predictor with ``.predict(images) -> labels`` or a logits function; it gets
            float32 [N, C, H, W] in [0, 1] (the set's 8-bit images, transformed).
        fset: the fingerprint set.
        transform: ``transform(images, generator=g)`` drawing fresh per-sample randomness, or
            ``None`` for the model as is.
        repeats: R >= 1 (every repeat is one batch of all N samples).
        seed: seeds the transform's generator.
    Returns:
        ``MatchingResult`` with the R rates, their mean, sample std (0 for R = 1), min and max.
    """
    outcomes = match_outcomes(model, fset, transform, repeats, seed)
    rates = outcomes.to(torch.float64).mean(1).tolist()
    values = torch.tensor(rates, dtype=torch.float64)
    std = float(values.std()) if repeats > 1 else 0.0
    return MatchingResult(method=fset.method, n=len(fset), repeats=repeats, rates=rates,
                          mean=float(values.mean()), std=0.0 if math.isnan(std) else std,
                          min=float(values.min()), max=float(values.max()), seed=seed,
                          transform=_describe(transform))
