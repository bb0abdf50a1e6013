"""Pirate modifications (docs/methods.md, "Pirates"), each a function on a model
and a function writing a new repository entry with lineage:

* ``quantize_entry`` (``int8``): static post-training int8 quantisation with ONNX Runtime;
* ``prune_entry`` (``prune``): global L1 magnitude pruning at rate r, made permanent;
* ``ftal_entry`` (``ftal``): fine-tuning of all layers on a seeded data fraction; ``finetune``
  is the reusable loop (a CSRP-adapting pirate passes its transform);
* ``distill_entry`` (``distill``): a fresh student trained on the parent's labels alone;
* ``detector_entry`` (``detector``): the same weights behind a query detector fitted on clean
  data, answering flagged queries wrongly (``models.modify.detect``).

Entry functions take ``(parent, out, ...)`` paths plus in-memory data, refuse ``out == parent``
and return the written ``ModelConfig``; metrics always include the parent's accuracy and the
label agreement with it on the same test samples.
"""

from models.modify.base import Evaluation, evaluate, resolve_parent
from models.modify.detect import detector_entry
from models.modify.distill import distill_entry, relabel
from models.modify.finetune import DEFAULT_LR, check_ftal, finetune, ftal_entry
from models.modify.prune import check_rate, prune_entry, prune_model, sparsity
from models.modify.quantize import (
    DEFAULT_CALIBRATION,
    int8_op_counts,
    quantize_entry,
    quantize_onnx,
)

__all__ = [
    "DEFAULT_CALIBRATION",
    "DEFAULT_LR",
    "Evaluation",
    "check_ftal",
    "check_rate",
    "detector_entry",
    "distill_entry",
    "evaluate",
    "finetune",
    "ftal_entry",
    "int8_op_counts",
    "prune_entry",
    "prune_model",
    "quantize_entry",
    "quantize_onnx",
    "relabel",
    "resolve_parent",
    "sparsity",
]
