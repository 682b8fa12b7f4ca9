"""SigLIT fine-tuning on the demo model: the text side learns new words from stored
image vectors, deterministically, without touching (or running) the image tower; the
candidate folder loads in the engine's runtime and matches torch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from engine.errors import Cancelled  # noqa: E402
from engine.finetune.dataset import GeneralCheck, TrainingSet  # noqa: E402
from engine.models.registry import load_spec, resources_dir  # noqa: E402
from engine.models.tokenizer import Tokenizer  # noqa: E402
from training.demo import captions, world  # noqa: E402
from training.demo.pretrain import load_checkpoint  # noqa: E402
from training.finetune.siglit import FinetuneSettings, TextSide, finetune  # noqa: E402

DEMO = resources_dir() / "demo"
LABELS = {  # words the demo model never read, for things its image tower does see
    "crimson": lambda s: any(o.colour == "red" for o in s.objects),
    "pair": lambda s: s.count == 2,
}


@pytest.fixture(scope="module")
def demo_world():
    """Stored-vector stand-ins: 260 world scenes through the demo model's ONNX image tower."""
    from engine.models.runtime import OnnxModel

    om = OnnxModel(DEMO, prefer_cpu=True, load_text=False)
    scenes = world.scenes("test", 260, seed=11)
    pix = np.stack([om.preprocess(world.render(s, (96, 96))) for s in scenes])
    vecs = np.concatenate([om.encode_images(pix[i : i + 64]) for i in range(0, len(pix), 64)])
    return scenes, vecs


@pytest.fixture(scope="module")
def tokenize():
    return Tokenizer.from_file(
        DEMO / "tokenizer.json", load_spec(DEMO / "model.json").tokenizer
    ).encode


def _data(demo_world) -> TrainingSet:
    scenes, vecs = demo_world
    train, gallery = slice(0, 180), slice(180, None)
    t = np.array([[f(s) for f in LABELS.values()] for s in scenes[train]], dtype=np.int8)
    qs = captions.attribute_queries()
    truth = world.match_matrix(scenes[gallery], [q.meaning for q in qs])
    return TrainingSet(
        image_ids=np.arange(180), vectors=vecs[train], labels=list(LABELS),
        texts=[[w, f"a picture of {w}"] for w in LABELS], targets=t, space="photosift-demo",
        source="folders:world", general=GeneralCheck([q.text for q in qs], vecs[gallery], truth),
    )  # fmt: skip


SMALL = dict(tune="last:1", lr=1e-3, max_steps=30, eval_every=10, patience=3, threads=1)


def _text_state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("visual.")}


@pytest.mark.parametrize("tune", ["last:1", "lora:4", "full"])
def test_cut_prompts_give_the_full_towers_vectors(tokenize, tune):
    model = load_checkpoint(DEMO)
    tokens = torch.from_numpy(tokenize(["a red circle", "two objects on the left", "", "crimson"]))
    want = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
    side = TextSide(model, FinetuneSettings(tune=tune))
    torch.testing.assert_close(side.encode_texts(tokens), want, atol=1e-5, rtol=0)
    cache = side.prepare(tokens)
    assert cache["cut"].shape[1] < tokens.shape[1]  # the cut is real: fewer positions to run
    torch.testing.assert_close(side.encode(cache).detach(), want, atol=1e-5, rtol=0)


def test_lora_merges_into_plain_weights(tokenize):
    from torch.nn.utils import parametrize

    model = load_checkpoint(DEMO)
    side = TextSide(model, FinetuneSettings(tune="lora:4"))
    with torch.no_grad():
        for mod, name in side.lora:
            getattr(mod.parametrizations, name)[0].B.normal_(0, 0.05)
    tokens = torch.from_numpy(tokenize(["a red circle", "crimson"]))
    before = side.encode_texts(tokens)
    side.merge()
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    torch.testing.assert_close(side.encode_texts(tokens), before, atol=1e-5, rtol=0)
    assert (
        1 - (before * torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)).sum(1).min()
        < 1e-5
    )


def test_learns_new_words_deterministically_with_the_image_tower_untouched(demo_world, tokenize):
    data = _data(demo_world)
    runs = []
    for _ in range(2):
        model = load_checkpoint(DEMO)
        visual = {k: v.clone() for k, v in model.visual.state_dict().items()}
        model.visual.forward = lambda *a, **k: pytest.fail("the image tower must never run")
        result = finetune(model, tokenize, data, FinetuneSettings(**SMALL))
        for k, v in model.visual.state_dict().items():
            assert torch.equal(v, visual[k]), k
        runs.append((result, _text_state(model)))
    (m1, s1), (m2, s2) = runs
    m = m1.metrics
    assert m["map_after"] > m["map_before"] + 0.1, m
    assert m["best_step"] > 0 and m["n_train"] + m["n_val"] == 180
    for lab in LABELS:
        assert m["labels"][lab]["val_positives"] >= 3
    g = m["general"]
    assert g["map_after"] > g["map_before"] - 0.1  # visible forgetting is reported, not hidden
    assert 0 <= g["top20_agreement"] <= 1
    timing = ("train_s",)
    same = lambda r: {k: v for k, v in r.metrics.items() if k not in timing}  # noqa: E731
    assert same(m1) == same(m2) and m1.history == m2.history
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k


