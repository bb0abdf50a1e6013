#!/usr/bin/env bash
# `docker compose up` for real: build the default stack's two images (the torch-free edge
# server and the torch-free verifier) offline from the wheelhouse, bring the stack up, check the
# verifier's verdict and exit status, run a second verification from the host against the
# published port, take the stack down and remove the images it built.
#
#   make compose-smoke                       # docker compose, or podman-compose (see below)
#   CONTAINER=podman docker/compose-smoke.sh
#
# Engines: `docker compose` where Docker is installed; else podman with podman-compose (PyPI;
# COMPOSE=/path/to/podman-compose). Offline: `make wheelhouse` first, and a local base image
# tagged as PYTHON_IMAGE (default python:3.11-slim-bookworm; on machines without a registry,
# build one from Debian's packages with debootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${CONTAINER:-$(command -v docker >/dev/null && echo docker || echo podman)}
if [ "$ENGINE" = docker ]; then
  COMPOSE=(${COMPOSE:-docker compose})
else
  COMPOSE=(${COMPOSE:-podman-compose})
  export PODMAN_COMPOSE_PROVIDER=1
fi
PROJECT=csrp-smoke-$$
export SERVER_PORT=${SERVER_PORT:-18090} PIP_NO_INDEX=1 VERIFY_MODEL=${VERIFY_MODEL:-csrp}
PY=${PY:-.venv/bin/python}
FORMAT=()
[ "$ENGINE" = podman ] && FORMAT=(--format docker)   # podman drops HEALTHCHECK otherwise

step() { printf '\n== %s\n' "$*"; }
cleanup() {
  step "down"
  "${COMPOSE[@]}" -p "$PROJECT" down -v >/dev/null 2>&1 || true
  if [ -z "${KEEP_IMAGES:-}" ]; then
    "$ENGINE" rmi -f csrp-edge:latest csrp-verifier:latest >/dev/null 2>&1 || true
    echo "images removed"
  fi
}
trap cleanup EXIT

step "versions"
"$ENGINE" --version
"${COMPOSE[@]}" version 2>/dev/null | head -n 3 || true

step "build both images ($ENGINE, offline from docker/wheels)"
for pair in "csrp-edge:latest docker/edge.Dockerfile" "csrp-verifier:latest docker/verifier.Dockerfile"; do
  set -- $pair
  start=$(date +%s)
  "$ENGINE" build "${FORMAT[@]}" -q --build-arg PIP_NO_INDEX=1 \
    ${PYTHON_IMAGE:+--build-arg PYTHON_IMAGE=$PYTHON_IMAGE} -f "$2" -t "$1" . >/dev/null
  size=$("$ENGINE" image inspect "$1" --format '{{.Size}}')
  echo "$1: built in $(( $(date +%s) - start )) s, $(( size / 1000000 )) MB"
done

step "up (the verifier waits for the server's readiness itself)"
start=$(date +%s)
set +e
"${COMPOSE[@]}" -p "$PROJECT" up --no-build --abort-on-container-exit --exit-code-from verifier \
  2>&1 | tee /tmp/compose-smoke-$$.log | grep -E "verifier|overall|probe:|error" | grep -v "^$"
status=${PIPESTATUS[0]}
set -e
echo "verifier exit status $status, $(( $(date +%s) - start )) s from up to the verdict"
grep -q "overall: stolen" /tmp/compose-smoke-$$.log || { echo "FAIL: no stolen verdict for $VERIFY_MODEL"; exit 1; }
[ "$status" = 0 ] || { echo "FAIL: verifier exit status $status"; exit 1; }

step "a second verification, from the host, against the published port"
"${COMPOSE[@]}" -p "$PROJECT" up -d --no-build server >/dev/null 2>&1
$PY -m verifier_client verify --url "http://127.0.0.1:$SERVER_PORT" --model heldout-resnet20-01 \
  --wait-ready 180 --adaptive --fingerprints zoo/fingerprints --calibration zoo/calibration.json \
  --eot-fingerprints zoo/fingerprints-eot --eot-calibration zoo/calibration-eot.json \
  --repeats 5 --no-progress | grep -E "probe:|overall"
echo "PASS"
