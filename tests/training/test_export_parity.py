"""ONNX export parity: tiny random models of each architecture family, torch vs onnxruntime.

Every image and text vector of the exported graphs must have cosine >= 0.9999 to
open_clip's own encode_image / encode_text, at batch sizes other than the one
exported with (the batch axis is dynamic).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

pytest.importorskip("open_clip", reason="the export and its reference need torch + open_clip")
ort = pytest.importorskip("onnxruntime")
import torch  # noqa: E402

from engine.errors import ModelError  # noqa: E402
from engine.models.registry import load_spec  # noqa: E402
from engine.models.tokenizer import Tokenizer  # noqa: E402
from training.export import openclip as export  # noqa: E402
from training.export.openclip import export_open_clip, random_images  # noqa: E402
from training.testmodels.tiny import FAMILIES, build_tiny  # noqa: E402

MIN_COS = 0.9999
TEXTS = [
    "a dog on a beach",
    "Two kids, a red slide & the sunset!",
    "北京的雪",
    "",
    "receipt " * 40,
]


def cosines(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def session(path):
    return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each family exported once: {family: (TinyModel, model folder)}."""
    work = tmp_path_factory.mktemp("tiny")
    out = {}
    for family in FAMILIES:
        tiny = build_tiny(family, work)
        folder = work / family
        if family == "mobileclip2-s0":
            tiny.model.train()  # as open_clip.create_model returns it
        export_open_clip(tiny.model, tiny.spec, tiny.tokenizer_json, folder)
        tiny.restored_train_mode = all(m.training for m in tiny.model.modules())
        tiny.model.eval()
        out[family] = (tiny, folder)
    return out


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("batch", [1, 5])
def test_image_tower_parity(exported, family, batch):
    tiny, folder = exported[family]
    h, w = tiny.spec.preprocess.size
    pixels = random_images(batch, h, w, seed=123)
    with torch.no_grad():
        want = tiny.model.encode_image(torch.from_numpy(pixels)).numpy()
    got = session(folder / "image.onnx").run(["embeddings"], {"pixels": pixels})[0]
    assert got.shape == (batch, tiny.spec.embed_dim)
    cos = cosines(got, want)
    assert cos.min() >= MIN_COS, f"{family} image cosines {cos}"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("batch", [1, 5])
def test_text_tower_parity(exported, family, batch):
    tiny, folder = exported[family]
    tokens = Tokenizer.from_file(folder / "tokenizer.json", tiny.spec.tokenizer).encode(
        TEXTS[:batch]
    )
    with torch.no_grad():
        want = tiny.model.encode_text(torch.from_numpy(tokens)).numpy()
    got = session(folder / "text.onnx").run(["embeddings"], {"tokens": tokens})[0]
    assert got.shape == (batch, tiny.spec.embed_dim)
    cos = cosines(got, want)
    assert cos.min() >= MIN_COS, f"{family} text cosines {cos}"


