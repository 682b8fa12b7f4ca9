"""Downloading a model in each hub layout from a stand-in hub, as users do (engine.models.hub.fetch_model):
only the files the layout needs come down (external data included; no ArmNN, RKNN, CoreML,
fp16 or int8 variants), progress counts through the whole download and ends at the size the
repo's listing gave beforehand, and a missing or damaged file is refused by name with nothing
left behind and nothing already here touched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")

from engine.errors import ModelError, ModelNotAvailable  # noqa: E402
from engine.library import Library  # noqa: E402
from engine.models.hub import fetch_model, local_model_folder  # noqa: E402
from engine.models.install import download_plan, int8_by_default  # noqa: E402
from engine.models.runtime import OnnxModel  # noqa: E402
from engine.settings import Settings  # noqa: E402
from tests import hubrepos  # noqa: E402
from tests.app.fakehub import FakeHub, point_hf_at, repo_files  # noqa: E402
from tests.helpers import make_photos  # noqa: E402


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    return tmp_path_factory.mktemp("hub-repos")


@pytest.fixture
def hf_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return monkeypatch


def _needed(made: hubrepos.HubRepo) -> set[str]:
    """What a download must fetch: everything but the decoys and (outside rclip, whose README is
    one of its licence files) the repo's README."""
    layout = hubrepos.REPOS[made.name][1]
    files = set(repo_files(made.folder)) - set(hubrepos.DECOYS[layout])
    return files if layout == "rclip" else files - {"README.md"}


@pytest.mark.parametrize("name", sorted(hubrepos.REPOS))
def test_download_fetches_what_the_layout_needs_and_runs(repos, name, tmp_path, hf_env):
    made = hubrepos.build(name, repos)
    served = repo_files(made.folder)
    settings = Settings(data_dir=tmp_path / "data")
    events = []
    with FakeHub(made.repo, served) as hub:
        point_hf_at(hub, hf_env)
        plan = download_plan(made.spec, endpoint=hub.url)
        folder = fetch_model(made.spec, settings, progress=events.append)
    # Asked for by name (a file whose bytes the cache already holds under the same hash, such
    # as two all-zero biases, is linked rather than fetched again).
    fetched = {f for method, f, _ in hub.requests if method in ("HEAD", "GET")}
    assert fetched == _needed(made)
    assert set(plan) == _needed(made)
    total = sum(len(served[f]) for f in fetched)
    assert sum(plan.values()) == total  # the size shown before the download is what comes down
    counted = [e for e in events if e.total is not None]  # bytes; the rest name a step
    assert [e.done for e in counted] == sorted(e.done for e in counted)
    assert counted[-1].done == counted[-1].total == total
    # Where the CPU has VNNI, the install makes the int8 image tower indexing will run, and
    # says so while it does; it is recorded for the runtime's checks like the rest.
    made_int8 = int8_by_default(made.spec)
    assert any("int8" in e.file for e in events if e.total is None) == made_int8
    assert (folder / "image.int8.onnx").is_file() == made_int8
    assert folder == settings.models_dir / made.spec.key
    assert local_model_folder(made.spec, settings) == folder
    # Every file as the repo holds it, and recorded for the runtime's checks.
    recorded = OnnxModel(folder, prefer_cpu=True).spec.source.files
    for f in fetched:
        assert (folder / f).read_bytes() == served[f]
        assert recorded[f]["sha256"] == hashlib.sha256(served[f]).hexdigest()
    model = OnnxModel(folder, prefer_cpu=True)
    h, w = model.input_size
    v = model.encode_images(np.zeros((2, 3, h, w), np.float32))
    t = model.encode_texts(["a dog", "ein Hund"])
    assert v.shape == (2, made.spec.embed_dim) and t.shape == (2, made.spec.embed_dim)


def _library_with_photos(settings: Settings, photos: Path) -> Path:
    make_photos(photos, 3)
    lib = Library(settings)
    try:
        lib.add_folder(photos)
        lib.scan()
    finally:
        lib.close()
    return settings.data_dir


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


BREAKS = {  # name -> (file to break, how)
    "rclip": ("tokenizer/bpe_simple_vocab_16e6.txt.gz", "missing"),
    "immich-clip": ("textual/tokenizer.json", "missing"),
    "immich-siglip2": ("visual/model.onnx", "damaged"),
    "immich-siglip2-external": (None, "external data missing"),
    "immich-xlmr": ("config.json", "damaged"),
    "tfjs-clip": ("onnx/text_model.onnx", "missing"),
    "tfjs-siglip": ("onnx/vision_model.onnx_data", "damaged"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_a_missing_or_damaged_file_is_named_and_nothing_is_touched(repos, name, tmp_path, hf_env):
    made = hubrepos.build(name, repos)
    served = repo_files(made.folder)
    target, how = BREAKS[name]
    if how == "external data missing":
        target = next(f for f in served if f.startswith("visual/") and f.count("-") == 4)  # the UUID blob
        del served[target]
    elif how == "missing":
        del served[target]
    settings = Settings(data_dir=tmp_path / "data")
    data = _library_with_photos(settings, tmp_path / "photos")
    before = _snapshot(data)
    with FakeHub(made.repo, served) as hub:
        point_hf_at(hub, hf_env)
        if how == "damaged":
            hub.corrupt(target)
        with pytest.raises((ModelError, ModelNotAvailable)) as e:
            fetch_model(made.spec, settings)
    assert target in str(e.value)
    assert _snapshot(data) == before  # the library, its models folder included, is as it was
    assert local_model_folder(made.spec, settings) is None


def test_a_quantiser_that_fails_leaves_a_working_fp32_model(repos, tmp_path, monkeypatch, caplog):
    """The int8 tower is an extra a model is complete without: a quantiser that cannot run (as in
    a frozen app missing one of its modules) is logged, and the model installs and runs in fp32."""
    from engine.models import install, quantize
    from engine.models.hub import import_model_folder

    def broken(*a, **k):
        raise ImportError("No module named 'fusion_utils'")

    monkeypatch.setattr(install, "int8_by_default", lambda spec: True)
    monkeypatch.setattr(quantize, "quantize_folder", broken)
    made = hubrepos.build("immich-clip", repos)
    settings = Settings(data_dir=tmp_path / "data")
    spec = import_model_folder(made.folder, settings)
    folder = settings.models_dir / spec.key
    assert not (folder / "image.int8.onnx").exists() and "no int8 image tower" in caplog.text
    assert OnnxModel(folder, prefer_cpu=True).encode_texts(["a dog"]).shape == (1, spec.embed_dim)
