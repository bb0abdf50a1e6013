"""Triton (through ``nvidia-pytriton``: Triton's own HTTP front end and dynamic batcher, a Python
backend) serving one zoo entry's ONNX graph with ONNX Runtime on the CPU, on the same OIP v2
contract as this project's server: input ``images`` UINT8 [N, H, W, C], output ``label`` INT64.

    build/peers/triton/bin/python benchmarks/peers/triton_copy.py MODEL_DIR PORT

Run by ``benchmarks/bench_peer.py`` in a virtual environment of its own made from Debian's
``/usr/bin/python3.11`` (pytriton's backend stub breaks under pyenv's interpreter). Batching as
the project's defaults: at most 64 images, 2 ms queue delay.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

entry, port = Path(sys.argv[1]), int(sys.argv[2])
config = json.loads((entry / "config.json").read_text())
channels, height, width = config["input_shape"]
session = ort.InferenceSession(str(entry / "model.onnx"), providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name


@batch
def infer(images: np.ndarray) -> dict[str, np.ndarray]:
    floats = images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    logits = session.run(None, {input_name: floats})[0]
    return {"label": logits.argmax(1).astype(np.int64)[:, None]}


triton_config = TritonConfig(http_address="127.0.0.1", http_port=port, grpc_port=port + 1,
                             metrics_port=port + 2, log_verbose=0)
with Triton(config=triton_config) as triton:
    triton.bind(model_name=entry.name, infer_func=infer,
                inputs=[Tensor(name="images", dtype=np.uint8, shape=(height, width, channels))],
                outputs=[Tensor(name="label", dtype=np.int64, shape=(1,))],
                config=ModelConfig(max_batch_size=64, batcher=DynamicBatcher(
                    max_queue_delay_microseconds=2000)))
    triton.serve()
