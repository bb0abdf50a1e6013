"""Load test of an Open Inference Protocol server: what CSRP costs a pirate's serving stack.

Two workloads, per model, on one server:

- **closed loop** (a concurrency sweep, perf_analyzer's default): C connections, each sends a
  request, waits for the answer and sends the next, for ``duration_s`` seconds;
- **open loop** (``rates``): requests arrive at a constant rate or as a Poisson process
  (seeded), whatever the server's answers do; a request's latency counts from its *scheduled*
  arrival, so a server that falls behind is not flattered (no coordinated omission). Arrivals
  that find ``max_inflight`` requests already open are not sent and count as ``not_sent``.

Per point (model x concurrency or rate):

- ``offered_rps``: requests issued per second (closed loop: attempts; open loop: arrivals);
  ``achieved_rps`` / ``achieved_ips``: successful requests / images per second, over the time
  from the first send until the last answer;
- ``latency_ms``: p50, p90, p95, p99, max and mean of successful requests, client side.
  Percentiles are *nearest-rank*: the smallest observed latency that at least q% of the requests
  did not exceed (never an interpolated value nobody saw);
- ``errors``: failed requests by kind (``http_503``, ``timeout``, ``connection``,
  ``bad_response``, ``not_sent``...); a failed request never counts as a latency;
- ``server``: the server's own per-stage breakdown from ``GET /metrics`` deltas taken before and
  after the point (``server/metrics.py`` names): queue wait per request; preprocessing
  (concatenation, copy to the device, CSRP) and inference (the backend) per executed batch and
  per image; the mean executed batch size; the server-side request time; failures by reason.

With two models (``--model csrp --model copy``: the same weights with and without CSRP), both
run back to back at every point (alternating which goes first) and ``overhead`` reports, per
point, first minus second: latency, throughput ratio and the server's per-stage times, i.e. what
the randomized preprocessing adds.

Modules, from the ground floor up: ``settings`` (bounds, errors, the loopback check),
``latency`` (percentiles), ``wire`` (the raw HTTP/1.1 client and pre-encoded requests),
``server_metrics`` (``/metrics`` deltas), ``workloads`` (closed and open loop), ``runner`` (the
points) and ``report`` (overhead, Markdown, plot, files).
"""

from verifier_client.studies.loadtest.latency import PERCENTILES, latency_summary, percentile
from verifier_client.studies.loadtest.report import (
    markdown_report,
    overhead,
    plot_report,
    write_outputs,
)
from verifier_client.studies.loadtest.runner import run_loadtest
from verifier_client.studies.loadtest.server_metrics import parse_metrics, stage_breakdown
from verifier_client.studies.loadtest.settings import (
    MAX_CONCURRENCY,
    MAX_DURATION_S,
    MAX_PLANNED_S,
    MAX_RATE,
    MAX_REQUESTS,
    LoadSettings,
    LoadTestError,
    check_loopback,
)

__all__ = [
    "MAX_CONCURRENCY",
    "MAX_DURATION_S",
    "MAX_PLANNED_S",
    "MAX_RATE",
    "MAX_REQUESTS",
    "PERCENTILES",
    "LoadSettings",
    "LoadTestError",
    "check_loopback",
    "latency_summary",
    "markdown_report",
    "overhead",
    "parse_metrics",
    "percentile",
    "plot_report",
    "run_loadtest",
    "stage_breakdown",
    "write_outputs",
]
