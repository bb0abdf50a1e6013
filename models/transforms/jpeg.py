"""JPEG re-encoding at a random quality: a removal attack of the watermark-robustness literature.

Lukas et al., "SoK: How robust is image classification deep neural network watermarking?"
(IEEE S&P 2022) list JPEG compression among the input-preprocessing attacks a pirate can put
in front of a stolen model (their toolbox, dnn-security/Watermark-Robustness-Toolbox,
``JPEGCompression``);
Dziugaite et al. (arXiv 1608.00853) and Guo et al. (ICLR 2018) use it against adversarial
examples, which many fingerprints are.

Per image, a quality is drawn uniformly from the integers ``[quality_min, quality_max]``
(defaults 50 and 90), then the image is quantised to 8 bits, encoded and decoded with Pillow's
libjpeg on the CPU (baseline JPEG, Pillow's default 4:2:0 subsampling for RGB; torchvision's
``encode_jpeg`` is deprecated since 0.29). Grayscale and RGB images only (1 or 3 channels).
Not differentiable in the pixels (quantisation and the codec).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from models.transforms.base import Option, RandomTransform, check_batch_shape, check_images
from models.transforms.registry import register_transform

__all__ = ["JPEG"]


def _check_quality(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ValueError(f"{name} must be an integer in 1..100; got {value!r}")
    return value


@register_transform("jpeg")
class JPEG(RandomTransform):
    """JPEG re-encoding, quality uniform in ``[quality_min, quality_max]`` per image (Lukas et
    al., S&P 2022). Defaults 50 and 90."""

    options = (Option("quality_min", int, "lowest JPEG quality, an integer in 1..100", 50),
               Option("quality_max", int, "highest JPEG quality, in quality_min..100", 90))

    def __init__(self, quality_min: int = 50, quality_max: int = 90) -> None:
        super().__init__()
        self.quality_min = _check_quality(quality_min, "quality_min")
        self.quality_max = _check_quality(quality_max, "quality_max")
        if quality_max < quality_min:
            raise ValueError(f"quality_max must be >= quality_min ({quality_min}); "
                             f"got {quality_max}")

    @classmethod
    def strength_spec(cls, strength: float) -> dict[str, object]:
        """Qualities ``[q - 20, q]`` with ``q = 100 - 95 * strength`` (floored at 1)."""
        high = max(1, round(100 - 95 * float(strength)))
        return {"name": "jpeg", "quality_min": max(1, high - 20), "quality_max": high}

    def check_fits(self, input_shape: Sequence[int]) -> None:
        if int(input_shape[0]) not in (1, 3):
            raise ValueError(f"jpeg needs 1 or 3 channels; the model takes {input_shape[0]}")

    def generate_params(self, batch_shape: Sequence[int],
                        generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``{"quality"}``: int64 ``[N]`` on the CPU."""
        n = check_batch_shape(batch_shape)[0]
        return {"quality": torch.randint(self.quality_min, self.quality_max + 1, (n,),
                                         generator=generator)}

    def apply_params(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Encode and decode each image at its quality."""
        images = check_images(images)
        quality = params.get("quality") if isinstance(params, dict) else None
        if not isinstance(quality, Tensor) or tuple(quality.shape) != (images.shape[0],):
            raise ValueError("params must be {'quality': int tensor [N]} (generate_params)")
        if quality.numel() and not bool(((quality >= self.quality_min)
                                         & (quality <= self.quality_max)).all()):
            raise ValueError(f"params['quality'] must lie in [{self.quality_min}, "
                             f"{self.quality_max}]")
        self.check_fits(images.shape[1:])
        pixels = (images.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
        pixels = pixels.permute(0, 2, 3, 1).numpy()  # [N, H, W, C] for Pillow
        out = np.empty_like(pixels)
        mode = "L" if pixels.shape[3] == 1 else "RGB"
        for i, q in enumerate(quality.tolist()):
            buffer = io.BytesIO()
            Image.fromarray(pixels[i].squeeze(2) if mode == "L" else pixels[i], mode).save(
                buffer, "JPEG", quality=int(q))
            decoded = np.asarray(Image.open(buffer).convert(mode))
            out[i] = decoded[..., None] if mode == "L" else decoded
        return (torch.from_numpy(out).permute(0, 3, 1, 2)
                .to(device=images.device, dtype=images.dtype) / 255)
