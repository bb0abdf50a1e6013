"""The query protocol of a calibration (``verifier_client.protocol``): a family's grid of fronts,
the round trip through the file, and every refusal of a suspect queried another way."""

from __future__ import annotations

import pytest

from models.errors import UserError
from verifier_client.protocol import Protocol, member_text


def test_a_family_is_measured_at_its_corners_and_centre():
    protocol = Protocol.make("csrp(sigma=1.1..1.35, p=1..8)", votes=5, repeats=10)
    assert protocol.member_names() == [
        "csrp(sigma=1.1, p=1)", "csrp(sigma=1.1, p=8)", "csrp(sigma=1.35, p=1)",
        "csrp(sigma=1.35, p=8)", "csrp(sigma=1.225, p=4)"]
    assert protocol.randomized and protocol.describe().endswith("5 vote(s), 10 repeat(s)")
    fixed = Protocol.make("csrp(sigma=1.23, p=6)")
    assert fixed.members == ({"name": "csrp", "sigma": 1.23, "p": 6},)
    assert Protocol.make().members == (None,) and member_text(None) == "none"


def test_the_protocol_round_trips_and_old_files_mean_no_front():
    protocol = Protocol.make("csrp(sigma=1.16..1.3, p=3)", votes=3, repeats=4, seed=9)
    assert Protocol.from_dict(protocol.to_dict()) == protocol
    assert Protocol.from_dict(None) == Protocol()  # a file from before protocols were recorded
    for broken in ({"front": "csrp(sigma=1.2, p=3)", "members": [None], "votes": 1,
                    "repeats": 1, "seed": 0},
                   {"front": None, "members": [None], "votes": 0, "repeats": 1, "seed": 0},
                   {"front": None}):
        with pytest.raises(UserError, match="calibration protocol is"):
            Protocol.from_dict(broken)


@pytest.mark.parametrize(("spec", "message"), [
    ("csrp(sigma=1.3..1.1, p=3)", "is empty"),
    ("nosuch(x=3)", "the transform must be one of"),
    ("csrp(sigma=1.2)", "needs p"),
])
def test_a_bad_front_is_one_line(spec: str, message: str):
    with pytest.raises(UserError, match=message):
        Protocol.make(spec)


def test_a_suspect_queried_another_way_is_refused():
    front = Protocol.make("csrp(sigma=1.23, p=6)", votes=5, repeats=10)
    front.check_suspect(votes=5, repeats=10, randomized=True)
    front.check_suspect(votes=5, repeats=30, randomized=True)  # more repeats: allowed
    with pytest.raises(UserError, match=r"measured with 5 vote.* this verification asks 1"):
        front.check_suspect(votes=1, repeats=10, randomized=None)
    with pytest.raises(UserError, match=r"averaged 10 repeat.* plans 4"):
        front.check_suspect(votes=5, repeats=4, randomized=None)
    plain = Protocol.make()
    plain.check_suspect(votes=1, repeats=20, randomized=False)
    with pytest.raises(UserError, match=r"randomized front.*without a front"):
        plain.check_suspect(votes=1, repeats=20, randomized=True)
