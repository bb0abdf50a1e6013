"""ONNX Runtime sessions the way the server wants them, for both pipelines."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

from models.errors import UserError

log = logging.getLogger("server.pipeline")


def onnx_session(model: bytes, device: str, threads: int | None, strict: bool) -> Any:
    """An ONNX Runtime session on ``device`` ("cpu" / "cuda[:N]"): thread-pool spinning off
    (on a small machine a spinning pool steals the CPU the event loop needs), the CUDA
    provider first on a cuda device. ``strict``: a cuda device must get the CUDA provider."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers: list[str | tuple[str, dict[str, str]]] = ["CPUExecutionProvider"]
    on_cuda = device.startswith("cuda")
    if on_cuda:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            if strict:
                raise UserError("device cuda asked for but this ONNX Runtime has no CUDA "
                                "provider (install onnxruntime-gpu, not onnxruntime)")
        else:
            if "torch" not in sys.modules and hasattr(ort, "preload_dlls"):
                # without torch nobody has loaded CUDA / cuDNN from the nvidia-* wheels yet;
                # ORT's own loader does it (a no-op for what is already loaded)
                with contextlib.suppress(Exception):
                    ort.preload_dlls(cuda=True, cudnn=True)
            index = device.partition(":")[2] or "0"
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
    try:
        session = ort.InferenceSession(model, options, providers=providers)
    except Exception as error:
        raise UserError(f"cannot load ONNX graph ({error})") from None
    if on_cuda and "CUDAExecutionProvider" not in session.get_providers():
        if strict:
            raise UserError("the CUDA provider failed to start (providers in use: "
                            f"{', '.join(session.get_providers())}); use --device cpu")
        log.warning("CUDA provider unavailable, running on the CPU provider")
    return session
