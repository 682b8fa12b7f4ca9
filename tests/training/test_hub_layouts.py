"""Each hub layout, made by a re-implementation of its publisher's exporter (training.testmodels.hub_layouts),
imported as a user imports a downloaded folder, and run by the engine: image and text vectors
must match the torch forward of the same weights (open_clip, or transformers for
transformers.js exports) at cosine >= 0.9999, with the very token ids the publisher's own
tokenizer gives."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from engine.errors import ModelError  # noqa: E402
from engine.models import freebatch  # noqa: E402
from engine.models.hub import import_model_folder  # noqa: E402
from engine.models.install import import_folder  # noqa: E402
from engine.models.registry import Registry  # noqa: E402
from engine.models.runtime import OnnxModel  # noqa: E402
from engine.models.tokenizer import CLEANERS  # noqa: E402
from engine.settings import Settings  # noqa: E402
from tests import hubrepos  # noqa: E402

TEXTS = ["a photo of a cat", "Kids on a RED slide, at dusk!", "", "ein Hund im Schnee", "猫がソファの上で寝ている",
         "x " * 100]  # fmt: skip
MIN_COS = 0.9999


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def _pixels(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 3, size, size)).astype(np.float32)


def _upstream_ids(folder: Path, spec, texts) -> np.ndarray:
    """The ids transformers gives on the repo's own tokenizer files, as the publishers' clients
    call it (padding to the context length, truncation), after the model's text cleaning."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    clean = CLEANERS[spec.tokenizer.clean or "whitespace"]
    return np.array(tok([clean(t) for t in texts], padding="max_length", truncation=True,
                        max_length=spec.tokenizer.context_length).input_ids)  # fmt: skip


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    return tmp_path_factory.mktemp("hub-layouts")


