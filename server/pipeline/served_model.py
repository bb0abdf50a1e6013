"""One served model: its config, preprocessing, backend, random stream and batcher.

Pipeline of a batch (in the model's worker thread): concatenate the requests' float images in
arrival order -> the config's preprocessing with fresh per-sample parameters -> model -> labels
(``server.pipeline.pipelines``: CSRP inside the ONNX serving graph for ONNX entries, the torch
transform otherwise; RDG always runs in torch).

Random stream and draw order (the contract tests rely on): each model owns one random stream,
seeded with ``--seed`` when given (every model gets the same seed) and from the OS otherwise.
The warm-up uses a throwaway stream, so the first request sees the stream from its start. For
every executed batch the parameters are drawn exactly once, for the concatenation of the batch's
requests in arrival order: CSRP draws what ``torch.randint(0, p + 1, (N_batch, 2), generator=g)``
gives for ``g = torch.Generator().manual_seed(S)`` (on the graph path a NumPy stream that draws
the same numbers, ``models.csrp_tables.TorchCompatibleOffsets``) and row ``i`` belongs to the
i-th image of the concatenation. So with ``--seed S`` a first request of N images is answered
exactly as ``predictor(csrp(x, sigma, p, generator=torch.Generator().manual_seed(S)))`` on both
paths; with ``--max-batch-size 1`` the k-th image sent (one at a time) gets the k-th draw.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.config import (
    CONFIG_FILE,
    DETECTOR_FILE,
    MODEL_VERSION,
    ONNX_FILE,
    WEIGHTS_FILE,
    ModelConfig,
    entry_dir,
    load_config,
)
from models.csrp_tables import csrp_spec
from models.detector import Detector, load_detector
from models.errors import UserError
from server.core.config import Settings
from server.core.errors import UnavailableError
from server.metrics import Metrics, ModelMetrics
from server.pipeline.batcher import DynamicBatcher
from server.pipeline.pipelines import Pipeline, load_pipeline
from server.pipeline.resolve import resolve_backend
from server.protocol.codec import Signature

log = logging.getLogger("server.model")


@dataclass(frozen=True)
class ModelPlan:
    """What ``plan_models`` checked up front, before anything heavy is loaded."""

    name: str
    path: Path
    config: ModelConfig
    backend: str
    preprocessing: dict[str, Any] | None
    #: "onnx-graph" (CSRP inside the serving graph), "torch" or None (no preprocessing)
    preprocessing_runs: str | None = None
    #: (sigma, p) when CSRP runs in the graph
    csrp: tuple[float, int] | None = None
    #: the entry's query detector, loaded and checked at planning (``models.detector``)
    detector: Detector | None = None


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
        for file in (CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE, DETECTOR_FILE):
            if (path / file).exists() or (path / file).is_symlink():
                check_inside(settings.repository, path / file, name)
    try:
        config = load_config(path)
    except UserError as error:
        raise UserError(f"model {name!r}: {error}") from None
    backend = resolve_backend(path, config, settings.backend)
    if backend == "onnx":
        check_onnx(path / ONNX_FILE, config, name)
    detector = None
    if config.detector is not None:
        try:
            detector = load_detector(path / DETECTOR_FILE, config.num_classes)
        except UserError as error:
            raise UserError(f"model {name!r}: {error}") from None
    spec = config.preprocessing
    in_graph = backend == "onnx" and (spec is None or (settings.preprocess_in == "graph"
                                                       and spec.get("name") == "csrp"))
    if not in_graph and not torch_available():
        need = f"backend {backend!r}" if backend == "torch" else \
            f"preprocessing {spec.get('name')!r} in torch" if spec else "torch"
        raise UserError(f"model {name!r}: {need} needs torch, which this server's environment "
                        "does not have (an edge install serves ONNX entries with CSRP or no "
                        "preprocessing)")
    try:
        if spec is None:
            return ModelPlan(name, path, config, backend, None, detector=detector)
        if in_graph:
            csrp = csrp_spec(spec, config.input_shape)  # checked without torch
            return ModelPlan(name, path, config, backend, spec, "onnx-graph", csrp, detector)
        from models.transforms import build_transform  # torch: only for torch preprocessing

        build_transform(spec).check_fits(config.input_shape)
    except ValueError as error:
        raise UserError(f"model {name!r}: bad preprocessing in config.json: {error}") from None
    return ModelPlan(name, path, config, backend, spec, "torch", detector=detector)


def check_onnx(file: Path, config: ModelConfig, name: str) -> None:
    """``UserError`` (one line) unless ``file`` is a complete ONNX model, self-contained (no
    external data: tensors stored beside it could point anywhere on the disk) and taking the
    config's input ``[N, C, H, W]``. Cheap: parsing the protobuf of a repository model is
    milliseconds; nothing is run."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_model_from_string(file.read_bytes())
    except (DecodeError, ValueError, OSError) as error:
        raise UserError(f"model {name!r}: {ONNX_FILE} is not a readable ONNX model "
                        f"({type(error).__name__})") from None
    external = [t.name for t in proto.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise UserError(f"model {name!r}: {ONNX_FILE} keeps {len(external)} tensor(s) in "
                        "external files; only self-contained ONNX models are served")
    inputs = [i for i in proto.graph.input
              if i.name not in {t.name for t in proto.graph.initializer}]
    if len(inputs) != 1:
        raise UserError(f"model {name!r}: {ONNX_FILE} has {len(inputs)} inputs, not one")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    if len(shape) != 4 or any(got not in (-1, want)
                              for got, want in zip(shape[1:], config.input_shape, strict=True)):
        raise UserError(f"model {name!r}: {ONNX_FILE} takes {shape}, the config says "
                        f"[N, {', '.join(map(str, config.input_shape))}]")


def torch_available() -> bool:
    """Whether torch can be imported here (without importing it)."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    return importlib.util.find_spec("torch") is not None


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


class ServedModel:
    """Created at startup from its plan; ``load`` (background thread) makes it ready."""

    def __init__(self, plan: ModelPlan, settings: Settings, metrics: Metrics) -> None:
        self.name = plan.name
        self.plan = plan
        self.config = plan.config
        self.settings = settings
        c, h, w = plan.config.input_shape
        self.signature = Signature(c, h, w, settings.max_batch_size)
        self.device = settings.resolved_device
        self.metrics: ModelMetrics = metrics.for_model(plan.name)
        self.pipeline: Pipeline | None = None
        self.batcher: DynamicBatcher | None = None
        self._stream: Any = None
        self._ready = threading.Event()
        self.error: str | None = None

    # ---- state -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def load(self, stop: threading.Event) -> None:
        """Load the backend, warm up, start the worker; then ready (loader thread)."""
        plan = self.plan
        self.pipeline = load_pipeline(plan.path, self.config, plan.backend,
                                      plan.preprocessing_runs, plan.csrp, self.device,
                                      self.settings.workers_threads,
                                      strict=self.settings.device != "auto",
                                      detector=plan.detector)
        self._stream = self.pipeline.new_stream(self.settings.seed)
        if self.settings.warmup_delay_s:
            stop.wait(self.settings.warmup_delay_s)  # testing hook: slow warm-up
        if stop.is_set():
            return
        self._warm_up()
        self.batcher = DynamicBatcher(
            self.name, self.execute, max_batch_size=self.settings.max_batch_size,
            max_queue_delay_s=self.settings.max_queue_delay_ms / 1000.0,
            max_queue_size=self.settings.max_queue_size, metrics=self.metrics,
            thread_init=self.pipeline.thread_init,
            batch_sleep_s=self.settings.batch_sleep_ms / 1000.0)
        self.batcher.start()
        self._ready.set()
        self.metrics.ready.set(1)
        log.info("model %s ready (backend %s, providers %s, preprocessing %s in %s%s)",
                 self.name, self.plan.backend, ",".join(self.pipeline.providers),
                 self.plan.preprocessing, self.pipeline.preprocessing_runs,
                 "" if plan.detector is None else
                 f", query detector at clean fpr {plan.detector.fpr:g}")

    def _warm_up(self) -> None:
        """Run the whole pipeline at batch 1 and at the max batch size on zeros, with a
        throwaway stream (the serving stream is untouched)."""
        assert self.pipeline is not None
        c, h, w = self.config.input_shape
        stream = self.pipeline.new_stream(0)
        sizes = sorted({1, self.settings.max_batch_size})
        for size in sizes:
            labels = self._pipeline([np.zeros((size, c, h, w), np.float32)], stream)
            if labels.shape != (size,):
                raise UserError(f"model {self.name!r}: warm-up gave labels of shape "
                                f"{labels.shape}, expected ({size},)")

    def stop(self) -> None:
        self._ready.clear()
        self.metrics.ready.set(0)
        if self.batcher is not None:
            self.batcher.stop()

    # ---- inference -------------------------------------------------------------------------

    async def infer(self, images: np.ndarray) -> np.ndarray:
        """Labels (int64 [n]) for float images [n, C, H, W]; raises 503 when not ready/full."""
        if not self._ready.is_set() or self.batcher is None:
            raise UnavailableError(f"model {self.name!r} is not ready")
        return await self.batcher.submit(images)

    def execute(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        """One batch with the serving stream (called by the batcher's worker only)."""
        return self._pipeline(parts, self._stream, self.metrics)

    def _pipeline(self, parts: Sequence[np.ndarray], stream: Any,
                  metrics: ModelMetrics | None = None) -> np.ndarray:
        """Preprocess seconds: concatenation plus what runs outside the model run (the torch
        transform); on the graph path CSRP is inside the model run and counts as compute."""
        assert self.pipeline is not None
        start = time.perf_counter()
        images = parts[0] if len(parts) == 1 else np.concatenate(parts)
        joined = time.perf_counter()
        labels, preprocess = self.pipeline.run(images, stream)
        ran = time.perf_counter()
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if metrics is not None:
            done = time.perf_counter()
            compute_input, compute_infer = joined - start + preprocess, ran - joined - preprocess
            metrics.preprocess_seconds.observe(compute_input)
            metrics.compute_seconds.observe(compute_infer)
            metrics.stats.batch(len(labels), compute_input, compute_infer, done - ran)
        return labels

    # ---- metadata -------------------------------------------------------------------------

    def describe(self) -> ModelInfo:
        """What a client may know about the model (the data plane turns it into OIP
        metadata): no weights, no scores, no paths."""
        pipeline = self.pipeline
        return ModelInfo(
            name=self.name, versions=(MODEL_VERSION,),
            platform=pipeline.platform if pipeline else
            ("onnxruntime_onnx" if self.plan.backend == "onnx" else "pytorch_eager"),
            backend=self.plan.backend, device=str(self.device),
            providers=tuple(pipeline.providers) if pipeline else (),
            preprocessing=self.plan.preprocessing,
            preprocessing_runs=self.plan.preprocessing_runs,
            max_batch_size=self.settings.max_batch_size,
            class_names=tuple(self.config.labels))


@dataclass(frozen=True)
class ModelInfo:
    """A served model's public description (plain data, no protocol schema)."""

    name: str
    versions: tuple[str, ...]
    platform: str
    backend: str
    device: str
    providers: tuple[str, ...]
    preprocessing: dict[str, Any] | None
    preprocessing_runs: str | None
    max_batch_size: int
    class_names: tuple[str, ...]
