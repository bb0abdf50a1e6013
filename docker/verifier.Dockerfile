# The owner's verifier client (`python -m verifier_client`) without torch: what the owner runs
# against a suspect's API (verify, verify --adaptive, probe, calibrate against remote models,
# report). Generating fingerprints and in-process studies need torch: `pip install '.[train]'`.
#
#   make wheelhouse                                  # once, on the host: docker/wheels/
#   docker build -f docker/verifier.Dockerfile --build-arg PIP_NO_INDEX=1 -t csrp-verifier .
#   docker run --rm --network host -v "$PWD/zoo:/zoo:ro" csrp-verifier verify \
#       --url http://127.0.0.1:8000 --model csrp --adaptive --fingerprints /zoo/fingerprints \
#       --calibration /zoo/calibration.json --eot-fingerprints /zoo/fingerprints-eot \
#       --eot-calibration /zoo/calibration-eot.json --wait-ready 180
#
# Pinned: docker/requirements-client.txt (the versions the tests ran with, docker/pin.py); the
# project goes in with --no-deps on top. Offline with --build-arg PIP_NO_INDEX=1.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG PIP_NO_INDEX=0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_FIND_LINKS=/wheels PIP_NO_INDEX=${PIP_NO_INDEX}
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY docker/wheels/ /wheels/
COPY docker/requirements-client.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt "setuptools>=77" wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY models ./models
COPY server ./server
COPY verifier_client ./verifier_client
RUN pip install --no-deps --no-build-isolation . \
 && pip uninstall -y setuptools wheel \
 && python -c "import importlib.util as u; assert u.find_spec('torch') is None and u.find_spec('onnxruntime') is None; import verifier_client.verification; print('verifier client, no torch')"

# ---- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="csrp-verifier" \
      org.opencontainers.image.description="Fingerprint verifier client (CSRP testbed), no torch"
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 csrp \
 && useradd --system --uid 10001 --gid csrp --create-home --home-dir /home/csrp csrp
USER csrp
WORKDIR /home/csrp
ENTRYPOINT ["python", "-m", "verifier_client"]
CMD ["--help"]