def _reference(kind_model, pixels: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kind, m = kind_model
    with torch.no_grad():
        if kind == "open_clip":
            img = m.encode_image(torch.from_numpy(pixels)).numpy()
            txt = m.encode_text(torch.from_numpy(ids)).numpy()
        elif m.config.model_type == "clip":
            img = m.visual_projection(
                m.vision_model(pixel_values=torch.from_numpy(pixels)).pooler_output
            ).numpy()
            txt = m.text_projection(
                m.text_model(input_ids=torch.from_numpy(ids)).pooler_output
            ).numpy()
        else:
            img = m.vision_model(pixel_values=torch.from_numpy(pixels)).pooler_output.numpy()
            txt = m.text_model(input_ids=torch.from_numpy(ids)).pooler_output.numpy()
    return img, txt


@pytest.mark.parametrize("name", sorted(hubrepos.REPOS))
def test_layout_matches_torch(repos, name, tmp_path):
    made = hubrepos.build(name, repos)
    settings = Settings(data_dir=tmp_path / "data")
    if name == "rclip":  # rclip's repo describes nothing: it is imported as its registry entry
        spec = import_folder(made.folder, settings, Registry({made.spec.key: made.spec}))
        assert spec.key == made.spec.key
    else:
        spec = import_model_folder(made.folder, settings)
    assert spec.source.layout == hubrepos.REPOS[name][1]
    model = OnnxModel(settings.models_dir / spec.key, prefer_cpu=True)
    h, w = model.input_size
    pixels = _pixels(3, h)
    ids = model.tokenizer.encode(TEXTS)
    if name == "rclip":  # open_clip's own SimpleTokenizer, what rclip re-implements
        import open_clip

        np.testing.assert_array_equal(ids, open_clip.tokenize(TEXTS).numpy())
    else:
        files = made.folder / "textual" if name.startswith("immich") else made.folder
        np.testing.assert_array_equal(ids, _upstream_ids(files, spec, TEXTS))
    want_img, want_txt = _reference(made.reference, pixels, ids)  # torch: full padding
    got_img = model.encode_images(pixels)
    got_txt = model.encode_texts(TEXTS)
    assert _cos(got_img, want_img).min() >= MIN_COS
    assert _cos(got_txt, want_txt).min() >= MIN_COS
    # CLIP's causal towers run each text at its own length (engine.models.textcut), proved above too
    causal = name in ("rclip", "immich-clip", "tfjs-clip")
    assert model.text_cut == causal
    # Immich's batch-1 image graphs run freed to any batch (engine.models.freebatch), proved
    # above too, external-data weights included
    if name.startswith("immich"):
        assert (model.image_graph.file, model.image_graph.batch) == (freebatch.FREE_FILE, None)


def test_the_cut_proof_refuses_a_tower_the_padding_changes(repos, tmp_path):
    """SigLIP pools the last position, padding included: a graph cut to the text's length gives
    other vectors, and the proof says so (so such a tower keeps its fixed length)."""
    import onnxruntime as ort

    from engine.models import textcut

    made = hubrepos.build("immich-siglip2", repos)
    settings = Settings(data_dir=tmp_path / "data")
    spec = import_model_folder(made.folder, settings)
    folder = settings.models_dir / spec.key
    model = OnnxModel(folder, prefer_cpu=True, load_image=False)
    assert not model.text_cut
    assert textcut.cut_graph(folder / "textual/model.onnx", tmp_path / "cut.onnx", 64)  # it rewrites...
    cut = ort.InferenceSession(str(tmp_path / "cut.onnx"), providers=["CPUExecutionProvider"])
    assert not textcut.prove(model._text, cut, model.tokenizer, "text", "embedding", np.int32)  # ...but wrong


def test_a_changed_cut_graph_is_refused(repos, tmp_path):
    made = hubrepos.build("immich-clip", repos)
    settings = Settings(data_dir=tmp_path / "data")
    folder = settings.models_dir / import_model_folder(made.folder, settings).key
    assert OnnxModel(folder, prefer_cpu=True, load_image=False).text_cut
    cut = folder / "text.cut.onnx"
    data = bytearray(cut.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cut.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="text.cut.onnx"):
        OnnxModel(folder, prefer_cpu=True, load_image=False)


def test_the_quick_text_tower_answers_as_the_repacked_one_that_replaces_it(repos, tmp_path):
    """The engine starts with the text tower that is ready soonest and swaps in the repacked
    one from a background thread: a search before, during or after the swap gives one answer."""
    made = hubrepos.build("immich-clip", repos)
    settings = Settings(data_dir=tmp_path / "data")
    folder = settings.models_dir / import_model_folder(made.folder, settings).key
    model = OnnxModel(folder, prefer_cpu=True, lazy=True)
    model.load_text(quick_first=True)
    quick_session = model._text
    before = model.encode_texts(TEXTS)
    model.close()  # waits for the repack
    assert model._text is not quick_session  # swapped in
    assert model.text_cut  # the repacked tower is the cut one too
    np.testing.assert_allclose(model.encode_texts(TEXTS), before, atol=1e-5)


QUERIES = {  # typed queries, with the punctuation and case people type
    "de": ["Kinder auf einer roten Rutsche bei Sonnenuntergang", "Ein Hund spielt im Schnee!", "Straße, Brücke & Fluss"],
    "fr": ["Des enfants sur un toboggan rouge au crépuscule", "Un chat qui dort sur le canapé", "l'été à Nice, où?"],
    "zh": ["一只猫坐在红色的沙发上", "孩子们在公园里玩雪", "夜晚城市的天际线"],
    "ja": ["海辺で遊ぶ犬の写真", "猫がソファの上で寝ている", "夕暮れの赤い滑り台、子供たち。"],
}  # fmt: skip


@pytest.mark.parametrize("entry,kind", [("vit-b-16-siglip2", "gemma"), ("vit-so400m-14-siglip2-378", "gemma"),
                                        ("xlm-roberta-base-vit-b-32", "xlmr")])  # fmt: skip
@pytest.mark.parametrize("lang", sorted(QUERIES))
def test_multilingual_queries_tokenize_as_transformers_does(repos, entry, kind, lang):
    """The registry entry's tokenizer settings (pad token, length, cleaning) on a tokenizer.json
    made as the upstream one was, against transformers' own tokenizer on the same files."""
    from engine.models.tokenizer import Tokenizer

    spec = Registry.load().get(entry).tokenizer
    folder = hubrepos._tok(repos, kind)
    ours = Tokenizer.from_file(folder / "tokenizer.json", spec).encode(QUERIES[lang])
    np.testing.assert_array_equal(ours, _upstream_ids(folder, Registry.load().get(entry), QUERIES[lang]))
    assert (ours[:, 0] != ours[:, 1]).all()  # real tokens, not a row of padding


def test_canonicalize_is_open_clips():
    """SigLIP's cleaning, as open_clip applies it before its tokenizer (the models were evaluated so)."""
    from open_clip.tokenizer import get_clean_fn

    texts = [t for qs in QUERIES.values() for t in qs] + ["A_B  c--d!", "Ça, c'est l'été.", "  MIXED case\t"]
    theirs = get_clean_fn("canonicalize")
    assert [CLEANERS["canonicalize"](t) for t in texts] == [theirs(t) for t in texts]


def _lone_runs(folder: Path, pixels: np.ndarray) -> np.ndarray:
    """Immich's own visual graph, one photo at a time, as Immich runs it."""
    import onnxruntime as ort

    lone = ort.InferenceSession(str(folder / "visual/model.onnx"), providers=["CPUExecutionProvider"])
    return np.concatenate([lone.run(["embedding"], {"image": pixels[i : i + 1]})[0] for i in range(len(pixels))])


@pytest.mark.parametrize("name", ["immich-clip", "immich-siglip2"])
def test_a_batch_one_graph_is_freed_to_take_a_batch_with_the_same_vectors(repos, tmp_path, name):
    """Immich's image graphs take one photo at a time; the graph derived at install takes a
    whole batch in one run, which must give each photo the vector a lone run of Immich's gives."""
    made = hubrepos.build(name, repos)
    settings = Settings(data_dir=tmp_path / "data")
    folder = settings.models_dir / import_model_folder(made.folder, settings).key
    assert (folder / freebatch.DECISION).is_file() and (folder / freebatch.FREE_FILE).is_file()
    model = OnnxModel(folder, prefer_cpu=True, load_text=False)
    pixels = _pixels(7, model.input_size[0])
    got = model.encode_images(pixels, normalize=False)
    assert model.image_graph.batch is None and model._pool is None  # one run of 7, not 7 of 1
    assert model._image.get_inputs()[0].shape[0] == "batch"
    want = _lone_runs(folder, pixels)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert _cos(got, want).min() >= 0.99999


def test_a_graph_left_at_batch_one_runs_photos_side_by_side_with_the_same_vectors(repos, tmp_path):
    """Where no freed graph was proved, the runtime runs several photos on threads at once
    (one core each), which must give each photo exactly the vector a lone run gives."""
    from engine.models.derived import source_key

    made = hubrepos.build("immich-clip", repos)
    settings = Settings(data_dir=tmp_path / "data")
    spec = import_model_folder(made.folder, settings)
    folder = settings.models_dir / spec.key
    (folder / freebatch.FREE_FILE).unlink()  # as a graph the derivation refused leaves it
    freebatch.write_decision(folder / freebatch.DECISION,
                             source_key(folder, "visual/model.onnx", spec.source.files),
                             {"graph": None, "reason": "refused"})  # fmt: skip
    model = OnnxModel(folder, prefer_cpu=True, load_text=False)
    pixels = _pixels(7, model.input_size[0])
    got = model.encode_images(pixels, normalize=False)
    assert model.image_graph.batch == 1
    assert model._pool is not None or (os.cpu_count() or 1) == 1
    np.testing.assert_allclose(got, _lone_runs(folder, pixels), rtol=0, atol=1e-6)


def test_a_changed_freed_graph_is_refused(repos, tmp_path):
    """The freed graph is checked against what was recorded when it was derived and proved."""
    made = hubrepos.build("immich-clip", repos)
    settings = Settings(data_dir=tmp_path / "data")
    folder = settings.models_dir / import_model_folder(made.folder, settings).key
    with open(folder / (freebatch.FREE_FILE + freebatch.DATA_SUFFIX), "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff\xff\xff")
    with pytest.raises(ModelError, match=freebatch.FREE_FILE):
        OnnxModel(folder, prefer_cpu=True, load_text=False)
