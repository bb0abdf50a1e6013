"""Model repository entries (docs/design.md 3.2): round trip, lineage, refusal of pickles,
corrupt files, name validation, atomic writes, and the in-process predictors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

import models.repository
from models.datasets import dataset_info
from models.entries import new_config
from models.errors import UserError
from models.onnx_export import export_onnx
from models.repository import (
    CONFIG_FILE,
    ONNX_FILE,
    WEIGHTS_FILE,
    Lineage,
    ModelConfig,
    build_classifier,
    entry_dir,
    list_entries,
    load_config,
    load_model,
    save_entry,
    validate_model_name,
)
from models.runtime import load_predictor

SHAPE = (1, 28, 28)


def _config(name: str = "m", arch: str = "tinycnn", **lineage: object) -> ModelConfig:
    return new_config(name, arch, dataset_info("fashion-mnist"), Lineage(**lineage))


def _model(config: ModelConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_classifier(config)
    for module in model.modules():  # non-default BN statistics must survive the round trip
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def entry(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A saved tinycnn entry with torch weights and its ONNX graph."""
    config = _config(modification="train", seed=0)
    model = _model(config)
    path = save_entry(tmp_path / "repo" / "m", config, model=model,
                      onnx_bytes=export_onnx(model, list(SHAPE)))
    return path, model


def _images(n: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def test_round_trip_gives_identical_logits(entry):
    path, model = entry
    loaded, config = load_model(path)
    assert not loaded.training
    images = _images()
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    assert config.arch == "tinycnn" and config.input_shape == list(SHAPE)
    assert config.labels == list(dataset_info("fashion-mnist").labels)
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE]


def test_lineage_is_recorded(tmp_path):
    config = _config("pruned", parent="repo/target", modification="prune",
                     parameters={"rate": 0.5, "measured_sparsity": 0.4987}, seed=3)
    path = save_entry(tmp_path / "pruned", config, model=_model(config))
    raw = json.loads((path / CONFIG_FILE).read_text())
    assert set(raw["lineage"]) == {"parent", "modification", "parameters", "seed", "code_version",
                                   "created"}
    lineage = load_config(path).lineage
    assert (lineage.parent, lineage.modification, lineage.seed) == ("repo/target", "prune", 3)
    assert lineage.parameters == {"rate": 0.5, "measured_sparsity": 0.4987}
    assert lineage.code_version and lineage.created
    assert raw["backend"] in ("onnx", "torch") and raw["preprocessing"] is None


def test_entry_name_follows_the_folder(tmp_path):
    config = _config("other-name")
    save_entry(tmp_path / "renamed", config, model=_model(config))
    assert load_config(tmp_path / "renamed").name == "renamed"
    assert list_entries(tmp_path) == ["renamed"]


