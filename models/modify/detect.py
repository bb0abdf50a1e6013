"""The detecting pirate: the stolen weights, served behind a query detector fitted on clean data.

``detector_entry`` writes an entry that is the parent's model files unchanged, its front (the
parent's preprocessing, or ``transform``), and a ``detector.safetensors`` (``models.detector``:
Mahalanobis distance on logits, Lee et al., NeurIPS 2018) fitted on the pirate's clean data only:
a seeded ``fraction`` of the training split (default 0.05, the data-limited pirate's share),
split in two halves, one to fit the class statistics and one to set the threshold for a clean
false-positive rate of at most ``fpr`` (default 0.01). The clean images go through the front
first (one seeded draw), as served queries do, so the detector learns what the model sees.

Metrics record what it costs and what it flags on the test split, which the fit never saw:
``transform_top1`` (front alone, the parent as a pirate would serve it without a detector),
``served_top1`` (front and detector: a flagged clean image gets the runner-up label) and
``clean_flagged`` (the measured clean false-positive rate), each over ``repeats`` draws.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.atomic import atomic_dir, write_json
from models.config import CONFIG_FILE, DETECTOR_FILE, ONNX_FILE, WEIGHTS_FILE, DetectorConfig
from models.datasets import ImageData
from models.detector import DEFAULT_FPR, Detector, fit_detector
from models.entries import derive_config
from models.errors import UserError
from models.modify.base import resolve_parent
from models.runtime import AnsweringPredictor, load_predictor

__all__ = ["DEFAULT_FRACTION", "detector_entry", "fit_pirate_detector", "front_logits"]

DEFAULT_FRACTION = 0.05
BATCH = 500


def front_logits(logits_fn: Any, images: torch.Tensor, transform: Any,
                 seed: int) -> np.ndarray:
    """Logits of ``images`` behind ``transform`` (one draw seeded ``seed``; none: clean),
    float64 ``[N, K]``, in batches."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(images), BATCH):
        batch = images[start:start + BATCH]
        with torch.inference_mode():
            if transform is not None:
                batch = transform(batch, generator=generator)
            out.append(logits_fn(batch).detach().cpu().numpy().astype(np.float64))
    return np.concatenate(out) if out else np.empty((0, 0))


def flagged_share(detector: Detector, logits_fn: Any, data: ImageData, transform: Any,
                  repeats: int, seed: int) -> float:
    """Mean share of ``data`` the detector flags behind ``transform`` over ``repeats`` draws."""
    draws = repeats if transform is not None and transform.randomized else 1
    shares = [float(detector.flagged(front_logits(logits_fn, data.floats(), transform,
                                                  seed + r)).mean()) for r in range(draws)]
    return sum(shares) / len(shares)


def fit_pirate_detector(logits_fn: Any, train: ImageData, transform: Any, *,
                        fpr: float = DEFAULT_FPR, fraction: float = DEFAULT_FRACTION,
                        seed: int = 0) -> tuple[Detector, ImageData]:
    """The detector a pirate fits on its clean share of ``train`` (module doc), with that
    share; ``UserError`` when the share is too small or the fit impossible."""
    pirate = train.subset(fraction, seed)
    if len(pirate) < 200:
        raise UserError(f"the pirate's share holds {len(pirate)} images; a detector needs at "
                        "least 200 (raise --fraction)")
    half = len(pirate) // 2
    images = pirate.floats()
    fit_logits = front_logits(logits_fn, images[:half], transform, seed)
    threshold_logits = front_logits(logits_fn, images[half:], transform, seed + 1)
    try:
        return fit_detector(fit_logits, threshold_logits, fpr), pirate
    except ValueError as error:
        raise UserError(f"cannot fit the detector: {error}") from None


def detector_entry(parent: str | Path, out: str | Path, train: ImageData, test: ImageData, *,
                   fpr: float = DEFAULT_FPR, fraction: float = DEFAULT_FRACTION,
                   transform: dict[str, Any] | None = None, seed: int = 0,
                   repeats: int = 3) -> Any:
    """Fit the detector, measure it on ``test`` and write the entry (module doc); returns the
    written ``ModelConfig``."""
    from models.adapt import accuracy_under, as_transform  # adapt imports models.modify

    started = time.perf_counter()
    parent, out = Path(parent), Path(out)
    parent_config, parent_ref = resolve_parent(parent, out)
    spec = transform if transform is not None else parent_config.preprocessing
    module = as_transform(spec, parent_config.input_shape)
    if module is not None:
        module.set_kernel("eager")  # one pass of a few thousand images: no compile warm-up
    predictor = load_predictor(parent)
    detector, pirate = fit_pirate_detector(predictor.logits, train, module, fpr=fpr,
                                           fraction=fraction, seed=seed)
    half = len(pirate) // 2
    served = AnsweringPredictor(predictor, detector)
    alone = accuracy_under(predictor.logits, test, module, repeats, seed)
    both = accuracy_under(served.logits, test, module, repeats, seed)
    clean_flagged = flagged_share(detector, predictor.logits, test, module, repeats, seed)
    parameters = {"detector": "mahalanobis", "fpr": fpr, "fraction": fraction,
                  "fit_samples": half, "threshold_samples": len(pirate) - half,
                  "threshold": round(detector.threshold, 6), "data": pirate.source,
                  "transform": spec, "eval_repeats": repeats}
    config = derive_config(parent_config, parent_ref, out.name, "detector", parameters,
                           seed=seed, preprocessing=spec)
    metrics = {"test_top1": parent_config.metrics.get("test_top1"),
               "parent_test_top1": parent_config.metrics.get("test_top1"),
               "transform_top1": round(alone.top1, 4), "served_top1": round(both.top1, 4),
               "served_top1_std": round(both.top1_std, 4),
               "clean_flagged": round(clean_flagged, 4), "test_samples": len(test),
               "seconds": round(time.perf_counter() - started, 1)}
    config = config.model_copy(update={"metrics": metrics,
                                       "detector": DetectorConfig(fpr=fpr)})
    with atomic_dir(out) as tmp:
        for name in (WEIGHTS_FILE, ONNX_FILE):
            if (parent / name).is_file():
                shutil.copyfile(parent / name, tmp / name)
        detector.save(tmp / DETECTOR_FILE, {"parent": parent_ref, "data": pirate.source,
                                            "seed": str(seed)})
        write_json(tmp / CONFIG_FILE, config.model_dump(mode="json"))
    return config
