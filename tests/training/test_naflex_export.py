"""SigLIP 2 NaFlex: transformers checkpoint -> ONNX model folder -> engine, against transformers.

The reference is transformers' ``Siglip2Model`` with its ``Siglip2ImageProcessorPil``
(what the published ``google/siglip2-*-naflex`` checkpoints are and ship with).
A tiny random model of the same classes is laid out as its hub repo, loaded
offline through ``engine.models.hub.fetch_model`` (what users hit), and every vector
the engine makes must have cosine >= 0.9999 to transformers' own.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("transformers", reason="transformers' SigLIP 2 is the reference")
torch = pytest.importorskip("torch")

from engine.errors import ModelError  # noqa: E402
from engine.models import naflex  # noqa: E402
from engine.models.hub import fetch_model  # noqa: E402
from engine.models.registry import Source, load_spec  # noqa: E402
from engine.models.runtime import OnnxModel  # noqa: E402
from engine.photos.decode import decode_photo  # noqa: E402
from engine.settings import Settings  # noqa: E402
from tests.conftest import shared  # noqa: E402
from tests.engine.test_hub import lay_out_hub_snapshot  # noqa: E402
from training.export.naflex import (  # noqa: E402
    export_siglip2_naflex,
    parity_photos,
    reference_image_features,
)
from training.testmodels.tiny_naflex import build_tiny_naflex, save_hf_dir  # noqa: E402

MIN_COS = 0.9999
REPO = "google/siglip2-base-patch16-naflex"
TEXTS = ["a red kite over the beach", "Two kids, a slide & the sunset!", "", "receipt " * 40]


def cosines(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_naflex(tmp_path_factory.mktemp("naflex"))


@pytest.fixture(scope="module")
def folder(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny-naflex"
    export_siglip2_naflex(tiny.model, tiny.spec, tiny.tokenizer_json, out)
    return out


def test_export_records_parity_with_transformers(folder, tiny):
    rep = load_spec(folder / "model.json").extra["export"]
    assert rep["reference"] == "transformers"
    assert rep["image_min_cosine"] >= MIN_COS and rep["text_min_cosine"] >= MIN_COS
    assert rep["image_max_abs_diff"] < 1e-4
    spec = load_spec(folder / "model.json")
    assert spec.preprocess.resize_mode == "naflex" and spec.logit_bias is not None


def test_vectors_do_not_depend_on_padding_or_batch_mates(folder):
    m = OnnxModel(folder, prefer_cpu=True, load_text=False)
    items = [m.preprocess(im) for im in parity_photos(seed=3)]
    assert len({it.length for it in items}) >= 3  # really different sequence lengths
    together = m.encode_images(items)
    alone = np.concatenate([m.encode_images([it]) for it in items])
    assert np.abs(together - alone).max() < 1e-5
    # Padded far beyond the longest sequence, in one call (no bucketing).
    batch = naflex.collate(items, m._naflex_base, length=max(it.length for it in items) + 37)
    raw = m._image.run(None, batch.feeds())[0]
    assert cosines(raw, m.encode_images(items, normalize=False)).min() > 1 - 1e-6


def test_export_refuses_a_graph_that_disagrees(tiny, tmp_path, monkeypatch):
    # Position embeddings resized to the transposed grid: the kind of slip
    # (rows/cols swapped) that a test on square photos alone would not see.
    real = naflex.position_weights.__wrapped__

    def swapped(rows, cols, base):
        w = real(cols, rows, base).reshape(cols, rows, -1).transpose(1, 0, 2)
        return np.ascontiguousarray(w.reshape(rows * cols, -1))

    monkeypatch.setattr(naflex, "position_weights", swapped)
    with pytest.raises(ModelError, match="disagrees with transformers"):
        export_siglip2_naflex(tiny.model, tiny.spec, tiny.tokenizer_json, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.fixture(scope="module")
def hub_model(tiny, tmp_path_factory):
    """The tiny checkpoint laid out as its hub repo, fetched offline through engine.models.hub."""
    base = tmp_path_factory.mktemp("hubcase")
    repo_dir = save_hf_dir(tiny, base / "repo")
    (repo_dir / "special_tokens_map.json").write_text(
        json.dumps(
            {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}
        )
    )
    files = {f.name: f.read_bytes() for f in repo_dir.iterdir() if f.is_file()}
    cache = base / "hf" / "hub"
    snap = lay_out_hub_snapshot(cache, REPO, files)
    names = ["config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json",
             "tokenizer_config.json", "special_tokens_map.json"]  # fmt: skip
    spec = replace(
        tiny.spec, key="tiny-naflex-hub", source=Source(hf_repo=REPO, files={n: {} for n in names})
    )
    return spec, cache, snap, base / "data"


def test_offline_hub_load_matches_transformers_on_real_photos(hub_model, tiny, monkeypatch):
    spec, cache, snap, data = hub_model
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings(data_dir=data)
    out = fetch_model(spec, settings)  # downloads (from the cache) and converts, as for users
    assert out == settings.models_dir / spec.key
    m = OnnxModel(out, prefer_cpu=True)
    assert m.input_size == (64, 64)  # decode side for 64 patches of 8 px

    photos, odd = shared("photos"), shared("odd-files")
    files = [odd / "derived/photo_strip_1to5.jpg", odd / "derived/photo_strip_5to1.jpg"]
    files += sorted(photos.rglob("*4096x2048*"))[:1] + [p for p in photos.rglob("*.jp*g")][:3]
    images = [decode_photo(f, target=m.input_size).image for f in files]
    got = m.encode_images([m.preprocess(im) for im in images], normalize=False)
    want = reference_image_features(
        tiny.model, images, spec.preprocess.max_patches, spec.preprocess.patch_size
    )
    assert cosines(got, want).min() >= MIN_COS

    # Text: the engine's tokenizer.json is open_clip's SigLIP 2 tokenizer for these files.
    from open_clip.tokenizer import HFTokenizer

    oc = HFTokenizer(str(snap), context_length=64, clean="canonicalize")
    tokens = m.tokenizer.encode(TEXTS)
    assert np.array_equal(tokens, oc(TEXTS).numpy())
    with torch.no_grad():
        want_t = tiny.model.get_text_features(
            input_ids=torch.from_numpy(tokens)
        ).pooler_output.numpy()
    assert cosines(m.encode_texts(TEXTS), want_t).min() >= MIN_COS


def test_hub_conversion_refuses_a_mismatched_registry_entry(hub_model, tiny, monkeypatch):
    spec, cache, _, data = hub_model
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    bad = replace(
        spec, key="tiny-naflex-wrong", preprocess=replace(spec.preprocess, max_patches=256)
    )
    with pytest.raises(ModelError, match="max_num_patches"):
        fetch_model(bad, Settings(data_dir=data), offline=True)


def test_indexer_embeds_naflex_photos_like_the_model(folder, tmp_path):
    from engine.library import Library

    settings = Settings(data_dir=tmp_path / "data", batch_size=3)
    settings.models_dir.mkdir(parents=True)
    import shutil

    shutil.copytree(folder, settings.models_dir / "tiny-siglip2-naflex")
    settings.max_patches = {"tiny-siglip2-naflex": 32}
    odd = shared("odd-files")
    pics = tmp_path / "pics"
    pics.mkdir()
    for name in (
        "photo_strip_1to5.jpg",
        "photo_strip_5to1.jpg",
        "cmyk_from_photo.jpg",
        "photo.heic",
    ):
        shutil.copy(odd / "derived" / name, pics / name)
    lib = Library(settings, model_key="tiny-siglip2-naflex")
    assert lib.model().max_patches == 32
    assert lib.model().spec.space == "tiny-siglip2-naflex@32"  # other budget, other vectors
    lib.add_folder(pics)
    rep = lib.scan()
    assert (rep.embedded, rep.failed) == (4, 0)
    m = OnnxModel(folder, prefer_cpu=True, load_text=False, max_patches=32)
    for name in ("photo_strip_1to5.jpg", "photo_strip_5to1.jpg"):
        item = m.preprocess(decode_photo(pics / name, target=m.input_size).image)
        assert item.length <= 32
        want = m.encode_images([item])[0]
        iid = lib.db.image_id_for_path(str(pics / name))
        got = lib.db.vectors_for(lib.space_id, [iid])
        got = next(iter(got.values())) if isinstance(got, dict) else np.asarray(got)[0]
        assert float(np.dot(got, want)) > 0.9999


def test_a_bad_patch_budget_is_a_clear_error(folder):
    with pytest.raises(ModelError, match="max_patches"):
        OnnxModel(folder, prefer_cpu=True, load_text=False, max_patches=-4)


@pytest.mark.slow
def test_full_size_b16_naflex_tower_exports_with_parity(tiny, tmp_path):
    """The published B/16 NaFlex vision config (width 768, 12 layers, 256-position table),
    random weights, through the same exporter and gate as the real checkpoint."""
    from transformers import Siglip2Config, Siglip2Model

    from engine.models.registry import Registry
    from training.testmodels.tiny_naflex import perturb

    text = dict(vocab_size=1024, hidden_size=768, num_hidden_layers=1, num_attention_heads=12)
    model = Siglip2Model(Siglip2Config(text_config=text, vision_config={})).eval()
    perturb(model)
    spec = Registry.load().get("siglip2-b-16-naflex")
    written = export_siglip2_naflex(model, spec, tiny.tokenizer_json, tmp_path / "b16")
    rep = written.extra["export"]
    assert rep["image_min_cosine"] >= MIN_COS and rep["text_min_cosine"] >= MIN_COS


def test_exported_folder_imports_like_any_model_folder(folder, tmp_path):
    from engine.models.hub import import_model_folder

    settings = Settings(data_dir=tmp_path / "data")
    spec = import_model_folder(folder, settings)  # runs both towers once (NaFlex: a 2:1 photo)
    assert spec.preprocess.resize_mode == "naflex"
    assert (settings.models_dir / spec.key / "image.onnx").is_file()


def test_patch_budget_is_chosen_through_the_engine_and_re_embeds_into_its_own_space(
    folder, tmp_path
):
    """set_max_patches on the active NaFlex model: the library is re-embedded into the new
    budget's image space (never mixed with the old one); bad requests are refused clearly."""
    from engine.models.hub import import_model_folder
    from engine.service.client import EngineClient, EngineError
    from tests.helpers import make_photos, wait_for

    data = tmp_path / "data"
    key = import_model_folder(folder, Settings(data_dir=data)).key
    photos = make_photos(tmp_path / "photos", 5)
    done: list[dict] = []
    c = EngineClient(data_dir=data, model=key,
                     on_event=lambda e: e["event"] == "job_done" and done.append(e))  # fmt: skip
    c.start(timeout=60)
    try:
        c.request("add_folder", {"path": str(photos[0].parent)}, timeout=60)
        wait_for(lambda: c.request("status")["vectors"].get(key) == 5, "first indexing", 120)
        info = c.request("models_list")["models"]
        (mine,) = [m for m in info if m["key"] == key]
        assert mine["max_patches"] == 64 and 256 in mine["max_patches_choices"]

        with pytest.raises(EngineError, match="one of"):
            c.request("set_max_patches", {"key": key, "max_patches": 100})
        with pytest.raises(EngineError, match="not a NaFlex model"):
            c.request("set_max_patches", {"key": "photosift-demo", "max_patches": 256})

        n = len(done)
        c.request("set_max_patches", {"key": key, "max_patches": 256}, timeout=60)
        wait_for(lambda: c.request("status")["vectors"].get(f"{key}@256") == 5, "re-embedding", 120)
        assert c.request("status")["vectors"][key] == 5  # the old budget's vectors are kept apart
        assert len(done) > n
        (mine,) = [m for m in c.request("models_list")["models"] if m["key"] == key]
        assert mine["max_patches"] == 256
        hits = c.request("search", {"text": "a photo"})["hits"]
        assert len(hits) == 5
    finally:
        c.close()