def test_torch_save_file_is_refused(entry):
    path, model = entry
    torch.save(model.state_dict(), path / WEIGHTS_FILE)
    with pytest.raises(UserError, match="pickle"):
        load_model(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_raw_pickle_is_refused(entry, protocol):
    path, model = entry
    with (path / WEIGHTS_FILE).open("wb") as handle:
        pickle.dump(model.state_dict(), handle, protocol=protocol)
    with pytest.raises(UserError, match="pickle"):
        load_model(path)


def test_protocol_0_pickle_is_refused_too(entry):
    """Protocols 0 and 1 have no magic byte; safetensors still refuses to parse them."""
    path, _ = entry
    (path / WEIGHTS_FILE).write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=0))
    with pytest.raises(UserError, match=WEIGHTS_FILE):
        load_model(path)


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage", "bad-header"])
def test_corrupt_safetensors_is_refused(entry, damage):
    path, _ = entry
    weights = path / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes({"truncate": data[: len(data) // 2], "empty": b"",
                         "garbage": b"\x13\x37" * 64,
                         "bad-header": data[:8] + b"{not json" + data[17:]}[damage])
    with pytest.raises(UserError, match="corrupt safetensors"):
        load_model(path)


def test_weights_of_another_architecture_are_refused(entry):
    path, _ = entry
    config = load_config(path).model_copy(update={"arch": "resnet20"})
    (path / CONFIG_FILE).write_text(config.model_dump_json())
    with pytest.raises(UserError, match="do not fit 'resnet20'"):
        load_model(path)


def test_missing_files(entry, tmp_path):
    path, _ = entry
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(UserError, match=f"no {WEIGHTS_FILE}"):
        load_model(path)
    (path / CONFIG_FILE).unlink()
    with pytest.raises(UserError, match=f"{CONFIG_FILE}: missing"):
        load_model(path)
    with pytest.raises(UserError, match="missing"):
        load_predictor(tmp_path / "nothing-here")


@pytest.mark.parametrize("field, value, where", [
    ("backend", "tensorflow", "backend"),
    ("input_shape", [1, 28], "input_shape"),
    ("num_classes", 1, "num_classes"),
    ("name", "Bad Name", "name"),
    ("unexpected", 1, "unexpected"),
])
def test_invalid_config_is_one_clear_line(entry, field, value, where):
    path, _ = entry
    raw = json.loads((path / CONFIG_FILE).read_text())
    raw[field] = value
    (path / CONFIG_FILE).write_text(json.dumps(raw))
    with pytest.raises(UserError, match=f"invalid config \\({where}") as error:
        load_config(path)
    assert "\n" not in str(error.value)
    (path / CONFIG_FILE).write_text("{truncated")
    with pytest.raises(UserError, match="invalid config"):
        load_config(path)


@pytest.mark.parametrize("name", ["../x", "A", "a/b", "", ".hidden", "-x", "x" * 129, "a..b",
                                  "a b", "é"])
def test_invalid_model_names_are_refused(tmp_path, name):
    with pytest.raises(UserError, match="invalid model name"):
        validate_model_name(name)
    with pytest.raises(UserError, match="invalid model name"):
        entry_dir(tmp_path, name)


@pytest.mark.parametrize("name", ["a", "resnet20-target", "m.int8", "x_1", "0"])
def test_valid_model_names(name):
    assert validate_model_name(name) == name


def test_save_refuses_a_bad_folder_name(tmp_path):
    config = _config()
    for name in ("Upper", "..", ".tmp"):
        with pytest.raises(UserError, match="invalid model name"):
            save_entry(tmp_path / name, config, model=_model(config))
    assert list(tmp_path.iterdir()) == []


def _disk_full(*args: object, **kwargs: object) -> None:
    raise RuntimeError("disk full")


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    config = _config()
    monkeypatch.setattr(models.repository, "save_file", _disk_full)
    with pytest.raises(RuntimeError, match="disk full"):
        save_entry(tmp_path / "m", config, model=_model(config))
    assert list(tmp_path.iterdir()) == []  # no entry, no hidden temporary folder


def test_failed_overwrite_keeps_the_old_entry(entry, monkeypatch):
    path, _ = entry
    before = sorted((p.name, p.read_bytes()) for p in path.iterdir())
    monkeypatch.setattr(models.repository, "save_file", _disk_full)
    config = _config(seed=9)
    with pytest.raises(RuntimeError):
        save_entry(path, config, model=_model(config, seed=9))
    assert sorted((p.name, p.read_bytes()) for p in path.iterdir()) == before
    assert [p.name for p in path.parent.iterdir()] == ["m"]


def test_overwrite_replaces_the_whole_entry(entry):
    path, _ = entry
    config = _config(seed=9)
    new = _model(config, seed=9)
    save_entry(path, config, model=new)  # torch weights only this time
    assert not (path / ONNX_FILE).exists()
    images = _images(4)
    with torch.no_grad():
        assert torch.equal(load_model(path)[0](images), new(images))
    assert [p.name for p in path.parent.iterdir()] == ["m"]


def test_save_needs_weights_or_graph(tmp_path):
    with pytest.raises(ValueError, match="needs torch weights"):
        save_entry(tmp_path / "m", _config())


def test_torch_and_onnx_predictors_agree(entry):
    path, model = entry
    images = _images(64)
    torch_predictor = load_predictor(path, "torch")
    onnx_predictor = load_predictor(path, "onnx")
    assert (torch_predictor.backend, onnx_predictor.backend) == ("torch", "onnx")
    with torch.no_grad():
        assert torch.equal(torch_predictor.logits(images), model(images))
    assert torch.equal(torch_predictor.predict(images), onnx_predictor.predict(images))
    torch.testing.assert_close(onnx_predictor.logits(images), torch_predictor.logits(images),
                               atol=1e-4, rtol=1e-4)
    assert load_predictor(path).backend == load_config(path).backend == "onnx"


def test_predictor_without_a_backend_uses_the_file_present(entry):
    path, _ = entry
    (path / ONNX_FILE).unlink()
    assert load_predictor(path).backend == "torch"


def test_an_explicit_backend_needs_its_file(entry):
    path, _ = entry
    (path / ONNX_FILE).unlink()
    with pytest.raises(UserError, match=r"backend 'onnx' needs model\.onnx"):
        load_predictor(path, "onnx")


def test_corrupt_onnx_is_refused(entry):
    path, _ = entry
    (path / ONNX_FILE).write_bytes(b"not a graph")
    with pytest.raises(UserError, match="cannot load ONNX graph"):
        load_predictor(path, "onnx")
    with pytest.raises(UserError, match="unknown backend 'tflite'"):
        load_predictor(path, "tflite")


def test_safetensors_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """Regression: a valid header length with low byte 0x80 begins like a pickle (opcode PROTO)."""
    from safetensors.torch import save_file

    from models.repository import load_state_dict

    path = tmp_path / "w.safetensors"
    for pad in range(300):
        save_file({"a": torch.zeros(3)}, str(path), metadata={"x": "y" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert set(load_state_dict(path)) == {"a"}
