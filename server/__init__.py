"""The pirate's label-only inference server (docs/design.md 3.2, 3.3).

Open Inference Protocol (KServe / Triton "v2") subset over FastAPI; the only thing about a
prediction that ever leaves is the class index (INT64).

Layout::

    server/core/config.py      Settings (pydantic-settings, env prefix CSRP_SERVER_), fail fast
    server/core/errors.py      ApiError family -> {"error": "..."} responses, exception handlers
    server/core/body_limit.py  pure-ASGI body size limit (413, also for chunked bodies)
    server/protocol/           wire schemas (pydantic) and the request/response codec
    server/pipeline/           backends (ONNX Runtime, torch), the dynamic batcher, served models
    server/routers/            one router per resource: health, server, models, infer, classify,
                               metrics
    server/metrics.py          Prometheus collectors (one CollectorRegistry per app)
    server/main.py             create_app(settings): lifespan loads models in a background thread
    server/cli.py              python -m server / csrp-server
"""

__version__ = "0.1.0"
SERVER_NAME = "csrp-label-server"
