"""CAE's pools: surrogates derived from the target and independent references, as repository
entries with their role in lineage, listed in pools.json, and usable by ``generate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.errors import UserError
from models.repository import load_config
from verifier_client.cli import main
from verifier_client.fingerprint_set import FingerprintSet
from verifier_client.pools import PoolSettings, build_pools, load_pools, pool_paths


@pytest.fixture(scope="module")
def pools_file(tiny_repo: Path, fmnist_train, fmnist_test, tmp_path_factory) -> Path:
    """One fine-tuned surrogate and one reference, 1 epoch on 10 % of the 8 % subset."""
    root = tmp_path_factory.mktemp("pools")
    settings = PoolSettings(distill=0, finetune=1, prune=0, references=1, epochs=1,
                            fraction=0.1, seed=500)
    build_pools(tiny_repo / "target", root / "sur", root / "ref", fmnist_train,
                fmnist_test.take(200), settings, show_progress=False)
    return root / "sur" / "pools.json"


def test_pools_file_lists_roles_and_lineage(pools_file, tiny_repo):
    manifest = json.loads(pools_file.read_text())
    assert manifest["format"] == "csrp-cae-pools"
    assert [s["kind"] for s in manifest["surrogates"]] == ["finetune"]
    assert [r["seed"] for r in manifest["references"]] == [500]
    surrogates, references = pool_paths(pools_file)
    sur, ref = load_config(surrogates[0]), load_config(references[0])
    assert sur.lineage.parameters["role"] == "surrogate"
    assert sur.lineage.modification == "finetune" and sur.lineage.seed == 700
    assert sur.lineage.parent == str(tiny_repo / "target")
    assert sur.lineage.parameters["epochs"] == 1 and sur.lineage.parameters["train_samples"] == 480
    assert ref.lineage.parameters["role"] == "reference" and ref.lineage.parent is None
    assert ref.lineage.seed == 500 and ref.arch == sur.arch == "tinycnn"
    assert (references[0] / "model.onnx").is_file() and "test_top1" in ref.metrics


def test_load_pools_describes_members(pools_file):
    pools = load_pools(*pool_paths(pools_file))
    assert len(pools.surrogates) == 1 and len(pools.references) == 1
    assert pools.description["surrogates"][0]["role"] == "surrogate"
    assert not pools.surrogates[0].training
    with pytest.raises(UserError, match="appears twice"):
        surrogates, _ = pool_paths(pools_file)
        load_pools(surrogates, surrogates)


def test_generate_cae_from_the_pools_file(tiny_repo, pools_file, tmp_path):
    out = tmp_path / "cae.safetensors"
    code = main(["generate", "--method", "cae", "--target", str(tiny_repo / "target"),
                 "--n", "3", "--pools", str(pools_file), "--seed-count", "200",
                 "--param", "eps=0.05", "--param", "tau=0.2", "--param", "steps=20",
                 "--out", str(out)])
    assert code == 0
    meta = FingerprintSet.load(out).metadata
    assert meta["pools"]["pools_file"] == str(pools_file)
    assert [s["role"] for s in meta["pools"]["surrogates"]] == ["surrogate"]
    assert [r["role"] for r in meta["pools"]["references"]] == ["reference"]


def test_pools_command_builds_distilled_and_pruned_surrogates(tiny_repo, tmp_path, capsys):
    code = main(["pools", "--target", str(tiny_repo / "target"), "--out-surrogates",
                 str(tmp_path / "s"), "--out-references", str(tmp_path / "r"), "--distill", "1",
                 "--finetune", "0", "--prune", "1", "--references", "1", "--fraction", "0.005",
                 "--epochs", "1", "--test-count", "100", "--pools-file",
                 str(tmp_path / "p.json")])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "p.json").read_text())
    assert [s["kind"] for s in manifest["surrogates"]] == ["distill", "prune"]
    assert manifest["surrogates"][0]["path"] == "s/sur-distill-1"
    distilled = load_config(tmp_path / "s" / "sur-distill-1")
    assert distilled.lineage.parameters["labels"] == "target-hard-labels"
    assert distilled.lineage.modification == "distill"
    pruned = load_config(tmp_path / "s" / "sur-prune-1")
    assert pruned.lineage.parameters["rate"] == 0.3
    assert pruned.lineage.parameters["role"] == "surrogate"
    assert (tmp_path / "r" / "ref-1" / "config.json").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--distill", "0", "--finetune", "0", "--prune", "0"], "need at least one surrogate"),
    (["--prune-rate", "1.5"], r"prune rate must be in (0, 1)"),
])
def test_pools_command_bad_settings(tiny_repo, tmp_path, capsys, args, message):
    code = main(["pools", "--target", str(tiny_repo / "target"), "--out-surrogates",
                 str(tmp_path / "s"), "--out-references", str(tmp_path / "r"), *args])
    assert code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
