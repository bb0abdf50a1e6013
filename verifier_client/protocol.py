"""The query protocol a null is measured under, and that a suspect must be verified under.

A p-value compares a suspect with innocent models *measured the same way*. Behind a randomized
front the suspect's answers are the front's answers, and with votes they are majority answers;
robust fingerprints transfer more to innocents under both (measured: innocents' EOT rates rose
by up to 0.10 behind CSRP with 5 votes). So a calibration records its protocol:

* ``front``: ``None`` (the negatives answered as they are), or the spec text of a transform or
  transform family the owner put in front of every negative (``csrp(sigma=1.23, p=6)``,
  ``csrp(sigma=1.1..1.35, p=1..8)``; ``models.transforms.family``);
* ``members``: the concrete fronts measured. A fixed transform is one member; a family is
  measured at a grid of its settings (every corner of its option ranges and the centre), since
  the owner does not know which setting the pirate chose;
* ``votes`` and ``repeats``: each repeat asks every fingerprint ``votes`` times and scores the
  modal label; a model's rate is the mean over ``repeats``. A suspect must be asked with the
  same votes and at least as many repeats (a sequential ``--budget`` adds rounds): a mean over
  more repeats is less spread than the negatives' means, never more, which can only lower an
  innocent's chance of looking extreme (assuming its per-repeat noise is symmetric about its
  mean); a mean over fewer repeats is refused.

The composite null ("the suspect is an innocent behind *some* member") is rejected only if it
is rejected under every member: a p-value is the largest over the members (the least
favourable one decides). Its assumption, stated in docs/methods.md ("Verdicts"): the pirate's
front is one of the members, or raises innocents' rates no more than the worst of them.

Pure data and parsing; nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.errors import UserError

__all__ = ["Protocol", "member_text"]


def member_text(member: dict[str, Any] | None) -> str:
    """A member as text: ``none`` or ``csrp(sigma=1.23, p=6)``."""
    if member is None:
        return "none"
    options = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in member.items() if k != "name")
    return f"{member['name']}({options})"


def _grid(front: str) -> list[dict[str, Any]]:
    """Every corner of each family member's ranges, and its centre (integers rounded down)."""
    from models.transforms.family import parse_family  # torch: only when a front is given
    from models.transforms.registry import transform_class

    members: list[dict[str, Any]] = []
    for member in parse_family(front).members:
        kinds = {o.name: o.kind for o in transform_class(member.name).options}
        settings = member.corners()
        if member.ranges:
            centre = dict(member.fixed)
            for key, (low, high) in member.ranges.items():
                middle = (low + high) / 2
                centre[key] = int(middle) if kinds[key] is int else round(float(middle), 6)
            settings.append(centre)
        for setting in settings:
            spec = {"name": member.name, **setting}
            if spec not in members:
                members.append(spec)
    return members


@dataclass(frozen=True)
class Protocol:
    """How models are queried for a calibration (and must be for a verification against it)."""

    front: str | None = None
    members: tuple[dict[str, Any] | None, ...] = (None,)
    votes: int = 1
    repeats: int = 1
    seed: int = 0

    @classmethod
    def make(cls, front: str | None = None, votes: int = 1, repeats: int = 1,
             seed: int = 0) -> Protocol:
        """A protocol with ``front`` parsed into its members (``UserError`` for a bad spec)."""
        for value, name in ((votes, "votes"), (repeats, "repeats")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{name} must be an integer >= 1, got {value!r}")
        if front is None:
            return cls(None, (None,), votes, repeats, seed)
        try:
            members = _grid(front)
        except ValueError as error:
            raise UserError(f"--front {front!r}: {error}") from None
        return cls(front, tuple(members), votes, repeats, seed)

    @property
    def randomized(self) -> bool:
        return self.front is not None

    def member_names(self) -> list[str]:
        return [member_text(m) for m in self.members]

    def describe(self) -> str:
        """One line: what the negatives were queried through."""
        front = "no front" if self.front is None else \
            f"front {self.front} ({len(self.members)} member(s))"
        return f"{front}, {self.votes} vote(s), {self.repeats} repeat(s)"

    def to_dict(self) -> dict[str, Any]:
        return {"front": self.front, "members": [dict(m) if m else None for m in self.members],
                "votes": self.votes, "repeats": self.repeats, "seed": self.seed}

    @classmethod
    def from_dict(cls, data: Any) -> Protocol:
        """The protocol a calibration file records (files from before round 3 have none: they
        measured every negative once, without a front and without votes)."""
        if data is None:
            return cls()
        try:
            members = tuple(None if m is None else dict(m) for m in data["members"])
            front = data["front"]
            votes, repeats, seed = int(data["votes"]), int(data["repeats"]), int(data["seed"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"calibration protocol is malformed: {data!r}") from None
        if not members or (front is None) != (members == (None,)) or votes < 1 or repeats < 1:
            raise UserError(f"calibration protocol is inconsistent: {data!r}")
        if front is not None and not isinstance(front, str):
            raise UserError(f"calibration protocol front must be a spec text: {front!r}")
        return cls(front, members, votes, repeats, seed)

    def check_suspect(self, votes: int, repeats: int, randomized: bool | None) -> None:
        """``UserError`` (one line) when a suspect queried with ``votes`` and ``repeats``, seen
        to answer at random (``randomized``; ``None``: unknown) cannot be compared with
        negatives measured under this protocol."""
        if votes != self.votes:
            raise UserError(f"the calibration was measured with {self.votes} vote(s) per "
                            f"fingerprint and this verification asks {votes}: the null must be "
                            "measured the way the suspect is queried (use --votes "
                            f"{self.votes}, or calibrate with --votes {votes})")
        if self.randomized and repeats < self.repeats:
            raise UserError(f"the calibration averaged {self.repeats} repeat(s) behind its "
                            f"front and this verification plans {repeats}: a mean over fewer "
                            "repeats is noisier than the null's, which would accuse innocents "
                            f"too often (use --repeats {self.repeats})")
        if randomized and not self.randomized:
            raise UserError("the suspect answers the same fingerprint differently between "
                            "repeats (a randomized front), but the calibration measured its "
                            "negatives without a front: calibrate behind one (calibrate "
                            "--front ...) or verify with --adaptive")
