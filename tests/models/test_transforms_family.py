"""Transform families for EOT (``models.transforms.family``): parsing, bad specs, draws, views."""

from __future__ import annotations

import pytest
import torch

from models.transforms.family import parse_family


def test_parse_ranges_mixtures_and_defaults() -> None:
    family = parse_family("csrp(sigma=1.1..1.3, p=2..8) + rdg(distort_limit=0.1..0.4)")
    assert [m.name for m in family.members] == ["csrp", "rdg"]
    assert family.members[0].ranges == {"sigma": (1.1, 1.3), "p": (2, 8)}
    assert family.members[1].fixed == {} and family.spec_text().startswith("csrp(")
    fixed = parse_family("csrp(sigma=1.23, p=6)")
    assert fixed.members[0].fixed == {"sigma": 1.23, "p": 6} and not fixed.members[0].ranges
    family.check([1, 28, 28])


def test_draws_stay_in_range_and_replay() -> None:
    family = parse_family("csrp(sigma=1.1..1.3, p=2..8)")
    generator = torch.Generator().manual_seed(0)
    settings = [family.members[0].draw(generator) for _ in range(300)]
    assert {s["p"] for s in settings} == set(range(2, 9))  # both ends included, integers
    assert all(1.1 <= s["sigma"] <= 1.3 for s in settings)
    images = torch.rand(5, 1, 28, 28, requires_grad=True)
    a = family.views(images, 3, torch.Generator().manual_seed(4))
    b = family.views(images, 3, torch.Generator().manual_seed(4))
    assert a.shape == (15, 1, 28, 28) and torch.equal(a, b)
    a.sum().backward()
    assert images.grad is not None  # differentiable in the pixels


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty transform family"),
    ("csrp(sigma=1.1..1.3", "not of the form"),
    ("blur(radius=1..2)", r"the transform must be one of bitdepth, csrp, .*rdg"),
    ("csrp(sigma=1.3..1.1, p=2)", r"the range sigma=1.3..1.1 is empty"),
    ("csrp(sigma=1.1..1.3, p=2.5..3)", "p takes integers"),
    ("csrp(sigma=1.1..1.3)", "csrp needs p"),
    ("csrp(sigma=1.1..1.3, p=2, pad=1)", "csrp has no option 'pad'"),
    ("rdg(distort_limit=0.5..1.5)", "distort_limit must be a number in"),
    ("csrp(sigma=0.9..1.2, p=2)", r"sigma must be a number in \(1, 4\]"),
])
def test_bad_family_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        family = parse_family(spec)
        family.check([1, 28, 28])


def test_a_range_that_cannot_take_the_image_is_refused() -> None:
    family = parse_family("csrp(sigma=1.1..1.2, p=1..40)")
    with pytest.raises(ValueError, match="makes the image vanish"):
        family.check([1, 28, 28])


def test_forward_replays_given_params_and_refuses_params_with_a_generator():
    from models.transforms import CSRP

    transform = CSRP(1.23, 6)
    images = torch.rand(4, 1, 28, 28)
    params = transform.generate_params(images.shape, torch.Generator().manual_seed(1))
    drawn = transform(images, generator=torch.Generator().manual_seed(1))
    assert torch.equal(transform(images, params=params), drawn)
    with pytest.raises(ValueError, match="not both"):
        transform(images, generator=torch.Generator(), params=params)


def test_a_transform_without_its_methods_cannot_be_built():
    from models.transforms import RandomTransform

    class Empty(RandomTransform):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Empty()
