"""One served model: its config, preprocessing, backend, random stream and batcher.

Pipeline of a batch (in the model's worker thread): concatenate the requests' float images in
arrival order -> copy to the device -> the config's preprocessing (``build_transform``: CSRP or
RDG with fresh per-sample parameters, none for a plain copy) -> backend -> labels.

Random stream and draw order (the contract tests rely on): each model owns one CPU
``torch.Generator``, seeded with ``--seed`` when given (every model gets the same seed) and from
the OS (``secrets``) otherwise. The warm-up uses a throwaway generator, so the first request sees
the stream from its start. For every executed batch the transform is called exactly once, on the
concatenation of the batch's requests in arrival order, with that generator: CSRP draws
``torch.randint(0, p + 1, (N_batch, 2), generator=g)`` and row ``i`` belongs to the i-th image of
the concatenation. So with ``--seed S`` a first request of N images is answered exactly as
``predictor(csrp(x, sigma, p, generator=torch.Generator().manual_seed(S)))``; with
``--max-batch-size 1`` the k-th image sent (one at a time) gets the k-th draw.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.errors import UserError
from models.repository import (
    CONFIG_FILE,
    ONNX_FILE,
    WEIGHTS_FILE,
    ModelConfig,
    entry_dir,
    load_config,
)
from models.transforms import build_transform
from server.core.config import Settings
from server.core.errors import UnavailableError
from server.metrics import Metrics, ModelMetrics
from server.pipeline.backends import Backend, load_backend, resolve_backend
from server.pipeline.batcher import DynamicBatcher
from server.protocol.codec import Signature
from server.protocol.schemas import ModelMetadata, ModelParameters

log = logging.getLogger("server.model")


@dataclass(frozen=True)
class ModelPlan:
    """What ``plan_models`` checked up front, before anything heavy is loaded."""

    name: str
    path: Path
    config: ModelConfig
    backend: str
    preprocessing: dict[str, Any] | None


def check_inside(repository: Path, path: Path, name: str) -> None:
    """``UserError`` when ``path`` (an entry folder or one of its files) is a symbolic link, or
    lies under one, that leads outside ``repository``."""
    root = repository.resolve()
    if not path.resolve().is_relative_to(root):
        raise UserError(f"model {name!r}: {path.relative_to(repository)} leads outside the "
                        "repository (a symbolic link); refused without --allow-symlinks")


def plan_model(settings: Settings, name: str) -> ModelPlan:
    """Read and check one model's folder, config, backend file and preprocessing spec
    (cheap; ``UserError`` naming the entry's folder)."""
    path = entry_dir(settings.repository, name)
    if not settings.allow_symlinks:
        check_inside(settings.repository, path, name)
        for file in (CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE):
            if (path / file).exists() or (path / file).is_symlink():
                check_inside(settings.repository, path / file, name)
    try:
        config = load_config(path)
    except UserError as error:
        raise UserError(f"model {name!r}: {error}") from None
    backend = resolve_backend(path, config, settings.backend)
    try:
        build_transform(config.preprocessing)
    except ValueError as error:
        raise UserError(f"model {name!r}: bad preprocessing in config.json: {error}") from None
    return ModelPlan(name, path, config, backend, config.preprocessing)


def plan_models(settings: Settings) -> tuple[list[ModelPlan], dict[str, str]]:
    """Plan every model. With ``exit_on_error`` the first problem raises ``UserError``; without
    it, the models that cannot be planned are returned as ``{name: reason}`` and the others are
    served."""
    plans, failed = [], {}
    for name in settings.model_names:
        try:
            plans.append(plan_model(settings, name))
        except UserError as error:
            if settings.exit_on_error:
                raise
            log.error("%s", error)
            failed[name] = public_reason(error)
    return plans, failed


def public_reason(error: BaseException) -> str:
    """What the wire may say about a model that failed: the kind of failure, never paths or
    a runtime's internal message (those go to the log)."""
    if isinstance(error, UserError):
        return "its repository entry is invalid or incomplete (see the server log)"
    return "an internal error while loading it (see the server log)"


def _make_generator(seed: int | None) -> torch.Generator:
    return torch.Generator().manual_seed(seed if seed is not None else secrets.randbits(63))


class ServedModel:
    """Created at startup from its plan; ``load`` (background thread) makes it ready."""

    def __init__(self, plan: ModelPlan, settings: Settings, metrics: Metrics) -> None:
        self.name = plan.name
        self.plan = plan
        self.config = plan.config
        self.settings = settings
        c, h, w = plan.config.input_shape
        self.signature = Signature(c, h, w, settings.max_batch_size)
        self.device = torch.device(settings.resolved_device)
        self.metrics: ModelMetrics = metrics.for_model(plan.name)
        self.backend: Backend | None = None
        self.transform: nn.Module | None = None
        self.batcher: DynamicBatcher | None = None
        self._generator = _make_generator(settings.seed)
        #: intra-op threads for torch in the loader and worker threads (per-thread in torch).
        #: With ONNX Runtime as the backend torch only runs the preprocessing gather, which is
        #: small and memory-bound: a second intra-op thread only adds synchronisation (measured
        #: on the loaded 2-core box: CSRP 24 ms/batch with 2 threads vs 0.05-0.15 ms with 1;
        #: results/loadtest/README.md), so it gets one thread.
        self.torch_threads = (1 if plan.backend == "onnx"
                              else settings.workers_threads or torch.get_num_threads())
        self._ready = threading.Event()
        self.error: str | None = None

    # ---- state -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def load(self, stop: threading.Event) -> None:
        """Load the backend, warm up, start the worker; then ready (loader thread)."""
        torch.set_num_threads(self.torch_threads)
        self.transform = build_transform(self.plan.preprocessing)
        if self.transform is not None:
            self.transform = self.transform.to(self.device).eval()
        self.backend = load_backend(self.plan.path, self.config, self.plan.backend, self.device,
                                    self.settings.workers_threads,
                                    strict=self.settings.device != "auto")
        if self.settings.warmup_delay_s:
            stop.wait(self.settings.warmup_delay_s)  # testing hook: slow warm-up
        if stop.is_set():
            return
        self._warm_up()
        self.batcher = DynamicBatcher(
            self.name, self.execute, max_batch_size=self.settings.max_batch_size,
            max_queue_delay_s=self.settings.max_queue_delay_ms / 1000.0,
            max_queue_size=self.settings.max_queue_size, metrics=self.metrics,
            torch_threads=self.torch_threads, batch_sleep_s=self.settings.batch_sleep_ms / 1000.0)
        self.batcher.start()
        self._ready.set()
        self.metrics.ready.set(1)
        log.info("model %s ready (backend %s, providers %s, preprocessing %s)", self.name,
                 self.plan.backend, ",".join(self.backend.providers), self.plan.preprocessing)

    def _warm_up(self) -> None:
        """Run the whole pipeline at batch 1 and at the max batch size on zeros, with a
        throwaway generator (the serving stream is untouched)."""
        c, h, w = self.config.input_shape
        generator = torch.Generator().manual_seed(0)
        sizes = sorted({1, self.settings.max_batch_size})
        for size in sizes:
            labels = self._pipeline([torch.zeros(size, c, h, w)], generator)
            if labels.shape != (size,):
                raise UserError(f"model {self.name!r}: warm-up gave labels of shape "
                                f"{labels.shape}, expected ({size},)")

    def stop(self) -> None:
        self._ready.clear()
        self.metrics.ready.set(0)
        if self.batcher is not None:
            self.batcher.stop()

    # ---- inference -------------------------------------------------------------------------

    async def infer(self, images: torch.Tensor) -> np.ndarray:
        """Labels (int64 [n]) for float images [n, C, H, W]; raises 503 when not ready/full."""
        if not self._ready.is_set() or self.batcher is None:
            raise UnavailableError(f"model {self.name!r} is not ready")
        return await self.batcher.submit(images)

    def execute(self, parts: Sequence[torch.Tensor]) -> np.ndarray:
        """One batch with the serving generator (called by the batcher's worker only)."""
        return self._pipeline(parts, self._generator, self.metrics)

    def _pipeline(self, parts: Sequence[torch.Tensor], generator: torch.Generator,
                  metrics: ModelMetrics | None = None) -> np.ndarray:
        assert self.backend is not None
        start = time.perf_counter()
        images = parts[0] if len(parts) == 1 else torch.cat(list(parts))
        images = images.to(self.device, non_blocking=True)
        if self.transform is not None:
            with torch.inference_mode():
                images = self.transform(images, generator=generator)
        prepared = time.perf_counter()
        labels = self.backend.labels(images)
        if metrics is not None:
            done = time.perf_counter()
            metrics.preprocess_seconds.observe(prepared - start)
            metrics.compute_seconds.observe(done - prepared)
        return labels

    # ---- metadata --------------------------------------------------------------------------

    def metadata(self) -> ModelMetadata:
        backend = self.backend
        return ModelMetadata(
            name=self.name,
            versions=["1"],
            platform=backend.platform if backend else
            ("onnxruntime_onnx" if self.plan.backend == "onnx" else "pytorch_eager"),
            inputs=self.signature.inputs(),
            outputs=self.signature.outputs(),
            parameters=ModelParameters(
                backend=self.plan.backend,
                device=str(self.device),
                providers=list(backend.providers) if backend else [],
                preprocessing=self.plan.preprocessing,
                max_batch_size=self.settings.max_batch_size,
                class_names=list(self.config.labels),
            ),
        )
