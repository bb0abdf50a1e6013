"""The preprocessing overhead of one model over another (``loadtest.report``)."""

from __future__ import annotations

import pytest

from verifier_client.studies.loadtest.report import overhead


def test_overhead_is_first_minus_second() -> None:
    def point(model: str, p50: float, rps: float, pre: float) -> dict:
        server = dict.fromkeys(("queue_ms_per_request", "preprocess_ms_per_batch",
                                "preprocess_us_per_image", "infer_ms_per_batch",
                                "infer_us_per_image", "request_ms"), 1.0)
        server["preprocess_ms_per_batch"] = pre
        return {"model": model, "mode": "closed", "concurrency": 8, "rate": None,
                "achieved_rps": rps,
                "latency_ms": {"p50": p50, "p99": p50 * 2, "mean": p50}, "server": server}

    rows = overhead([point("csrp", 5.0, 80.0, 0.5), point("copy", 4.0, 100.0, 0.1)],
                    ["csrp", "copy"])
    assert len(rows) == 1
    row = rows[0]
    assert row["minus"] == "csrp - copy" and row["concurrency"] == 8
    assert row["p50_ms"] == 1.0 and row["p99_ms"] == 2.0
    assert row["throughput_ratio"] == 0.8
    assert row["preprocess_ms_per_batch"] == pytest.approx(0.4)
    assert row["infer_ms_per_batch"] == 0.0
