# The pirate's edge server: `python -m server` without torch, on the CPU (the compose default).
#
#   make wheelhouse                                  # once, on the host: docker/wheels/
#   docker build -f docker/edge.Dockerfile --build-arg PIP_NO_INDEX=1 -t csrp-edge .
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/zoo:/models:ro" \
#       -e CSRP_SERVER_MODELS=copy,csrp,csrp-ft,int8 csrp-edge
#
# An edge node serving one ResNet-20 needs ONNX Runtime, NumPy and FastAPI, nothing more: CSRP
# runs inside the ONNX serving graph (models.onnx_serving) and its offsets come from a NumPy
# stream that draws what torch would (models.csrp_tables), so --seed replays as on the full
# image. What needs torch is refused at start-up with one line naming the model: the torch
# backend and torch-only transforms (RDG).
#
# Pinned: docker/requirements-edge.txt holds the versions the test suite ran with (written by
# docker/pin.py); the project goes in with --no-deps on top. Offline: `make wheelhouse` fills
# docker/wheels/ and --build-arg PIP_NO_INDEX=1 installs from it alone (no network in the build).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment with the pinned requirements and the project ----------------
FROM ${PYTHON_IMAGE} AS build
ARG PIP_NO_INDEX=0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_FIND_LINKS=/wheels PIP_NO_INDEX=${PIP_NO_INDEX}
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY docker/wheels/ /wheels/
COPY docker/requirements-edge.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt "setuptools>=77" wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY models ./models
COPY server ./server
COPY verifier_client ./verifier_client
# --no-build-isolation: setuptools is in the venv already (and nothing is fetched for the build)
RUN pip install --no-deps --no-build-isolation . \
 && pip uninstall -y setuptools wheel \
 && python -c "import importlib.util as u, onnxruntime; assert u.find_spec('torch') is None; print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers(), '| no torch')"

# ---- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="csrp-edge" \
      org.opencontainers.image.description="Label-only Open Inference Protocol server without torch (CSRP testbed)"
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CSRP_SERVER_DEVICE=cpu
RUN groupadd --system --gid 10001 csrp \
 && useradd --system --uid 10001 --gid csrp --create-home --home-dir /home/csrp csrp \
 && mkdir -p /models && chown csrp:csrp /models
USER csrp
WORKDIR /home/csrp
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "server"]
CMD ["--repository", "/models", "--host", "0.0.0.0", "--port", "8000"]
