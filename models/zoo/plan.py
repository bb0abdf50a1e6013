"""The default zoo as data: every entry, its role in the population, and how it is made.

Roles (what an evaluation may do with an entry):

=========================  ==================================================================
``target``                 the owner's model (white-box: it keeps its safetensors weights)
``calibration-negative``   independently trained (target recipe, distinct seeds); thresholds,
                           fits and every other choice are made on these alone
``heldout-negative``       independently trained ResNet-20s with other seeds, and VGG-16s and
                           MobileNets on the same data (at a quarter width, ``vgg16_025`` and
                           ``mobilenet_025``, so that each ships in 1-4 MB rather than 13-57);
                           no threshold, fit or choice sees them
``positive``               derived from the target by a pirate; ``category`` names the attack
=========================  ==================================================================

Attack categories: ``unmodified``, ``quantization``, ``pruning``, ``fine-tuning``,
``csrp-data-free``, ``csrp-fine-tuned``, ``rdg-fine-tuned``, ``combined`` (a modification
followed by CSRP), ``distillation`` (fresh students trained on the target's labels only).
Entries that are only ever queried ship as ONNX alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("target", "calibration-negative", "heldout-negative", "positive")
KINDS = ("train", "copy", "int8", "prune", "ftal", "adapt", "distill")

#: CSRP setting of the zoo, chosen from the sweep in results/sweep/ (see its README).
ZOO_CSRP = {"name": "csrp", "sigma": 1.23, "p": 6}
#: A weaker CSRP (the paper's CIFAR-10 setting) and a stronger one (a larger random shift).
ZOO_CSRP_WEAK = {"name": "csrp", "sigma": 1.16, "p": 3}
ZOO_CSRP_STRONG = {"name": "csrp", "sigma": 1.3, "p": 8}
#: RDG setting of the ablation entry (the authors' distort limit).
ZOO_RDG = {"name": "rdg", "distort_limit": 0.25, "num_cells": 10}
#: RDG at the distort limit whose data-free top-1 on the target equals ZOO_CSRP's (0.787 vs
#: 0.786 on 2,000 test images), as found by ``python -m verifier_client stability`` (its
#: bisection; results/stability/): the data-limited half of the paper's equal-accuracy ablation.
ZOO_RDG_MATCHED = {"name": "rdg", "distort_limit": 0.713, "num_cells": 10}
ARCH, DATASET, EPOCHS = "resnet20", "fashion-mnist", 2
PIRATE_FRACTION, PIRATE_SEED = 0.05, 7
CALIBRATION_NEGATIVES = 20


@dataclass(frozen=True)
class PlanEntry:
    """One entry of the zoo: its name, role, attack category and recipe.

    ``kind`` picks the recipe (``models.zoo.steps``); ``parent`` names the entry it derives
    from; ``params`` are the recipe's settings (a transform spec, a pruning rate, epochs, ...).
    ``cpus`` is what a scale-out executor reserves for it.
    """

    name: str
    role: str
    kind: str
    category: str
    parent: str | None = None
    arch: str = ARCH
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    cpus: int = 1

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"{self.name}: unknown role {self.role!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if (self.kind == "train") != (self.parent is None):
            raise ValueError(f"{self.name}: only trained entries have no parent")

    def describe(self) -> dict[str, Any]:
        """The entry as the manifest records it."""
        return {"name": self.name, "role": self.role, "category": self.category,
                "kind": self.kind, "parent": self.parent, "arch": self.arch, "seed": self.seed,
                "parameters": dict(self.params)}


def _trained(name: str, role: str, arch: str, seed: int) -> PlanEntry:
    return PlanEntry(name, role, "train", f"independent-{arch}" if role != "target" else "target",
                     arch=arch, seed=seed)


def _pirate(name: str, category: str, kind: str, parent: str = "target", seed: int | None = None,
            arch: str = ARCH, **params: Any) -> PlanEntry:
    return PlanEntry(name, "positive", kind, category, parent=parent, arch=arch, seed=seed,
                     params=params)


def default_plan(calibration: int = CALIBRATION_NEGATIVES) -> list[PlanEntry]:
    """The shipped population, parents before children (``calibration`` independents)."""
    plan = [_trained("target", "target", ARCH, 0)]
    plan += [_trained(f"indep-{i:02d}", "calibration-negative", ARCH, 100 + i)
             for i in range(1, calibration + 1)]
    plan += [_trained(f"heldout-resnet20-{i:02d}", "heldout-negative", ARCH, 200 + i)
             for i in range(1, 11)]
    plan += [_trained(f"heldout-vgg16-{i:02d}", "heldout-negative", "vgg16_025", 300 + i)
             for i in range(1, 4)]
    plan += [_trained(f"heldout-mobilenet-{i:02d}", "heldout-negative", "mobilenet_025", 400 + i)
             for i in range(1, 4)]
    ftal = {"epochs": 4, "fraction": PIRATE_FRACTION}
    adapt = {"epochs": 3, "fraction": PIRATE_FRACTION}
    plan += [
        _pirate("copy", "unmodified", "copy"),
        _pirate("int8", "quantization", "int8", seed=PIRATE_SEED),
        *(_pirate(f"prune-{r}", "pruning", "prune", rate=r) for r in (0.1, 0.2, 0.3, 0.4, 0.5)),
        _pirate("ftal", "fine-tuning", "ftal", seed=PIRATE_SEED, **ftal),
        _pirate("ftal-2", "fine-tuning", "ftal", seed=8, **ftal),
        _pirate("ftal-3", "fine-tuning", "ftal", seed=9, **ftal),
        _pirate("csrp", "csrp-data-free", "adapt", seed=PIRATE_SEED, transform=ZOO_CSRP,
                epochs=0),
        _pirate("csrp-weak", "csrp-data-free", "adapt", seed=PIRATE_SEED,
                transform=ZOO_CSRP_WEAK, epochs=0),
        _pirate("csrp-strong", "csrp-data-free", "adapt", seed=PIRATE_SEED,
                transform=ZOO_CSRP_STRONG, epochs=0),
        _pirate("csrp-ft", "csrp-fine-tuned", "adapt", seed=PIRATE_SEED, transform=ZOO_CSRP,
                **adapt),
        _pirate("csrp-ft-2", "csrp-fine-tuned", "adapt", seed=8, transform=ZOO_CSRP, **adapt),
        _pirate("csrp-ft-3", "csrp-fine-tuned", "adapt", seed=9, transform=ZOO_CSRP, **adapt),
        _pirate("csrp-ft-weak", "csrp-fine-tuned", "adapt", seed=PIRATE_SEED,
                transform=ZOO_CSRP_WEAK, **adapt),
        _pirate("csrp-ft-strong", "csrp-fine-tuned", "adapt", seed=PIRATE_SEED,
                transform=ZOO_CSRP_STRONG, **adapt),
        _pirate("rdg-ft", "rdg-fine-tuned", "adapt", seed=PIRATE_SEED, transform=ZOO_RDG,
                **adapt),
        _pirate("rdg-ft-matched", "rdg-fine-tuned", "adapt", seed=PIRATE_SEED,
                transform=ZOO_RDG_MATCHED, **adapt),
        _pirate("kd-resnet20-1", "distillation", "distill", seed=501, arch="resnet20"),
        _pirate("kd-resnet20-2", "distillation", "distill", seed=502, arch="resnet20"),
        _pirate("kd-vgg16-1", "distillation", "distill", seed=503, arch="vgg16_025"),
        _pirate("prune-0.3-csrp", "combined", "adapt", parent="prune-0.3", seed=PIRATE_SEED,
                transform=ZOO_CSRP, epochs=0),
        _pirate("int8-csrp", "combined", "adapt", parent="int8", seed=PIRATE_SEED,
                transform=ZOO_CSRP, epochs=0),
        _pirate("ftal-csrp", "combined", "adapt", parent="ftal", seed=PIRATE_SEED,
                transform=ZOO_CSRP, epochs=0),
        _pirate("kd-resnet20-1-csrp", "combined", "adapt", parent="kd-resnet20-1",
                seed=PIRATE_SEED, transform=ZOO_CSRP, epochs=0),
    ]
    return plan
