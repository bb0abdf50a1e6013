"""Shared loop pieces of every fingerprinting method.

A method turns a batch of candidates into fingerprint samples; this module does the rest, the
same way for all six methods:

* the optimiser step (``BatchAdam``: Adam on a batch of images whose finished rows can be dropped
  without disturbing the others' moments; PGD's signed step lives in ``vce.py``),
* clamping to [0, 1] and snapping to the 8-bit grid (``snap``: ``round(x * 255) / 255``; the
  straight-through ``snap_ste`` lets a method take its gradient *at* the quantised point, so
  "the condition holds on the 8-bit image" and "stop optimising" are the same test),
* acceptance *after quantisation*: a candidate becomes a fingerprint sample only if the target
  labels its 8-bit image with the sample's label, with a top-1 logit margin of at least
  ``margin`` (default 0.01) over the runner-up, so that ONNX Runtime, another batch size or
  thread count cannot flip it (their logits differ from eager torch by ~1e-5),
* the batched generation loop: rounds of candidates, optimised all at once, until ``n`` samples
  are accepted; it counts every candidate tried and gives up with a clear error after
  ``max_rounds`` rounds. The round size adapts to the acceptance rate seen so far (starting from
  the method's ``expected_acceptance``) and is capped by ``max_batch``.

Randomness: every draw comes from the caller's ``torch.Generator`` (CPU), so the same seed,
inputs and machine give the same set, bit for bit.
"""

from __future__ import annotations

import inspect
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from models.datasets import ImageData
from models.errors import UserError
from models.provenance import code_version, utc_now
from models.registry import Registry
from models.transforms.family import TransformFamily, parse_family
from verifier_client.fingerprint_set import FingerprintSet, snap_to_grid

DEFAULT_MARGIN = 0.01
M = TypeVar("M", bound="FingerprintMethod")


class GenerationError(UserError):
    """Generation could not produce the requested samples (one line for the CLI)."""


@dataclass(frozen=True)
class ProgressEvent:
    """Where a generation stands: ``accepted`` of ``n`` after ``tried`` candidates; the current
    round and optimisation step within it."""

    method: str
    accepted: int
    n: int
    tried: int
    round: int
    step: int
    steps: int


ProgressFn = Callable[[ProgressEvent], None]


