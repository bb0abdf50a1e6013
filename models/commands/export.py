"""``python -m models export``: re-export an entry's model.onnx from its safetensors weights.

The new graph (opset 17, dynamic batch axis) is checked against torch on the first
``--samples`` test images of the entry's dataset; only when every label agrees is
``model.onnx`` replaced (atomically, as is the recorded logit difference in config.json).
The parity report is printed as JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import Example, add_command, alias, positive_int, print_json
from models.errors import UserError

EXAMPLES = [
    Example("python -m models export --model build/examples/repo/tiny --samples 100",
            note="rewrites model.onnx of an entry with weights"),
    Example("python -m models export --model zoo/target --samples 1000",
            note="only if every label agrees"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "export", "re-export model.onnx from the weights, with parity",
                    "Re-export model.onnx from an entry's weights; the graph replaces the old "
                    "one only when its labels agree with torch on every checked image.",
                    EXAMPLES)
    p.add_argument("--model", required=True, metavar="REPO/NAME",
                   help="entry holding model.safetensors")
    p.add_argument("--samples", type=positive_int, default=256, metavar="N",
                   help="test images for the parity check (default 256)")
    alias(p, "--check-samples", dest="samples", type=positive_int)
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the entry's dataset")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from models.atomic import write_bytes, write_json
    from models.datasets import load_dataset
    from models.onnx_export import OPSET, check_parity, export_onnx
    from models.repository import CONFIG_FILE, ONNX_FILE, load_model

    model, config = load_model(args.model)
    test = load_dataset(config.dataset, "test", args.data_root).take(args.samples)
    onnx_bytes = export_onnx(model, config.input_shape)
    parity = check_parity(model, onnx_bytes, test.floats())
    report = {"model": str(args.model), "samples": parity.samples,
              "labels_identical": parity.labels_identical,
              "label_agreement": round(parity.label_agreement, 6),
              "max_abs_logit_diff": parity.max_abs_logit_diff,
              "onnx_bytes": len(onnx_bytes), "opset": OPSET, "written": parity.labels_identical}
    if not parity.labels_identical:
        print_json(report)
        raise UserError(f"ONNX export of {args.model} disagrees with torch on "
                        f"{1 - parity.label_agreement:.1%} of {parity.samples} test images; "
                        f"{ONNX_FILE} left unchanged")
    write_bytes(Path(args.model) / ONNX_FILE, onnx_bytes)
    metrics = {**config.metrics, "onnx_max_abs_logit_diff": parity.max_abs_logit_diff}
    write_json(Path(args.model) / CONFIG_FILE,
               config.model_copy(update={"metrics": metrics}).model_dump(mode="json"))
    print_json(report)
    return 0

