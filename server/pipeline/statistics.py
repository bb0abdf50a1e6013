"""Per-model inference statistics in the shape of Triton's statistics extension.

``GET /v2/models/{name}/stats`` (and ``/v2/models/stats`` for every model) answers what
tritonclient's ``get_inference_statistics`` reads: per model and version, ``inference_stats``
with ``success``, ``fail``, ``queue``, ``compute_input``, ``compute_infer`` and
``compute_output`` (each ``{"count", "ns"}``; cache fields are zero, this server has no cache),
``inference_count`` (images), ``execution_count`` (batches), ``last_inference`` (ms since the
epoch) and ``batch_stats`` per executed batch size. Here ``compute_input`` is the concatenation
and any preprocessing outside the model run, ``compute_infer`` the model run (with CSRP when it
is in the graph) and ``compute_output`` the split of the labels back to the requests.

Counters only ever grow, under one lock (updates come from the worker and the event loop).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

__all__ = ["ModelStatistics"]

_STAGES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output",
           "cache_hit", "cache_miss")
_BATCH_STAGES = ("compute_input", "compute_infer", "compute_output")


def _ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


class ModelStatistics:
    """The counters of one model version."""

    def __init__(self, name: str, version: str = "1") -> None:
        self.name, self.version = name, version
        self._lock = threading.Lock()
        self._stages = {stage: [0, 0] for stage in _STAGES}
        self._batches: defaultdict[int, dict[str, list[int]]] = defaultdict(
            lambda: {stage: [0, 0] for stage in _BATCH_STAGES})
        self._inferences = self._executions = 0
        self._last_ms = 0

    def _add(self, stage: str, seconds: float) -> None:
        entry = self._stages[stage]
        entry[0] += 1
        entry[1] += _ns(seconds)

    def request(self, seconds: float, ok: bool) -> None:
        """A request answered (``ok``) or failed, end to end."""
        with self._lock:
            self._add("success" if ok else "fail", seconds)

    def queued(self, seconds: float) -> None:
        """One request's wait from enqueue until its batch started."""
        with self._lock:
            self._add("queue", seconds)

    def batch(self, size: int, input_s: float, infer_s: float, output_s: float) -> None:
        """One executed batch of ``size`` images and its three compute stages."""
        with self._lock:
            self._inferences += size
            self._executions += 1
            self._last_ms = int(time.time() * 1000)
            per_size = self._batches[size]
            for stage, seconds in zip(_BATCH_STAGES, (input_s, infer_s, output_s), strict=True):
                self._add(stage, seconds)
                per_size[stage][0] += 1
                per_size[stage][1] += _ns(seconds)

    def snapshot(self) -> dict[str, Any]:
        """Triton's ``model_stats`` entry for this model version."""
        with self._lock:
            return {
                "name": self.name,
                "version": self.version,
                "last_inference": self._last_ms,
                "inference_count": self._inferences,
                "execution_count": self._executions,
                "inference_stats": {stage: {"count": count, "ns": ns}
                                    for stage, (count, ns) in self._stages.items()},
                "batch_stats": [
                    {"batch_size": size,
                     **{stage: {"count": count, "ns": ns}
                        for stage, (count, ns) in stages.items()}}
                    for size, stages in sorted(self._batches.items())],
            }
