"""Benchmark batched CSRP against a naive per-image loop and a plain copy.

Variants, per image size (with the paper's sigma/p for that size) and batch size:

* ``copy``: ``images.clone()``, the floor any transform pays to write its output;
* ``naive``: per image ``F.interpolate(nearest)`` up to ``(Hr, Wr)`` + ``F.pad`` + ``F.interpolate``
  back, in a Python loop (the obvious port of Algorithm 1; its nearest rounding differs, its
  cost does not);
* ``csrp-eager``: ``csrp(..., backend="eager")``, one gather for the batch;
* ``csrp-compiled``: ``csrp(..., backend="compiled")``, the ``torch.compile``-fused kernel
  (left out with ``--no-compile`` or when compiling fails).

Every CSRP and naive call draws fresh per-sample offsets. Variants are timed in interleaved
rounds (each round runs every variant once, in rotating order, several calls per timing) and the
medians compared; the minimum is printed too, since a shared machine adds noise. The last table
puts CSRP at batch 64 next to a ResNet-20 forward pass at batch 64 (3 x 32 x 32, eval mode,
``torch.inference_mode``), timed in the same interleaved way.

Examples::

    python benchmarks/bench_csrp.py --quick
    python benchmarks/bench_csrp.py --rounds 30 --json results/bench_csrp.json
    python benchmarks/bench_csrp.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from models.transforms import compile_enabled, csrp, csrp_geometry, draw_offsets

# (channels, height, width, sigma, p): the paper's settings per size (28 px uses CIFAR-10's).
SHAPES: list[tuple[int, int, int, float, int]] = [
    (3, 32, 32, 1.16, 3),
    (1, 28, 28, 1.16, 3),
    (3, 64, 64, 1.25, 14),
]
BATCHES = [1, 64, 256]


def naive_csrp(
    images: torch.Tensor, sigma: float, p: int, generator: torch.Generator
) -> torch.Tensor:
    """Per-image loop: nearest up-resize, zero pad at random offsets, nearest down-resize."""
    _, _, h, w = images.shape
    _, _, h_r, w_r = csrp_geometry(h, w, sigma, p)
    offsets = torch.randint(0, p + 1, (images.shape[0], 2), generator=generator).tolist()
    out = []
    for image, (x1, y1) in zip(images, offsets, strict=True):
        up = F.interpolate(image[None], size=(h_r, w_r), mode="nearest")
        padded = F.pad(up, (y1, p - y1, x1, p - x1))
        out.append(F.interpolate(padded, size=(h, w), mode="nearest"))
    return torch.cat(out)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], object], iters: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / iters


def interleaved(
    variants: dict[str, Callable[[], object]],
    rounds: int,
    device: torch.device,
    target_s: float,
) -> dict[str, dict[str, float]]:
    """Median and min seconds per call of every variant, timed in rotating interleaved rounds."""
    iters: dict[str, int] = {}
    for name, fn in variants.items():
        for _ in range(3):  # warm-up (caches, allocator, compiled kernels)
            fn()
        single = _time_once(fn, 1, device)
        iters[name] = max(1, min(500, math.ceil(target_s / max(single, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(_time_once(variants[name], iters[name], device))
    return {
        name: {"median_s": statistics.median(v), "min_s": min(v), "iters": iters[name]}
        for name, v in samples.items()
    }


def _compile_ok(device: torch.device) -> tuple[bool, float, str]:
    """Compile the kernel once (timed) and check it against the eager gather."""
    images = torch.rand(64, 3, 32, 32, device=device)
    offsets = draw_offsets(64, 3, torch.Generator().manual_seed(0))
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            compiled = csrp(images, 1.16, 3, offsets, backend="compiled")
    except Exception as error:  # report it, then bench without it
        return False, 0.0, f"{type(error).__name__}: {error}"
    seconds = time.perf_counter() - start
    if not compile_enabled():
        return False, seconds, "torch.compile failed; eager fallback"
    if not torch.equal(compiled, csrp(images, 1.16, 3, offsets, backend="eager")):
        return False, seconds, "compiled output differs from eager"
    return True, seconds, "ok"


def run(args: argparse.Namespace) -> dict[str, object]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = SHAPES
    batches = [1, 256] if args.quick else BATCHES
    rounds = args.rounds or (7 if args.quick else 30)
    target_s = 0.002 if args.quick else 0.005

    use_compile = not args.no_compile
    compile_info = "disabled (--no-compile)"
    compile_s = 0.0
    if use_compile:
        use_compile, compile_s, compile_info = _compile_ok(device)
    print(
        f"torch {torch.__version__} | device {device} | threads {torch.get_num_threads()} | "
        f"python {platform.python_version()} | load avg {os.getloadavg()[0]:.2f} | "
        f"compile: {compile_info} ({compile_s:.1f} s first call)",
        flush=True,
    )

    print(
        f"\n{'shape':>9} {'sig/p':>9} {'batch':>5} {'variant':14s} {'median ms':>10} "
        f"{'min ms':>9} {'images/s':>11} {'naive/x':>8} {'x/copy':>7}"
    )
    rows: list[dict[str, object]] = []
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for c, h, w, sigma, p in shapes:
            for n in batches:
                images = torch.rand(n, c, h, w, generator=gen).to(device)
                variants: dict[str, Callable[[], object]] = {
                    "copy": images.clone,
                    "naive": lambda im=images, s=sigma, q=p: naive_csrp(im, s, q, gen),
                    "csrp-eager": lambda im=images, s=sigma, q=p: csrp(
                        im, s, q, generator=gen, backend="eager"
                    ),
                }
                if use_compile:
                    variants["csrp-compiled"] = lambda im=images, s=sigma, q=p: csrp(
                        im, s, q, generator=gen, backend="compiled"
                    )
                result = interleaved(variants, rounds, device, target_s)
                row: dict[str, object] = {
                    "shape": [c, h, w],
                    "sigma": sigma,
                    "p": p,
                    "batch": n,
                    "times": result,
                }
                rows.append(row)
                _print_row(row)

        # CSRP at batch 64 against a ResNet-20 forward at batch 64 (3 x 32 x 32).
        from models.architectures import create_model

        model = create_model("resnet20", 10, 3, 32).eval().to(device)
        images = torch.rand(64, 3, 32, 32, generator=gen).to(device)
        variants = {
            "resnet20": lambda: model(images),
            "csrp-eager": lambda: csrp(images, 1.16, 3, generator=gen, backend="eager"),
        }
        if use_compile:
            variants["csrp-compiled"] = lambda: csrp(
                images, 1.16, 3, generator=gen, backend="compiled"
            )
        resnet = interleaved(variants, rounds, device, max(target_s, 0.02))
    base = resnet["resnet20"]["median_s"]
    print(f"\nResNet-20 forward, batch 64, 3x32x32: {base * 1e3:.2f} ms (median)")
    for name, t in resnet.items():
        if name != "resnet20":
            print(f"  {name:14s} {t['median_s'] * 1e3:8.3f} ms = {100 * t['median_s'] / base:.2f}%")
    return {
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "load_avg_1m": os.getloadavg()[0],
        "compile": {"used": use_compile, "info": compile_info, "first_call_s": compile_s},
        "rounds": rounds,
        "rows": rows,
        "resnet20_batch64": resnet,
    }


def _print_row(row: dict[str, object]) -> None:
    times: dict[str, dict[str, float]] = row["times"]  # type: ignore[assignment]
    c, h, w = row["shape"]  # type: ignore[misc]
    n = row["batch"]
    copy, naive = times["copy"]["median_s"], times["naive"]["median_s"]
    for name, t in times.items():
        med = t["median_s"]
        print(
            f"{c}x{h}x{w:<4} {row['sigma']:>5}/{row['p']:<3} {n:>5} {name:14s} {med * 1e3:10.3f} "
            f"{t['min_s'] * 1e3:9.3f} {n / med:11.0f} {naive / med:8.1f} {med / copy:7.1f}",
            flush=True,
        )


def _write_json(path: Path, payload: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n  python benchmarks/bench_csrp.py --quick\n"
        "  python benchmarks/bench_csrp.py --json results/bench_csrp.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--quick", action="store_true", help="batches 1 and 256, 7 rounds")
    parser.add_argument("--rounds", type=int, default=0, help="interleaved rounds (default 30)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled variant")
    parser.add_argument("--json", type=Path, help="write the results to this file (atomic)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    payload = run(args)
    if args.json:
        _write_json(args.json, payload)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
