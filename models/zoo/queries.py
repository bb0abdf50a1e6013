"""What a label-only extractor sends: the query sets of the zoo's students (``QUERY_SOURCES``).

* ``train``: a seeded subset of the training images (Fashion-MNIST is public, so a pirate's
  customer may well hold the owner's training distribution, even its very images);
* ``test``: the half of the test split the owner never draws fingerprints from
  (``PIRATE_TEST_ROWS``);
* ``augmented``: pairs of a small seed set (5,000 training images) mixed with a uniform weight,
  ``l x_i + (1 - l) x_j`` (mixup, Zhang et al., ICLR 2018), the cheap way to stretch a few
  in-distribution images to a large budget;
* ``ood``: natural photographs that are not clothes (scikit-image's sample images), random crops
  at random scales, resized to the model's input size: Knockoff Nets' out-of-distribution
  queries (Orekondy, Schiele, Fritz, CVPR 2019);
* ``api``: training images, labelled by the pirate's server over HTTP (``models.extraction``).

Every set is uint8 ``[N, C, H, W]`` and a pure function of its seed.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from models.datasets import ImageData
from models.errors import UserError

#: scikit-image's bundled photographs (no download): scenes, objects, textures, micrographs.
PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "rocket", "moon", "page", "text", "horse",
          "coins", "clock", "grass", "gravel", "brick", "cell", "immunohistochemistry",
          "hubble_deep_field", "retina", "colorwheel")
AUGMENT_SEED_IMAGES = 5000


def subset(data: ImageData, budget: int, seed: int) -> ImageData:
    """``budget`` seeded samples of ``data`` (all of it when the budget covers it)."""
    return data if budget >= len(data) else data.subset(budget / len(data), seed)


def mixed_pairs(train: ImageData, budget: int, seed: int) -> torch.Tensor:
    """``budget`` mixtures of two images of a seeded 5,000-image seed set, uint8."""
    seeds = subset(train, AUGMENT_SEED_IMAGES, seed).images.float()
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(0, len(seeds), (budget,), generator=generator)
    second = torch.randint(0, len(seeds), (budget,), generator=generator)
    weight = torch.rand(budget, 1, 1, 1, generator=generator)
    mixed = weight * seeds[first] + (1 - weight) * seeds[second]
    return mixed.round().clamp(0, 255).to(torch.uint8)


def _photos(channels: int) -> list[torch.Tensor]:
    try:
        import skimage.data
        from skimage.color import gray2rgb, rgb2gray, rgba2rgb
    except ImportError:
        raise UserError("out-of-distribution queries need scikit-image: pip install "
                        "'.[explain]'") from None
    photos = []
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        if image.ndim == 3 and image.shape[2] == 4:
            image = rgba2rgb(image)
        if channels == 1:
            image = rgb2gray(image) if image.ndim == 3 else image / (255.0 if image.max() > 1
                                                                     else 1.0)
            array = torch.as_tensor(image, dtype=torch.float32)[None]
        else:
            image = gray2rgb(image) if image.ndim == 2 else image
            array = torch.as_tensor(image, dtype=torch.float32).permute(2, 0, 1)
            array = array / 255.0 if array.max() > 1 else array
        photos.append(array.clamp(0, 1))
    return photos


def natural_crops(budget: int, shape: list[int], seed: int) -> torch.Tensor:
    """``budget`` random square crops (side 1/8 to 1/2 of the photo's shorter side), each
    flipped at random and resized (antialiased) to ``shape`` ``[C, H, W]``, uint8."""
    channels, height, width = shape
    photos = _photos(channels)
    generator = torch.Generator().manual_seed(seed)
    out = torch.empty((budget, channels, height, width), dtype=torch.uint8)
    which = torch.randint(0, len(photos), (budget,), generator=generator)
    for i in range(budget):
        photo = photos[int(which[i])]
        short = min(photo.shape[1:])
        side = int(short * (0.125 + 0.375 * float(torch.rand((), generator=generator))))
        top = int(torch.randint(0, photo.shape[1] - side + 1, (), generator=generator))
        left = int(torch.randint(0, photo.shape[2] - side + 1, (), generator=generator))
        crop = photo[:, top:top + side, left:left + side]
        if float(torch.rand((), generator=generator)) < 0.5:
            crop = crop.flip(2)
        resized = F.interpolate(crop[None], size=(height, width), mode="bilinear",
                                antialias=True, align_corners=False)[0]
        out[i] = (resized.clamp(0, 1) * 255).round().to(torch.uint8)
    return out


def as_queries(like: ImageData, images: torch.Tensor, note: str) -> ImageData:
    """Query images as an ``ImageData`` (labels are placeholders until the target answers)."""
    return ImageData(like.info, "queries", images, torch.zeros(len(images), dtype=torch.int64),
                     source=note)
