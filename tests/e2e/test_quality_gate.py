"""A fast slice of `photosift bench quality`, through files on disk, the indexer and search.

The gate must pass on the real pipeline and must fail when a classic pipeline
bug is injected: swapped colour channels, a missing EXIF transpose, a wrong
normalisation. The bug tests prove the gate can fail.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

import engine.models.preprocess
import engine.photos.decode
from engine.bench.quality import WorldSpec, evaluate_library, write_world
from engine.library import DEMO_MODEL, Library
from engine.settings import Settings

WS = WorldSpec(n_test=160, n_comp=40, n_rotated=60, seed=3)
# Thresholds for this small gallery (160 photos); the full benchmark reports the real numbers.
# The demo model gets every attribute query right here, and is robust enough that a wrong
# normalisation still finds colours and shapes (p@10 1.0, 0.98): caption recall@1, which
# needs every detail of a scene, is what such a bug costs. Measured on this gallery: R@1
# 0.988 real, 0.938 wrong normalisation, 0.906 no EXIF transpose, 0.45 swapped channels;
# the threshold sits halfway between the real pipeline and the closest bug.
MIN_KIND_P10 = {"colour": 0.9, "shape": 0.9, "count": 0.9, "position": 0.9}
MIN_CAPTION_R1 = 0.96  # over the whole gallery
MIN_EXIF_OVERLAP = 0.9


def gate(res: dict) -> list[str]:
    """What is wrong with these results; empty when search quality is as expected."""
    bad = [
        f"{k} p@10 {res['attributes'][k]['mean_p_at_10']} < {v}"
        for k, v in MIN_KIND_P10.items()
        if res["attributes"][k]["mean_p_at_10"] < v
    ]
    r1 = res["caption_recall"][f"gallery_{WS.n_test}"]["R@1"]
    if r1 < MIN_CAPTION_R1:
        bad.append(f"caption R@1 {r1} < {MIN_CAPTION_R1}")
    if res["exif_top10_overlap"]["mean"] < MIN_EXIF_OVERLAP:
        bad.append(f"EXIF overlap {res['exif_top10_overlap']['mean']} < {MIN_EXIF_OVERLAP}")
    return bad


@pytest.fixture(scope="module")
def world_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality") / "world"
    return root, write_world(root, WS)


def index_and_evaluate(tmp_path, world_files) -> dict:
    root, built = world_files
    lib = Library(Settings(data_dir=tmp_path / "data", batch_size=32), model_key=DEMO_MODEL)
    try:
        lib.add_folder(root)
        rep = lib.scan()
        assert rep.failed == 0, rep.failures
        return evaluate_library(lib, root, built, WS)
    finally:
        lib.close()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)


def test_quality_gate_passes_on_the_real_pipeline(tmp_path, world_files):
    res = index_and_evaluate(tmp_path, world_files)
    assert gate(res) == [], res["attributes"]


def _swap_channels(monkeypatch):
    real = engine.models.preprocess.preprocess
    monkeypatch.setattr(
        engine.models.preprocess, "preprocess", lambda im, p: np.ascontiguousarray(real(im, p)[::-1])
    )


def _no_exif_transpose(monkeypatch):
    monkeypatch.setattr(engine.photos.decode, "UPRIGHT", {})


def _wrong_normalisation(monkeypatch):
    real = engine.models.preprocess.preprocess
    monkeypatch.setattr(
        engine.models.preprocess, "preprocess",
        lambda im, p: real(im, dataclasses.replace(p, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))),
    )  # fmt: skip


@pytest.mark.parametrize("inject", [_swap_channels, _no_exif_transpose, _wrong_normalisation],
                         ids=["swapped-channels", "missing-exif-transpose", "wrong-normalisation"])  # fmt: skip
def test_quality_gate_catches_pipeline_bugs(tmp_path, world_files, monkeypatch, inject):
    inject(monkeypatch)
    res = index_and_evaluate(tmp_path, world_files)
    assert gate(res), (
        f"the gate missed an injected bug: {res['attributes']} {res['caption_recall']} "
        f"{res['exif_top10_overlap']}"
    )
