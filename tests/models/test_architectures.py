"""Every registered architecture: forward, backward, no NaN, ONNX parity, parameter count."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from models.architectures import Classifier, Normalize, create_model, list_models
from models.errors import UserError
from models.onnx_export import check_parity, export_onnx

SHAPES = [(1, 28), (3, 32)]  # Fashion-MNIST grey 28x28, CIFAR RGB 32x32


def _classifier(arch: str, channels: int, size: int, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(Normalize([0.5] * channels, [0.25] * channels),
                      create_model(arch, 10, channels, size))


def _calibrate_batch_norm(model: nn.Module, images: torch.Tensor) -> None:
    """Set BN running statistics from one batch (as training would), so eval-mode logits have
    a trained model's scale rather than the blow-up of mean 0 / variance 1 defaults."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: exactly this batch's statistics
    with torch.no_grad():
        model.train()(images)
    model.eval()


def test_registry_holds_the_papers_architectures():
    assert {"resnet20", "resnet56", "vgg16", "mobilenet"} <= set(list_models())
    assert list_models("resnet*") == ["resnet20", "resnet56"]


@pytest.mark.parametrize("channels, size", SHAPES, ids=["1x28", "3x32"])
@pytest.mark.parametrize("arch", list_models())
def test_forward_backward(arch, channels, size):
    model = _classifier(arch, channels, size).train()
    images = torch.rand(2, channels, size, size)
    logits = model(images)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([1, 7])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())
    with torch.no_grad():
        assert torch.isfinite(model.eval()(images)).all()


@pytest.mark.parametrize("arch", list_models())
def test_onnx_parity(arch):
    """On the default dataset's shape (the zoo's); the export path does not depend on it and
    each export costs seconds on 2 shared cores."""
    channels, size = 1, 28
    model = _classifier(arch, channels, size)
    _calibrate_batch_norm(model, torch.rand(8, channels, size, size))
    onnx_bytes = export_onnx(model, [channels, size, size])
    parity = check_parity(model, onnx_bytes, torch.rand(5, channels, size, size))  # batch != 2
    assert parity.samples == 5
    assert parity.labels_identical, parity
    assert parity.max_abs_logit_diff < 1e-3, parity


@pytest.mark.parametrize("arch, expected", [("resnet20", 0.27e6), ("resnet56", 0.85e6)])
def test_resnet_parameter_counts_match_the_paper(arch, expected):
    count = sum(p.numel() for p in create_model(arch, 10, 3, 32).parameters())
    assert abs(count - expected) / expected < 0.03, count


def test_normalisation_is_the_first_layer():
    model = _classifier("tinycnn", 3, 32).eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(images), model.net((images - 0.5) / 0.25))
    assert {"normalize.mean", "normalize.std"} <= set(model.state_dict())


def test_unknown_architecture_lists_the_choices():
    with pytest.raises(UserError) as error:
        create_model("resnet18")
    message = str(error.value)
    assert message.startswith("unknown architecture 'resnet18'")
    assert all(name in message for name in list_models())


@pytest.mark.parametrize("kwargs", [{"num_classes": 1}, {"in_channels": 0}, {"image_size": 4}])
def test_bad_model_shape(kwargs):
    with pytest.raises(UserError, match="bad model shape"):
        create_model("resnet20", **kwargs)
