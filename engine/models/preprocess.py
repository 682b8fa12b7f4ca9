"""Decoded RGB photo -> the image tower's input tensor (no torch).

Reproduces open_clip's evaluation transform on PIL images exactly, because a
model is only as good as the match between the pixels it was trained on and
the pixels it is given:

``shortest``
    torchvision ``Resize(size)`` on the shorter side (the longer side is
    ``int(size * long / short)``, truncated, as torchvision computes it), then
    ``CenterCrop`` with offsets ``int(round((h - crop) / 2))``. A non-square
    target uses open_clip's ``ResizeKeepRatio`` sizes (``round``, not ``int``)
    and, like open_clip, bicubic whatever the configured interpolation.
``squash``
    ``Resize((h, w))`` straight to the target, ignoring the aspect ratio.

then ``ToTensor`` (/255 in float32) and ``Normalize`` ((x - mean) / std in
float32). Resizing is Pillow's (antialiased, as torchvision's PIL backend);
callers are expected to have decoded with JPEG draft mode already, so a camera
photo arrives at a few times the target size and this resize stays cheap.
NaFlex models are preprocessed elsewhere (variable patch grids).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..errors import ModelError
from .registry import Preprocess

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def resized_size(width: int, height: int, p: Preprocess) -> tuple[int, int]:
    """(width, height) the photo is resized to before the centre crop."""
    th, tw = p.size
    if p.resize_mode == "squash":
        return tw, th
    if th == tw:
        # torchvision's _compute_resized_output_size for an int size.
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = th, int(th * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)
    # open_clip's ResizeKeepRatio (longest=0): scale by the smaller of the two ratios.
    ratio = min(height / th, width / tw)
    return round(width / ratio), round(height / ratio)


def _center_crop(img: Image.Image, th: int, tw: int) -> Image.Image:
    w, h = img.size
    if tw > w or th > h:  # torchvision pads with zeros first (can happen for tiny photos)
        left, top = (tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0
        padded = Image.new(img.mode, (max(w, tw), max(h, th)), 0)
        padded.paste(img, (left, top))
        img = padded
        w, h = img.size
        if (w, h) == (tw, th):
            return img
    top = int(round((h - th) / 2.0))
    left = int(round((w - tw) / 2.0))
    return img.crop((left, top, left + tw, top + th))


def resize_crop(image: Image.Image, p: Preprocess) -> Image.Image:
    """The resized (and for ``shortest`` centre-cropped) RGB image, still a PIL image."""
    if p.resize_mode not in ("shortest", "squash"):
        raise ModelError(f"resize mode {p.resize_mode!r} is not handled by engine.models.preprocess")
    if image.mode != "RGB":
        image = image.convert("RGB")
    size = resized_size(image.width, image.height, p)
    resample = _RESAMPLE[p.interpolation]
    if p.resize_mode == "shortest" and p.size[0] != p.size[1]:
        # open_clip builds ResizeKeepRatio without its interpolation argument: always bicubic.
        resample = Image.Resampling.BICUBIC
    if size != image.size:  # torchvision skips the resize when the size already matches
        image = image.resize(size, resample)
    if p.resize_mode == "shortest":
        image = _center_crop(image, *p.size)
    return image


@functools.lru_cache(maxsize=16)
def _lut(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: every 8-bit value's normalised value, per channel.

    Computed with the very float32 operations ``normalize`` describes, so looking a
    pixel up gives the same bits as computing it, at a fraction of the cost (one
    gather per value instead of a divide, subtract and divide over float arrays).
    """
    v = np.arange(256, dtype=np.float32) / np.float32(255.0)
    lut = v[None, :] - np.asarray(mean, dtype=np.float32)[:, None]
    lut /= np.asarray(std, dtype=np.float32)[:, None]
    lut.setflags(write=False)
    return lut


def normalize(pixels: np.ndarray, p: Preprocess) -> np.ndarray:
    """uint8 [H, W, 3] -> float32 [3, H, W], (x / 255 - mean) / std, all in float32."""
    lut = _lut(tuple(p.mean), tuple(p.std))
    planes = np.ascontiguousarray(pixels.transpose(2, 0, 1))
    out = np.empty(planes.shape, dtype=np.float32)
    for c in range(3):
        lut[c].take(planes[c], out=out[c])
    return out


def preprocess(image: Image.Image, p: Preprocess) -> np.ndarray:
    """An upright RGB PIL image -> float32 [3, H, W] network input for ``p``."""
    return normalize(np.asarray(resize_crop(image, p)), p)


def preprocess_batch(images: Sequence[Image.Image], p: Preprocess) -> np.ndarray:
    """Several images -> float32 [N, 3, H, W], written into one preallocated array."""
    h, w = p.size
    out = np.empty((len(images), 3, h, w), dtype=np.float32)
    for i, img in enumerate(images):
        out[i] = preprocess(img, p)
    return out