def test_cancel_stops_at_once(demo_world, tokenize):
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        finetune(
            load_checkpoint(DEMO),
            tokenize,
            _data(demo_world),
            FinetuneSettings(**SMALL),
            cancel=cancel,
        )
    assert len(calls) == 4


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_candidate_folder_runs_in_the_engine_and_matches_torch(demo_world, tokenize, tmp_path):
    from engine.models.runtime import OnnxModel
    from training.finetune.candidate import write_candidate

    base = load_spec(DEMO / "model.json")
    base_files = {f.name: _sha(f) for f in DEMO.iterdir() if f.is_file()}
    data = _data(demo_world)
    model = load_checkpoint(DEMO)
    result = finetune(model, tokenize, data, FinetuneSettings(**SMALL))
    spec = write_candidate(model, base, DEMO, data, result, tmp_path / "cand")
    assert not (tmp_path / "cand.tmp").exists()
    assert {f.name: _sha(f) for f in DEMO.iterdir() if f.is_file()} == base_files  # base untouched
    assert spec.image_space == base.space and spec.base_model == base.key and spec.key != base.key
    # the base's tag threshold was measured for its logit scale and bias, which were retrained
    assert base.tag_threshold is not None and spec.tag_threshold is None
    ft = spec.extra["finetune"]
    assert ft["data_fingerprint"] == data.fingerprint() and ft["metrics"] == result.metrics
    assert spec.extra["export"]["text_min_cosine"] > 0.9999
    assert _sha(tmp_path / "cand" / "image.onnx") == base_files["image.onnx"]
    om = OnnxModel(tmp_path / "cand", prefer_cpu=True)
    texts = ["crimson", "a picture of pair", "a red circle"]
    got = om.encode_texts(texts)
    with torch.no_grad():
        want = torch.nn.functional.normalize(
            model.encode_text(torch.from_numpy(tokenize(texts))), dim=-1
        )
    assert np.min((got * want.numpy()).sum(1)) > 0.9999
    base_om = OnnxModel(DEMO, prefer_cpu=True, load_image=False)
    assert np.min((base_om.encode_texts(texts) * got).sum(1)) < 0.999  # it did change
    assert spec.logit_scale == pytest.approx(float(model.logit_scale.exp()))


def test_a_softmax_trained_clip_gets_a_sigmoid_bias_and_trains(tmp_path):
    from training.finetune.bench import planted_data
    from training.testmodels.tiny import build_tiny

    tiny = build_tiny("vit-b-32-256", tmp_path)
    model = tiny.model
    assert model.logit_bias is None  # CLIP: softmax-trained, no bias
    tokenize = Tokenizer.from_file(tiny.tokenizer_json, tiny.spec.tokenizer).encode
    tokens = torch.from_numpy(tokenize(["a photo of a cat", "receipt 3", ""]))
    side = TextSide(model, FinetuneSettings(tune="last:1"))
    want = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
    torch.testing.assert_close(side.encode_texts(tokens), want, atol=1e-5, rtol=0)
    data = planted_data(80, 3, 32)
    result = finetune(model, tokenize, data, FinetuneSettings.smoke(tune="lora:2", threads=1))
    assert model.logit_bias is not None and float(model.logit_bias.detach()) != 0
    assert set(result.metrics["labels"]) == set(data.labels)
    assert result.metrics["steps"] >= 1


def test_training_runs_on_cuda_when_torch_sees_it_else_on_the_cpu(monkeypatch):
    """The device choice only: no GPU is lent to the machines this is built on, so the CUDA
    path itself is exercised only where one exists (training moves every tensor with ``.to``)."""
    from training.finetune.siglit import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None) == "cuda"
    assert pick_device("cpu") == "cpu"  # an explicit choice wins


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_training_on_the_gpu_matches_the_cpu(demo_world, tokenize):
    results = {}
    for device in ("cpu", "cuda"):
        model = load_checkpoint(DEMO)
        r = finetune(model, tokenize, _data(demo_world), FinetuneSettings(**SMALL, device=device))
        assert r.metrics["device"] == device
        results[device] = r.metrics
    assert abs(results["cuda"]["map_after"] - results["cpu"]["map_after"]) < 0.05
