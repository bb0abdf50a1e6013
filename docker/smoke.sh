#!/usr/bin/env bash
# Build the torch-free edge image and check it for real: it starts, turns healthy, answers an
# OIP binary request, a raw PNG upload and the statistics route with labels only, serves one
# verification (`verify`, adaptive when the zoo has EOT sets) over HTTP, refuses an entry that
# needs torch with one line, and reports its size.
#
# The full compose stack (the CUDA server image and the verifier image, both with torch) is not
# built here: see the README's docker compose section for what was and was not run.
#
#   docker/smoke.sh                      # docker, or podman when docker is absent
#   CONTAINER=podman docker/smoke.sh     # on machines without a Docker daemon (see README)
#
# Offline (no registry, no PyPI): `make wheelhouse` first (done here), and a local base image
# tagged as PYTHON_IMAGE (default python:3.11-slim-bookworm).
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${CONTAINER:-$(command -v docker >/dev/null && echo docker || echo podman)}
IMAGE=${IMAGE:-csrp-edge:smoke}
PORT=${PORT:-18080}
PY=${PY:-.venv/bin/python}
NAME=csrp-edge-smoke-$$
FORMAT=()
[ "$ENGINE" = podman ] && FORMAT=(--format docker)   # podman drops HEALTHCHECK otherwise

step() { printf '\n== %s\n' "$*"; }
cleanup() { "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "wheelhouse"
make -s wheelhouse
step "build ($ENGINE)"
start=$(date +%s)
"$ENGINE" build "${FORMAT[@]}" --build-arg PIP_NO_INDEX=1 \
  ${PYTHON_IMAGE:+--build-arg PYTHON_IMAGE=$PYTHON_IMAGE} -f docker/edge.Dockerfile -t "$IMAGE" .
echo "built in $(( $(date +%s) - start )) s"

step "run"
"$ENGINE" run -d --name "$NAME" -p "127.0.0.1:$PORT:8000" -v "$PWD/zoo:/models:ro" \
  -e CSRP_SERVER_MODELS=copy,csrp,csrp-ft,int8 -e CSRP_SERVER_SEED=0 "$IMAGE" >/dev/null
for _ in $(seq 1 120); do
  if "$PY" -c "import httpx, sys; sys.exit(httpx.get('http://127.0.0.1:$PORT/v2/health/ready').status_code != 200)" 2>/dev/null; then
    break
  fi
  sleep 1
done
"$ENGINE" healthcheck run "$NAME" && echo "healthcheck: healthy"

step "requests"
"$PY" - "$PORT" <<'EOF'
import io, json, sys

import httpx
import numpy as np
from PIL import Image

url = f"http://127.0.0.1:{sys.argv[1]}"
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)
raw = images.tobytes()
head = json.dumps({"inputs": [{"name": "images", "shape": [8, 28, 28, 1], "datatype": "UINT8",
                               "parameters": {"binary_data_size": len(raw)}}]}).encode()
with httpx.Client(base_url=url, timeout=30) as client:
    meta = client.get("/v2/models/csrp").json()["parameters"]
    assert meta["preprocessing_runs"] == "onnx-graph", meta
    for model in ("copy", "csrp", "csrp-ft", "int8"):
        reply = client.post(f"/v2/models/{model}/infer", content=head + raw,
                            headers={"Inference-Header-Content-Length": str(len(head)),
                                     "Content-Type": "application/octet-stream"})
        assert reply.status_code == 200, reply.text
        labels = reply.json()["outputs"][0]["data"]
        assert len(labels) == 8 and all(isinstance(v, int) for v in labels)
        print(f"{model:8s} labels {labels}")
    png = io.BytesIO()
    Image.fromarray(images[0, :, :, 0], "L").save(png, "PNG")
    reply = client.post("/v1/models/csrp/classify", content=png.getvalue(),
                        headers={"Content-Type": "image/png"})
    assert reply.status_code == 200, reply.text
    print("raw PNG  ", reply.json())
    stats = client.get("/v2/models/stats").json()["model_stats"]
    print("stats    ", {s["name"]: s["inference_count"] for s in stats})
    assert "statistics" in client.get("/v2").json()["extensions"]
EOF

step "one verification against the container (the verifier from this checkout, over HTTP)"
EOT_FLAGS=()
if [ -d zoo/fingerprints-eot ] && [ -f zoo/calibration-eot.json ]; then EOT_FLAGS=(--adaptive); fi
"$PY" -m verifier_client verify --url "http://127.0.0.1:$PORT" --model csrp-ft \
  --fingerprints zoo/fingerprints --calibration zoo/calibration.json --repeats 5 --quiet \
  "${EOT_FLAGS[@]}" | tail -12

step "an entry that needs torch"
if out=$("$ENGINE" run --rm -v "$PWD/zoo:/models:ro" -e CSRP_SERVER_MODELS=rdg-ft "$IMAGE" 2>&1); then
  echo "expected a refusal, got: $out"; exit 1
fi
echo "$out" | tail -1

step "size"
"$ENGINE" image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%s: %.0f MB\n", "'"$IMAGE"'", $1/1e6}'
"$ENGINE" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'csrp-(edge|server)' || true
echo "smoke test passed"
