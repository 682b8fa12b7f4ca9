"""engine.models.preprocess.normalize looks values up in a table: it must give the arithmetic's bits."""

from __future__ import annotations

import numpy as np
import pytest

from engine.models.preprocess import normalize
from engine.models.registry import Preprocess


def _arithmetic(pixels: np.ndarray, mean, std) -> np.ndarray:
    x = pixels.astype(np.float32) / np.float32(255.0)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return x.transpose(2, 0, 1)


@pytest.mark.parametrize(
    "mean,std",
    [
        ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),  # OpenAI
        ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # SigLIP
        ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # MobileCLIP
    ],
)
def test_lookup_equals_arithmetic_bit_for_bit(mean, std):
    p = Preprocess(
        size=(16, 48), mean=mean, std=std, interpolation="bicubic", resize_mode="shortest"
    )
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 48, 3), dtype=np.uint8)
    pixels[0, :, :] = np.arange(48)[:, None] * 5 + np.arange(3)  # extremes and every channel
    pixels[1, :16, :] = np.arange(240, 256)[:, None]
    got = normalize(pixels, p)
    want = _arithmetic(pixels, mean, std)
    assert got.dtype == np.float32 and got.shape == (3, 16, 48) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


def test_non_contiguous_input():
    p = Preprocess(size=(8, 8), mean=(0.1, 0.2, 0.3), std=(0.3, 0.2, 0.1),
                   interpolation="bilinear", resize_mode="squash")  # fmt: skip
    big = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    view = big[::2, ::2]
    np.testing.assert_array_equal(
        normalize(view, p), _arithmetic(np.ascontiguousarray(view), p.mean, p.std)
    )