@dataclass
class SeedPool:
    """Clean seed images (float32 [M, C, H, W] in [0, 1]), optional true labels, provenance."""

    images: Tensor
    labels: Tensor | None = None
    description: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_any(cls, seeds: SeedPool | ImageData | Tensor | tuple[Tensor, Tensor]) -> SeedPool:
        if isinstance(seeds, SeedPool):
            return seeds
        if isinstance(seeds, ImageData):
            return cls(seeds.floats(), seeds.labels.clone(),
                       {"dataset": seeds.info.name, "split": seeds.split, "count": len(seeds),
                        "source": seeds.source})
        if isinstance(seeds, tuple):
            images, labels = seeds
            return cls(images.to(torch.float32), labels.to(torch.int64), {"count": len(images)})
        if isinstance(seeds, Tensor):
            return cls(seeds.to(torch.float32), None, {"count": len(seeds)})
        raise TypeError(f"seeds must be ImageData, a tensor or (images, labels); got {type(seeds)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class ModelPools:
    """CAE's pools: ``surrogates`` (derived from the target) and ``references`` (independent)."""

    surrogates: list[nn.Module]
    references: list[nn.Module]
    description: dict[str, Any] = field(default_factory=dict)


@dataclass
class Candidates:
    """One round's output: 8-bit ``images``, ``labels``, the method's own ``accepted`` verdict,
    ``sources`` (seed index, -1 for noise) and, where a method has a convergence criterion
    beside acceptance, ``converged`` (bool)."""

    images: Tensor
    labels: Tensor
    accepted: Tensor
    sources: Tensor
    converged: Tensor | None = None


# -------------------------------------------------------------------------------- registry

METHODS: Registry[type[FingerprintMethod]] = Registry("fingerprinting method")


def register_method(name: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: register a ``FingerprintMethod`` under ``name`` (timm-style)."""
    return METHODS.register(name)  # type: ignore[return-value]


# -------------------------------------------------------------------------------- pieces


def snap(images: Tensor) -> Tensor:
    """Clamp to [0, 1] and round to the 8-bit grid (same device and dtype as the input)."""
    return torch.round(images.clamp(0.0, 1.0) * 255.0) / 255.0


def snap_ste(images: Tensor) -> Tensor:
    """``snap`` in the forward pass, identity in the backward pass (straight-through)."""
    return images + (snap(images) - images).detach()


def top2_margin(logits: Tensor) -> Tensor:
    """Top-1 logit minus runner-up logit, per row."""
    top = logits.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


class BatchAdam:
    """Adam (Kingma & Ba; the update of ``torch.optim.Adam``) on a batch of images treated as
    independent problems; ``keep(mask)`` drops finished rows with their moment estimates."""

    def __init__(self, like: Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = torch.zeros_like(like)
        self.v = torch.zeros_like(like)
        self.t = 0

    def step(self, x: Tensor, grad: Tensor) -> Tensor:
        """The descended ``x`` (a new tensor, no autograd history)."""
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        m_hat = self.m / (1 - b1 ** self.t)
        v_hat = self.v / (1 - b2 ** self.t)
        return (x.detach() - self.lr * m_hat / (v_hat.sqrt() + self.eps)).detach()

    def keep(self, mask: Tensor) -> None:
        self.m, self.v = self.m[mask], self.v[mask]


def uniform(shape: Sequence[int], generator: torch.Generator, device: torch.device,
            low: float = 0.0, high: float = 1.0) -> Tensor:
    """Uniform draws on the CPU generator, moved to ``device`` (same values on every device)."""
    return (torch.rand(tuple(shape), generator=generator) * (high - low) + low).to(device)


def randint(high: int, count: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.randint(0, high, (count,), generator=generator).to(device)


@contextmanager
def restored_modes(*models: nn.Module) -> Iterator[None]:
    """Give every module back in the training mode it came in (generation puts models in eval
    mode; a caller fine-tuning the target between sets must not find it changed, as
    torchattacks restores it)."""
    modes = [[(m, m.training) for m in model.modules()] for model in models]
    try:
        yield
    finally:
        for pairs in modes:
            for module, training in pairs:
                module.train(training)


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


# -------------------------------------------------------------------------------- one run


@dataclass
class Run:
    """State of one ``generate`` call, handed to the method's ``candidates``."""

    method: str
    model: nn.Module
    device: torch.device
    generator: torch.Generator
    n: int
    input_shape: list[int]
    num_classes: int
    seeds: SeedPool | None
    pools: ModelPools | None
    progress: ProgressFn | None
    family: TransformFamily | None = None
    draws: int = 1
    accepted: int = 0
    tried: int = 0
    round: int = 0
    _order: Tensor | None = None
    _cursor: int = 0

    # ---- Expectation over Transformation: every loss is averaged over ``draws`` views -------

    def views(self, images: Tensor) -> Tensor:
        """``images`` as the optimisation sees them: themselves, or, with a transform family,
        ``draws`` fresh draws of the batch stacked draw-major ``[draws * B, ...]``."""
        if self.family is None:
            return images
        return self.family.views(images, self.draws, self.generator)

    def repeat(self, values: Tensor) -> Tensor:
        """Per-sample values (labels, classes) aligned with :meth:`views`."""
        return values if self.family is None else values.repeat(self.draws,
                                                                *([1] * (values.dim() - 1)))

    def average(self, per_view: Tensor) -> Tensor:
        """A per-view quantity ``[draws * B, ...]`` averaged over the draws: ``[B, ...]``."""
        if self.family is None:
            return per_view
        return per_view.view(self.draws, -1, *per_view.shape[1:]).mean(0)

    def report(self, step: int, steps: int) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(self.method, self.accepted, self.n, self.tried,
                                        self.round, step, steps))

    def next_seeds(self, count: int, reuse: bool = True) -> tuple[Tensor, Tensor | None, Tensor]:
        """The next ``count`` seeds of a seeded random order over the pool (reshuffled when
        exhausted): images and labels on the device, and their pool indices (CPU int64).
        With ``reuse=False`` every seed is handed out once: fewer come back at the end of the
        pool, and ``GenerationError`` once it is spent."""
        assert self.seeds is not None
        size = len(self.seeds)
        chosen: list[Tensor] = []
        if not reuse:
            if self._order is None:
                self._order, self._cursor = torch.randperm(size, generator=self.generator), 0
            if self._cursor >= size:
                raise GenerationError(f"{self.method}: the {size} seeds are spent "
                                      f"({self.accepted} of {self.n} samples accepted); give "
                                      "a larger pool")
            count = min(count, size - self._cursor)
        while count > 0:
            if self._order is None or self._cursor >= size:
                self._order, self._cursor = torch.randperm(size, generator=self.generator), 0
            take = self._order[self._cursor:self._cursor + count]
            self._cursor += len(take)
            count -= len(take)
            chosen.append(take)
        index = torch.cat(chosen)
        labels = None if self.seeds.labels is None else self.seeds.labels[index].to(self.device)
        return self.seeds.images[index].to(self.device), labels, index


@dataclass
class Accepted:
    """The samples accepted so far (on the CPU): images, labels, seed index, converged flag."""

    images: Tensor = field(default_factory=lambda: torch.empty(0))
    labels: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))
    sources: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))
    converged: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.bool))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def add(self, cand: Candidates, index: Tensor) -> None:
        """Append the candidates at ``index``."""
        images = cand.images[index].detach().cpu()
        converged = (torch.ones(len(index), dtype=torch.bool) if cand.converged is None
                     else cand.converged[index].cpu())
        parts = ((self.images, images), (self.labels, cand.labels[index].detach().cpu()),
                 (self.sources, cand.sources.cpu()[index.cpu()]), (self.converged, converged))
        self.images, self.labels, self.sources, self.converged = (
            new if len(self) == 0 else torch.cat([old, new]) for old, new in parts)

    def keep(self, mask: Tensor) -> None:
        """Keep only the samples where ``mask`` (bool [len]) holds."""
        if not bool(mask.all()):
            self.images, self.labels = self.images[mask], self.labels[mask]
            self.sources, self.converged = self.sources[mask], self.converged[mask]


