"""``python -m models info``: summarise one repository entry, or list a whole repository.

``--model REPO/NAME`` prints the entry's config (architecture, dataset, backend,
preprocessing, lineage, metrics) and its files; ``--repository DIR`` (or ``--model`` pointing
at a folder of entries) prints one line per entry. ``--json`` prints the same as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from models.cli_support import Example, add_command, alias, print_json
from models.config import (
    CONFIG_FILE,
    ONNX_FILE,
    WEIGHTS_FILE,
    ModelConfig,
    list_entries,
    load_config,
)
from models.errors import UserError

EXAMPLES = [Example("python -m models info --model zoo/target", cheap=True),
            Example("python -m models info --repository zoo", cheap=True),
            Example("python -m models info --repository zoo --json", cheap=True)]

_SUMMARY_METRICS = ("test_top1", "test_top5", "parent_test_top1", "agreement_with_parent",
                    "sparsity", "int8_conv_kernels", "onnx_max_abs_logit_diff")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "info", "show an entry's config or list a repository",
                    "Summarise a repository entry (config, lineage, metrics, files), or list a "
                    "whole repository one line per entry.", EXAMPLES)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="REPO/NAME", help="one entry")
    which.add_argument("--repository", metavar="DIR", help="a repository: list its entries")
    alias(which, "--repo", dest="repository")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=run)


def entry_files(path: Path) -> dict[str, int]:
    """Sizes in bytes of the entry's known files that exist."""
    return {name: (path / name).stat().st_size for name in (CONFIG_FILE, WEIGHTS_FILE, ONNX_FILE)
            if (path / name).is_file()}


def _size(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 1e6 else f"{count / 1e3:.1f} kB"


def _line(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"


def describe(path: Path, config: ModelConfig) -> str:
    """Human-readable multi-line summary of one entry."""
    c, lineage = config, config.lineage
    files = entry_files(path)
    shown = {k: c.metrics[k] for k in _SUMMARY_METRICS if k in c.metrics}
    rows = [
        f"{c.name}  ({path})",
        f"  arch           {c.arch}",
        f"  dataset        {c.dataset} ({c.num_classes} classes, input "
        f"{'x'.join(map(str, c.input_shape))})",
        f"  backend        {c.backend}",
        f"  preprocessing  {json.dumps(c.preprocessing) if c.preprocessing else 'none'}",
        f"  files          {', '.join(f'{n} ({_size(s)})' for n, s in files.items())}",
        f"  lineage        {lineage.modification} from {lineage.parent or '-'} "
        f"(seed {lineage.seed}, code {lineage.code_version}, {lineage.created})",
        f"  parameters     {_line(lineage.parameters)}",
        f"  metrics        {_line(shown)}",
    ]
    return "\n".join(rows)


def _row(repo: Path, name: str) -> dict[str, Any]:
    try:
        config = load_config(repo / name)
    except UserError as error:
        return {"name": name, "error": str(error)}
    return {"name": name, "arch": config.arch, "dataset": config.dataset,
            "backend": config.backend, "modification": config.lineage.modification,
            "parent": config.lineage.parent, "preprocessing":
                (config.preprocessing or {}).get("name"),
            "test_top1": config.metrics.get("test_top1"),
            "files": sorted(n for n in entry_files(repo / name) if n != CONFIG_FILE)}


def list_repo(repo: Path) -> list[dict[str, Any]]:
    return [_row(repo, name) for name in list_entries(repo)]


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ("NAME", "ARCH", "DATASET", "BACKEND", "MODIFICATION", "PARENT", "PREPROC", "TOP1",
              "FILES")
    lines = [header]
    for r in rows:
        if "error" in r:
            lines.append((r["name"], f"invalid: {r['error']}", *[""] * 7))
            continue
        top1 = "-" if r["test_top1"] is None else f"{r['test_top1']:.4f}"
        lines.append((r["name"], r["arch"], r["dataset"], r["backend"], r["modification"],
                      r["parent"] or "-", r["preprocessing"] or "-", top1,
                      "+".join(f.split(".")[-1] for f in r["files"])))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True))
                     .rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    repository = getattr(args, "repository", None)
    target = Path(repository or args.model)
    if repository or (target.is_dir() and not (target / CONFIG_FILE).is_file()
                     and list_entries(target)):
        rows = list_repo(target)
        if args.json:
            print_json({"repo": str(target), "entries": rows})
        else:
            print(format_table(rows) if rows else f"{target}: no entries")
        return 0
    config = load_config(target)
    if args.json:
        print_json({"path": str(target), "files": entry_files(target),
                    "config": config.model_dump(mode="json")})
    else:
        print(describe(target, config))
    return 0
