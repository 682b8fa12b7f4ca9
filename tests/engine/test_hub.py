"""Model loading as users hit it: HF cache snapshots offline, clear errors, folder import."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ModelError, ModelNotAvailable
from engine.models.folder import MODEL_FOLDER_FILES
from engine.models.hub import fetch_model, import_model_folder, local_model_folder
from engine.models.registry import Registry, Source
from engine.models.runtime import OnnxModel
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY


def demo_folder() -> Path:
    spec = Registry.load().get(MODEL_KEY)
    folder = local_model_folder(spec, Settings(data_dir=Path("/nonexistent")))
    assert folder is not None, "bundled demo model missing"
    return folder


def lay_out_hub_snapshot(cache: Path, repo: str, files: dict[str, bytes], commit: str = "a" * 40) -> Path:
    """The huggingface_hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, data in files.items():
        (snap / name).write_bytes(data)
    return snap


def hub_spec(key="demo-from-hub", repo="photosift/demo-onnx"):
    spec = Registry.load().get(MODEL_KEY)
    return replace(spec, key=key, source=Source(onnx_repo=repo))


def test_offline_load_from_hf_cache_snapshot(tmp_path, monkeypatch):
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = hub_spec()
    src = demo_folder()
    files = {f: (src / f).read_bytes() for f in MODEL_FOLDER_FILES}
    meta = json.loads(files["model.json"])
    meta.update(key=spec.key, source={"onnx_repo": "photosift/demo-onnx"})
    files["model.json"] = json.dumps(meta).encode()
    snap = lay_out_hub_snapshot(cache, "photosift/demo-onnx", files)
    settings = Settings(data_dir=tmp_path / "data")
    folder = fetch_model(spec, settings)  # offline taken from the environment, as for users
    assert folder.resolve() == snap.resolve()
    model = OnnxModel(folder)
    ref = OnnxModel(src)
    texts = ["a red circle", "two blue squares"]
    assert np.allclose(model.encode_texts(texts), ref.encode_texts(texts), atol=1e-6)


def test_missing_model_error_says_which_where_and_how(tmp_path, monkeypatch):
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    spec = hub_spec(key="not-here", repo="nobody/not-here")
    with pytest.raises(ModelNotAvailable) as e:
        fetch_model(spec, Settings(data_dir=tmp_path / "data"), offline=True)
    msg = str(e.value)
    assert "'not-here'" in msg and str(cache) in msg and "nobody/not-here" in msg
    assert "photosift models import" in msg and "offline" in msg


def test_registry_models_without_weights_report_clearly(tmp_path):
    spec = Registry.load().get("vit-b-32-256-datacomp")
    with pytest.raises(ModelNotAvailable, match="vit-b-32-256-datacomp"):
        fetch_model(spec, Settings(data_dir=tmp_path / "data"), offline=True)


def test_import_model_folder(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    src = tmp_path / "usb" / "mymodel"
    shutil.copytree(demo_folder(), src)
    meta = json.loads((src / "model.json").read_text())
    meta["key"] = "my-imported"
    meta.pop("source", None)
    (src / "model.json").write_text(json.dumps(meta))
    spec = import_model_folder(src, settings)
    assert spec.key == "my-imported"
    assert local_model_folder(spec, settings) == settings.models_dir / "my-imported"


@pytest.mark.parametrize(
    "breakage, match",
    [
        (lambda d: (d / "text.onnx").unlink(), "missing text.onnx"),
        (lambda d: (d / "image.onnx").write_bytes(b"not onnx"), r"image.onnx (cannot be loaded|is 8 bytes, model.json says)"),
        (lambda d: (d / "model.json").write_text("{ nope"), "not valid JSON"),
        (lambda d: (d / "model.json").write_text(json.dumps({**json.loads((d / "model.json").read_text()), "embed_dim": 7})),
         "7"),
    ],
    ids=["missing-file", "corrupt-onnx", "bad-json", "wrong-dim"],
)
def test_import_refuses_broken_folders(tmp_path, breakage, match):
    settings = Settings(data_dir=tmp_path / "data")
    src = tmp_path / "broken"
    shutil.copytree(demo_folder(), src)
    breakage(src)
    with pytest.raises(ModelError, match=match):
        import_model_folder(src, settings)
    assert not (settings.models_dir / MODEL_KEY).exists()


def test_download_progress_counts_bytes_and_cancels():
    """huggingface_hub drives a tqdm class; a disabled tqdm does not count, so the bridge
    must (this once reported 0 bytes done for a whole download)."""
    import threading

    from engine.errors import Cancelled
    from engine.models.hub import _tqdm_for

    seen, cancel = [], threading.Event()
    bar = _tqdm_for(seen.append, cancel)(total=100, initial=10, desc="image.onnx")
    bar.update(40)
    bar.update(50)
    # a resumed download's first report is where it resumes, before any new byte
    assert [(p.done, p.total) for p in seen] == [(10, 100), (50, 100), (100, 100)]
    cancel.set()
    with pytest.raises(Cancelled):
        bar.update(1)
