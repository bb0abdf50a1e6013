"""Latency statistics of a load-test point: nearest-rank percentiles in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

PERCENTILES = (50, 90, 95, 99)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ascending ``sorted_values``: the smallest value that at least
    ``q`` percent of the values do not exceed (``q`` in (0, 100]). NaN for no values."""
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100]; got {q}")
    if not sorted_values:
        return math.nan
    rank = math.ceil(q / 100.0 * len(sorted_values))
    return float(sorted_values[max(rank, 1) - 1])


def latency_summary(latencies_s: Iterable[float]) -> dict[str, float | None]:
    """p50/p90/p95/p99/max/mean in milliseconds (``None`` each when there is no latency)."""
    values = sorted(latencies_s)
    keys = [f"p{q}" for q in PERCENTILES] + ["max", "mean"]
    if not values:
        return dict.fromkeys(keys)
    summary: dict[str, float | None] = {f"p{q}": round(percentile(values, q) * 1e3, 3)
                                        for q in PERCENTILES}
    summary["max"] = round(values[-1] * 1e3, 3)
    summary["mean"] = round(sum(values) / len(values) * 1e3, 3)
    return summary
