"""A served model's pipeline: float images [N, C, H, W] (NumPy) in, int64 labels out.

Two kinds, chosen at planning (``served_model.plan_model``):

* ``GraphPipeline`` (ONNX entries whose preprocessing is none or CSRP; the default): one ONNX
  Runtime session runs the serving graph of ``models.onnx_serving``, CSRP, model and argmax
  in one run. Its offsets come from a ``models.csrp_tables.TorchCompatibleOffsets`` stream, which
  draws exactly what the torch path's ``torch.Generator`` would for the same seed, so
  ``--seed`` replays the same answers on either path. No torch is imported.
* ``TorchPipeline`` (the torch backend, transforms only torch has, such as RDG, or
  ``--preprocess-in torch``): the registered torch transform on the model's device, then the
  backend (``server.pipeline.backends``). torch is imported only here.

Both record ``preprocessing_runs``: ``"onnx-graph"``, ``"torch"`` or ``None`` (no preprocessing).
An entry with a query detector (``models.detector``, NumPy) has its logits come out of the model
run and the detector turn them into labels (flagged queries get the runner-up class); on either
pipeline, so the edge server runs it without torch. Logits stay in the process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.config import ONNX_FILE, OUTPUT_NAME, ModelConfig
from models.csrp_tables import TorchCompatibleOffsets
from models.detector import Detector
from models.errors import UserError
from server.pipeline.onnx_session import onnx_session

log = logging.getLogger("server.pipeline")


class Pipeline(Protocol):
    platform: str
    providers: list[str]
    preprocessing_runs: str | None

    def new_stream(self, seed: int | None) -> Any:
        """A random stream for the preprocessing parameters (``None``: seeded from the OS)."""

    def run(self, images: np.ndarray, stream: Any) -> tuple[np.ndarray, float]:
        """``(labels int64 [N], seconds spent on preprocessing outside the model run)``."""

    def thread_init(self) -> None:
        """Called once in every thread that will call ``run`` (per-thread library settings)."""


class GraphPipeline:
    """CSRP (or nothing), model and argmax in one ONNX graph (see module doc)."""

    platform = "onnxruntime_onnx"

    def __init__(self, path: Path, config: ModelConfig, csrp: tuple[float, int] | None,
                 device: str, threads: int | None, strict: bool,
                 detector: Detector | None = None) -> None:
        from models.onnx_serving import LABEL_NAME, OFFSETS_NAME, serving_graph

        onnx_path = path / ONNX_FILE
        self.detector = detector
        try:
            graph = serving_graph(onnx_path.read_bytes(), config.input_shape, csrp,
                                  output="label" if detector is None else "logits")
        except (OSError, ValueError) as error:
            raise UserError(f"{onnx_path}: cannot build the serving graph ({error})") from None
        self.session = onnx_session(graph, device, threads, strict)
        self.providers: list[str] = list(self.session.get_providers())
        self.p = None if csrp is None else csrp[1]
        self.preprocessing_runs = None if csrp is None else "onnx-graph"
        self._label = LABEL_NAME if detector is None else OUTPUT_NAME
        self._offsets = OFFSETS_NAME

    def new_stream(self, seed: int | None) -> TorchCompatibleOffsets:
        return TorchCompatibleOffsets(seed)

    def run(self, images: np.ndarray, stream: TorchCompatibleOffsets) -> tuple[np.ndarray, float]:
        feed = {"input": images}
        if self.p is not None:
            feed[self._offsets] = stream.draw(images.shape[0], self.p)
        out = self.session.run([self._label], feed)[0]  # ArgMax gives int64 already
        return (out if self.detector is None else self.detector.labels(out)), 0.0

    def thread_init(self) -> None:
        pass


class TorchPipeline:
    """The torch transform (if any) on the device, then the backend (see module doc)."""

    def __init__(self, path: Path, config: ModelConfig, backend: str,
                 preprocessing: dict[str, Any] | None, device: str, threads: int | None,
                 strict: bool, detector: Detector | None = None) -> None:
        import torch

        from models.transforms import build_transform
        from server.pipeline.backends import load_backend

        self._torch = torch
        self.device = torch.device(device)
        #: intra-op threads for torch (a per-thread setting). With ONNX Runtime as the backend
        #: torch only runs the preprocessing gather, small and memory-bound: a second thread
        #: only adds synchronisation (measured on the loaded 2-core box: CSRP 24 ms/batch with
        #: 2 threads vs 0.05-0.15 ms with 1; results/loadtest/README.md), so it gets one.
        self.threads = 1 if backend == "onnx" else threads or torch.get_num_threads()
        self.thread_init()
        transform = build_transform(preprocessing)
        self.transform = None if transform is None else transform.to(self.device).eval()
        self.backend = load_backend(path, config, backend, self.device, threads, strict=strict)
        self.platform = self.backend.platform
        self.providers = list(self.backend.providers)
        self.preprocessing_runs = None if preprocessing is None else "torch"
        self.detector = detector

    def new_stream(self, seed: int | None) -> Any:
        import secrets

        return self._torch.Generator().manual_seed(seed if seed is not None
                                                   else secrets.randbits(63))

    def run(self, images: np.ndarray, stream: Any) -> tuple[np.ndarray, float]:
        import time

        torch = self._torch
        start = time.perf_counter()
        batch = torch.from_numpy(images).to(self.device, non_blocking=True)
        if self.transform is not None:
            with torch.inference_mode():
                batch = self.transform(batch, generator=stream)
        prepared = time.perf_counter() - start
        if self.detector is not None:
            return self.detector.labels(self.backend.logits(batch)), prepared
        return self.backend.labels(batch), prepared

    def thread_init(self) -> None:
        self._torch.set_num_threads(self.threads)


def load_pipeline(path: Path, config: ModelConfig, backend: str, runs_in: str | None,
                  csrp: tuple[float, int] | None, device: str, threads: int | None,
                  strict: bool, detector: Detector | None = None) -> Pipeline:
    """The pipeline the plan chose: the graph one for ``runs_in`` "onnx-graph" or an ONNX
    entry without preprocessing (``csrp`` None), else the torch one; either ends in
    ``detector`` when given."""
    if backend == "onnx" and (runs_in == "onnx-graph" or config.preprocessing is None):
        return GraphPipeline(path, config, csrp, device, threads, strict, detector)
    return TorchPipeline(path, config, backend, config.preprocessing, device, threads, strict,
                         detector)
