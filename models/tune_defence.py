"""The pirate's answer to an adaptive owner: sweep a defence's settings against a fingerprint
suite and keep the Pareto front of accuracy as served against the owner's best matching rate.

Every point is the stolen model behind one setting of a registered transform (the data-free
pirate), or a zoo entry behind its own preprocessing (e.g. a CSRP pirate fine-tuned on 5% of
the data). Per point:

* ``accuracy``: top-1 as served (behind the transform, fresh per-sample draws) on the first
  ``samples`` test images, mean over ``acc_repeats`` draws;
* per fingerprint suite (e.g. the owner's plain sets and EOT sets) and per number of votes K
  (the owner asks every fingerprint K times and scores the modal label): each set's mean
  matching rate over ``repeats`` repeats, and the *best* one (what the owner would use).

A point is on the front of a (suite, votes) when no other point has at least its accuracy and
at most its best matching rate, one of them strictly. The fingerprint sets are read from their
files (docs/design.md 3.4: safetensors ``images`` and ``labels``; never a pickle).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.adapt import accuracy_under
from models.atomic import write_bytes, write_json, write_text
from models.datasets import load_dataset
from models.errors import UserError
from models.provenance import code_version, utc_now
from models.repository import Entry
from models.runtime import load_predictor
from models.transforms import build_transform, transform_class
from models.voting import modal_labels


def read_set(path: Path) -> tuple[str, torch.Tensor, torch.Tensor]:
    """``(method, images, labels)`` of a fingerprint set file (``models.fingerprint_file``)."""
    from models import fingerprint_file

    _, metadata, tensors = fingerprint_file.read(path)
    return (str(metadata.get("method") or path.stem), torch.from_numpy(tensors["images"]),
            torch.from_numpy(tensors["labels"]))


def read_suite(items: Sequence[str | Path]) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Every set in the files or folders ``items``."""
    paths: list[Path] = []
    for item in map(Path, items):
        paths += sorted(item.glob("*.safetensors")) if item.is_dir() else [item]
    if not paths:
        raise UserError(f"no fingerprint sets in {', '.join(map(str, items))}")
    return [read_set(p) for p in paths]


def grid_points(name: str, grid: dict[str, list[Any]],
                input_shape: Sequence[int]) -> tuple[list[dict[str, Any]], list[str]]:
    """The specs of every grid setting of transform ``name`` that fits the input, and why the
    others were skipped."""
    cls = transform_class(name)
    options = {o.name for o in cls.options}
    unknown = sorted(set(grid) - options)
    if unknown:
        raise UserError(f"{name} has no option {', '.join(unknown)}; its options: "
                        f"{', '.join(sorted(options))}")
    keys = list(grid)
    specs, skipped = [], []
    for values in itertools.product(*(grid[k] for k in keys)):
        spec = {"name": name, **dict(zip(keys, values, strict=True))}
        try:
            transform = build_transform(spec)
            assert transform is not None
            transform.check_fits(input_shape)
        except (ValueError, TypeError) as error:
            skipped.append(f"{spec}: {error}")
            continue
        specs.append(transform.spec())
    if not specs:
        raise UserError(f"no grid setting of {name} fits {list(input_shape)} images")
    return specs, skipped


def matching(predictor: Any, spec: dict[str, Any] | None,
             suite: Sequence[tuple[str, torch.Tensor, torch.Tensor]], repeats: int, votes: int,
             seed: int) -> dict[str, float]:
    """Mean matching rate per set of the predictor behind ``spec`` (modal labels over
    ``votes`` draws per repeat)."""
    transform = build_transform(spec)
    if transform is not None:
        transform.set_kernel("eager")
    generator = torch.Generator().manual_seed(seed)
    rates = {}
    for method, images, labels in suite:
        hits = []
        for _ in range(repeats if transform is not None else 1):
            answers = []
            for _ in range(votes if transform is not None else 1):
                batch = images if transform is None else transform(images, generator)
                answers.append(predictor.predict(batch).numpy())
            hits.append(float((modal_labels(np.stack(answers)) == labels.numpy()).mean()))
        rates[method] = float(np.mean(hits))
    return rates


def pareto(points: Sequence[dict[str, Any]], key: str) -> list[int]:
    """Indices of the points on the front: higher ``accuracy``, lower ``best[key]``."""
    front = []
    for i, p in enumerate(points):
        dominated = any(q["accuracy"] >= p["accuracy"] and q["best"][key] <= p["best"][key]
                        and (q["accuracy"] > p["accuracy"] or q["best"][key] < p["best"][key])
                        for j, q in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i]["accuracy"])


def tune_defence(model: Path, transform: str, grid: dict[str, list[Any]],
                 suites: dict[str, Sequence[str | Path]], *, entries: Sequence[Path] = (),
                 votes: Sequence[int] = (1,), repeats: int = 10, samples: int = 2000,
                 acc_repeats: int = 2, seed: int = 0) -> dict[str, Any]:
    """Sweep and measure every point (see the module docstring); the JSON-ready report."""
    started = time.perf_counter()
    target = Entry.load(model)
    specs, skipped = grid_points(transform, grid, target.config.input_shape)
    loaded = {name: read_suite(items) for name, items in suites.items()}
    test = load_dataset(target.config.dataset, "test").take(samples)
    candidates = [(f"{transform} " + ", ".join(f"{k}={v}" for k, v in s.items() if k != "name"),
                   target, s) for s in specs]
    candidates += [(e.name, e, e.config.preprocessing) for e in map(Entry.load, entries)]
    points = []
    for label, entry, spec in candidates:
        predictor = load_predictor(entry)
        point: dict[str, Any] = {
            "point": label, "model": entry.name, "transform": spec,
            "fine_tuned": entry.config.lineage.modification.startswith("adapt-"),
            "accuracy": round(accuracy_under(predictor.logits, test, spec, acc_repeats,
                                             seed).top1, 4), "rates": {}, "best": {}}
        for (suite, sets), k in itertools.product(loaded.items(), votes):
            rates = matching(predictor, spec, sets, repeats, k, seed)
            key = f"{suite}, {k} vote{'s' if k > 1 else ''}"
            point["rates"][key] = {m: round(r, 4) for m, r in rates.items()}
            point["best"][key] = round(max(rates.values()), 4)
        points.append(point)
    keys = list(points[0]["best"])
    return {"model": str(model), "transform": transform, "grid": grid, "skipped": skipped,
            "suites": {name: [str(i) for i in items] for name, items in suites.items()},
            "votes": list(votes), "repeats": repeats, "samples": len(test),
            "acc_repeats": acc_repeats, "seed": seed, "points": points,
            "fronts": {key: pareto(points, key) for key in keys},
            "seconds": round(time.perf_counter() - started, 1), "time": utc_now(),
            "code_version": code_version()}


