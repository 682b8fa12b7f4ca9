"""NaFlex preprocessing (engine.models.naflex) against transformers' SigLIP 2 processor and torch.

The reference is transformers' ``Siglip2ImageProcessorPil``: the processor the
published NaFlex checkpoints name in their preprocessor_config.json
(``resample=2``, Pillow bilinear), so a photo must become the very same patch
grid, mask and pixels here as there. Photos are decoded as the indexer decodes
them (JPEG draft mode at the NaFlex decode side).
"""

from __future__ import annotations

import csv
import itertools
import math

import numpy as np
import pytest
from PIL import Image

from engine.models import naflex
from engine.models.registry import Registry
from engine.photos.decode import DecodeError, decode_photo
from tests.conftest import shared

pil_processor = pytest.importorskip(
    "transformers.models.siglip2.image_processing_pil_siglip2",
    reason="transformers' SigLIP 2 image processor is the reference",
)

SPEC = Registry.load().get("siglip2-b-16-naflex")
P = SPEC.preprocess
STRIPS = ("derived/photo_strip_1to5.jpg", "derived/photo_strip_5to1.jpg")
BIG = ("8000x3000", "4096x2048")


def reference(image: Image.Image, max_patches: int):
    proc = pil_processor.Siglip2ImageProcessorPil(
        patch_size=P.patch_size, max_num_patches=max_patches
    )
    return proc(images=[image], return_tensors="np")


