"""A model published as open_clip weights, downloaded from a stand-in hub through fetch_model
(as users get it), checked, converted to ONNX, and its model folder pinned: the runtime then
refuses a file damaged later, and the folder says which download it was made from."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("open_clip", reason="converting open_clip weights needs torch + open_clip")

from engine.errors import ChecksumMismatch, ModelError  # noqa: E402
from engine.models.hub import fetch_model  # noqa: E402
from engine.models.registry import Source, load_spec  # noqa: E402
from engine.models.runtime import OnnxModel  # noqa: E402
from engine.settings import Settings  # noqa: E402
from tests.app.fakehub import COMMIT, FakeHub, point_hf_at  # noqa: E402
from training.testmodels.tiny import build_tiny, save_open_clip_dir  # noqa: E402

REPO = "org/tiny-vit-b-32-256"


@pytest.fixture(scope="module")
def repo_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    tiny = build_tiny("vit-b-32-256", tmp / "work", seed=5)
    folder = save_open_clip_dir(tiny, tmp / "repo")
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    spec = tiny.spec.with_(source=Source(hf_repo=REPO, open_clip_name="ViT-B-32-256"))
    return spec, files


def test_downloaded_weights_are_checked_converted_and_the_folder_pinned(
    repo_files, tmp_path, monkeypatch
):
    spec, files = repo_files
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    settings = Settings(data_dir=tmp_path / "data")
    with FakeHub(REPO, files) as hub:
        point_hf_at(hub, monkeypatch)
        folder = fetch_model(spec, settings, offline=False)
    assert folder == settings.models_dir / spec.key
    saved = load_spec(folder / "model.json")
    for f in ("image.onnx", "text.onnx", "tokenizer.json"):
        assert (
            saved.source.files[f]["sha256"] == hashlib.sha256((folder / f).read_bytes()).hexdigest()
        )
    download = saved.extra["download"]
    assert download["repo"] == REPO and download["revision"] == COMMIT
    weights = files["open_clip_model.safetensors"]
    assert download["files"]["open_clip_model.safetensors"] == {
        "sha256": hashlib.sha256(weights).hexdigest(), "size": len(weights)}  # fmt: skip
    assert OnnxModel(folder).encode_texts(["a dog"]).shape == (1, spec.embed_dim)

    # damage after the fact (bit rot, a partial copy): the pinned folder refuses to load
    data = bytearray((folder / "text.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "text.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="text.onnx does not match its checksum"):
        OnnxModel(folder).encode_texts(["a dog"])


def test_damaged_weights_are_not_converted(repo_files, tmp_path, monkeypatch):
    spec, files = repo_files
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    settings = Settings(data_dir=tmp_path / "data")
    with FakeHub(REPO, files) as hub:
        point_hf_at(hub, monkeypatch)
        hub.corrupt("open_clip_model.safetensors")
        with pytest.raises(ChecksumMismatch, match="open_clip_model.safetensors"):
            fetch_model(spec, settings, offline=False)
    assert not (settings.models_dir / spec.key).exists()
