"""Prometheus metrics, one ``CollectorRegistry`` per app (so tests can run several apps).

Per model (labels ``model`` and ``version``, as Triton's), Triton-like:

- ``inference_request_total``: inference requests received (infer and classify)
- ``inference_request_failure_total``: failed requests, label ``reason`` (bad_request,
  not_found, too_large, not_ready, overloaded, internal)
- ``inference_count_total``: images inferred
- ``inference_batch_count_total``: batches executed (average batch = count / batch_count)
- ``inference_batch_size``: histogram of images per executed batch
- ``inference_queue_duration_seconds``: per request, enqueue until its batch starts
- ``inference_preprocess_duration_seconds``: per batch, concatenation, copy to device and
  preprocessing (CSRP/RDG), so its overhead is visible
- ``inference_compute_duration_seconds``: per batch, the backend until labels are on the CPU
- ``inference_request_duration_seconds``: per successful request, body read to answer ready
- ``inference_queue_depth`` (gauge): requests waiting; ``model_ready`` (gauge): 1 once warm

Server-wide: ``http_request_rejected_total{reason}``, requests the body-limit middleware answered
before any route ran (a declared body over the limit); those naming a served model are also
counted in its ``inference_request_failure_total{reason="too_large"}``.

Nothing derived from a model's outputs beyond counts is ever recorded. prometheus-client's
``*_created`` series (a timestamp per counter) are turned off: Triton exports none, and they
doubled the scrape for no use.

The same events also feed ``ModelStatistics`` (``server.pipeline.statistics``), the statistics
extension's JSON (``GET /v2/models/{name}/stats``).
"""

from __future__ import annotations

from dataclasses import dataclass

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from models.config import MODEL_VERSION
from server.pipeline.statistics import ModelStatistics

prometheus_client.disable_created_metrics()

_MODEL = ["model", "version"]

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class ModelMetrics:
    """The children of every collector for one model, bound once (cheap to update)."""

    requests: Counter
    inferences: Counter
    batches: Counter
    batch_size: Histogram
    queue_seconds: Histogram
    preprocess_seconds: Histogram
    compute_seconds: Histogram
    request_seconds: Histogram
    queue_depth: Gauge
    ready: Gauge
    failures: Counter  # the parent collector; labelled per call (few reasons)
    model: str
    stats: ModelStatistics

    def failure(self, reason: str, seconds: float = 0.0) -> None:
        """A failed request (``seconds``: how long it took, when known)."""
        self.failures.labels(model=self.model, version=MODEL_VERSION, reason=reason).inc()
        self.stats.request(seconds, ok=False)

    def succeeded(self, seconds: float) -> None:
        """A request answered, ``seconds`` end to end."""
        self.request_seconds.observe(seconds)
        self.stats.request(seconds, ok=True)


class Metrics:
    """Every collector of one app, in its own registry."""

    def __init__(self, max_batch_size: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("inference_request", "Inference requests received",
                                _MODEL, registry=r)
        self.failures = Counter("inference_request_failure", "Inference requests that failed",
                                ["model", "version", "reason"], registry=r)
        self.inferences = Counter("inference_count", "Images inferred", _MODEL, registry=r)
        self.batches = Counter("inference_batch_count", "Batches executed", _MODEL,
                               registry=r)
        size_buckets = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}
                              | {max_batch_size})
        self.batch_size = Histogram("inference_batch_size", "Images per executed batch",
                                    _MODEL, buckets=[b for b in size_buckets
                                                        if b <= max_batch_size],
                                    registry=r)
        self.queue_seconds = Histogram(
            "inference_queue_duration_seconds", "Time a request waits for its batch to start",
            _MODEL, buckets=_LATENCY_BUCKETS, registry=r)
        self.preprocess_seconds = Histogram(
            "inference_preprocess_duration_seconds",
            "Per batch: concatenation, copy to device and preprocessing (CSRP/RDG)",
            _MODEL, buckets=_LATENCY_BUCKETS, registry=r)
        self.compute_seconds = Histogram(
            "inference_compute_duration_seconds", "Per batch: backend execution to labels",
            _MODEL, buckets=_LATENCY_BUCKETS, registry=r)
        self.request_seconds = Histogram(
            "inference_request_duration_seconds", "Per successful request, end to end",
            _MODEL, buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("inference_queue_depth", "Requests waiting in the queue",
                                 _MODEL, registry=r)
        self.ready = Gauge("model_ready", "1 when the model is loaded and warmed up",
                           _MODEL, registry=r)
        self.rejected = Counter("http_request_rejected",
                                "Requests answered before any route ran (body too large)",
                                ["reason"], registry=r)

    def for_model(self, name: str) -> ModelMetrics:
        labels = {"model": name, "version": MODEL_VERSION}
        return ModelMetrics(
            requests=self.requests.labels(**labels),
            inferences=self.inferences.labels(**labels),
            batches=self.batches.labels(**labels),
            batch_size=self.batch_size.labels(**labels),
            queue_seconds=self.queue_seconds.labels(**labels),
            preprocess_seconds=self.preprocess_seconds.labels(**labels),
            compute_seconds=self.compute_seconds.labels(**labels),
            request_seconds=self.request_seconds.labels(**labels),
            queue_depth=self.queue_depth.labels(**labels),
            ready=self.ready.labels(**labels),
            failures=self.failures,
            model=name,
            stats=ModelStatistics(name, MODEL_VERSION),
        )
