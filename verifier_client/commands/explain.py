"""``python -m verifier_client explain``: LIME before and after CSRP (the paper's Figs. 4 and 5)."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.cli_support import (
    Example,
    add_command,
    existing_entry,
    output_dir,
    positive_int,
)
from models.errors import UserError

EXAMPLES = [
    Example("python -m verifier_client explain --target zoo/target --fingerprints zoo/fingerprints "
            "--samples 2 --lime-samples 100 --out build/examples/explain", cheap=True),
    Example("python -m verifier_client explain --target zoo/target --fingerprints zoo/fingerprints "
            "--out results/explain", note="the README's figure and overlap table"),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers, "explain", "LIME explanations of the target before and after CSRP",
        "For clean test images and the fingerprints of every set, explain the target's label "
        "with LIME (a fixed grid of square superpixels) on the image and on one CSRP draw of it, "
        "draw them in the layout of the seed paper's Figures 4 and 5, and measure how much of "
        "the evidence stays in place: the Jaccard overlap of the top superpixels before and "
        "after, per group. In-process, on the owner's model (scores never leave a server). "
        "Writes explain.png, explain.json and explain.md.", EXAMPLES)
    p.add_argument("--target", required=True, type=existing_entry, metavar="REPO/NAME",
                   help="the owner's model (explained in-process with torch)")
    p.add_argument("--fingerprints", required=True, type=Path, metavar="DIR",
                   help="folder of fingerprint sets (or one set file)")
    p.add_argument("--transform", default="csrp(sigma=1.23, p=6)", metavar="SPEC",
                   help="the pirate's transform (default: the zoo's csrp(sigma=1.23, p=6))")
    p.add_argument("--samples", type=positive_int, default=20,
                   help="images explained per group (default 20)")
    p.add_argument("--lime-samples", type=positive_int, default=500,
                   help="LIME perturbations per explanation (default 500)")
    p.add_argument("--top-k", type=positive_int, default=5,
                   help="top superpixels compared (default 5)")
    p.add_argument("--cell", type=positive_int, default=4,
                   help="superpixel side in pixels (default 4: 49 cells on 28x28)")
    p.add_argument("--seed", type=int, default=0, help="seed of LIME and the CSRP draws")
    p.add_argument("--out", required=True, type=output_dir, metavar="DIR", help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util

    import numpy as np

    if importlib.util.find_spec("lime") is None:
        raise UserError("explain needs the lime package: pip install 'csrp-testbed[explain]' "
                        "(or pip install lime)")
    from models.atomic import write_json
    from models.datasets import load_dataset
    from models.provenance import code_version
    from models.repository import load_model
    from models.transforms import build_transform, parse_spec_text
    from verifier_client.fingerprint_set import load_sets
    from verifier_client.studies.explain import ExplainSettings, explain_groups
    from verifier_client.studies.explain_figure import draw_figure, markdown

    try:
        spec = parse_spec_text(args.transform)
        transform = build_transform(spec)
    except ValueError as error:
        raise UserError(f"bad --transform: {error}") from None
    if spec is None or spec.get("name") != "csrp":
        raise UserError("--transform must be csrp(sigma=..., p=...): the superpixels are "
                        "carried along CSRP's pixel copies")
    model, config = load_model(args.target)
    sets = load_sets([args.fingerprints])
    settings = ExplainSettings(samples=args.samples, lime_samples=args.lime_samples,
                               top_k=args.top_k, cell=args.cell, seed=args.seed)
    test = load_dataset(config.dataset, "test")
    rng = np.random.default_rng(args.seed)
    pick = np.sort(rng.choice(len(test), size=min(args.samples, len(test)), replace=False))
    groups = [("clean", test.floats(pick))]
    for fset in sets:
        fset.check_input_shape(config.input_shape, f"target {args.target}")
        groups.append((fset.method, fset.images))
    results = explain_groups(model, groups, transform, settings, progress=print)
    summary = {
        "target": str(args.target), "transform": spec, "settings": vars(settings),
        "segmentation": f"grid of {args.cell}x{args.cell} px squares",
        "fingerprints": {f.method: {"path": str(f.path), "sha256": f.sha256} for f in sets},
        "clean_indices": pick.tolist(), "data_source": test.source,
        "code_version": code_version(),
        "command": "python -m verifier_client explain " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k not in {"run", "command"} and v is not None),
        "groups": [r.summary(settings.bootstrap, args.seed) for r in results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    draw_figure(results, config.labels, args.out / "explain.png", spec)
    write_json(args.out / "explain.json", summary)
    (args.out / "explain.md").write_text(markdown(summary))
    print(markdown(summary))
    print(f"wrote {args.out}/explain.png, explain.json, explain.md")
    return 0
