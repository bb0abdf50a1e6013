"""Sweep: accuracy of a target under CSRP over a (sigma, p) grid, data-free and after adaptation.

Answers "how strong a CSRP can the pirate afford?" for the default zoo (Fashion-MNIST ResNet-20,
28 x 28). The seed paper's rule: the strongest setting that keeps top-1 within roughly 10 points
of the clean model data-free and within 3-6 points after fine-tuning (CIFAR-10, ResNet-56:
0.87 clean, 0.77 CSRP only, 0.81 CSRP + fine-tuning).

Stages (all draws seeded; the same draws for every model at one grid point):

1. clean top-1 on a fixed seeded subset of the test split (``--samples``, 0 = all 10k);
2. data-free: the target (its ONNX graph, what the server runs) under CSRP, ``--repeats`` draws
   per valid grid point. Points with ``p > floor(H * sigma) - H`` are skipped as invalid: there
   Algorithm 1's "up-resize" to ``Hr = Hmax - p`` would shrink the image below ``H`` (every paper
   setting has ``Hr >= H``);
3. adapted: for a few points (``--adapt auto`` picks them, see ``pick_adapt_points``) the target
   is fine-tuned (``models.adapt.adapt_model``: all layers, ``--fraction`` of the training split,
   ``--epochs``, crop + flip then CSRP) and evaluated under CSRP with the same draws;
4. choice: strength is measured by the data-free top-1 drop (how far CSRP moves the inputs in the
   model's eyes), geometry breaking ties; the default is the strongest adapted point with a
   data-free drop <= ``--budget-free`` (+ ``--tolerance``) and an adapted drop <= ``--budget-ft``.

Outputs, written atomically under ``--out`` (default ``results/sweep``): ``sweep.md`` (tables),
``sweep.csv`` (one row per grid point), ``sweep.json`` (everything, per-draw values, timings,
load average), ``sweep.png`` (top-1 vs sigma per p; data-free solid, adapted dashed).

On a shared CPU, ``--threads 1`` (default) is several times faster than 2 threads for torch
training (OpenMP threads spin-wait on each other when other processes hold the cores).

Examples::

    python benchmarks/sweep_csrp.py                                   # the committed run
    python benchmarks/sweep_csrp.py --samples 1000 --repeats 1 --adapt none --out /tmp/preview
    python benchmarks/sweep_csrp.py --adapt 1.16:3,1.1:2 --epochs 2
    python benchmarks/sweep_csrp.py --render results/sweep/sweep.json   # redraw only
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.adapt import DrawAccuracy, accuracy_under, adapt_model  # noqa: E402
from models.atomic import write_bytes, write_json, write_text  # noqa: E402
from models.datasets import ImageData, load_dataset  # noqa: E402
from models.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx  # noqa: E402
from models.repository import load_model  # noqa: E402
from models.runtime import OnnxPredictor  # noqa: E402
from models.transforms import csrp_geometry  # noqa: E402
from verifier_client.studies.report_files import DISTINCT_COLOURS  # noqa: E402

SIGMAS = (1.1, 1.16, 1.23, 1.3, 1.4, 1.5)
PS = (1, 2, 3, 4, 5, 6)


# --------------------------------------------------------------------------------------------
# grid
# --------------------------------------------------------------------------------------------


@dataclass
class Point:
    """One (sigma, p) grid point with its geometry and results."""

    sigma: float
    p: int
    height: int
    width: int
    valid: bool = True
    reason: str = ""
    free: DrawAccuracy | None = None
    adapted: DrawAccuracy | None = None
    adapted_clean: float | None = None
    adapt_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def h_max(self) -> int:
        return math.floor(self.height * self.sigma)

    @property
    def h_r(self) -> int:
        return self.h_max - self.p

    @property
    def shift_px(self) -> float:
        """Largest random shift of the content in output pixels: ``p * H / Hmax``."""
        return self.p * self.height / self.h_max

    @property
    def scale(self) -> float:
        """Size of the content in the output relative to the input: ``Hr / Hmax``."""
        return self.h_r / self.h_max

    @property
    def key(self) -> str:
        return f"{self.sigma:g}:{self.p}"


def make_grid(sigmas: list[float], ps: list[int], height: int, width: int) -> list[Point]:
    points = []
    for sigma in sigmas:
        for p in ps:
            point = Point(sigma, p, height, width)
            try:
                _, _, h_r, w_r = csrp_geometry(height, width, sigma, p)
            except ValueError as error:
                point.valid, point.reason = False, str(error)
            else:
                if h_r < height or w_r < width:
                    point.valid = False
                    point.reason = (f"Hr = floor({height}*{sigma:g}) - {p} = {h_r} < H = {height}:"
                                    " the up-resize would shrink the image")
            points.append(point)
    return points


def pick_adapt_points(points: list[Point], clean: float, count: int,
                      budget_free: float) -> list[Point]:
    """The ``count`` most interesting points to adapt: the strong end of the data-free frontier.

    Candidates are the measured points whose data-free drop stays within ``1.5 * budget_free``
    points (beyond that, adaptation would have to recover more than the paper's pirates do);
    the ``count`` with the largest drop are adapted, since the default is the *strongest*
    setting that adaptation brings back within budget.
    """
    def drop(q: Point) -> float:
        assert q.free is not None
        return 100 * (clean - q.free.top1)

    candidates = [q for q in points if q.valid and q.free is not None
                  and drop(q) <= 1.5 * budget_free]
    ranked = sorted(candidates, key=lambda q: (-drop(q), -q.shift_px))
    return sorted(ranked[:count], key=lambda q: (q.p, q.sigma))


def parse_points(text: str, grid: list[Point]) -> list[Point]:
    wanted = []
    for item in text.split(","):
        sigma, _, p = item.partition(":")
        key = f"{float(sigma):g}:{int(p)}"
        match = [q for q in grid if q.key == key and q.valid]
        if not match:
            raise SystemExit(f"--adapt: {item!r} is not a valid point of the grid")
        wanted.append(match[0])
    return wanted


def choose_default(points: list[Point], clean: float, budget_free: float, budget_ft: float,
                   tolerance: float) -> tuple[Point | None, str]:
    """Strongest adapted point within both budgets (percentage points of top-1)."""
    adapted = [q for q in points if q.adapted is not None and q.free is not None]
    ok = [q for q in adapted
          if 100 * (clean - q.free.top1) <= budget_free + tolerance  # type: ignore[union-attr]
          and 100 * (clean - q.adapted.top1) <= budget_ft]  # type: ignore[union-attr]
    if not ok:
        return None, "no adapted point satisfies both budgets"
    best = max(ok, key=lambda q: (round(100 * (clean - q.free.top1), 1),  # type: ignore
                                  q.shift_px, -q.scale))
    return best, (f"strongest adapted point with data-free drop <= {budget_free:g} "
                  f"(+{tolerance:g}) and adapted drop <= {budget_ft:g} points")


# --------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------


class _OrtLogits:
    """ONNX Runtime session over an in-memory graph (faster than torch eager on this CPU)."""

    def __init__(self, onnx_bytes: bytes, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_bytes, options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(images.detach().cpu().numpy().astype(np.float32))
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0])


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _spec(point: Point) -> dict[str, Any]:
    return {"name": "csrp", "sigma": point.sigma, "p": point.p}


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load_before = os.getloadavg()
    model_path = Path(args.model)
    predictor = OnnxPredictor(model_path, intra_op_threads=args.threads)
    config = predictor.config
    _, height, width = config.input_shape
    test_full = load_dataset(config.dataset, "test")
    samples = len(test_full) if args.samples in (0, None) else min(args.samples, len(test_full))
    test: ImageData = (test_full if samples == len(test_full)
                       else test_full.subset(samples / len(test_full), args.seed))
    clean = accuracy_under(predictor.logits, test, None, 1, args.seed)
    _log(f"clean top-1 {clean.top1:.4f} on {len(test)} test images "
         f"(load average {load_before[0]:.1f})")

    grid = make_grid(args.sigmas, args.ps, height, width)
    t0 = time.perf_counter()
    for point in grid:
        if not point.valid:
            continue
        point.free = accuracy_under(predictor.logits, test, _spec(point), args.repeats, args.seed)
        _log(f"data-free sigma={point.sigma:g} p={point.p}: top-1 {point.free.top1:.4f} "
             f"± {point.free.top1_std:.4f}")
    free_seconds = time.perf_counter() - t0

    if args.adapt == "none":
        chosen_points: list[Point] = []
    elif args.adapt == "auto":
        chosen_points = pick_adapt_points(grid, clean.top1, args.adapt_points, args.budget_free)
    else:
        chosen_points = parse_points(args.adapt, grid)
    train = load_dataset(config.dataset, "train").subset(args.fraction, args.seed)
    t0 = time.perf_counter()
    for point in chosen_points:
        t_point = time.perf_counter()
        model, _ = load_model(model_path)
        adapt_model(model, train, _spec(point), args.epochs, lr=args.lr, seed=args.seed,
                    description=f"adapt {point.key}", show_progress=False)
        point.adapt_seconds = time.perf_counter() - t_point
        logits = _OrtLogits(export_onnx(model, config.input_shape), args.threads)
        point.adapted = accuracy_under(logits, test, _spec(point), args.repeats, args.seed)
        point.adapted_clean = accuracy_under(logits, test, None, 1, args.seed).top1
        point.extra["point_seconds"] = round(time.perf_counter() - t_point, 1)
        _log(f"adapted sigma={point.sigma:g} p={point.p}: top-1 under CSRP "
             f"{point.adapted.top1:.4f} (clean {point.adapted_clean:.4f}), "
             f"train {point.adapt_seconds:.0f} s")
    adapt_seconds = time.perf_counter() - t0

    best, rule = choose_default(grid, clean.top1, args.budget_free, args.budget_ft,
                                args.tolerance)
    load_after = os.getloadavg()
    return {
        "model": str(model_path), "arch": config.arch, "dataset": config.dataset,
        "input_shape": config.input_shape, "test_samples": len(test),
        "test_subset": "all" if samples == len(test_full) else
        f"seeded subset (fraction {samples / len(test_full):g}, seed {args.seed})",
        "repeats": args.repeats, "seed": args.seed, "clean_top1": round(clean.top1, 4),
        "clean_top5": round(clean.top5, 4),
        "adapt": {"fraction": args.fraction, "train_samples": len(train), "epochs": args.epochs,
                  "lr": args.lr, "batch_size": 128, "selection": args.adapt},
        "budgets": {"free": args.budget_free, "ft": args.budget_ft,
                    "tolerance": args.tolerance},
        "rule": rule,
        "chosen": None if best is None else {
            "sigma": best.sigma, "p": best.p, **_row(best, clean.top1)},
        "points": [_row(q, clean.top1) for q in grid],
        "timing": {"total_seconds": round(time.perf_counter() - started, 1),
                   "data_free_seconds": round(free_seconds, 1),
                   "adapt_seconds": round(adapt_seconds, 1),
                   "load_average_before": [round(v, 2) for v in load_before],
                   "load_average_after": [round(v, 2) for v in load_after],
                   "threads": args.threads, "cpu_count": os.cpu_count()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def _row(q: Point, clean: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sigma": q.sigma, "p": q.p, "valid": q.valid, "reason": q.reason,
        "h_max": q.h_max, "h_r": q.h_r, "shift_px": round(q.shift_px, 2),
        "scale": round(q.scale, 3), "offset_pairs": (q.p + 1) ** 2,
    }
    if q.free is not None:
        row.update({"free_top1": _pct(q.free.top1), "free_top1_std": _pct(q.free.top1_std),
                    "free_top1_min": _pct(min(q.free.top1s)),
                    "free_top1_max": _pct(max(q.free.top1s)),
                    "free_top5": _pct(q.free.top5),
                    "free_drop": round(100 * (clean - q.free.top1), 2),
                    "free_draws": [_pct(v) for v in q.free.top1s]})
    if q.adapted is not None:
        row.update({"adapted_top1": _pct(q.adapted.top1),
                    "adapted_top1_std": _pct(q.adapted.top1_std),
                    "adapted_top5": _pct(q.adapted.top5),
                    "adapted_drop": round(100 * (clean - q.adapted.top1), 2),
                    "adapted_clean_top1": _pct(q.adapted_clean),
                    "adapted_draws": [_pct(v) for v in q.adapted.top1s],
                    "adapt_train_seconds": round(q.adapt_seconds or 0.0, 1), **q.extra})
    return row


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------

CSV_COLUMNS = ("sigma", "p", "valid", "h_max", "h_r", "shift_px", "scale", "offset_pairs",
               "free_top1", "free_top1_std", "free_top1_min", "free_top1_max", "free_top5",
               "free_drop", "adapted_top1", "adapted_top1_std", "adapted_top5", "adapted_drop",
               "adapted_clean_top1", "adapt_train_seconds")


def to_csv(result: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in result["points"]:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    return buffer.getvalue()


def to_markdown(result: dict[str, Any]) -> str:
    rows = result["points"]
    sigmas = sorted({r["sigma"] for r in rows})
    ps = sorted({r["p"] for r in rows})
    cell = {(r["sigma"], r["p"]): r for r in rows}
    timing, adapt = result["timing"], result["adapt"]
    lines = [
        f"# CSRP accuracy/strength sweep: {result['model']} ({result['arch']}, "
        f"{result['dataset']}, {'x'.join(map(str, result['input_shape']))})",
        "",
        f"Clean top-1 **{result['clean_top1']:.4f}** on {result['test_samples']} test "
        f"images ({result['test_subset']}). Rates and drops are fractions, 0-1 (the JSON keeps "
        "percent). Data-free: the target behind CSRP, mean ± sample std "
        f"over {result['repeats']} draws (per-sample offsets, the same draws at every point). "
        "`—` = invalid (Hr < H: the up-resize would shrink the image).",
        "",
        "## Data-free top-1",
        "",
        "| sigma \\ p | " + " | ".join(str(p) for p in ps) + " |",
        "|---|" + "---|" * len(ps),
    ]
    for sigma in sigmas:
        cells = []
        for p in ps:
            r = cell.get((sigma, p))
            cells.append("—" if r is None or r.get("free_top1") is None
                         else f"{r['free_top1'] / 100:.4f} ± {r['free_top1_std'] / 100:.4f}")
        lines.append(f"| {sigma:g} | " + " | ".join(cells) + " |")
    lines += ["", "## Data-free drop from clean top-1", "",
              "| sigma \\ p | " + " | ".join(str(p) for p in ps) + " |",
              "|---|" + "---|" * len(ps)]
    for sigma in sigmas:
        cells = [("—" if (r := cell.get((sigma, p))) is None or r.get("free_drop") is None
                  else f"{r['free_drop'] / 100:.3f}") for p in ps]
        lines.append(f"| {sigma:g} | " + " | ".join(cells) + " |")
    adapted = [r for r in rows if r.get("adapted_top1") is not None]
    lines += ["", f"## After adaptation ({adapt['epochs']} epochs on {adapt['train_samples']} "
              f"training images = {100 * adapt['fraction']:g}%, lr {adapt['lr']}, all layers; "
              f"points: {adapt['selection']})", ""]
    if adapted:
        lines += ["| sigma | p | Hmax | Hr | max shift (px) | content scale | data-free top-1 "
                  "| adapted top-1 under CSRP | adapted clean top-1 | drop data-free "
                  "| drop adapted | train s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in adapted:
            lines.append(
                f"| {r['sigma']:g} | {r['p']} | {r['h_max']} | {r['h_r']} | {r['shift_px']:.2f} "
                f"| {r['scale']:.3f} | {r['free_top1'] / 100:.4f} ± "
                f"{r['free_top1_std'] / 100:.4f} "
                f"| {r['adapted_top1'] / 100:.4f} ± {r['adapted_top1_std'] / 100:.4f} "
                f"| {r['adapted_clean_top1'] / 100:.4f} | {r['free_drop'] / 100:.3f} "
                f"| {r['adapted_drop'] / 100:.3f} | {r['adapt_train_seconds']:.0f} |")
    else:
        lines.append("(no adaptation in this run)")
    chosen = result["chosen"]
    lines += ["", "## Choice", "", f"Rule: {result['rule']}.", ""]
    if chosen:
        lines.append(f"**sigma = {chosen['sigma']:g}, p = {chosen['p']}**: data-free "
                     f"{chosen['free_top1'] / 100:.4f} (−{chosen['free_drop'] / 100:.3f}), "
                     f"adapted {chosen['adapted_top1'] / 100:.4f} "
                     f"(−{chosen['adapted_drop'] / 100:.3f}).")
    else:
        lines.append("No point satisfies the rule in this run.")
    lines += ["", "## Run", "",
              f"Total {timing['total_seconds']:.0f} s (data-free {timing['data_free_seconds']:.0f}"
              f" s, adaptation {timing['adapt_seconds']:.0f} s) with {timing['threads']} torch/ORT "
              f"thread(s) on {timing['cpu_count']} shared CPU cores; load average "
              f"{timing['load_average_before'][0]:.1f} before, "
              f"{timing['load_average_after'][0]:.1f} after.", ""]
    return "\n".join(lines)


def to_png(result: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["points"] if r.get("free_top1") is not None]
    ps = sorted({r["p"] for r in rows})
    clean = result["clean_top1"]  # the plot's rates are 0-1, the JSON's top-1 values percent
    fig, ax = plt.subplots(figsize=(10, 5.4), dpi=120)
    # one distinct hue per p (a sequential map made neighbouring p indistinguishable)
    colours = [DISTINCT_COLOURS[i % len(DISTINCT_COLOURS)] for i in range(len(ps))]
    for colour, p in zip(colours, ps, strict=True):
        free = sorted((r for r in rows if r["p"] == p), key=lambda r: r["sigma"])
        ax.errorbar([r["sigma"] for r in free], [r["free_top1"] / 100 for r in free],
                    yerr=[r["free_top1_std"] / 100 for r in free], color=colour, marker="o",
                    linestyle="-", capsize=2, label=f"p={p} data-free")
        done = [r for r in free if r.get("adapted_top1") is not None]
        if done:
            ax.errorbar([r["sigma"] for r in done], [r["adapted_top1"] / 100 for r in done],
                        yerr=[r["adapted_top1_std"] / 100 for r in done], color=colour, marker="s",
                        linestyle="--", capsize=2, label=f"p={p} adapted")
    budgets = result["budgets"]
    ax.axhline(clean, color="black", linewidth=1, label=f"clean {clean:.3f}")
    ax.axhline(clean - budgets["free"] / 100, color="grey", linestyle=":", linewidth=1,
               label=f"clean − {budgets['free'] / 100:g} (data-free budget)")
    ax.axhline(clean - budgets["ft"] / 100, color="grey", linestyle="-.", linewidth=1,
               label=f"clean − {budgets['ft'] / 100:g} (adapted budget)")
    chosen = result["chosen"]
    if chosen:
        ax.plot([chosen["sigma"]], [chosen["adapted_top1"] / 100], marker="*", markersize=16,
                color="red", linestyle="none",
                label=f"chosen sigma={chosen['sigma']:g}, p={chosen['p']}")
    ax.set_xlabel("sigma (scale limit)")
    ax.set_ylabel("top-1 accuracy under CSRP (0-1)")
    ax.set_title(f"CSRP on {result['model']} ({result['arch']}, {result['dataset']}, "
                 f"{result['test_samples']} test images, {result['repeats']} draws)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def write_outputs(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sweep.json", result)
    write_text(out / "sweep.csv", to_csv(result))
    write_text(out / "sweep.md", to_markdown(result))
    write_bytes(out / "sweep.png", to_png(result))


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("Examples::")[1])
    parser.add_argument("--model", default="zoo/target", help="target entry (default %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "sweep")
    parser.add_argument("--sigmas", type=_floats, default=list(SIGMAS))
    parser.add_argument("--ps", type=_ints, default=list(PS))
    parser.add_argument("--samples", type=int, default=5000,
                        help="seeded test subset size, 0 = all 10k (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="CSRP draws per point")
    parser.add_argument("--adapt", default="auto",
                        help="auto | none | comma list of sigma:p (default %(default)s)")
    parser.add_argument("--adapt-points", type=int, default=6, help="how many points for auto")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget-free", type=float, default=10.0,
                        help="data-free top-1 drop allowed, points (default %(default)s)")
    parser.add_argument("--budget-ft", type=float, default=6.0,
                        help="adapted top-1 drop allowed, points (default %(default)s)")
    parser.add_argument("--tolerance", type=float, default=1.0,
                        help="slack on the data-free budget ('roughly'), points")
    parser.add_argument("--render", type=Path, default=None, metavar="SWEEP_JSON",
                        help="only re-render md/csv/png (and json) from an earlier sweep.json")
    args = parser.parse_args(argv)
    if args.render is not None:
        result = json.loads(args.render.read_text())
        write_outputs(result, args.out)
        print(json.dumps({"out": str(args.out), "rendered_from": str(args.render)}))
        return 0
    result = run(args)
    write_outputs(result, args.out)
    print(json.dumps({"out": str(args.out), "chosen": result["chosen"], "rule": result["rule"],
                      "timing": result["timing"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
