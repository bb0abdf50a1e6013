"""Backends: a float image batch on the model's device in, INT64 labels on the CPU out.

* ``OnnxBackend``: ONNX Runtime. With ``device`` cuda and the CUDA provider present, the input is
  bound in place on the GPU and the logits are written into a torch tensor on the GPU (I/O
  binding: no host round trip); the argmax runs there and only the labels come back. Otherwise
  the CPU provider runs on a NumPy view of the batch. ``providers`` lists the providers the
  session actually got. Thread-pool spinning is off: on a small machine a spinning pool steals
  the CPU the event loop needs.
* ``TorchBackend``: ``models.runtime.TorchPredictor`` (eager module, ``inference_mode``).

Logits never leave a backend: ``labels`` returns the argmax only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from models.errors import UserError
from models.onnx_export import INPUT_NAME, OUTPUT_NAME
from models.repository import ONNX_FILE, WEIGHTS_FILE, ModelConfig
from models.runtime import TorchPredictor

log = logging.getLogger("server.backends")


class Backend(Protocol):
    name: str
    platform: str
    device: torch.device
    providers: list[str]

    def labels(self, images: torch.Tensor) -> np.ndarray: ...


def resolve_backend(path: Path, config: ModelConfig, requested: str) -> str:
    # messages name the entry's folder (what the operator sees), not the name inside config.json
    """``requested`` (onnx | torch) or, for ``auto``, the config's backend, falling back to the
    file that exists (an int8 entry has only model.onnx). Raises ``UserError`` when the
    requested backend's file is missing."""
    files = {"onnx": (path / ONNX_FILE).is_file(), "torch": (path / WEIGHTS_FILE).is_file()}
    if requested != "auto":
        if not files[requested]:
            missing = ONNX_FILE if requested == "onnx" else WEIGHTS_FILE
            raise UserError(f"model {path.name!r}: backend {requested!r} needs {missing}, "
                            "which the entry does not have")
        return requested
    if files[config.backend]:
        return config.backend
    for name, present in files.items():
        if present:
            return name
    raise UserError(f"model {path.name!r}: no {ONNX_FILE} or {WEIGHTS_FILE}")


class TorchBackend:
    name = "torch"
    platform = "pytorch_eager"

    def __init__(self, path: Path, device: torch.device) -> None:
        self.device = device
        self._predictor = TorchPredictor(path, device)
        self.providers = [f"torch:{device}"]

    def labels(self, images: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return self._predictor.model(images).argmax(1).cpu().numpy()


class OnnxBackend:
    name = "onnx"
    platform = "onnxruntime_onnx"

    def __init__(self, path: Path, device: torch.device, num_classes: int,
                 threads: int | None = None, strict: bool = True) -> None:
        """``strict``: a cuda ``device`` must get the CUDA provider (else ``UserError``); with
        ``strict=False`` (``--device auto``) the session falls back to the CPU provider."""
        import onnxruntime as ort

        onnx_path = path / ONNX_FILE
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list[str | tuple[str, dict[str, str]]] = ["CPUExecutionProvider"]
        cuda_available = "CUDAExecutionProvider" in ort.get_available_providers()
        if device.type == "cuda":
            if not cuda_available and strict:
                raise UserError("device cuda asked for but this ONNX Runtime has no CUDA "
                                "provider (install onnxruntime-gpu, not onnxruntime)")
            if cuda_available:
                providers.insert(0, ("CUDAExecutionProvider",
                                     {"device_id": str(device.index or 0)}))
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as error:
            raise UserError(f"{onnx_path}: cannot load ONNX graph ({error})") from None
        self.providers: list[str] = list(self.session.get_providers())
        on_cuda = "CUDAExecutionProvider" in self.providers
        if device.type == "cuda" and not on_cuda:
            if strict:
                raise UserError(f"{onnx_path}: the CUDA provider failed to start (providers in "
                                f"use: {', '.join(self.providers)}); use --device cpu")
            log.warning("%s: CUDA provider unavailable, running on the CPU provider", onnx_path)
        self.device = device
        self.num_classes = num_classes
        self._io_binding = device.type == "cuda" and on_cuda

    def labels(self, images: torch.Tensor) -> np.ndarray:
        if self._io_binding:
            return self._labels_cuda(images)
        array = np.ascontiguousarray(images.detach().cpu().numpy())
        logits = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0]
        return logits.argmax(1).astype(np.int64)

    def _labels_cuda(self, images: torch.Tensor) -> np.ndarray:
        images = images.contiguous()
        index = images.device.index or 0
        logits = torch.empty((images.shape[0], self.num_classes), dtype=torch.float32,
                             device=images.device)
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, "cuda", index, np.float32, tuple(images.shape),
                           images.data_ptr())
        binding.bind_output(OUTPUT_NAME, "cuda", index, np.float32, tuple(logits.shape),
                            logits.data_ptr())
        torch.cuda.current_stream(images.device).synchronize()  # torch wrote the input
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return logits.argmax(1).cpu().numpy()


def load_backend(path: Path, config: ModelConfig, backend: str, device: torch.device,
                 threads: int | None = None, strict: bool = True) -> Backend:
    if backend == "torch":
        return TorchBackend(path, device)
    return OnnxBackend(path, device, config.num_classes, threads, strict)
