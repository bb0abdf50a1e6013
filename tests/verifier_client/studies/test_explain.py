"""verifier_client explain: carried superpixels follow CSRP's pixel copies, and the command
writes the figure, the overlap table and its record on the shipped target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.csrp_tables import csrp_tables
from models.transforms import csrp
from verifier_client.cli import main
from verifier_client.studies.explain import carried_segments, grid_segments, jaccard

ROOT = Path(__file__).resolve().parents[3]


def test_grid_and_jaccard() -> None:
    segments = grid_segments(28, 28, 4)
    assert segments.shape == (28, 28) and segments.max() == 48
    assert (segments[:4, :4] == 0).all() and segments[27, 27] == 48
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5 and jaccard(set(), set()) == 1.0


@pytest.mark.parametrize(("x1", "y1"), [(0, 0), (6, 0), (3, 5), (6, 6)])
def test_carried_segments_are_the_csrp_of_the_segment_map(x1: int, y1: int) -> None:
    """Putting the segment index into the pixels and applying CSRP gives the carried map: each
    output pixel belongs to the segment of the pixel CSRP copied it from."""
    segments = grid_segments(28, 28, 4)
    tables = csrp_tables(28, 28, 1.23, 6)
    image = torch.from_numpy(segments.astype(np.float32) + 1)[None, None]  # 0 means padding
    moved = csrp(image, 1.23, 6, offsets=torch.tensor([[x1, y1]]))[0, 0].numpy()
    carried = carried_segments(segments, tables, x1, y1, padding=-1)
    np.testing.assert_array_equal(carried, np.where(moved == 0, -1, moved - 1).astype(int))


def test_explain_command_on_the_shipped_target(tmp_path: Path) -> None:
    pytest.importorskip("lime")
    out = tmp_path / "explain"
    code = main(["explain", "--target", str(ROOT / "zoo" / "target"), "--fingerprints",
                 str(ROOT / "zoo" / "fingerprints" / "vce.safetensors"), "--samples", "2",
                 "--lime-samples", "60", "--out", str(out)])
    assert code == 0
    record = json.loads((out / "explain.json").read_text())
    assert [g["group"] for g in record["groups"]] == ["clean", "vce"]
    for group in record["groups"]:
        assert group["n"] == 2 and 0.0 <= group["overlap_mean"] <= 1.0
        low, high = group["overlap_ci95"]
        assert 0.0 <= low <= group["overlap_mean"] <= high <= 1.0
    assert record["segmentation"] == "grid of 4x4 px squares" and record["code_version"]
    assert (out / "explain.png").read_bytes().startswith(b"\x89PNG")
    assert "| clean | 2 |" in (out / "explain.md").read_text()


def test_explain_refuses_other_transforms(tmp_path: Path, capsys) -> None:
    code = main(["explain", "--target", str(ROOT / "zoo" / "target"), "--fingerprints",
                 str(ROOT / "zoo" / "fingerprints"), "--transform", "rdg(distort_limit=0.2)",
                 "--out", str(tmp_path / "x")])
    assert code == 2
    assert "--transform must be csrp" in capsys.readouterr().err
