"""Benchmark: training throughput per architecture, and inference throughput torch eager vs
ONNX Runtime (CPU provider) at batch 1 and 64, measured in the same run.

    python benchmarks/bench_models.py [--quick] [--json PATH] [--arch resnet20 --arch vgg16]

* Training: SGD steps (momentum 0.9) on random Fashion-MNIST-shaped batches (128 x 1x28x28,
  10 classes) after one warm-up step; images/s = steps * 128 / elapsed, per-step median shown.
* Inference: the same model in eval mode under ``torch.inference_mode`` and its ONNX export
  (opset 17, ``ORT_ENABLE_ALL``, default threads). Rounds alternate which backend goes first;
  each measurement repeats the call enough times to last ~``target`` seconds; the reported time
  is the median per-call time over rounds. ``ort/torch`` = torch time / ORT time (> 1: ORT faster).

Timings on a shared 2-core machine swing between runs: compare only within one run. The JSON
records thread counts, versions and the load average before and after. When other processes keep
the cores busy, torch's multi-threaded (OpenMP) kernels can slow down by 10x waiting on each
other; ``--threads 1`` measures both libraries single-threaded.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.architectures import Classifier, Normalize, create_model, list_models
from models.atomic import write_json
from models.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx

SHAPE = (1, 28, 28)  # Fashion-MNIST
NUM_CLASSES = 10
TRAIN_BATCH = 128
INFER_BATCHES = (1, 64)


def build(arch: str) -> nn.Module:
    torch.manual_seed(0)
    return Classifier(Normalize([0.286], [0.353]), create_model(arch, NUM_CLASSES, SHAPE[0],
                                                                 SHAPE[1]))


def bench_training(arch: str, steps: int) -> dict[str, Any]:
    model = build(arch).train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(TRAIN_BATCH, *SHAPE, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (TRAIN_BATCH,), generator=generator)

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    step()  # warm-up (allocator, kernels)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return {"arch": arch, "params": sum(p.numel() for p in model.parameters()),
            "batch": TRAIN_BATCH, "steps": steps, "step_ms_median": 1e3 * statistics.median(times),
            "images_per_s": steps * TRAIN_BATCH / sum(times)}


def _per_call(fn: Callable[[], object], reps: int) -> float:
    started = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - started) / reps


def _reps(fn: Callable[[], object], target: float) -> int:
    once = _per_call(fn, 1)
    return max(1, min(200, round(target / max(once, 1e-6))))


def bench_inference(arch: str, rounds: int, target: float,
                    threads: int | None = None) -> list[dict[str, Any]]:
    import onnxruntime as ort

    model = build(arch).eval()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(export_onnx(model, list(SHAPE)), options,
                                   providers=["CPUExecutionProvider"])
    rows = []
    for batch in INFER_BATCHES:
        x = torch.rand(batch, *SHAPE, generator=torch.Generator().manual_seed(batch))
        feed = {INPUT_NAME: np.ascontiguousarray(x.numpy())}

        def run_torch(x: torch.Tensor = x) -> object:
            with torch.inference_mode():
                return model(x)

        def run_ort(feed: dict[str, np.ndarray] = feed) -> object:
            return session.run([OUTPUT_NAME], feed)

        with torch.inference_mode():
            reference = model(x).numpy()
        max_diff = float(np.abs(run_ort()[0] - reference).max())
        reps = {"torch": _reps(run_torch, target), "ort": _reps(run_ort, target)}
        samples: dict[str, list[float]] = {"torch": [], "ort": []}
        for r in range(rounds):
            order = ("torch", "ort") if r % 2 == 0 else ("ort", "torch")
            for name in order:
                fn = run_torch if name == "torch" else run_ort
                samples[name].append(_per_call(fn, reps[name]))
        t_torch, t_ort = statistics.median(samples["torch"]), statistics.median(samples["ort"])
        rows.append({"arch": arch, "batch": batch, "rounds": rounds,
                     "torch_ms": 1e3 * t_torch, "ort_ms": 1e3 * t_ort,
                     "torch_images_per_s": batch / t_torch, "ort_images_per_s": batch / t_ort,
                     "ort_over_torch": t_torch / t_ort, "max_abs_logit_diff": max_diff,
                     "providers": session.get_providers()})
    return rows


def environment(threads: int | None) -> dict[str, Any]:
    import onnxruntime as ort

    return {"python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": ort.__version__, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "ort_intra_op_threads": threads or "default (0: physical cores)",
            "loadavg_start": list(os.getloadavg())}


def format_tables(result: dict[str, Any]) -> str:
    lines = [f"training: batch {TRAIN_BATCH} x {'x'.join(map(str, SHAPE))}, SGD steps "
             f"(torch {result['env']['torch']}, {result['env']['torch_threads']} threads)",
             f"{'arch':<10} {'params':>10} {'step ms':>9} {'images/s':>9}"]
    for t in result["training"]:
        lines.append(f"{t['arch']:<10} {t['params']:>10,} {t['step_ms_median']:>9.1f} "
                     f"{t['images_per_s']:>9.1f}")
    lines += ["", "inference: median per-call time over interleaved rounds "
              f"(onnxruntime {result['env']['onnxruntime']}, CPU provider, intra-op threads "
              f"{result['env']['ort_intra_op_threads']})",
              f"{'arch':<10} {'batch':>5} {'torch ms':>9} {'torch img/s':>11} {'ort ms':>8} "
              f"{'ort img/s':>10} {'ort/torch':>9}"]
    for r in result["inference"]:
        lines.append(f"{r['arch']:<10} {r['batch']:>5} {r['torch_ms']:>9.2f} "
                     f"{r['torch_images_per_s']:>11.1f} {r['ort_ms']:>8.2f} "
                     f"{r['ort_images_per_s']:>10.1f} {r['ort_over_torch']:>8.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--arch", action="append", choices=list_models(),
                        help="architectures to run (repeatable; default: all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads for both torch and ORT (default: each library's "
                        "own default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    archs = args.arch or list_models()
    steps, rounds, target = (3, 5, 0.05) if args.quick else (8, 11, 0.15)
    started = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "bench_models", "quick": args.quick,
                              "env": environment(args.threads), "training": [], "inference": []}
    for arch in archs:
        print(f"[{time.perf_counter() - started:6.1f}s] {arch}: training", file=sys.stderr)
        result["training"].append(bench_training(arch, steps))
        print(f"[{time.perf_counter() - started:6.1f}s] {arch}: inference", file=sys.stderr)
        result["inference"].extend(bench_inference(arch, rounds, target, args.threads))
    result["env"]["loadavg_end"] = list(os.getloadavg())
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(format_tables(result))
    print(f"\n{result['seconds']} s; load average {result['env']['loadavg_start'][0]:.1f} -> "
          f"{result['env']['loadavg_end'][0]:.1f} on {result['env']['cpu_count']} CPUs")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
