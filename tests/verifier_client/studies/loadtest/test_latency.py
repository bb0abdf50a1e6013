"""Nearest-rank percentiles and the latency summary (``loadtest.latency``)."""

from __future__ import annotations

import math

import pytest

from verifier_client.studies.loadtest.latency import latency_summary, percentile


def test_percentile_is_nearest_rank() -> None:
    hundred = [float(v) for v in range(1, 101)]
    assert [percentile(hundred, q) for q in (1, 50, 90, 95, 99, 100)] == [1, 50, 90, 95, 99, 100]
    four = [10.0, 20.0, 30.0, 40.0]
    assert percentile(four, 25) == 10  # rank ceil(1.0) = 1
    assert percentile(four, 50) == 20  # rank ceil(2.0) = 2
    assert percentile(four, 51) == 30  # rank ceil(2.04) = 3
    assert percentile(four, 90) == 40  # rank ceil(3.6) = 4: an observed value, not 37
    assert percentile([7.0], 99) == 7
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match=r"q must be in \(0, 100\]"):
        percentile(four, 0)


def test_latency_summary_in_milliseconds() -> None:
    summary = latency_summary([0.004, 0.001, 0.003, 0.002])  # seconds, any order
    assert summary == {"p50": 2.0, "p90": 4.0, "p95": 4.0, "p99": 4.0, "max": 4.0, "mean": 2.5}
    ten = latency_summary([i / 1000 for i in range(1, 11)])
    assert (ten["p50"], ten["p90"], ten["p95"], ten["p99"]) == (5.0, 9.0, 10.0, 10.0)
    assert latency_summary([]) == dict.fromkeys(("p50", "p90", "p95", "p99", "max", "mean"))
