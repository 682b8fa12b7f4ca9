"""engine.models.preprocess (PIL + numpy) against open_clip's eval transforms, on real photos.

The engine and open_clip resize with the same Pillow call, so the expected
difference is zero; the tolerance (1e-5 after normalisation, about 1/400 of one
8-bit grey level) only allows for float32 rounding in a different order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from engine.errors import ModelError
from engine.models.preprocess import preprocess, preprocess_batch, resized_size
from engine.models.registry import Preprocess

open_clip = pytest.importorskip("open_clip", reason="open_clip is the reference transform")
from open_clip.transform import image_transform  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "photos"
TOL = 1e-5
MODELS = [
    ("ViT-B-32-256", "datacomp_s34b_b86k"),  # shortest side + crop, bicubic, OpenAI mean/std
    ("MobileCLIP2-S0", "dfndr2b"),  # shortest side + crop, bilinear, mean 0 std 1
    ("ViT-B-16-SigLIP2-256", "webli"),  # squash, bicubic, mean/std 0.5
]


def _pair(name: str, tag: str, size=None):
    """(open_clip's eval transform, the engine's Preprocess) from open_clip's own tables."""
    pc = open_clip.get_pretrained_cfg(name, tag)
    size = size or open_clip.get_model_config(name)["vision_cfg"]["image_size"]
    hw = size if isinstance(size, tuple) else (size, size)
    ref = image_transform(
        size,
        False,
        mean=pc["mean"],
        std=pc["std"],
        resize_mode=pc["resize_mode"],
        interpolation=pc["interpolation"],
    )
    p = Preprocess(
        size=hw,
        mean=tuple(pc["mean"]),
        std=tuple(pc["std"]),
        interpolation=pc["interpolation"],
        resize_mode=pc["resize_mode"],
    )
    return ref, p


def _photos(every: int = 1) -> list[Path]:
    if not PHOTOS.is_dir():
        pytest.skip(
            f"test photos {PHOTOS} are absent (they live beside the project in ../shared/data)"
        )
    files = sorted(
        f
        for f in PHOTOS.rglob("*")
        if f.suffix.lower() in {".jpg", ".jpeg", ".webp", ".heic", ".avif", ".mpo"}
    )
    return files[::every]


def _open(path: Path, draft: bool) -> Image.Image | None:
    try:
        from pillow_heif import register_heif_opener

        register_heif_opener()
    except ImportError:
        pass
    try:
        im = Image.open(path)
        if draft:  # what the decoder does: JPEG DCT scaling to >= 2x the target
            im.draft("RGB", (512, 512))
        return ImageOps.exif_transpose(im).convert("RGB")
    except Exception:  # a format this Pillow cannot read is the decoder's test, not this one
        return None


def _check(images, name, tag, size=None):
    ref, p = _pair(name, tag, size)
    worst = 0.0
    for label, im in images:
        want = ref(im).numpy()
        got = preprocess(im, p)
        assert got.dtype == np.float32 and got.shape == want.shape == (3, *p.size), label
        diff = float(np.abs(got - want).max())
        assert diff <= TOL, f"{label} {im.size}: max abs diff {diff}"
        worst = max(worst, diff)
    return worst


@pytest.fixture(scope="module")
def draft_photos():
    # Every 8th photo (portrait, landscape, panorama, phone and camera sizes) with draft decoding.
    images = [(f.name, im) for f in _photos(every=8) if (im := _open(f, draft=True)) is not None]
    assert len(images) >= 10
    return images


@pytest.mark.parametrize("name,tag", MODELS)
def test_matches_open_clip_on_photos(draft_photos, name, tag):
    _check(draft_photos, name, tag)


def _synthetic():
    rng = np.random.default_rng(0)
    sizes = [(1, 1), (7, 300), (300, 7), (255, 256), (256, 256), (257, 1000), (1000, 257),
             (511, 384), (333, 777), (640, 480), (1500, 30)]  # fmt: skip
    return [
        (f"{w}x{h}", Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
        for w, h in sizes
    ]


@pytest.mark.parametrize("name,tag", MODELS)
def test_matches_open_clip_on_odd_sizes(name, tag):
    """Rounding of the long side and of the crop offsets, upscaling, padding of tiny images."""
    _check(_synthetic(), name, tag)


@pytest.mark.parametrize("name,tag", MODELS)
def test_matches_open_clip_non_square_target(name, tag):
    _check(_synthetic(), name, tag, size=(224, 320))


def test_torchvision_size_rounding():
    p = Preprocess(size=(256, 256), mean=(0, 0, 0), std=(1, 1, 1))
    # torchvision truncates the long side: int(256 * 1000 / 257) = 996 (round would give 996.1 -> 996)
    assert resized_size(257, 1000, p) == (256, 996)
    assert resized_size(3000, 2000, p) == (384, 256)
    assert resized_size(1001, 3, p) == (85418, 256)
    squash = Preprocess(size=(256, 256), mean=(0, 0, 0), std=(1, 1, 1), resize_mode="squash")
    assert resized_size(3000, 2000, squash) == (256, 256)


def test_batch_and_modes():
    p = Preprocess(size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    imgs = [Image.new("RGB", (50, 40), (255, 0, 0)), Image.new("L", (40, 50), 128)]
    batch = preprocess_batch(imgs, p)
    assert batch.shape == (2, 3, 32, 32) and batch.dtype == np.float32
    assert np.allclose(batch[0, 0], 1.0) and np.allclose(batch[0, 1], -1.0)
    np.testing.assert_array_equal(batch[1], preprocess(imgs[1].convert("RGB"), p))
    with pytest.raises(ModelError):
        preprocess(
            imgs[0], Preprocess(size=(16, 16), mean=(0, 0, 0), std=(1, 1, 1), resize_mode="naflex")
        )


@pytest.mark.slow
@pytest.mark.parametrize("name,tag", MODELS)
def test_matches_open_clip_on_all_photos_full_decode(name, tag):
    images = [(f.name, im) for f in _photos() if (im := _open(f, draft=False)) is not None]
    _check(images, name, tag)
