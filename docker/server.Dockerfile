# The pirate's label-only inference server (`python -m server`), CUDA-capable, CPU fallback.
#
#   docker build -f docker/server.Dockerfile -t csrp-server .
#   docker run --rm -p 8000:8000 -v "$PWD/zoo:/models:ro" csrp-server                 # CPU
#   docker run --rm --gpus all -p 8000:8000 -v "$PWD/zoo:/models:ro" csrp-server       # GPU
#
# Why a plain python:3.11-slim base and not nvidia/cuda:*-cudnn-runtime:
# CUDA and cuDNN come from pip, once, and the two users of them agree on one version.
# - torch 2.14.1's PyPI wheel depends on NVIDIA's CUDA 13.0 runtime wheels (nvidia-cuda-runtime
#   13.0, nvidia-cublas 13.x, nvidia-curand 10.x, nvidia-cudnn-cu13 9.x, ...) and loads them
#   from site-packages.
# - onnxruntime-gpu 1.19 to 1.2x on PyPI were built for CUDA 12.x + cuDNN 9 (ONNX Runtime's CUDA
#   EP requirements table: "starting with 1.19, CUDA 12.x is the default on PyPI"). Beside
#   torch 2.14.1 (CUDA 13) such a wheel finds no libcudart.so.12 / libcublas.so.12 and its CUDA
#   provider does not start (the server's --device auto then falls back to the CPU provider).
#   onnxruntime-gpu 1.31.1, the version this project resolves and is tested with, is built for
#   CUDA 13.0 + cuDNN 9 (its build_and_package_info says cuda_version 13.0; its provider library
#   links libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and opens cuDNN 9
#   at run time): exactly the libraries torch's wheels bring. When torch is imported (torch
#   backend, RDG) it loads them first; when it is not (CSRP inside the ONNX graph) the server
#   calls onnxruntime.preload_dlls(), which loads the same nvidia-* wheels' libraries. It is
#   pinned below so that `pip install .` cannot pick a wheel built for another CUDA.
# - The image therefore needs only the host's NVIDIA driver, which the NVIDIA Container Toolkit
#   mounts in at run time (`--gpus all`, or docker-compose.gpu.yml). CUDA 13.0 wants a Linux
#   driver >= 580. An nvidia/cuda:13.0-cudnn-runtime base would ship a second copy of the same
#   libraries (several GB) that neither torch nor ORT would use, and brings Python 3.10/3.12,
#   not 3.11.
# Without a GPU (or without --gpus) the same image serves on the CPU.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment with torch, onnxruntime-gpu and the project ----------------
# Pinned: docker/requirements-gpu.txt (torch==2.14.1, torchvision==0.29.1, onnxruntime-gpu==1.31.1
# and the rest as the tests ran them; docker/pin.py gpu,train). Offline: `make wheelhouse-gpu`
# (several GB of CUDA wheels) and --build-arg PIP_NO_INDEX=1.
FROM ${PYTHON_IMAGE} AS build
ARG PIP_NO_INDEX=0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_FIND_LINKS=/wheels PIP_NO_INDEX=${PIP_NO_INDEX}
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY docker/wheels/ /wheels/
# Heavy, rarely changing layers first: the CUDA wheels come with torch.
COPY docker/requirements-gpu.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt "setuptools>=77" wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY models ./models
COPY server ./server
COPY verifier_client ./verifier_client
RUN pip install --no-deps --no-build-isolation . \
 && python -c "import torch, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"

# ---- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="csrp-server" \
      org.opencontainers.image.description="Label-only Open Inference Protocol server (CSRP testbed)"
COPY --from=build /opt/venv /opt/venv
# NVIDIA_*: what the NVIDIA Container Toolkit mounts when a GPU is requested (compute: CUDA).
# CSRP_COMPILE=0: torch.compile's CPU path needs a C++ compiler, which this image leaves out;
# the eager CSRP gather is used instead (on a GPU CSRP never compiles anyway).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    CSRP_COMPILE=0
# /models: the model repository, mounted read-only at run time, never baked in.
RUN groupadd --system --gid 10001 csrp \
 && useradd --system --uid 10001 --gid csrp --create-home --home-dir /home/csrp csrp \
 && mkdir -p /models && chown csrp:csrp /models
USER csrp
WORKDIR /home/csrp
EXPOSE 8000
# Ready = every model loaded and warmed up. Plain Python, so the image needs no curl. The port is
# the one CMD sets; a container started with another --port needs its own healthcheck.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "server"]
# Everything else comes from CSRP_SERVER_* variables (models, device, backend, batching, seed,
# log level); flags given here win over them, so only the container-fixed ones are flags.
CMD ["--repository", "/models", "--host", "0.0.0.0", "--port", "8000"]
