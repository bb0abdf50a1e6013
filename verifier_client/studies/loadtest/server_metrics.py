"""The server's own per-stage times, from ``GET /metrics`` snapshots before and after a point
(the names ``server/metrics.py`` exports)."""

from __future__ import annotations

from typing import Any

import httpx

from verifier_client.studies.loadtest.settings import LoadTestError

MetricSnapshot = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> MetricSnapshot:
    """Prometheus text -> ``{(sample name, sorted labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    snapshot: MetricSnapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            snapshot[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return snapshot


def _total(snapshot: MetricSnapshot, name: str, labels: dict[str, str]) -> float:
    """The sum over the samples of ``name`` whose labels include ``labels`` (so a server that
    adds labels, such as ``version``, is read the same)."""
    return sum(value for (sample, sample_labels), value in snapshot.items()
               if sample == name and labels.items() <= dict(sample_labels).items())


def _delta(before: MetricSnapshot, after: MetricSnapshot, name: str, model: str,
           **labels: str) -> float:
    wanted = {"model": model, **labels}
    return _total(after, name, wanted) - _total(before, name, wanted)


def stage_breakdown(before: MetricSnapshot, after: MetricSnapshot,
                    model: str) -> dict[str, Any]:
    """The server's per-stage times for ``model`` between two snapshots (``None`` where the
    server executed nothing)."""

    def ratio(numerator: float, denominator: float, scale: float) -> float | None:
        return round(numerator / denominator * scale, 4) if denominator > 0 else None

    def hist(stage: str) -> tuple[float, float]:
        name = f"inference_{stage}_duration_seconds"
        return (_delta(before, after, f"{name}_sum", model),
                _delta(before, after, f"{name}_count", model))

    images = _delta(before, after, "inference_count_total", model)
    batches = _delta(before, after, "inference_batch_count_total", model)
    queue_sum, queue_n = hist("queue")
    pre_sum, pre_n = hist("preprocess")
    infer_sum, infer_n = hist("compute")
    request_sum, request_n = hist("request")
    failures = {}
    for (name, labels), value in after.items():
        label_map = dict(labels)
        if name == "inference_request_failure_total" and label_map.get("model") == model:
            count = value - before.get((name, labels), 0.0)
            if count:
                failures[label_map.get("reason", "unknown")] = int(count)
    return {
        "requests": int(_delta(before, after, "inference_request_total", model)),
        "images": int(images),
        "batches": int(batches),
        "mean_batch_size": ratio(images, batches, 1.0),
        "queue_ms_per_request": ratio(queue_sum, queue_n, 1e3),
        "preprocess_ms_per_batch": ratio(pre_sum, pre_n, 1e3),
        "preprocess_us_per_image": ratio(pre_sum, images, 1e6),
        "infer_ms_per_batch": ratio(infer_sum, infer_n, 1e3),
        "infer_us_per_image": ratio(infer_sum, images, 1e6),
        "request_ms": ratio(request_sum, request_n, 1e3),
        "failures": failures,
    }


async def scrape(client: httpx.AsyncClient) -> MetricSnapshot:
    try:
        response = await client.get("/metrics")
    except httpx.HTTPError as error:
        raise LoadTestError(f"GET /metrics failed: {error}") from None
    if response.status_code != 200:
        raise LoadTestError(f"GET /metrics answered {response.status_code}")
    return parse_metrics(response.text)