@pytest.mark.parametrize("family", FAMILIES)
def test_model_folder_contents(exported, family):
    tiny, folder = exported[family]
    assert sorted(p.name for p in folder.iterdir()) == [
        "image.onnx", "model.json", "text.onnx", "tokenizer.json"
    ]  # fmt: skip
    spec = load_spec(folder / "model.json")
    assert spec.key == tiny.spec.key and spec.embed_dim == tiny.spec.embed_dim
    assert math.isclose(spec.logit_scale, math.exp(tiny.model.logit_scale.item()), rel_tol=1e-6)
    if family == "vit-b-16-siglip2-256":
        assert math.isclose(spec.logit_bias, tiny.model.logit_bias.item(), rel_tol=1e-6)
    else:
        assert spec.logit_bias is None
    report = spec.extra["export"]
    assert report["image_min_cosine"] >= MIN_COS and report["text_min_cosine"] >= MIN_COS
    for name, input_name, dtype in (("image.onnx", "pixels", "tensor(float)"), ("text.onnx", "tokens", "tensor(int64)")):  # fmt: skip
        sess = session(folder / name)
        (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
        assert (inp.name, inp.type, out.name) == (input_name, dtype, "embeddings")
        assert isinstance(inp.shape[0], str) and isinstance(out.shape[0], str), (
            "batch axis is not dynamic"
        )


def test_tiny_models_are_input_sensitive(exported):
    """Parity on a model that maps every input to the same vector would prove nothing."""
    for family, (tiny, _) in exported.items():
        h, w = tiny.spec.preprocess.size
        with torch.no_grad():
            v = tiny.model.encode_image(torch.from_numpy(random_images(6, h, w, seed=5))).numpy()
        c = cosines(v[:-1], v[1:])
        assert c.min() < 0.99, f"{family}: image vectors barely depend on the input ({c})"


def test_mobileclip2_is_fused_and_parity_is_against_unfused(exported):
    tiny, folder = exported["mobileclip2-s0"]
    assert load_spec(folder / "model.json").extra["export"]["fused_blocks"] > 0
    # The caller's model is not fused: its MobileOne blocks still have their branches.
    assert any(getattr(m, "reparam_conv", 1) is None for m in tiny.model.modules())


def test_train_mode_reference_explains_mobileclip2_cosine_near_zero(exported):
    """The bug that was seen: comparing with a *train-mode* torch model (open_clip's default).

    BatchNorm in train mode normalises with the batch's own statistics; the ONNX
    graph (correctly) uses the running statistics. The export puts the model in
    eval mode itself and restores the caller's mode afterwards.
    """
    tiny, folder = exported["mobileclip2-s0"]
    h, w = tiny.spec.preprocess.size
    pixels = random_images(4, h, w, seed=9)
    got = session(folder / "image.onnx").run(None, {"pixels": pixels})[0]
    tiny.model.train()
    try:
        with torch.no_grad():
            train_out = tiny.model.encode_image(torch.from_numpy(pixels)).numpy()
    finally:
        tiny.model.eval()
    assert cosines(got, train_out).min() < 0.99


def test_export_restores_train_mode(exported):
    # The fixture exported MobileCLIP2 from train mode (open_clip's default) ...
    tiny, _ = exported["mobileclip2-s0"]
    assert tiny.restored_train_mode


def test_export_refuses_a_graph_that_disagrees(tmp_path, monkeypatch):
    tiny = build_tiny("vit-b-32-256", tmp_path)
    real_run = export._run_onnx

    def broken(path, name, x):  # an exporter bug: the image graph returns shuffled vectors
        out = real_run(path, name, x)
        return out[::-1].copy() if name == "pixels" else out

    monkeypatch.setattr(export, "_run_onnx", broken)
    out_dir = tmp_path / "model"
    with pytest.raises(ModelError, match="image tower disagrees"):
        export_open_clip(tiny.model, tiny.spec, tiny.tokenizer_json, out_dir)
    assert not out_dir.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model")], (
        "temp dir left behind"
    )


def test_export_replaces_an_existing_folder(tmp_path):
    tiny = build_tiny("vit-b-16-siglip2-256", tmp_path)
    out_dir = tmp_path / "model"
    out_dir.mkdir()
    (out_dir / "stale.onnx").write_bytes(b"old")
    export_open_clip(tiny.model, tiny.spec, tiny.tokenizer_json, out_dir)
    assert not (out_dir / "stale.onnx").exists() and (out_dir / "image.onnx").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("family", ["vit-b-32-256", "vit-b-16-siglip2-256"])
def test_export_from_hub_layout(tmp_path, family):
    """open_clip weights as a hub repo holds them -> model folder (the hub conversion path)."""
    if family == "vit-b-16-siglip2-256":
        pytest.importorskip("transformers", reason="open_clip loads HF tokenizers via transformers")
    from training.export.openclip import export_from_pretrained
    from training.testmodels.tiny import save_open_clip_dir

    tiny = build_tiny(family, tmp_path / "work", seed=3)
    repo = save_open_clip_dir(tiny, tmp_path / "repo")
    export_from_pretrained(tiny.spec, repo, tmp_path / "m")
    h, w = tiny.spec.preprocess.size
    pixels = random_images(3, h, w, seed=4)
    with torch.no_grad():
        want = tiny.model.encode_image(torch.from_numpy(pixels)).numpy()
    got = session(tmp_path / "m" / "image.onnx").run(None, {"pixels": pixels})[0]
    assert cosines(got, want).min() >= MIN_COS, "weights were not loaded from the repo"
    # The converted tokenizer.json tokenises like the one the tiny model was built with.
    a = Tokenizer.from_file(tmp_path / "m" / "tokenizer.json", tiny.spec.tokenizer).encode(TEXTS)
    b = Tokenizer.from_file(tiny.tokenizer_json, tiny.spec.tokenizer).encode(TEXTS)
    np.testing.assert_array_equal(a, b)
    # A registry entry whose preprocessing disagrees with the checkpoint is refused.
    bad = tiny.spec.with_(preprocess=tiny.spec.preprocess.__class__(**{**tiny.spec.preprocess.__dict__, "interpolation": "bilinear" if tiny.spec.preprocess.interpolation == "bicubic" else "bicubic"}))  # fmt: skip
    with pytest.raises(ModelError, match="interpolation"):
        export_from_pretrained(bad, repo, tmp_path / "m2")


