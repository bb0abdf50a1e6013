"""MLServer (Seldon) custom runtime serving one zoo entry's ONNX graph with ONNX Runtime on the
CPU: input ``images`` UINT8 [N, H, W, C], output ``label`` INT64 [N] (the OIP contract of this
project's server). Adaptive batching is MLServer's own (``max_batch_size``, ``max_batch_time``
in the model settings written by ``benchmarks/bench_peer.py``). MLServer's REST front end takes
JSON tensors only."""

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxLabels(MLModel):
    async def load(self) -> bool:
        self.session = ort.InferenceSession(self.settings.parameters.uri,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        images = NumpyCodec.decode_input(payload.inputs[0])
        floats = images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        labels = self.session.run(None, {self.input_name: floats})[0].argmax(1)
        return InferenceResponse(model_name=self.name, outputs=[
            NumpyCodec.encode_output("label", labels.astype(np.int64))])