def photos_of_many_shapes() -> list:
    """One decodable photo per distinct aspect ratio, plus the panoramas and the 1:5 / 5:1 strips."""
    root = shared("photos")
    odd = shared("odd-files")
    chosen, ratios = [], set()
    with open(root / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            if not row["width"] or row["load_error"] or row["open_error"]:
                continue
            w, h = int(row["width"]), int(row["height"])
            if row["orientation"] in ("5", "6", "7", "8"):
                w, h = h, w
            key = round(w / h, 2)
            size = f"{w}x{h}"
            if key not in ratios or size in BIG:
                ratios.add(key)
                chosen.append(root / row["file"])
    chosen += [odd / s for s in STRIPS]
    return chosen


def test_registry_entries_match_transformers_defaults():
    from transformers import Siglip2VisionConfig

    proc = pil_processor.Siglip2ImageProcessorPil()
    vis = Siglip2VisionConfig()  # the defaults are google/siglip2-base-patch16-naflex
    reg = Registry.load()
    for key in ("siglip2-b-16-naflex", "siglip2-so400m-16-naflex"):
        p = reg.get(key).preprocess
        assert (
            (p.patch_size, p.max_patches)
            == (proc.patch_size, proc.max_num_patches)
            == (vis.patch_size, 256)
        )
        assert p.interpolation == "bilinear" and int(proc.resample) == int(
            Image.Resampling.BILINEAR
        )
        assert list(p.mean) == list(proc.image_mean) and list(p.std) == list(proc.image_std)
        assert p.max_patches in naflex.BUDGETS
    assert reg.get("siglip2-b-16-naflex").embed_dim == vis.hidden_size
    assert reg.get("siglip2-so400m-16-naflex").embed_dim == 1152  # So400m width


def test_grid_size_matches_transformers_for_many_sizes():
    ref = pil_processor.get_image_size_for_max_num_patches
    sides = (1, 7, 16, 17, 100, 258, 480, 968, 1296, 2048, 3000, 4096, 8000, 31423)
    for (h, w), budget in itertools.product(itertools.product(sides, sides), (64, 256, 576, 1024)):
        rows, cols = naflex.grid_size(h, w, 16, budget)
        assert (rows * 16, cols * 16) == ref(h, w, 16, budget), (h, w, budget)
        assert rows * cols <= budget
    # The budget is used: a 4:3 photo fills at least 90 % of it.
    r, c = naflex.grid_size(3000, 4000, 16, 256)
    assert r * c >= 230 and c > r


@pytest.mark.parametrize("budget", [256, 1024])
def test_patches_masks_sizes_identical_to_transformers(budget):
    files = photos_of_many_shapes()
    assert len(files) >= 20
    seen, shapes, sizes = 0, set(), set()
    side = naflex.decode_side(P.patch_size, budget)
    for f in files:
        try:
            photo = decode_photo(f, target=(side, side))
        except DecodeError:
            continue
        img = photo.image
        ref = reference(img, budget)
        got = naflex.preprocess(img, P, budget)
        batch = naflex.collate([got], base=16, length=budget)
        where = f"{f.name} {img.size}"
        assert (got.rows, got.cols) == tuple(ref["spatial_shapes"][0]), where
        assert np.array_equal(batch.mask[0], ref["pixel_attention_mask"][0]), where
        assert batch.patches.shape == ref["pixel_values"].shape, where
        assert np.array_equal(batch.patches, ref["pixel_values"]), where
        # The decoder gave NaFlex enough pixels: its resize never upsamples a big photo.
        if min(photo.width, photo.height) >= side:
            assert got.rows * P.patch_size <= img.height and got.cols * P.patch_size <= img.width, (
                where
            )
        shapes.add((got.rows, got.cols))
        sizes.add(f"{photo.width}x{photo.height}")
        seen += 1
    assert seen >= 20 and len(shapes) >= 8
    assert set(BIG) <= sizes and {"192x968", "1296x258"} <= sizes


def test_wide_and_tall_photos_keep_their_aspect_ratio():
    odd = shared("odd-files")
    for name, wide in ((STRIPS[0], False), (STRIPS[1], True)):
        img = decode_photo(odd / name, target=(256, 256)).image
        got = naflex.preprocess(img, P, 256)
        ratio = (got.cols / got.rows) / (img.width / img.height)
        assert 0.8 < ratio < 1.25, (name, got.rows, got.cols)
        assert (got.cols > got.rows) == wide


def test_position_weights_equal_torch_antialiased_bilinear():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    for base, (rows, cols) in itertools.product(
        (16, 8), [(16, 16), (8, 32), (3, 50), (20, 12), (1, 256), (64, 16)]
    ):
        table = torch.randn(1, 5, base, base, generator=g)
        want = F.interpolate(
            table, size=(rows, cols), mode="bilinear", align_corners=False, antialias=True
        )
        want = want.reshape(5, -1).T.numpy()
        got = naflex.position_weights(rows, cols, base) @ table.reshape(5, -1).T.numpy()
        assert np.abs(got - want).max() < 1e-5, (base, rows, cols)
    # One patch wide: torch's one-call result is constant along the height (see
    # engine.models.naflex); ours equals resizing in two calls, height first.
    table = torch.randn(1, 5, 8, 8, generator=g)
    two_pass = F.interpolate(
        F.interpolate(table, size=(10, 8), mode="bilinear", align_corners=False, antialias=True),
        size=(10, 1), mode="bilinear", align_corners=False, antialias=True,
    ).reshape(5, -1).T.numpy()  # fmt: skip
    got = naflex.position_weights(10, 1, 8) @ table.reshape(5, -1).T.numpy()
    assert np.abs(got - two_pass).max() < 1e-5


def test_collate_pads_with_a_mask_and_zero_position_rows():
    a = naflex.NaflexImage(np.ones((6, 12), np.float32), 2, 3)
    b = naflex.NaflexImage(np.full((4, 12), 2, np.float32), 1, 4)
    batch = naflex.collate([a, b], base=4)
    assert batch.patches.shape == (2, 6, 12) and batch.pos_weights.shape == (2, 6, 16)
    assert batch.mask.tolist() == [[1] * 6, [1] * 4 + [0] * 2]
    assert not batch.patches[1, 4:].any() and not batch.pos_weights[1, 4:].any()
    assert np.allclose(batch.pos_weights[1, :4].sum(1), 1.0)  # each real row interpolates
    assert batch.spatial_shapes.tolist() == [[2, 3], [1, 4]]
    with pytest.raises(ValueError):
        naflex.collate([a], base=4, length=5)


def test_bucket_plan_bounds_padding():
    lengths = [256, 240, 252, 64, 70, 256, 16, 247]
    groups = naflex.plan_buckets(lengths, max_waste=0.1)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        real = sum(lengths[i] for i in g)
        assert max(lengths[i] for i in g) * len(g) - real <= 0.1 * real
    assert len(groups) == 3  # the full ones, the ~64 ones, the tiny one
    assert naflex.plan_buckets([256] * 5) == [[0, 1, 2, 3, 4]]


def test_decode_side_covers_every_grid():
    for budget in naflex.BUDGETS:
        side = naflex.decode_side(16, budget)
        for ratio in (1.0, 4 / 3, 2.0, 8 / 3, 5.0, 30.0):
            rows, cols = naflex.grid_size(1000, round(1000 * ratio), 16, budget)
            assert min(rows, cols) * 16 <= side
        assert side == 16 * math.ceil(math.sqrt(budget))
