"""The NaFlex demo model: it finds objects at the edges of wide and tall pictures that a
centre crop loses, through the engine's own indexing and search (issue 7, item 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.models.hub import local_model_folder
from engine.models.registry import Registry, resources_dir
from engine.models.runtime import OnnxModel
from engine.settings import Settings
from training.demo.naflex import BUNDLED, KEY
from training.demo.naflex_edges import EDGE_SHAPES, evaluate_folder


def bundled_folder():
    spec = Registry.load().get(KEY)
    folder = local_model_folder(spec, Settings(data_dir=resources_dir() / "nonexistent"))
    assert folder is not None, f"the bundled NaFlex demo model (resources/{BUNDLED}) is missing"
    return folder


def test_the_naflex_demo_model_is_a_registered_naflex_folder():
    folder = bundled_folder()
    m = OnnxModel(folder, prefer_cpu=True)  # checks every file against model.json's hashes
    assert m.naflex and m.spec.preprocess.resize_mode == "naflex" and m.spec.embed_dim == 128
    export = m.spec.extra["export"]
    assert export["image_min_cosine"] > 0.9999  # the ONNX graph is the trained torch model
    # It shares the demo's text tower, so the demo's texts land where its images do.
    demo = OnnxModel(resources_dir() / "demo", prefer_cpu=True, load_image=False)
    q = ["a red object", "two objects"]
    np.testing.assert_allclose(m.encode_texts(q), demo.encode_texts(q), atol=1e-6)


def test_naflex_finds_edge_objects_that_a_centre_crop_loses():
    """Same model, same weights: the whole picture at its own aspect ratio against its
    central square. If NaFlex preprocessing or the graph dropped the edges (a crop, a mask
    that hides the last patches, a wrong patch order), the two columns would meet."""
    res = evaluate_folder(bundled_folder(), n=48, shapes=EDGE_SHAPES[:2],
                          modes=("native", "centre-crop"))  # fmt: skip
    for shape in ("wide 3:1", "tall 1:3"):
        native, crop = res[shape]["native"]["colour"], res[shape]["centre-crop"]["colour"]
        base = res[shape]["base_rate"]["colour"]
        assert native["mAP"] > 0.8, (shape, native)
        assert crop["mAP"] < 0.5, (shape, crop)  # little but chance: the object is cut away
        assert native["mAP"] - crop["mAP"] > 0.4, (shape, native, crop)
        assert native["mAP"] > 4 * base


@pytest.mark.slow
def test_the_training_command_writes_a_working_model_folder(tmp_path):
    """``python -m training.demo.naflex --smoke``: trains, exports (parity-gated) and registers."""
    pytest.importorskip("transformers")
    from training.demo.naflex import main

    out, reg = tmp_path / "model", tmp_path / "models" / "demo-naflex.json"
    assert main(["--smoke", "--out", str(out), "--registry", str(reg), "--no-eval"]) == 0
    spec = json.loads(reg.read_text())
    assert spec["key"] == KEY and spec["preprocess"]["max_patches"] == 36
    assert spec["extra"]["training"]["settings"]["steps"] == 6
    m = OnnxModel(out, prefer_cpu=True)
    from PIL import Image

    pics = [Image.new("RGB", (w, h), (200, 30, 30)) for w, h in ((90, 30), (30, 90), (40, 40))]
    v = m.encode_images([m.preprocess(p) for p in pics])
    assert v.shape == (3, 128) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_a_new_library_still_starts_on_the_demo_model(tmp_path):
    """The NaFlex demo ships in resources/ too, but bundled models are the fallback: with no
    other model here a new library uses the demo, and a model the user imported wins."""
    import shutil

    from engine.library import choose_model

    settings = Settings(data_dir=tmp_path)
    assert choose_model(settings).key == "photosift-demo"
    mine = settings.models_dir / KEY  # the user's own copy of a bundled model counts
    shutil.copytree(bundled_folder(), mine)
    assert choose_model(settings).key == KEY