# -------------------------------------------------------------------------------- the base


class FingerprintMethod(ABC):
    """Base of the registered methods. Subclasses declare their parameters as keyword arguments
    of ``__init__`` (all with defaults), validate them in ``_check_params`` and implement
    ``candidates(run, count)``.

    Common parameters (every method):
        margin (float): minimum top-1 minus runner-up logit of the target on an accepted 8-bit
            sample. Default: 0.01.
        max_rounds (int): rounds of candidates before giving up. Default: 30.
        max_batch (int): most candidates optimised at once. Default: 256.
        eot (str | None): a transform family (``models.transforms.family``, e.g.
            ``"csrp(sigma=1.1..1.3, p=2..8)"``) for Expectation over Transformation (Athalye,
            Carlini, Wagner, ICML 2018): every optimisation step averages the method's loss
            over ``eot_draws`` draws of the family (``Run.views`` / ``Run.average``), and a
            sample is accepted only if the target gives its label under at least
            ``eot_accept`` of ``eot_check_draws`` fresh draws, besides the plain check.
            Default: None (no EOT).
        eot_draws (int): draws per step. Default: 20 (Athalye et al. used 30 against random
            resize-and-pad; public EOT code uses 10 to 30).
        eot_accept (float): share of fresh draws under which the label must hold. Default: 0.9.
        eot_check_draws (int): fresh draws of the acceptance check. Default: 64.
    """

    name: ClassVar[str] = ""
    #: how answers become outcomes (``verifier_client.representations``)
    representation: ClassVar[str] = "labels"
    uses_seeds: ClassVar[bool] = False
    uses_pools: ClassVar[bool] = False
    expected_acceptance: ClassVar[float] = 0.5

    def __init__(self, *, margin: float = DEFAULT_MARGIN, max_rounds: int = 30,
                 max_batch: int = 256, eot: str | None = None, eot_draws: int = 20,
                 eot_accept: float = 0.9, eot_check_draws: int = 64) -> None:
        self.margin, self.max_rounds, self.max_batch = margin, max_rounds, max_batch
        self.eot, self.eot_draws = eot, int(eot_draws)
        self.eot_accept, self.eot_check_draws = float(eot_accept), int(eot_check_draws)
        if not (margin >= 0 and math.isfinite(margin)):
            raise UserError(f"{self.name}: margin must be a finite number >= 0, got {margin}")
        if int(max_rounds) < 1 or int(max_batch) < 1:
            raise UserError(f"{self.name}: max_rounds and max_batch must be >= 1")
        if self.eot_draws < 1 or self.eot_check_draws < 1:
            raise UserError(f"{self.name}: eot_draws and eot_check_draws must be >= 1, got "
                            f"{self.eot_draws} and {self.eot_check_draws}")
        if not 0.0 < self.eot_accept <= 1.0:
            raise UserError(f"{self.name}: eot_accept must be in (0, 1], got {self.eot_accept}")
        self.family = self._parse_family(eot)
        self._check_params()

    def _parse_family(self, eot: str | None) -> TransformFamily | None:
        if eot is None:
            return None
        try:
            return parse_family(eot)
        except ValueError as error:
            raise UserError(str(error)) from None

    # ---------------------------------------------------------------- parameters
    @classmethod
    def parameter_names(cls) -> list[str]:
        names: list[str] = []
        classes = [k for k in reversed(cls.__mro__) if k not in (object, FingerprintMethod)]
        for klass in [*classes, FingerprintMethod]:  # the method's own first, common ones last
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for name, param in inspect.signature(init).parameters.items():
                if param.kind is param.KEYWORD_ONLY and name not in names:
                    names.append(name)
        return names

    def parameters(self) -> dict[str, Any]:
        """Every parameter with its value (what the set file records)."""
        return {name: getattr(self, name) for name in self.parameter_names()}

    def _check_params(self) -> None:
        """Raise ``UserError`` with an exact message for a value out of range."""
        return None

    def _check_shape(self, input_shape: list[int]) -> None:
        """Checks that need the input shape (e.g. a frequency band inside the image)."""
        return None

    # ---------------------------------------------------------------- the method
    @abstractmethod
    def candidates(self, run: Run, count: int) -> Candidates:
        """Optimise about ``count`` candidates at once; return their 8-bit images and labels."""

    # ---------------------------------------------------------------- the loop
    def generate(self, model: nn.Module, n: int, *, generator: torch.Generator,
                 seeds: SeedPool | ImageData | Tensor | tuple[Tensor, Tensor] | None = None,
                 pools: ModelPools | None = None, progress: ProgressFn | None = None,
                 target: dict[str, Any] | None = None,
                 input_shape: Sequence[int] | None = None) -> FingerprintSet:
        """``n`` fingerprint samples of ``model`` (its logits on float [N, C, H, W] in [0, 1]).

        Args:
            model: the target, white-box (gradients are taken through it; it is not modified).
            n: number of samples wanted (>= 1).
            generator: CPU ``torch.Generator``; its initial seed is recorded as ``seed``.
            seeds: clean images for the methods that start from data (IPGuard, CAE).
            pools: surrogate and reference models (CAE).
            progress: called with a ``ProgressEvent`` after every optimisation step.
            target: what to record about the target (see ``target_metadata``).
            input_shape: [C, H, W]; taken from ``seeds`` or ``target`` when omitted.
        Returns:
            a ``FingerprintSet`` whose every sample the target labels with its label, on the
            8-bit grid, with a logit margin of at least ``margin``.
        """
        started = time.perf_counter()
        with restored_modes(model, *([*pools.surrogates, *pools.references] if pools else [])):
            run = self._start_run(model, n, generator, seeds, pools, progress, target,
                                  input_shape)
            accepted = self._collect(run)
        metadata = {
            "method": self.name,
            "representation": self.representation,
            "parameters": self.parameters(),
            "eot": None if self.family is None else {
                **self.family.describe(), "draws": self.eot_draws, "accept": self.eot_accept,
                "check_draws": self.eot_check_draws},
            "target": target or {},
            "seed": int(generator.initial_seed()),
            "code_version": code_version(),
            "candidates_tried": run.tried,
            "rounds": run.round,
            "acceptance_rate": round(n / run.tried, 4),
            "converged": int(accepted.converged.sum()),
            "generation_seconds": round(time.perf_counter() - started, 2),
            "device": str(run.device),
            "n": n,
            "input_shape": run.input_shape,
            "num_classes": run.num_classes,
            "seeds": run.seeds.description if run.seeds is not None else None,
            "pools": run.pools.description if run.pools is not None else None,
            "created": utc_now(),
        }
        return FingerprintSet(snap_to_grid(accepted.images), accepted.labels, metadata,
                              accepted.sources.to(torch.int64))

    def _start_run(self, model: nn.Module, n: int, generator: torch.Generator,
                   seeds: SeedPool | ImageData | Tensor | tuple[Tensor, Tensor] | None,
                   pools: ModelPools | None, progress: ProgressFn | None,
                   target: dict[str, Any] | None, input_shape: Sequence[int] | None) -> Run:
        """Check the arguments against what the method needs; the state of a new run."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserError(f"n must be an integer >= 1, got {n!r}")
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise UserError("generator must be a CPU torch.Generator")
        model.eval()
        device = model_device(model)
        pool = SeedPool.from_any(seeds) if seeds is not None else None
        if self.uses_seeds and (pool is None or len(pool) == 0):
            raise UserError(f"{self.name} starts from clean images: give seeds")
        if self.uses_pools:
            if pools is None or not pools.surrogates or not pools.references:
                raise UserError(f"{self.name} needs model pools: at least one surrogate and one "
                                "reference model")
        elif pools is not None:
            raise UserError(f"{self.name} does not use model pools (surrogates/references)")
        shape = self._input_shape(input_shape, pool, target)
        self._check_shape(shape)
        if self.family is not None:
            try:
                self.family.check(shape)
            except ValueError as error:
                raise UserError(f"--eot {self.eot!r}: {error}") from None
        with torch.no_grad():
            probe = model(torch.zeros(1, *shape, device=device))
        if probe.dim() != 2:
            raise UserError(f"the target must return logits [N, classes]; got {list(probe.shape)}")
        for extra in ([*pools.surrogates, *pools.references] if pools else []):
            extra.eval()
        return Run(self.name, model, device, generator, n, shape, int(probe.shape[1]), pool,
                   pools, progress, family=self.family, draws=self.eot_draws)

    def _collect(self, run: Run) -> Accepted:
        """Rounds of candidates until ``run.n`` pass :meth:`accepts`, alone and as one batch."""
        accepted = Accepted()
        rate = self.expected_acceptance
        while len(accepted) < run.n:
            if run.round >= self.max_rounds:
                raise GenerationError(
                    f"{self.name}: only {len(accepted)} of {run.n} samples accepted after "
                    f"{run.round} rounds ({run.tried} candidates tried); raise max_rounds or "
                    "relax the method's parameters (see its docstring)")
            remaining = run.n - len(accepted)
            size = min(self.max_batch, max(remaining, math.ceil(1.1 * remaining / max(rate, 0.05))))
            run.round += 1
            cand = self.candidates(run, size)
            run.tried += len(cand.labels)
            ok = cand.accepted.to(run.device) & self.accepts(run.model, cand.images, cand.labels,
                                                            run)
            index = ok.nonzero().flatten()[:remaining]
            if len(index):
                accepted.add(cand, index)
                # the whole set in one batch, as a verifier sends it
                accepted.keep(self.accepts(run.model, accepted.images.to(run.device),
                                          accepted.labels.to(run.device), run).cpu())
            run.accepted = len(accepted)
            rate = max(len(accepted), 1) / max(run.tried, 1)
            run.report(0, 0)
        return accepted

    @torch.no_grad()
    def accepts(self, model: nn.Module, images: Tensor, labels: Tensor,
               run: Run | None = None) -> Tensor:
        """Acceptance after quantisation: the target's label on the 8-bit image is ``labels``
        with a top-1 margin of at least ``margin`` (bool [N]); with a transform family, also
        under at least ``eot_accept`` of ``eot_check_draws`` fresh draws of it (a generator of
        their own, seeded from the run's seed, so the check replays)."""
        quantised = snap(images)
        logits = model(quantised)
        ok = (logits.argmax(1) == labels) & (top2_margin(logits) >= self.margin)
        if self.family is not None and len(images):
            seed = (run.generator.initial_seed() if run is not None else 0) + 7919
            generator = torch.Generator().manual_seed(seed)
            views = self.family.views(quantised, self.eot_check_draws, generator)
            hits = model(views).argmax(1).view(self.eot_check_draws, -1) == labels
            ok &= hits.to(torch.float32).mean(0) >= self.eot_accept
        return ok

    def _input_shape(self, given: Sequence[int] | None, pool: SeedPool | None,
                     target: dict[str, Any] | None) -> list[int]:
        if given is not None:
            shape = [int(s) for s in given]
        elif pool is not None:
            shape = [int(s) for s in pool.images.shape[1:]]
        elif target and target.get("input_shape"):
            shape = [int(s) for s in target["input_shape"]]
        else:
            raise UserError(f"{self.name}: give input_shape (or a target with one)")
        if len(shape) != 3 or any(s < 1 for s in shape):
            raise UserError(f"input shape must be [C, H, W], got {shape}")
        if pool is not None and list(pool.images.shape[1:]) != shape:
            raise UserError(f"seed images have shape {list(pool.images.shape[1:])}, the target "
                            f"takes {shape}")
        return shape

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.parameters().items())
        return f"{type(self).__name__}({args})"
