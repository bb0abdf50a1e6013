"""In-process predictors over a repository entry: the torch module or the ONNX graph.

Both take float32 [N, C, H, W] in [0, 1] and return logits (for the owner's white-box work
and in-process studies) or labels. The server builds its backends on these; the verifier uses
them for in-process matching rates. ``preprocessing`` is *not* applied here: callers compose
it explicitly (``models.transforms.build_transform``), so the same predictor serves both.
``load_served_predictor`` adds what the server applies after the model: an entry's query
detector (``models.detector``), whose flagged rows come back with their two largest logits
swapped (the runner-up label, as served).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from models.errors import UserError
from models.onnx_export import INPUT_NAME, OUTPUT_NAME
from models.repository import (
    ONNX_FILE,
    WEIGHTS_FILE,
    Entry,
    ModelConfig,
    as_entry,
    load_model,
)


class Predictor(Protocol):
    config: ModelConfig
    backend: str
    device: torch.device

    def logits(self, images: torch.Tensor) -> torch.Tensor: ...

    def predict(self, images: torch.Tensor) -> torch.Tensor: ...


class TorchPredictor:
    """Eager torch module on ``device``."""

    backend = "torch"

    def __init__(self, path: Path | Entry, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model, self.config = load_model(path, self.device)

    @torch.inference_mode()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.to(self.device, torch.float32))

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).argmax(1)


class OnnxPredictor:
    """ONNX Runtime session: CUDA provider when asked for and present, else CPU."""

    backend = "onnx"

    def __init__(self, path: Path | Entry, device: str | torch.device = "cpu",
                 intra_op_threads: int = 0) -> None:
        import onnxruntime as ort

        entry = as_entry(path)
        path, self.config = entry.path, entry.config
        self.device = torch.device(device)
        onnx_path = path / ONNX_FILE
        if not onnx_path.is_file():
            raise UserError(f"{path}: no {ONNX_FILE} (export it: python -m models export)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as error:
            raise UserError(f"{onnx_path}: cannot load ONNX graph ({error})") from None
        self.providers: list[str] = self.session.get_providers()

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float32).numpy()
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(array)})[0]
        return torch.from_numpy(out)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).argmax(1)


class AnsweringPredictor:
    """A predictor whose logits are the detector's answer (``Detector.answer``): what the
    server's label for every query is the argmax of."""

    def __init__(self, inner: Predictor, detector: object) -> None:
        self.inner, self.detector = inner, detector
        self.config, self.backend, self.device = inner.config, inner.backend, inner.device

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        raw = self.inner.logits(images)
        answered = self.detector.answer(raw.detach().cpu().numpy())  # type: ignore[attr-defined]
        return torch.from_numpy(answered).to(raw.device)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(images).argmax(1)


def load_served_predictor(path: str | Path | Entry, backend: str | None = None,
                          device: str | torch.device = "cpu") -> Predictor:
    """``load_predictor``, behind the entry's query detector when its config names one."""
    from models.config import DETECTOR_FILE
    from models.detector import load_detector

    entry = as_entry(path)
    predictor = load_predictor(entry, backend, device)
    if entry.config.detector is None:
        return predictor
    detector = load_detector(entry.path / DETECTOR_FILE, entry.config.num_classes)
    return AnsweringPredictor(predictor, detector)


def load_predictor(path: str | Path | Entry, backend: str | None = None,
                   device: str | torch.device = "cpu") -> Predictor:
    """Predictor for an entry (a folder or a loaded :class:`models.repository.Entry`).

    Without ``backend`` the entry's config decides, falling back to whichever file exists (an
    int8 entry holds only ONNX). A ``backend`` asked for explicitly must have its file: a
    ``UserError`` says so rather than silently running the other one.
    """
    entry = as_entry(path)
    path, config = entry.path, entry.config
    files = {"torch": (path / WEIGHTS_FILE).is_file(), "onnx": (path / ONNX_FILE).is_file()}
    if backend is not None:
        if backend not in files:
            raise UserError(f"unknown backend {backend!r}; choose onnx or torch")
        if not files[backend]:
            missing = WEIGHTS_FILE if backend == "torch" else ONNX_FILE
            raise UserError(f"{path}: backend {backend!r} needs {missing}, which this entry "
                            "does not have")
    backend = backend or config.backend
    if backend == "torch" and not files["torch"]:
        backend = "onnx"
    if backend == "onnx" and not files["onnx"] and files["torch"]:
        backend = "torch"
    if backend == "torch":
        return TorchPredictor(entry, device)
    if backend == "onnx":
        return OnnxPredictor(entry, device)
    raise UserError(f"unknown backend {backend!r}; choose onnx or torch")
