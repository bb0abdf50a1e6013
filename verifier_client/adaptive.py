"""Adaptive verification: probe the suspect's front, then pick the sets, calibration and
protocol that fit it (``verify --adaptive``, the demo).

A suspect whose answers flip on repeated identical queries (``probe``) sits behind a randomized
front: it is verified with the EOT sets against their *front-matched* calibration, whose
negatives were queried behind the front family with the same votes and repeats
(``verifier_client.protocol``); any other suspect with the plain sets against the plain
calibration. A front-matched calibration is required for the randomized case: comparing a
suspect behind a front with negatives measured without one accused 2 of 36 innocents at a
stated alpha of 0.01 (round 3's audit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from models.errors import UserError
from verifier_client.calibration import protocol_of
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.probe import DETECTED, probe


@dataclass(frozen=True)
class Route:
    """Sets and the calibration they are judged with."""

    sets: Sequence[FingerprintSet]
    calibration: dict[str, Any]


@dataclass(frozen=True)
class Choice:
    """What adaptive verification chose, and why (the probe's statistics and one line)."""

    sets: Sequence[FingerprintSet]
    calibration: dict[str, Any]
    votes: int
    repeats: int
    randomized: bool
    message: str
    probe: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """The report's ``adaptive`` record."""
        return {"randomized": self.randomized, "message": self.message,
                "probe_queries": self.probe["answers"],
                "probe": {k: self.probe[k] for k in ("flip_rate", "flip_rate_ci95", "inputs",
                                                     "trials", "conclusion")}}


def check_front_route(front: Route, where: str) -> None:
    """``UserError`` unless ``front``'s calibration was measured behind a front."""
    if not protocol_of(front.calibration).randomized:
        raise UserError(f"{where}: adaptive verification needs a calibration measured behind a "
                        "front (calibrate --front ...); this one was measured without one")


def choose(url: str, model: str, plain: Route, front: Route, votes: int, repeats: int,
           client_options: dict[str, Any]) -> Choice:
    """Probe ``model`` at ``url``; the EOT path with its calibration's votes and repeats when
    the front is randomized, else the plain path with the given ``votes`` and ``repeats``."""
    result = probe(url, model, **client_options)
    randomized = result["conclusion"] == DETECTED
    if randomized:
        protocol = protocol_of(front.calibration)
        message = (f"probe: randomized front detected (label flip rate "
                   f"{result['flip_rate']:.3f} on {result['inputs']} inputs x "
                   f"{result['trials']} trials): verifying with the EOT sets against negatives "
                   f"measured behind {protocol.describe()}")
        return Choice(front.sets, front.calibration, protocol.votes,
                      protocol.repeats, True, message, result)
    message = (f"probe: no randomness detected ({result['answers']} answers): verifying with "
               "the plain sets")
    return Choice(plain.sets, plain.calibration, votes, repeats, False, message, result)
