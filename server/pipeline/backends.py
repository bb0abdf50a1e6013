"""Backends of the torch pipeline (``server.pipeline.pipelines.TorchPipeline``): a float image
batch (torch) on the model's device in, INT64 labels on the CPU out. ONNX entries whose
preprocessing fits the serving graph do not come here (``GraphPipeline``, no torch).

* ``OnnxBackend``: ONNX Runtime. With ``device`` cuda and the CUDA provider present, the input is
  bound in place on the GPU and the logits are written into a torch tensor on the GPU (I/O
  binding: no host round trip); the argmax runs there and only the labels come back. Otherwise
  the CPU provider runs on a NumPy view of the batch. ``providers`` lists the providers the
  session actually got. Thread-pool spinning is off: on a small machine a spinning pool steals
  the CPU the event loop needs.
* ``TorchBackend``: ``models.runtime.TorchPredictor`` (eager module, ``inference_mode``).

Logits never leave the server: ``labels`` returns the argmax; ``logits`` (float32 NumPy on the
CPU) feeds an entry's query detector, which turns them into labels in the same process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from models.config import INPUT_NAME, ONNX_FILE, OUTPUT_NAME, ModelConfig
from models.errors import UserError
from models.runtime import TorchPredictor

log = logging.getLogger("server.backends")


class Backend(Protocol):
    name: str
    platform: str
    device: torch.device
    providers: list[str]

    def labels(self, images: torch.Tensor) -> np.ndarray: ...

    def logits(self, images: torch.Tensor) -> np.ndarray: ...


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

    def logits(self, images: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return self._predictor.model(images).float().cpu().numpy()


class OnnxBackend:
    name = "onnx"
    platform = "onnxruntime_onnx"

    def __init__(self, path: Path, device: torch.device, num_classes: int,
                 threads: int | None = None, strict: bool = True) -> None:
        """``strict``: a cuda ``device`` must get the CUDA provider (else ``UserError``); with
        ``strict=False`` (``--device auto``) the session falls back to the CPU provider."""
        from server.pipeline.onnx_session import onnx_session

        onnx_path = path / ONNX_FILE
        try:
            model = onnx_path.read_bytes()
        except OSError as error:
            raise UserError(f"{onnx_path}: cannot read ({error})") from None
        try:
            self.session = onnx_session(model, str(device), threads, strict)
        except UserError as error:
            raise UserError(f"{onnx_path}: {error}") from None
        self.providers: list[str] = list(self.session.get_providers())
        on_cuda = "CUDAExecutionProvider" in self.providers
        self.device = device
        self.num_classes = num_classes
        self._io_binding = device.type == "cuda" and on_cuda

    def labels(self, images: torch.Tensor) -> np.ndarray:
        if self._io_binding:
            return self._logits_cuda(images).argmax(1).cpu().numpy()
        return self.logits(images).argmax(1).astype(np.int64)

    def logits(self, images: torch.Tensor) -> np.ndarray:
        if self._io_binding:
            return self._logits_cuda(images).cpu().numpy()
        array = np.ascontiguousarray(images.detach().cpu().numpy())
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0]

    def _logits_cuda(self, images: torch.Tensor) -> torch.Tensor:
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
        return logits


def load_backend(path: Path, config: ModelConfig, backend: str, device: torch.device,
                 threads: int | None = None, strict: bool = True) -> Backend:
    if backend == "torch":
        return TorchBackend(path, device)
    return OnnxBackend(path, device, config.num_classes, threads, strict)
