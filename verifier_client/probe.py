"""Randomness probe: is there a randomized preprocessing in front of a label-only model?

Send the same K inputs T times. A deterministic model answers every input with the same label
each time; a model behind CSRP (or RDG, or any random transform) sometimes answers differently.
Reported:

- ``flip_rate``: the fraction of the K x T answers that differ from that input's modal label,
  with a Wilson 95% interval (treating answers as independent; answers to one input are
  correlated, so read the interval as indicative);
- ``inputs_flipping``: the fraction of inputs that were ever answered differently, with its
  Wilson interval;
- ``conclusion``: "randomized preprocessing detected" when the flip rate's lower bound is above
  zero (i.e. at least one flip), else "no randomness detected".

A deterministic server can still flip on an input that sits exactly on a decision boundary
when its numerics depend on how requests are batched; near-boundary inputs such as fingerprints
make the probe more sensitive, and a handful of flips in many thousands of answers should be
read with that in mind.

Default inputs: ``count`` images drawn uniformly on the 8-bit grid (seeded), half of them
pixel noise and half blocky noise (random 4x4-pixel cells), in the model's declared shape.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import UserError
from models.provenance import code_version, utc_now
from verifier_client.oip_client import OIPClient, RetryPolicy, image_shape

__all__ = ["default_inputs", "flip_statistics", "load_inputs", "probe", "wilson_interval"]

DETECTED = "randomized preprocessing detected"
NOT_DETECTED = "no randomness detected"


def wilson_interval(successes: int, trials: int, confidence: float = 0.95
                    ) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; ``(0, 1)`` when ``trials == 0``."""
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials; got {successes}, {trials}")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def flip_statistics(labels: np.ndarray) -> dict[str, Any]:
    """Flip statistics of ``labels`` int [T, K] (T trials of the same K inputs)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise ValueError(f"labels must be [trials, inputs] and non-empty; got {labels.shape}")
    trials, inputs = labels.shape
    modal = np.array([np.bincount(column - column.min()).argmax() + column.min()
                      for column in labels.T.astype(np.int64)])
    differs = labels != modal[None, :]
    flips, flipping = int(differs.sum()), int(differs.any(axis=0).sum())
    low, high = wilson_interval(flips, trials * inputs)
    in_low, in_high = wilson_interval(flipping, inputs)
    distinct = [int(np.unique(column).size) for column in labels.T]
    return {
        "inputs": inputs, "trials": trials, "answers": trials * inputs, "flips": flips,
        "flip_rate": flips / (trials * inputs), "flip_rate_ci95": [low, high],
        "inputs_flipping": flipping, "inputs_flipping_fraction": flipping / inputs,
        "inputs_flipping_ci95": [in_low, in_high],
        "max_distinct_labels": max(distinct),
        "conclusion": DETECTED if low > 0.0 else NOT_DETECTED,
    }


def default_inputs(shape: tuple[int, int, int], count: int = 16, seed: int = 0) -> np.ndarray:
    """``count`` seeded random images float32 [count, C, H, W] on the 8-bit grid: the first half
    pixel noise, the rest blocky noise (4x4 cells, smoother, closer to natural-image scales)."""
    c, h, w = shape
    rng = np.random.default_rng(seed)
    pixel = rng.integers(0, 256, size=(count, c, h, w), dtype=np.int64)
    cells = rng.integers(0, 256, size=(count, c, -(-h // 4), -(-w // 4)), dtype=np.int64)
    blocky = np.repeat(np.repeat(cells, 4, axis=2), 4, axis=3)[:, :, :h, :w]
    images = np.where(np.arange(count)[:, None, None, None] < (count + 1) // 2, pixel, blocky)
    return (images.astype(np.float32) / 255.0).astype(np.float32)


def load_inputs(path: str | Path) -> np.ndarray:
    """Images float32 [N, C, H, W] from a fingerprint set or any safetensors file holding an
    ``images`` tensor (float in [0, 1] or uint8)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: inputs file not found")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            if "images" not in handle.keys():  # noqa: SIM118 - safe_open has no __contains__
                raise UserError(f"{path}: no 'images' tensor in this safetensors file")
            images = handle.get_tensor("images")
    except (SafetensorError, OSError) as error:
        raise UserError(f"{path}: not a readable safetensors file ({error})") from None
    if images.ndim != 4 or images.shape[0] == 0:
        raise UserError(f"{path}: images must be [N, C, H, W]; got {list(images.shape)}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    images = images.astype(np.float32)
    if not np.isfinite(images).all() or images.min() < 0.0 or images.max() > 1.0:
        raise UserError(f"{path}: float images must lie in [0, 1]")
    return images


async def _probe(client: OIPClient, model: str, images: np.ndarray | None, trials: int,
                 count: int, seed: int) -> tuple[np.ndarray, int, list[str], str]:
    await client.check_ready()
    meta = await client.model_metadata(model)
    if images is None:
        shape = image_shape(meta)
        if shape is None:
            raise UserError(f"model {model!r} does not declare its image size; pass --inputs")
        images = default_inputs(shape, count, seed)
        source = f"{count} seeded random images (seed {seed})"
    else:
        source = f"{len(images)} given images"
    (result,) = await client.repeat([client.prepare(meta, images)], trials)
    if not result.answers:
        raise UserError(f"every probe query failed ({result.failures[-1]})")
    return np.stack(result.answers), len(result.failures), result.failures, source


def probe(url: str, model: str, images: np.ndarray | None = None, *, trials: int = 50,
          count: int = 16, seed: int = 0, batch_size: int = 100, concurrency: int = 8,
          timeout_s: float = 30.0, retry: RetryPolicy | None = None,
          protocol: str = "auto", unreachable_after_s: float = 30.0) -> dict[str, Any]:
    """Send the same inputs ``trials`` times to ``model`` at ``url``; the flip statistics.

    ``images`` float [K, C, H, W] in [0, 1]; ``None`` draws ``count`` seeded random images of the
    model's declared input shape. Failed trials are left out and counted.
    """
    if trials < 2:
        raise UserError(f"trials must be >= 2 to see flips; got {trials}")

    async def run() -> tuple[np.ndarray, int, list[str], str]:
        async with OIPClient(url, batch_size=batch_size, concurrency=concurrency,
                             timeout_s=timeout_s, retry=retry, protocol=protocol,  # type: ignore[arg-type]
                             unreachable_after_s=unreachable_after_s) as client:
            return await _probe(client, model, images, trials, count, seed)

    labels, failed, failures, source = asyncio.run(run())
    return {"url": url, "model": model, "time": utc_now(), "code_version": code_version(),
            "inputs_source": source, "trials_requested": trials, "trials_failed": failed,
            "failures": failures[:5], **flip_statistics(labels)}


def print_probe(result: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console

    console = console or Console(width=max(120, Console().width))  # piped: no wrapping at 80
    low, high = result["flip_rate_ci95"]
    in_low, in_high = result["inputs_flipping_ci95"]
    style = "bold red" if result["conclusion"] == DETECTED else "green"
    console.print(f"{result['model']} at {result['url']}: {result['inputs_source']} x "
                  f"{result['trials']} trials"
                  + (f" ({result['trials_failed']} failed)" if result["trials_failed"] else ""))
    console.print(f"  label flip rate      {result['flip_rate']:.4f}  "
                  f"95% CI [{low:.4f}, {high:.4f}]  ({result['flips']}/{result['answers']})")
    console.print(f"  inputs ever flipping {result['inputs_flipping_fraction']:.3f}  "
                  f"95% CI [{in_low:.3f}, {in_high:.3f}]  "
                  f"({result['inputs_flipping']}/{result['inputs']})")
    console.print(f"  [{style}]{result['conclusion']}[/{style}]")
