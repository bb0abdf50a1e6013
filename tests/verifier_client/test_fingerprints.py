"""The six fingerprinting methods on the tiny target: every set matches the target after a UINT8
round trip (torch and ONNX), is well-formed, replays from its seed, records its provenance, and
keeps each method's own promise (IPGuard's margin, CAE's ball, RCE-LT's band, VCE's labels)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from models.errors import UserError
from models.modify import finetune
from models.repository import load_model
from models.runtime import load_predictor
from models.training import TrainSettings
from verifier_client.fingerprint_set import FingerprintSet, target_metadata
from verifier_client.fingerprints import (
    GenerationError,
    ModelPools,
    ProgressEvent,
    SeedPool,
    create_method,
    list_methods,
    method_parameters,
)
from verifier_client.fingerprints.ipguard import ipguard_loss
from verifier_client.fingerprints.rce_lt import (
    dct2,
    dct_matrix,
    idct2,
    low_band_energy_ratio,
    remove_low_band,
)
from verifier_client.fingerprints.vce import VCE

METHODS = ["ipguard", "cae", "vce", "rce", "rce-gm", "rce-lt"]
N = 6
SEED = 3
#: Small settings for the tiny target (tinycnn, ~75 % accuracy, soft outputs: its max softmax
#: averages ~0.5, so CAE's tau = 0.85 is out of reach and 0.25 is used; IPGuard's k = 5 rarely
#: converges, k = 1 often does).
FAST: dict[str, dict[str, Any]] = {
    "ipguard": {"k": 1.0, "steps": 100, "keep_unconverged": False},
    "cae": {"eps": 0.03, "tau": 0.25, "steps": 30, "max_batch": 48},
    "vce": {"steps": 20},
    "rce": {"steps": 20},
    "rce-gm": {"steps": 10, "q": 3},
    "rce-lt": {"steps": 20},
}


@pytest.fixture(scope="module")
def target(tiny_repo: Path) -> tuple[torch.nn.Module, Any]:
    return load_model(tiny_repo / "target")


@pytest.fixture(scope="module")
def seeds(fmnist_test) -> SeedPool:
    return SeedPool.from_any(fmnist_test.take(300))


@pytest.fixture(scope="module")
def pools(tiny_repo: Path, target, fmnist_train) -> ModelPools:
    """One surrogate (the target fine-tuned briefly) and one reference (an independent)."""
    surrogate = copy.deepcopy(target[0])
    finetune(surrogate, fmnist_train.take(600), TrainSettings(epochs=1, lr=0.01, seed=5),
             show_progress=False)
    reference, _ = load_model(tiny_repo / "indep-1")
    return ModelPools([surrogate.eval()], [reference], {"surrogates": ["ft"],
                                                        "references": ["indep-1"]})


def generate(method: str, target, seeds, pools, seed: int = SEED, n: int = N,
             **extra: Any) -> FingerprintSet:
    model, config = target
    kwargs: dict[str, Any] = {}
    if method in ("ipguard", "cae"):
        kwargs["seeds"] = seeds
    if method == "cae":
        kwargs["pools"] = pools
    return create_method(method, **{**FAST[method], **extra}).generate(
        model, n, generator=torch.Generator().manual_seed(seed),
        target=target_metadata("repo/target", config), input_shape=config.input_shape, **kwargs)


@pytest.fixture(scope="module")
def sets(target, seeds, pools) -> dict[str, FingerprintSet]:
    return {method: generate(method, target, seeds, pools) for method in METHODS}


def test_registry_lists_every_method_and_the_cli_knows_them():
    from verifier_client.commands.generate import METHODS as CLI_METHODS

    label_only, claimant = ["akh", "di", "sac-m"], ["transfer"]
    assert list_methods() == sorted([*METHODS, *label_only, *claimant])
    assert list(CLI_METHODS) == list_methods()  # the torch-free --help's list
    assert list_methods("rce*") == ["rce", "rce-gm", "rce-lt"]
    assert method_parameters("ipguard")["k"] == 5.0
    assert method_parameters("cae")["eps"] == 0.01
    assert method_parameters("rce")["delta"] == 0.001
    assert method_parameters("rce-gm")["q"] == 10
    assert method_parameters("rce-lt")["k"] is None  # H // 4 at generation


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_set_matches_target_after_uint8_round_trip(sets, tiny_repo, method, backend):
    fset = sets[method]
    wire = (fset.images * 255).round().to(torch.uint8)  # what a UINT8 request carries
    assert torch.equal(wire.to(torch.float32) / 255, fset.images)
    predictor = load_predictor(tiny_repo / "target", backend=backend)
    assert predictor.backend == backend
    predicted = predictor.predict(wire.to(torch.float32) / 255)
    assert torch.equal(predicted.cpu(), fset.labels)


@pytest.mark.parametrize("method", METHODS)
def test_shapes_dtype_range_and_metadata(sets, method):
    fset = sets[method]
    assert fset.images.shape == (N, 1, 28, 28) and fset.images.dtype == torch.float32
    assert fset.labels.shape == (N,) and fset.labels.dtype == torch.int64
    assert float(fset.images.min()) >= 0.0 and float(fset.images.max()) <= 1.0
    assert torch.equal(torch.round(fset.images * 255) / 255, fset.images)
    assert int(fset.labels.min()) >= 0 and int(fset.labels.max()) < 10
    meta = fset.metadata
    for key in ("method", "parameters", "target", "seed", "code_version", "candidates_tried",
                "created", "rounds", "acceptance_rate", "input_shape"):
        assert key in meta, key
    assert meta["method"] == method and meta["seed"] == SEED
    assert meta["candidates_tried"] >= N
    assert meta["target"]["name"] == "target" and meta["target"]["lineage"]["seed"] == 0
    assert meta["parameters"]["margin"] == 0.01
    for key, value in FAST[method].items():
        assert meta["parameters"][key] == value


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_set(sets, target, seeds, pools, method):
    again = generate(method, target, seeds, pools)
    assert torch.equal(again.images, sets[method].images)
    assert torch.equal(again.labels, sets[method].labels)
    assert again.metadata["candidates_tried"] == sets[method].metadata["candidates_tried"]


def test_another_seed_another_set(sets, target, seeds, pools):
    other = generate("vce", target, seeds, pools, seed=SEED + 1)
    assert not torch.equal(other.images, sets["vce"].images)


# ------------------------------------------------------------------------- method-specific


def test_ipguard_margin_condition_holds(sets, target, seeds):
    """Stopping rule: loss 0 on the 8-bit image, i.e. the label j leads the seed's class i by
    at least k logits and i is the runner-up (keep_unconverged=False keeps only those)."""
    model, _ = target
    fset, k = sets["ipguard"], FAST["ipguard"]["k"]
    assert fset.metadata["converged"] == N
    assert bool((fset.sources >= 0).all())
    with torch.no_grad():
        logits = model(torch.from_numpy(fset.as_uint8()).to(torch.float32) / 255)
        seed_class = model(seeds.images[fset.sources]).argmax(1)
    j, i = fset.labels, seed_class
    assert bool((i != j).all())
    top2 = logits.topk(2, dim=1).indices
    assert torch.equal(top2[:, 0], j) and torch.equal(top2[:, 1], i)
    gap = logits.gather(1, j[:, None]) - logits.gather(1, i[:, None])
    assert bool((gap >= k - 1e-4).all())
    assert bool((ipguard_loss(logits, i, j, k) <= 1e-4).all())


def test_ipguard_default_keeps_unconverged_samples_with_the_targets_label(target, seeds, pools):
    fset = generate("ipguard", target, seeds, pools, keep_unconverged=True, k=5.0, steps=20)
    assert fset.metadata["converged"] <= N  # k = 5 in 20 steps: mostly not converged
    with torch.no_grad():
        assert torch.equal(target[0](fset.images).argmax(1), fset.labels)


def test_cae_stays_inside_its_eps_ball(sets, target, seeds):
    fset = sets["cae"]
    eps = FAST["cae"]["eps"]
    start = seeds.images[fset.sources]
    assert float((fset.images - start).abs().max()) <= eps + 1e-6
    # ... and on the 8-bit grid the ball is floor(eps * 255) levels wide
    levels = torch.from_numpy(fset.as_uint8()).int()
    assert float((levels - (start * 255).round().int()).abs().max()) <= int(eps * 255)
    with torch.no_grad():
        # adversarial: the target no longer gives the true label of the seed
        assert bool((target[0](fset.images).argmax(1) != seeds.labels[fset.sources]).all())


def test_cae_conferrability_reaches_tau(sets, pools):
    from verifier_client.fingerprints.cae import conferrability

    fset = sets["cae"]
    with torch.no_grad():
        mean_s = torch.stack([torch.softmax(m(fset.images), 1) for m in pools.surrogates]).mean(0)
        mean_r = torch.stack([torch.softmax(m(fset.images), 1) for m in pools.references]).mean(0)
    score = conferrability(mean_s, mean_r).gather(1, fset.labels[:, None]).squeeze(1)
    assert bool((score >= FAST["cae"]["tau"]).all())  # score="label": c of the set's label


def test_rce_lt_low_band_is_removed(sets):
    fset = sets["rce-lt"]
    assert fset.metadata["parameters"]["k"] == 7  # H // 4 for 28 x 28
    ratio = low_band_energy_ratio(fset.images, 7)
    assert float(ratio.max()) < 1e-3  # only 8-bit rounding and clipping put energy back
    vce_ratio = low_band_energy_ratio(torch.rand(N, 1, 28, 28), 7)
    assert float(vce_ratio.min()) > 1e-2  # noise, unfiltered, has plenty there


def test_dct_is_orthonormal_and_exact():
    d = dct_matrix(28, dtype=torch.float64)
    assert torch.allclose(d @ d.T, torch.eye(28, dtype=torch.float64), atol=1e-12)
    x = torch.rand(2, 3, 28, 32, dtype=torch.float64)
    assert torch.allclose(idct2(dct2(x)), x, atol=1e-12)
    filtered = remove_low_band(x, 5, center=0.5)
    assert float(dct2(filtered - 0.5)[..., :5, :5].abs().max()) < 1e-12
    assert torch.allclose(dct2(filtered - 0.5)[..., 5:, :], dct2(x - 0.5)[..., 5:, :])


class RecordingVCE(VCE):
    """VCE that remembers its starting points, pre-assigned labels and final candidates."""

    def candidates(self, run, count):
        self.rounds = getattr(self, "rounds", [])
        self._record: dict[str, torch.Tensor] = {}
        out = super().candidates(run, count)
        self.rounds.append({**self._record, "y": out.labels, "final": out.images})
        return out

    def _start(self, run, count):
        x = super()._start(run, count)
        self._record["start"] = x.clone()
        return x


def test_vce_starts_from_noise_and_reaches_its_preassigned_labels(target):
    model, config = target
    method = RecordingVCE(**FAST["vce"])
    fset = method.generate(model, N, generator=torch.Generator().manual_seed(SEED),
                           input_shape=config.input_shape)
    start = torch.cat([r["start"] for r in method.rounds])
    assert start.min() >= 0 and start.max() <= 1
    assert abs(float(start.mean()) - 0.5) < 0.02 and abs(float(start.std()) - 0.2887) < 0.02
    final = torch.cat([r["final"] for r in method.rounds])
    assigned = torch.cat([r["y"] for r in method.rounds])
    assert bool((fset.sources == -1).all())
    for image, label in zip(fset.images, fset.labels, strict=True):
        row = (final == image).flatten(1).all(1).nonzero().flatten()
        assert len(row) >= 1 and int(assigned[row[0]]) == int(label)
    with torch.no_grad():
        assert torch.equal(model(fset.images).argmax(1), fset.labels)


def test_rce_perturbs_a_copy_never_the_model(target):
    model, config = target
    before = {k: v.clone() for k, v in model.state_dict().items()}
    create_method("rce-gm", steps=2, q=2, delta=0.01).generate(
        model, 2, generator=torch.Generator().manual_seed(0), input_shape=config.input_shape)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_progress_reports_accepted_and_tried(target):
    model, config = target
    events: list[ProgressEvent] = []
    create_method("vce", steps=3).generate(model, 3, generator=torch.Generator().manual_seed(0),
                                           input_shape=config.input_shape, progress=events.append)
    assert events[-1].accepted == 3 and events[-1].tried >= 3 and events[-1].n == 3
    assert any(e.step == 3 and e.steps == 3 for e in events)


# ------------------------------------------------------------------------- bad input


def test_unknown_method_and_parameter():
    with pytest.raises(UserError, match="unknown fingerprinting method 'nope'; choose one of"):
        create_method("nope")
    with pytest.raises(UserError, match="unknown parameter"):
        create_method("vce", eps=0.1)


@pytest.mark.parametrize(("method", "params", "message"), [
    ("cae", {"eps": 0.001}, r"eps must be in \[1/255, 1\]"),
    ("cae", {"eps": 1.5}, r"eps must be in \[1/255, 1\]"),
    ("cae", {"tau": 1.5}, r"tau must be in \[0, 1\]"),
    ("ipguard", {"k": 0}, "k must be a finite number > 0"),
    ("ipguard", {"k": -1}, "k must be a finite number > 0"),
    ("rce-lt", {"k": 0}, "k must be >= 1"),
    ("rce", {"delta": -0.1}, r"delta must be in \[0, 1\)"),
    ("rce", {"noise": "gaussian"}, "noise must be one of absolute, relative"),
    ("rce-gm", {"q": 0}, "q must be >= 1"),
    ("vce", {"alpha": 0}, "need 0 < alpha <= 1"),
])
def test_out_of_range_parameters(method, params, message):
    with pytest.raises(UserError, match=message):
        create_method(method, **params)


def test_generate_rejects_bad_calls(target, seeds, pools):
    model, _ = target
    gen = torch.Generator().manual_seed(0)
    for n in (0, -3):
        with pytest.raises(UserError, match="n must be an integer >= 1"):
            create_method("vce").generate(model, n, generator=gen, input_shape=[1, 28, 28])
    with pytest.raises(UserError, match=r"k must be in \[1, 27\] for 28 x 28 images, got 28"):
        create_method("rce-lt", k=28).generate(model, 2, generator=gen, input_shape=[1, 28, 28])
    with pytest.raises(UserError, match="ipguard starts from clean images"):
        create_method("ipguard").generate(model, 2, generator=gen, input_shape=[1, 28, 28])
    with pytest.raises(UserError, match="cae needs model pools"):
        create_method("cae").generate(model, 2, generator=gen, seeds=seeds)
    with pytest.raises(UserError, match="vce does not use model pools"):
        create_method("vce").generate(model, 2, generator=gen, pools=pools, input_shape=[1, 28, 28])
    with pytest.raises(UserError, match=r"seed images have shape \[1, 28, 28\], the target takes"):
        create_method("ipguard").generate(model, 2, generator=gen, seeds=seeds,
                                          input_shape=[3, 32, 32])


def test_round_cap_gives_a_clear_error(target, seeds, pools):
    model, _ = target
    method = create_method("cae", eps=0.01, tau=1.0, steps=2, max_rounds=2, max_batch=8)
    with pytest.raises(GenerationError, match=r"cae: only 0 of 4 samples accepted after 2 rounds "
                                              r"\(\d+ candidates tried\); raise max_rounds"):
        method.generate(model, 4, generator=torch.Generator().manual_seed(0), seeds=seeds,
                        pools=pools)


EOT = "csrp(sigma=1.1..1.3, p=1..4)"


def test_eot_generation_survives_the_family(tiny_repo, fmnist_test) -> None:
    """Every accepted EOT sample keeps its label under most draws of the family (the check),
    and the set records the family and K."""
    from models.repository import load_model
    from models.transforms.family import parse_family
    from verifier_client.fingerprints import create_method

    model, config = load_model(tiny_repo / "target")
    method = create_method("vce", steps=40, eot=EOT, eot_draws=3, eot_accept=0.8,
                           eot_check_draws=16)
    fset = method.generate(model, 6, generator=torch.Generator().manual_seed(1),
                           input_shape=config.input_shape)
    assert fset.metadata["eot"]["family"] == EOT and fset.metadata["eot"]["draws"] == 3
    assert fset.metadata["parameters"]["eot_draws"] == 3
    views = parse_family(EOT).views(fset.images, 50, torch.Generator().manual_seed(99))
    with torch.no_grad():
        hits = model(views).argmax(1).view(50, -1) == fset.labels
    assert hits.float().mean() > 0.6  # fresh draws, not the ones the check used


def test_eot_bad_input_is_one_line_and_writes_nothing(tiny_repo, tmp_path, capsys) -> None:
    from verifier_client.cli import main

    out = tmp_path / "set.safetensors"
    base = ["generate", "--method", "vce", "--target", str(tiny_repo / "target"), "--n", "2",
            "--out", str(out)]
    for extra, message in ((["--eot", "csrp(sigma=1.3..1.1, p=2)"], "is empty"),
                           (["--eot", "wobble(x=1..2)"], "the transform must be one of"),
                           (["--eot", EOT, "--eot-draws", "0"], "eot_draws and eot_check_draws "
                                                               "must be >= 1"),
                           (["--eot-draws", "4"], "need --eot FAMILY")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_generation_gives_the_model_back_in_its_training_mode(tiny_repo: Path) -> None:
    model, _ = load_model(tiny_repo / "target")
    model.train()
    create_method("vce", steps=2).generate(model, 2, generator=torch.Generator().manual_seed(0),
                                           input_shape=[1, 28, 28])
    assert all(module.training for module in model.modules())
    model.eval()
    create_method("vce", steps=2).generate(model, 2, generator=torch.Generator().manual_seed(0),
                                           input_shape=[1, 28, 28])
    assert not any(module.training for module in model.modules())
