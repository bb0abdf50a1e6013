"""Open-loop arrival schedules (``loadtest.workloads``)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from verifier_client.studies.loadtest.workloads import arrivals


def test_arrivals_constant_and_poisson() -> None:
    constant = arrivals(10.0, 1.0, False, 1000, random.Random(0))
    assert constant == pytest.approx([i / 10 for i in range(10)])
    assert len(arrivals(10.0, 1.0, False, 4, random.Random(0))) == 4  # --max-requests caps
    poisson = arrivals(1000.0, 10.0, True, 100_000, random.Random(1))
    assert poisson == arrivals(1000.0, 10.0, True, 100_000, random.Random(1))  # seeded
    assert abs(len(poisson) - 10_000) < 4 * math.sqrt(10_000)
    gaps = [b - a for a, b in itertools.pairwise(poisson)]
    assert min(gaps) >= 0 and 0.0009 < sum(gaps) / len(gaps) < 0.0011
