"""CAE pool settings (how many models of each kind, how much training), kept apart from the
pool builder so that the command line can show the defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import UserError


@dataclass(frozen=True)
class PoolSettings:
    """How many of each kind, and how much training they get."""

    distill: int = 1
    finetune: int = 1
    prune: int = 1
    references: int = 2
    epochs: int = 2
    finetune_epochs: int = 1
    fraction: float = 0.1
    lr: float = 0.1
    finetune_lr: float = 0.01
    prune_rate: float = 0.3
    seed: int = 1000

    def check(self) -> None:
        if min(self.distill, self.finetune, self.prune, self.references) < 0:
            raise UserError("pool sizes must be >= 0")
        if self.distill + self.finetune + self.prune < 1:
            raise UserError("need at least one surrogate (distill, finetune or prune)")
        if self.references < 1:
            raise UserError("need at least one reference model")
        if self.epochs < 1 or self.finetune_epochs < 1:
            raise UserError("epochs must be >= 1")
        if not 0.0 < self.fraction <= 1.0:
            raise UserError(f"fraction must be in (0, 1], got {self.fraction}")
        if not 0.0 < self.prune_rate < 1.0:
            raise UserError(f"prune rate must be in (0, 1), got {self.prune_rate}")
        if not (self.lr > 0 and self.finetune_lr > 0):
            raise UserError("learning rates must be > 0")
