"""The server's stage breakdown from /metrics deltas (``loadtest.server_metrics``)."""

from __future__ import annotations

import pytest

from verifier_client.studies.loadtest.server_metrics import parse_metrics, stage_breakdown


def test_metrics_deltas_give_the_stage_breakdown() -> None:
    def text(requests: int, images: int, batches: int, queue: float, pre: float, infer: float,
             failures: int) -> str:
        lines = [
            "# TYPE inference_request_total counter",
            f'inference_request_total{{model="m"}} {requests}',
            f'inference_request_total{{model="other"}} {requests * 10}',
            "# TYPE inference_request_failure_total counter",
            f'inference_request_failure_total{{model="m",reason="overloaded"}} {failures}',
            "# TYPE inference_count_total counter",
            f'inference_count_total{{model="m"}} {images}',
            "# TYPE inference_batch_count_total counter",
            f'inference_batch_count_total{{model="m"}} {batches}',
        ]
        for stage, total, count in (("queue", queue, requests), ("preprocess", pre, batches),
                                    ("compute", infer, batches), ("request", queue, requests)):
            name = f"inference_{stage}_duration_seconds"
            lines += [f"# TYPE {name} histogram",
                      f'{name}_bucket{{le="+Inf",model="m"}} {count}',
                      f'{name}_count{{model="m"}} {count}', f'{name}_sum{{model="m"}} {total}']
        return "\n".join(lines) + "\n"

    before = parse_metrics(text(5, 10, 2, 0.010, 0.002, 0.004, 0))
    after = parse_metrics(text(105, 410, 12, 0.210, 0.022, 0.104, 3))
    stages = stage_breakdown(before, after, "m")
    assert stages["requests"] == 100 and stages["images"] == 400 and stages["batches"] == 10
    assert stages["mean_batch_size"] == 40.0
    assert stages["queue_ms_per_request"] == pytest.approx(2.0)  # 0.2 s / 100 requests
    assert stages["preprocess_ms_per_batch"] == pytest.approx(2.0)  # 0.02 s / 10 batches
    assert stages["preprocess_us_per_image"] == pytest.approx(50.0)  # 0.02 s / 400 images
    assert stages["infer_ms_per_batch"] == pytest.approx(10.0)
    assert stages["failures"] == {"overloaded": 3}
    idle = stage_breakdown(after, after, "m")
    assert idle["batches"] == 0 and idle["preprocess_ms_per_batch"] is None