def test_int8_image_tower_of_tiny_vit(exported, tmp_path):
    from engine.models.quantize import cosine_to_fp32, quantize_int8

    tiny, folder = exported["vit-b-32-256"]
    dst = quantize_int8(folder / "image.onnx", tmp_path / "image.int8.onnx")
    h, w = tiny.spec.preprocess.size
    cos = cosine_to_fp32(folder / "image.onnx", dst, random_images(8, h, w, seed=7))
    assert cos.min() >= 0.99


# --- full-size architectures, random weights (minutes, GBs): run with -m slow ---

REAL = [("ViT-B-32-256", "datacomp_s34b_b86k"), ("MobileCLIP2-S0", "dfndr2b"), ("ViT-B-16-SigLIP2-256", "webli")]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name,tag", REAL)
def test_full_size_random_weight_parity(tmp_path, name, tag, record_property):
    import open_clip

    from engine.models.clip_bpe import write_clip_tokenizer_json
    from engine.models.registry import ModelSpec, Preprocess, Source, TokenizerSpec
    from training.testmodels.tiny import write_tiny_gemma_tokenizer

    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)  # random weights, train mode (!)
    cfg = open_clip.get_model_config(name)
    pc = open_clip.get_pretrained_cfg(name, tag)
    size = cfg["vision_cfg"]["image_size"]
    ctx = cfg["text_cfg"]["context_length"]
    hf = "hf_tokenizer_name" in cfg["text_cfg"]
    # No hub here: SigLIP 2 gets a stand-in Gemma-style tokenizer (ids < 256k, same layout).
    tok = (write_tiny_gemma_tokenizer if hf else write_clip_tokenizer_json)(tmp_path / "tok.json")
    spec = ModelSpec(
        key=name.lower(), name=name, family="siglip" if hf else "clip", architecture=name,
        embed_dim=cfg["embed_dim"],
        preprocess=Preprocess((size, size), tuple(pc["mean"]), tuple(pc["std"]), pc["interpolation"], pc["resize_mode"]),
        tokenizer=TokenizerSpec("hf" if hf else "clip_bpe", ctx), source=Source(open_clip_name=name),
        license="test",
    )  # fmt: skip
    written = export_open_clip(model, spec, tok, tmp_path / "m")
    report = written.extra["export"]
    record_property("export_report", report)
    print(name, report)
    assert report["image_min_cosine"] >= MIN_COS and report["text_min_cosine"] >= MIN_COS


@pytest.mark.slow
def test_int8_speedup_full_size_vit_b_32(tmp_path, record_property):
    """Measured on the full ViT-B-32-256 image tower (random weights), batch 16, CPU."""
    import time

    import open_clip

    from engine.models.clip_bpe import write_clip_tokenizer_json
    from engine.models.quantize import cosine_to_fp32, quantize_int8
    from engine.models.registry import ModelSpec, Preprocess, Source, TokenizerSpec

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32-256", pretrained=None)
    spec = ModelSpec(
        key="b32", name="b32", family="clip", architecture="ViT-B-32-256", embed_dim=512,
        preprocess=Preprocess((256, 256), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        tokenizer=TokenizerSpec("clip_bpe", 77), source=Source(), license="test",
    )  # fmt: skip
    export_open_clip(model, spec, write_clip_tokenizer_json(tmp_path / "t.json"), tmp_path / "m")
    fp32 = tmp_path / "m" / "image.onnx"
    int8 = quantize_int8(fp32)
    x = random_images(16, 256, 256, seed=1)

    def best_of(path, reps=4):
        sess = session(path)
        sess.run(None, {"pixels": x[:2]})
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            sess.run(None, {"pixels": x})
            times.append(time.perf_counter() - t)
        return min(times)

    t32, t8 = best_of(fp32), best_of(int8)
    cos = cosine_to_fp32(fp32, int8, x)
    record_property(
        "int8", {"fp32_s": t32, "int8_s": t8, "speedup": t32 / t8, "min_cos": cos.min()}
    )
    print(
        f"fp32 {16 / t32:.1f} img/s, int8 {16 / t8:.1f} img/s, x{t32 / t8:.2f}, min cos {cos.min():.5f}"
    )
    assert t32 / t8 >= 1.8 and cos.min() >= 0.99
