"""Pirate fronts side by side at equal accuracy: CSRP, cheap input transforms, a query detector.

The seed paper argues CSRP is special among input transforms. The study tests that on the zoo:

1. CSRP's top-1 (the zoo's setting, ``samples`` test images, ``acc_repeats`` draws) is the
   accuracy every other transform is matched to: each registered transform with a strength knob
   (``RandomTransform.strength_spec``: RDG, JPEG, median smoothing, bit-depth reduction,
   Gaussian noise; Lukas et al., "SoK: How robust is image classification deep neural network
   watermarking?", IEEE S&P 2022, list these removal attacks) is bisected on its strength with
   one seeded draw per probe (common random numbers), as ``stability`` does for RDG. Discrete
   knobs (median kernel, bits) land on the setting closest to CSRP's top-1, which the table
   states beside each row.
2. The query detector (``models.detector``, fitted per model on the pirate's clean share with a
   1% clean false-positive rate) alone and behind CSRP; its accuracy is what it costs, not
   matched.
3. Behind every front, every fingerprint set is matched by the stolen copies (the zoo's positives
   without a front of their own and without retraining: the unmodified copy, int8, pruning,
   fine-tuning) and by every held-out innocent, ``repeats`` fresh draws each; per method the
   copy's rate, the innocents' band and the ROC-AUC of positives against innocents (Mann-Whitney,
   the same ``roc.auc``). With a detector, the share of each set it flags on the copy.
4. What ``verify --adaptive`` concludes about the copy behind each front: the validation's judge
   (plain sets for a deterministic front, the EOT sets against their front-matched calibration
   for a randomized one, the shipped calibrations; ``studies.validation``), in-process with the
   serving path's semantics. The detector rows judge the zoo's ``detector`` and
   ``detector-csrp`` entries.

Rates per (model, front) are cached under ``<out>/cache``; a rerun resumes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.atomic import write_json
from models.errors import UserError
from models.provenance import code_version, utc_now
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.studies.validation import CacheCount

DEFAULT_TRANSFORMS = ("rdg", "jpeg", "median", "bitdepth", "noise")
DEFAULT_REPEATS = 5
DEFAULT_SAMPLES = 2000
TOLERANCE = 0.005
SEARCH_STEPS = 12
DETECTOR_FPR = 0.01
#: the zoo's detecting pirates, judged for the detector rows
DETECTOR_ENTRIES = {"detector": "detector", "detector + CSRP": "detector-csrp"}
#: positives a pirate could put behind any front (no front of their own, no retraining)
FRONTABLE = ("unmodified", "quantization", "pruning", "fine-tuning")


@dataclass(frozen=True)
class Front:
    """One row: a transform spec (or none) and whether a query detector follows the model."""

    label: str
    spec: dict[str, Any] | None
    detector: bool = False

    def key(self) -> str:
        return json.dumps([self.spec, self.detector], sort_keys=True)


def match_accuracy(logits_fn: Any, data: Any, name: str, target_top1: float, seed: int,
                   tolerance: float = TOLERANCE, steps: int = SEARCH_STEPS
                   ) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    """The spec of transform ``name`` whose top-1 on ``data`` is closest to ``target_top1``:
    bisection on its strength in [0, 1] (accuracy non-increasing in it), one seeded draw per
    probe; returns ``(spec, top1, trace)``."""
    from models.transforms import transform_class
    from verifier_client.studies.stability import top1_draws

    cls = transform_class(name)
    if cls.strength_spec(0.0) is None:
        raise UserError(f"transform {name!r} has no strength knob to match accuracy with")
    seen: dict[str, float] = {}
    trace: list[dict[str, Any]] = []

    def probe(strength: float) -> tuple[dict[str, Any], float]:
        spec = cls.strength_spec(strength)
        assert spec is not None
        key = json.dumps(spec, sort_keys=True)
        if key not in seen:
            seen[key] = top1_draws(logits_fn, data, spec, 1, seed)[0]
            trace.append({"strength": round(strength, 5), "spec": spec, "top1": seen[key]})
        return spec, seen[key]

    low, high = 0.0, 1.0
    best = probe(high)
    if best[1] > target_top1 + tolerance:
        return best[0], best[1], trace  # even the strongest costs less accuracy: say so
    for _ in range(steps - 1):
        middle = (low + high) / 2
        spec, top1 = probe(middle)
        if abs(top1 - target_top1) < abs(best[1] - target_top1):
            best = (spec, top1)
        if abs(top1 - target_top1) <= tolerance:
            break
        low, high = (middle, high) if top1 > target_top1 else (low, middle)
        if cls.strength_spec(low) == cls.strength_spec(high):
            break  # a discrete knob: nothing left between the two
    for strength in (low, high):  # a discrete knob's neighbours may be closer
        spec, top1 = probe(strength)
        if abs(top1 - target_top1) < abs(best[1] - target_top1):
            best = (spec, top1)
    return best[0], best[1], trace


def served(entry: Any, front: Front, train: Any, seed: int) -> tuple[Any, Any]:
    """``(predictor, transform)`` of ``entry`` behind ``front`` (a detector fitted on this
    model's pirate share when the front has one)."""
    from models.adapt import as_transform
    from models.modify.detect import fit_pirate_detector
    from models.runtime import AnsweringPredictor, load_predictor

    predictor = load_predictor(entry)
    transform = as_transform(front.spec, entry.config.input_shape)
    if transform is not None:
        transform.set_kernel("eager")
    if front.detector:
        detector, _ = fit_pirate_detector(predictor.logits, train, transform, fpr=DETECTOR_FPR,
                                          seed=seed)
        predictor = AnsweringPredictor(predictor, detector)
    return predictor, transform


def model_rates(entry: Any, front: Front, sets: Sequence[FingerprintSet], repeats: int,
                train: Any, seed: int) -> dict[str, Any]:
    """Per method: the mean matching rate over ``repeats`` draws (one pass for a deterministic
    front) and, behind a detector, the share of the set it flags."""
    import torch

    from verifier_client.matching import match_outcomes

    predictor, transform = served(entry, front, train, seed)
    draws = repeats if transform is not None and transform.randomized else 1
    out: dict[str, Any] = {"rates": {}, "flagged": {}}
    for fset in sets:
        outcomes = match_outcomes(predictor, fset, transform, draws, seed)
        out["rates"][fset.method] = round(float(outcomes.double().mean()), 4)
        if front.detector:
            images = torch.from_numpy(fset.queries)
            if transform is not None:
                images = transform(images, generator=torch.Generator().manual_seed(seed))
            logits = predictor.inner.logits(images).detach().cpu().numpy()
            out["flagged"][fset.method] = round(float(predictor.detector.flagged(logits)
                                                      .mean()), 4)
    return out


def measure(zoo: Path, names: Sequence[str], fronts: Sequence[Front],
            sets: Sequence[FingerprintSet], repeats: int, train: Any, seed: int,
            cache: Path, tick: Callable[[str], None],
            count: CacheCount | None = None) -> dict[str, dict[str, Any]]:
    """``front label -> model -> model_rates``, from the cache where measured before."""
    count = count if count is not None else CacheCount()
    from models.repository import Entry

    found: dict[str, dict[str, Any]] = {}
    digest = hashlib.sha256(json.dumps([s.sha256 for s in sets]).encode()).hexdigest()[:12]
    for front in fronts:
        found[front.label] = {}
        for name in names:
            key = hashlib.sha256(f"{name}|{front.key()}|{repeats}|{seed}|{digest}".encode())
            file = cache / f"{name}-{key.hexdigest()[:16]}.json"
            if file.is_file():
                count.reused += 1
                found[front.label][name] = json.loads(file.read_text())
                continue
            count.measured += 1
            rates = model_rates(Entry.load(zoo / name), front, sets, repeats, train, seed)
            write_json(file, rates)
            found[front.label][name] = rates
            tick(f"{name} behind {front.label}")
    return found


def front_rows(fronts: Sequence[Front], measured: dict[str, dict[str, Any]],
               methods: Sequence[str], copy: str, positives: Sequence[str],
               innocents: Sequence[str]) -> list[dict[str, Any]]:
    """Per front and method: the copy's rate, the positives' mean, the innocents' band, AUC."""
    from verifier_client.studies.roc import auc

    rows = []
    for front in fronts:
        by_model = measured[front.label]
        per_method = {}
        for method in methods:
            pos = [by_model[n]["rates"][method] for n in positives]
            neg = [by_model[n]["rates"][method] for n in innocents]
            per_method[method] = {
                "copy": by_model[copy]["rates"][method],
                "positives_mean": round(float(np.mean(pos)), 4),
                "innocents_mean": round(float(np.mean(neg)), 4),
                "innocents_max": round(max(neg), 4), "auc": round(auc(pos, neg), 4)}
            if front.detector:
                per_method[method]["flagged_on_copy"] = by_model[copy]["flagged"][method]
        rows.append({"front": front.label, "spec": front.spec, "detector": front.detector,
                     "methods": per_method})
    return rows


def fronts_study(zoo: Path, sets: Sequence[FingerprintSet], *, copy: str = "target",
                 positives: Sequence[str], innocents: Sequence[str], validation: Any,
                 transforms: Sequence[str] = DEFAULT_TRANSFORMS, repeats: int = DEFAULT_REPEATS,
                 samples: int = DEFAULT_SAMPLES, acc_repeats: int = 3, seed: int = 0,
                 cache: Path, on_model: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The report (module doc)."""
    from models.datasets import load_dataset
    from models.repository import Entry, load_config
    from models.runtime import AnsweringPredictor, load_predictor
    from verifier_client.studies.stability import top1_draws

    tick = on_model or (lambda name: None)
    copy_entry = Entry.load(zoo / copy)
    csrp_config = load_config(zoo / "csrp")
    csrp = csrp_config.preprocessing
    if csrp is None or csrp.get("name") != "csrp":
        raise UserError(f"{zoo}/csrp: no CSRP preprocessing to match accuracy to")
    test = load_dataset(copy_entry.config.dataset, "test").take(samples)
    train = load_dataset(copy_entry.config.dataset, "train")
    logits = load_predictor(copy_entry).logits
    clean = top1_draws(logits, test, None, 1, seed)[0]
    csrp_top1 = float(np.mean(top1_draws(logits, test, csrp, acc_repeats, seed)))
    fronts = [Front("none", None), Front("CSRP", dict(csrp))]
    accuracy: dict[str, Any] = {"none": {"top1": round(clean, 4)},
                                "CSRP": {"top1": round(csrp_top1, 4)}}
    for name in transforms:
        spec, _, trace = match_accuracy(logits, test, name, csrp_top1, seed)
        label = name.upper() if name in ("rdg", "jpeg") else name
        fronts.append(Front(label, spec))
        accuracy[label] = {"top1": round(float(np.mean(top1_draws(logits, test, spec,
                                                                  acc_repeats, seed))), 4),
                           "search": trace}
        tick(f"matched {name}: {spec}")
    for label, spec in (("detector", None), ("detector + CSRP", dict(csrp))):
        front = Front(label, spec, detector=True)
        predictor, _ = served(copy_entry, front, train, seed)
        assert isinstance(predictor, AnsweringPredictor)
        accuracy[label] = {"top1": round(float(np.mean(top1_draws(
            predictor.logits, test, spec, acc_repeats, seed))), 4)}
        fronts.append(front)
    names = list(dict.fromkeys([copy, *positives, *innocents]))
    count = CacheCount()
    measured = measure(zoo, names, fronts, sets, repeats, train, seed, cache, tick, count)
    methods = [s.method for s in sets]
    rows = front_rows(fronts, measured, methods, copy, positives, innocents)
    for row, front in zip(rows, fronts, strict=True):
        row["top1"] = accuracy[front.label]["top1"]
        row["search"] = accuracy[front.label].get("search")
        if front.detector:
            entry = DETECTOR_ENTRIES[front.label]
            if not (zoo / entry).is_dir():
                row["verdict"] = {"verdict": "not measured", "reason": f"no {entry} entry"}
                continue
            row["verdict"] = validation.judge(Entry.load(zoo / entry), None)
        else:
            row["verdict"] = validation.judge(copy_entry, front.spec)
        tick(f"judged the copy behind {front.label}")
    return {"copy": copy, "csrp": csrp, "samples": samples, "acc_repeats": acc_repeats,
            "repeats": repeats, "seed": seed, "positives": list(positives),
            "innocents": len(innocents), "methods": methods, "fronts": rows,
            "detector_fpr": DETECTOR_FPR,
            "cache": {"rates": count.to_dict(), "verdicts": validation.count.to_dict()},
            "code_version": code_version(), "time": utc_now()}


def to_markdown(report: dict[str, Any]) -> str:
    """The README's table: one row per front, AUC per method, the copy's adaptive verdict."""
    methods = report["methods"]
    head = ("| front | setting | top-1 | " + " | ".join(methods)
            + " | copy: verify --adaptive |")
    lines = [f"Pirate fronts at CSRP's accuracy: AUC of {len(report['positives'])} stolen copies "
             f"against {report['innocents']} held-out innocents behind the same front "
             f"({report['repeats']} draws each), per method; the copy's verdict.", "", head,
             "|" + "---|" * (len(methods) + 4)]
    for row in report["fronts"]:
        spec = row["spec"]
        setting = "-" if spec is None else ", ".join(f"{k}={v}" for k, v in spec.items()
                                                     if k != "name")
        verdict = row["verdict"]
        path = {"eot": "EOT sets", "plain": "plain sets"}.get(verdict.get("path") or "",
                                                             verdict.get("path"))
        words = verdict["verdict"].replace("_", " ") + (f" ({path})" if path else "")
        lines.append(f"| {row['front']} | {setting} | {row['top1']:.3f} | "
                     + " | ".join(f"{row['methods'][m]['auc']:.2f}" for m in methods)
                     + f" | {words} |")
    flagged = [r for r in report["fronts"] if r["detector"]]
    if flagged:
        lines += ["", "Share of each set the detector flags on the copy (clean false-positive "
                  f"rate stated {report['detector_fpr']:g}):", "",
                  "| front | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 1)]
        for row in flagged:
            lines.append(f"| {row['front']} | " + " | ".join(
                f"{row['methods'][m]['flagged_on_copy']:.2f}" for m in methods) + " |")
    return "\n".join(lines) + "\n"
