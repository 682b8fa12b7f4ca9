"""The int8 image tower by default where the CPU multiplies 8-bit integers natively (VNNI), and
never at the cost of quality: checked against fp32 on the library's first photos, once per
model, and not used (now or later) when they embed differently; fp32 one setting away."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.library import Library
from engine.models import cpu, quantize
from engine.models.quantize import CHECK_FILE, quantize_int8, read_check, use_int8
from engine.models.registry import Registry
from engine.models.runtime import OnnxModel
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY
from tests.helpers import make_photos


@pytest.fixture
def demo_copy(tmp_path):
    """The demo model's folder in a library's models folder, with an int8 image tower."""
    from engine.models.hub import local_model_folder

    src = local_model_folder(Registry.load().get(MODEL_KEY), Settings(data_dir=tmp_path / "none"))
    dst = tmp_path / "data" / "models" / MODEL_KEY
    shutil.copytree(src, dst)
    quantize.quantize_folder(dst)
    return dst


@pytest.mark.parametrize("vnni", [True, False])
def test_the_policy(demo_copy, monkeypatch, vnni):
    monkeypatch.setattr(cpu, "has_vnni", lambda: vnni)
    assert use_int8("auto", demo_copy) is vnni
    assert use_int8("int8", demo_copy) and not use_int8("fp32", demo_copy)
    (demo_copy / CHECK_FILE).write_text(json.dumps({"ok": False}))
    assert not use_int8("auto", demo_copy)  # failed its check: fp32, even with VNNI
    assert use_int8("int8", demo_copy)  # asked for by name: still used
    (demo_copy / "image.int8.onnx").unlink()
    assert not use_int8("int8", demo_copy)


def _pixels(model, n=6):
    h, w = model.input_size
    return np.random.default_rng(0).normal(0, 1, (n, 3, h, w)).astype(np.float32)


def test_a_faithful_int8_tower_passes_its_check_once(demo_copy):
    m = OnnxModel(demo_copy, int8=True, check_int8=True, lazy=True)
    m.encode_images(_pixels(m))
    assert m.int8 and read_check(demo_copy) is True
    rec = json.loads((demo_copy / CHECK_FILE).read_text())
    assert rec["photos"] == 6 and rec["min_cosine"] >= quantize.MIN_PHOTO_COSINE


def test_an_unfaithful_int8_tower_gives_way_to_fp32_for_good(demo_copy, tmp_path):
    """An int8 tower with other weights (same inputs and outputs) embeds differently: the
    check catches it on the first photos, which get fp32's vectors, and auto never uses it
    again for this model."""
    other = tmp_path / "other.onnx"  # the same graph with other weights
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(demo_copy / "image.onnx"))
    rng = np.random.default_rng(1)
    for t in g.graph.initializer:  # scramble the weights: another model, same graph
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.size > 1000:
            t.CopyFrom(numpy_helper.from_array(rng.permutation(a.ravel()).reshape(a.shape), t.name))
    onnx.save(g, str(other))
    quantize_int8(other, demo_copy / "image.int8.onnx")
    fp32 = OnnxModel(demo_copy, lazy=True)
    m = OnnxModel(demo_copy, int8=True, check_int8=True, lazy=True)
    x = _pixels(m)
    np.testing.assert_allclose(m.encode_images(x), fp32.encode_images(x), atol=1e-6)
    assert not m.int8 and read_check(demo_copy) is False
    assert not use_int8("auto", demo_copy)


def test_library_runs_int8_by_default_on_vnni_and_fp32_one_setting_away(demo_copy, tmp_path, monkeypatch):
    monkeypatch.setattr(cpu, "has_vnni", lambda: True)
    photos = make_photos(tmp_path / "photos", 4)
    data = demo_copy.parent.parent
    for precision, want in (("auto", True), ("fp32", False)):
        lib = Library(Settings(data_dir=data, precision=precision), model_key=MODEL_KEY)
        try:
            lib.add_folder(photos[0].parent)
            lib.scan()
            assert lib.model().int8 is want
        finally:
            lib.close()


def test_settings_from_before_precision(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"int8": True}))
    assert Settings.load(tmp_path).precision == "int8"
    (tmp_path / "settings.json").write_text(json.dumps({"int8": False}))  # the old default
    assert Settings.load(tmp_path).precision == "auto"
