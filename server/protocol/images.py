"""PNG/JPEG files -> UINT8 [H, W, C] arrays for the upload route. The server never resizes: an
image whose size differs from the model's input is refused (400) with the expected size."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from server.core.errors import BadRequestError, PayloadTooLargeError
from server.protocol.codec import Signature

FORMATS = ("PNG", "JPEG")
_MODES = {1: "L", 3: "RGB"}


#: raw request bodies: media type -> the one format Pillow may read it as
MEDIA_TYPES = {"image/png": ("PNG",), "image/jpeg": ("JPEG",)}


def max_encoded_bytes(signature: Signature) -> int:
    """The most bytes a PNG or JPEG of the model's size can need: its raw pixels stored
    uncompressed in 16-bit RGBA (8 bytes a pixel), plus 64 KiB for headers, a colour profile
    and metadata. A 28x28 file larger than ~70 KiB is padding (ancillary chunks, comment
    markers): refused before Pillow reads it (a 31 MiB padded PNG cost 9-17 s of CPU)."""
    return 8 * signature.height * signature.width + 64 * 1024


def decode_image(data: bytes, signature: Signature, index: int = 0,
                 formats: tuple[str, ...] = FORMATS) -> np.ndarray:
    """One PNG or JPEG file -> uint8 [H, W, C] in the model's channels (grey or RGB)."""
    limit = max_encoded_bytes(signature)
    if len(data) > limit:
        raise PayloadTooLargeError(f"file {index}: {len(data)} bytes, more than an image of "
                                   f"{signature.width}x{signature.height} can need ({limit})")
    mode = _MODES.get(signature.channels)
    if mode is None:
        raise BadRequestError(f"this model takes {signature.channels}-channel images: send them as "
                              "UINT8 tensors to /v2/models/{name}/infer")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=formats) as image:
                if image.size != (signature.width, signature.height):
                    width, height = image.size
                    raise BadRequestError(
                        f"file {index}: image is {width}x{height}; this model takes "
                        f"{signature.width}x{signature.height} (the server does not resize)")
                array = np.asarray(image.convert(mode), dtype=np.uint8)
    except BadRequestError:
        raise
    except Exception:  # Pillow's decoders raise many kinds (AssertionError, IndexError, ...)
        kind = " or ".join(formats)
        raise BadRequestError(f"file {index}: not a decodable {kind} image") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return array


def decode_images(files: list[bytes], signature: Signature,
                  formats: tuple[str, ...] = FORMATS) -> np.ndarray:
    """Several files -> uint8 [N, H, W, C]."""
    return np.stack([decode_image(data, signature, i, formats) for i, data in enumerate(files)])