def to_markdown(report: dict[str, Any]) -> str:
    keys = list(report["fronts"])
    lines = [f"Defence sweep of {report['model']} ({report['transform']}): top-1 as served on "
             f"{report['samples']} test images; the owner's best matching rate over each suite "
             f"({report['repeats']} repeats). * = on that column's Pareto front.", "",
             "| point | accuracy | " + " | ".join(keys) + " |",
             "|---|---:|" + "---:|" * len(keys)]
    for index, point in enumerate(report["points"]):
        cells = [f"{point['best'][k]:.2f}{' *' if index in report['fronts'][k] else ''}"
                 for k in keys]
        lines.append(f"| {point['point']} | {point['accuracy']:.3f} | " + " | ".join(cells)
                     + " |")
    if report["skipped"]:
        lines += ["", f"{len(report['skipped'])} grid setting(s) skipped: they do not fit the "
                  "input (e.g. " + report["skipped"][0] + ")"]
    return "\n".join(lines) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    keys = list(report["fronts"])
    writer.writerow(["point", "model", "fine_tuned", "accuracy", *keys])
    for point in report["points"]:
        writer.writerow([point["point"], point["model"], point["fine_tuned"], point["accuracy"],
                         *(point["best"][k] for k in keys)])
    return buffer.getvalue()


def _short_label(point: str) -> str:
    """``csrp sigma=1.16, p=3`` -> ``1.16/3``; entry names (``csrp-ft``) stay as they are."""
    numbers = re.findall(r"=\s*([0-9.]+)", point)
    return "/".join(numbers) if numbers else point


def plot(report: dict[str, Any]) -> bytes:
    """Accuracy as served against the owner's best matching rate: one panel per fingerprint
    suite, 1 vote (hollow circles) and more votes (filled triangles) told apart by marker, each
    Pareto front drawn as a line with its points labelled by their setting (sigma/p, or the
    fine-tuned entry's name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(report["fronts"])
    suites = list(dict.fromkeys(key.split(",")[0] for key in keys))
    figure, panels = plt.subplots(1, len(suites), figsize=(6.2 * len(suites), 5.4), sharey=True,
                                  squeeze=False)
    colours = {"1 vote": "tab:blue"}
    points = report["points"]
    ys = [p["accuracy"] for p in points]
    for axes, suite in zip(panels[0], suites, strict=True):
        for n, key in enumerate(k for k in keys if k.split(",")[0] == suite):
            votes = key.split(",", 1)[1].strip() if "," in key else key
            colour = colours.get(votes, "tab:orange")
            xs = [p["best"][key] for p in points]
            hollow = n == 0
            axes.scatter(xs, ys, s=36 if hollow else 28, marker="o" if hollow else "^",
                         facecolors="none" if hollow else colour, edgecolors=colour,
                         linewidths=1.2, label=votes, zorder=3)
            front = sorted(report["fronts"][key], key=lambda i: points[i]["best"][key])
            axes.plot([points[i]["best"][key] for i in front],
                      [points[i]["accuracy"] for i in front], "-", color=colour, alpha=0.7,
                      zorder=2, label=f"{votes}: Pareto front")
            if hollow:  # label the front once; the other vote counts sit beside it
                for k, i in enumerate(front):
                    axes.annotate(_short_label(points[i]["point"]),
                                  (points[i]["best"][key], points[i]["accuracy"]),
                                  textcoords="offset points",
                                  xytext=(-14, 10) if k % 2 == 0 else (-14, -16),
                                  ha="right", va="center", fontsize=7, color="0.2",
                                  arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"})
        axes.set_title(f"{suite} fingerprints ({report['repeats']} repeats)", fontsize=10)
        axes.set_xlabel("owner's best matching rate, 0-1 (lower: harder to prove theft)")
        axes.grid(alpha=0.3)
        low = min(p["best"][k] for p in points for k in keys if k.split(",")[0] == suite)
        axes.set_xlim(min(low - 0.08, 0.9), 1.02)
    panels[0][0].set_ylabel("top-1 as served, 0-1 (pirate's accuracy)")
    handles, labels = panels[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8,
                  frameon=False)
    figure.suptitle(f"The pirate's choice of {report['transform']} setting against the owner's "
                    "fingerprints (labels: sigma/p of each Pareto point)", fontsize=11)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return buffer.getvalue()


def write_outputs(report: dict[str, Any], out: Path) -> list[Path]:
    paths = [out / f"tune_defence.{ext}" for ext in ("json", "md", "csv", "png")]
    write_json(paths[0], report)
    write_text(paths[1], to_markdown(report))
    write_text(paths[2], to_csv(report))
    write_bytes(paths[3], plot(report))
    return paths
