# The owner's verifier client (`python -m verifier_client`): CPU only, much slimmer than the server.
#
#   docker build -f docker/verifier.Dockerfile -t csrp-verifier .
#   docker run --rm --network host -v "$PWD/zoo:/models:ro" csrp-verifier verify \
#       --url http://127.0.0.1:8000 --model csrp --fingerprints /models/fingerprints \
#       --calibration /models/calibration.json --repeats 20
#
# Slimmer because the verifier needs no GPU: querying a server is HTTP, and the local work
# (generating fingerprints, in-process matching, calibration against local independents) runs
# well on a CPU.
# - torch/torchvision are the CPU builds from the PyTorch CPU wheel index (about 0.7 GB less
#   than torch alone from PyPI, and none of the ~3 GB of NVIDIA CUDA wheels PyPI's torch pulls).
#   Same versions as the server (2.14.1 / 0.29.1), so tensors and transforms behave the same.
# - onnxruntime (CPU, same 1.31.1 as the server's onnxruntime-gpu) replaces onnxruntime-gpu from
#   the project's dependency list. It is installed *instead of* onnxruntime-gpu, never beside it
#   (the two share the `onnxruntime` import name and the CPU one shadows the GPU one).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

# ---- build ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_CPU_INDEX
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip \
 && pip install --index-url "${TORCH_CPU_INDEX}" torch==2.14.1 torchvision==0.29.1
WORKDIR /src
COPY pyproject.toml README.md ./
# The project's dependencies with onnxruntime-gpu swapped for the CPU onnxruntime (torch and
# torchvision are already satisfied by the CPU builds), then the project itself without deps.
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join([d for d in deps if not d.startswith('onnxruntime-gpu')] + ['onnxruntime==1.31.1']) + '\n')" \
 && pip install -r /tmp/requirements.txt
COPY models ./models
COPY server ./server
COPY verifier_client ./verifier_client
RUN pip install --no-deps . \
 && python -c "import torch, onnxruntime, verifier_client.cli; assert not torch.cuda.is_available(); print('torch', torch.__version__, '| onnxruntime', onnxruntime.__version__)"

# ---- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="csrp-verifier" \
      org.opencontainers.image.description="Fingerprint verifier client (CSRP testbed), CPU"
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CSRP_COMPILE=0
RUN groupadd --system --gid 10001 csrp \
 && useradd --system --uid 10001 --gid csrp --create-home --home-dir /home/csrp csrp
USER csrp
WORKDIR /home/csrp
ENTRYPOINT ["python", "-m", "verifier_client"]
CMD ["--help"]
