"""Label-only model extraction over the wire: query a served model with your own images and keep
the labels it answers (Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016; Orekondy et al., "Knockoff Nets", CVPR 2019). This is the pirate's own
customers extracting the pirate's server, the realistic case: the labels come back through the
server's front (CSRP), so a student learns the front's answers, noise included.

The client speaks the Open Inference Protocol (v2) with the binary tensor extension: UINT8
``images [N, H, W, C]`` in, the JSON ``label`` output back. It is deliberately small (the
owner's full client, with retries, a circuit breaker and answer validation for verdicts, is
``verifier_client.oip_client``; this module sits below it and cannot import it). Every answer is
checked: a label count or value that cannot be right is a ``UserError``, never a training label.

Defaults: 64 images per request (the server's default max batch), 30 s per request, 3 attempts
on connection errors and 5xx.
"""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import torch

from models.errors import UserError

BATCH, TIMEOUT_S, ATTEMPTS = 64, 30.0, 3


def _request(images: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """A binary OIP request for uint8 ``[N, H, W, C]`` images, asking for JSON labels."""
    header = json.dumps({"inputs": [{"name": "images", "datatype": "UINT8",
                                     "shape": list(images.shape),
                                     "parameters": {"binary_data_size": images.nbytes}}],
                         "outputs": [{"name": "label"}]}).encode()
    return header + images.tobytes(), {"Content-Type": "application/octet-stream",
                                       "Inference-Header-Content-Length": str(len(header))}


def _labels(response: httpx.Response, count: int, num_classes: int) -> np.ndarray:
    """The labels of one answer, or ``UserError`` saying what is wrong with it."""
    try:
        body = response.json()
        (output,) = [o for o in body["outputs"] if o.get("name") == "label"]
        labels = np.asarray(output["data"], dtype=np.int64)
    except (ValueError, KeyError, TypeError, OverflowError) as error:
        raise UserError(f"the server's answer is not an OIP label response ({error})") from None
    if labels.shape != (count,):
        raise UserError(f"the server answered {labels.size} labels for {count} images")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise UserError(f"the server answered a label outside 0..{num_classes - 1}")
    return labels


def served_labels(url: str, model: str, images: torch.Tensor, num_classes: int,
                  batch: int = BATCH) -> torch.Tensor:
    """The labels ``model`` at ``url`` answers for uint8 ``images [N, C, H, W]`` (int64 [N])."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError("images must be uint8 [N, C, H, W]")
    nhwc = images.permute(0, 2, 3, 1).contiguous().numpy()
    target = f"{url.rstrip('/')}/v2/models/{model}/infer"
    answers = []
    with httpx.Client(timeout=TIMEOUT_S) as client:
        for start in range(0, len(nhwc), batch):
            part = nhwc[start:start + batch]
            body, headers = _request(part)
            for attempt in range(ATTEMPTS):
                try:
                    response = client.post(target, content=body, headers=headers)
                except httpx.TransportError as error:
                    failure = f"{type(error).__name__}: {error}"
                else:
                    if response.status_code == 200:
                        answers.append(_labels(response, len(part), num_classes))
                        break
                    failure = f"HTTP {response.status_code}: {response.text[:200]}"
                    if response.status_code < 500:
                        raise UserError(f"{model} at {url}: {failure}")
                time.sleep(0.2 * 2 ** attempt)
            else:
                raise UserError(f"{model} at {url}: no answer after {ATTEMPTS} attempts "
                                f"({failure})")
    return torch.from_numpy(np.concatenate(answers))
