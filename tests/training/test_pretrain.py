"""Demo-model pretraining: both losses learn, the tokenizer suits the text tower, the CLI
writes a model folder the engine can load."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from engine.models.registry import load_spec
from engine.models.tokenizer import Tokenizer
from training.demo import captions, world
from training.demo import tokenizer as demo_tokenizer

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

from training.demo import pretrain  # noqa: E402  (needs torch)


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok = demo_tokenizer.build_tokenizer(64, 512, n_scenes=300)
    demo_tokenizer.save_tokenizer(tok, path)
    return path


def test_tokenizer_end_is_top_id_and_kept_when_truncating(tokenizer_json):
    spec = pretrain.tokenizer_spec(pretrain.Settings())
    tok = Tokenizer.from_file(tokenizer_json, spec)
    ids = tok.encode(["a red object", "x " * 200, "Kids on a red slide at dusk!"])
    end = json.loads(tokenizer_json.read_text())["added_tokens"][-1]["id"]
    assert ids.shape == (3, spec.context_length) and ids.dtype == np.int64
    assert ids.max() == end
    assert (ids.argmax(1) == [4, spec.context_length - 1, ids[2].tolist().index(end)]).all()
    assert ids[0, 0] == 1 and (ids[0, 5:] == 0).all()  # <start> ... <end> then padding
    # lowercase normalisation, and the world's words are whole tokens
    assert (tok.encode(["A RED Object"]) == ids[:1]).all()
    # the engine's tokenizer (what the app runs) and the tokenizers object agree
    raw = demo_tokenizer.encode(
        __import__("tokenizers").Tokenizer.from_file(str(tokenizer_json)), ["a red object"]
    )
    assert (raw == ids[:1]).all()


def test_text_tower_pools_at_end_token(tokenizer_json):
    s = pretrain.Settings.smoke()
    vocab = json.loads(tokenizer_json.read_text())["added_tokens"][-1]["id"] + 1
    model = pretrain.build_model(pretrain.model_config(s, vocab), seed=0).eval()
    tok = Tokenizer.from_file(tokenizer_json, pretrain.tokenizer_spec(s))
    ids = torch.from_numpy(tok.encode(["a red object", "a blue object"]))
    with torch.no_grad():
        base = model.encode_text(ids)
        after = ids.clone()
        after[:, 10] = 5  # past <end>: must not matter (causal mask, pooled at <end>)
        assert torch.allclose(model.encode_text(after), base, atol=1e-6)
    assert not torch.allclose(base[0], base[1])


def test_trimmed_text_encoding_equals_full_context(tokenizer_json):
    """Training encodes texts cut to their length groups; it must be the same function."""
    s = pretrain.Settings.smoke()
    vocab = json.loads(tokenizer_json.read_text())["added_tokens"][-1]["id"] + 1
    model = pretrain.build_model(pretrain.model_config(s, vocab), seed=0).eval()
    tok = Tokenizer.from_file(tokenizer_json, pretrain.tokenizer_spec(s))
    rng = np.random.default_rng(0)
    texts = [captions.sample_caption(sc, rng).text for sc in world.scenes("train", 37)]
    texts[5] = "two objects: a large blue square at the top left and a small red star on the right"
    ids = torch.from_numpy(tok.encode(texts))
    assert len({int(n) for n in (ids != 0).sum(1)}) > 5  # lengths really differ
    with torch.no_grad():
        want = model.encode_text(ids)
        for groups in (1, 2, 3):
            got = pretrain.encode_text_trimmed(model, ids, groups)
            assert torch.allclose(got, want, atol=1e-5), groups
        # a batch shuffled the other way gives each text its own vector back
        perm = torch.from_numpy(rng.permutation(len(texts)))
        assert torch.allclose(pretrain.encode_text_trimmed(model, ids[perm]), want[perm], atol=1e-5)


@pytest.mark.parametrize("loss", ["siglip", "clip"])
def test_smoke_training_lowers_the_loss_on_a_fixed_batch(loss, tokenizer_json):
    s = replace(pretrain.Settings.smoke(loss), steps=40)
    model, history, timings = pretrain.train(s, tokenizer_json)
    first, last = history[0]["loss"], history[-1]["loss"]
    assert np.isfinite(last)
    assert last < 0.7 * first, history
    assert ("bias" in history[-1]) == (loss == "siglip")
    assert timings["train_s"] >= 0


def test_training_is_deterministic_from_seed(tokenizer_json):
    s = replace(pretrain.Settings.smoke(), steps=3)
    a = pretrain.train(s, tokenizer_json)[1]
    b = pretrain.train(s, tokenizer_json)[1]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


def test_training_images_go_through_the_runtime_preprocessing():
    from engine.models.preprocess import preprocess

    s = pretrain.Settings.smoke()
    scenes, pixels = pretrain.render_training_set(replace(s, n_train=3))
    assert pixels.shape == (3, 3, s.image_size, s.image_size)
    size = pretrain._render_size(np.random.default_rng([s.seed, 99, 1]), s.render_short_side)
    want = preprocess(world.render(scenes[1], size), pretrain.demo_preprocess(s))
    assert np.abs(pixels[1].astype(np.float32) - want).max() < 4e-3  # float16 storage


def test_cli_smoke_writes_a_model_folder_the_engine_loads(tmp_path):
    from engine.models.runtime import OnnxModel

    out, reg = tmp_path / "demo", tmp_path / "models" / "demo.json"
    assert (
        pretrain.main(
            ["--smoke", "--out", str(out), "--registry", str(reg), "--eval-gallery", "40"]
        )
        == 0
    )
    for name in (
        "model.json",
        "image.onnx",
        "text.onnx",
        "tokenizer.json",
        "open_clip_config.json",
        "open_clip_model.safetensors",
        "README.md",
        "metrics.json",
        "train_log.json",
    ):
        assert (out / name).is_file(), name
    spec = load_spec(reg)
    assert spec == load_spec(out / "model.json")
    assert spec.family == "siglip" and spec.source.bundled == "demo" and spec.logit_bias is not None
    assert spec.preprocess.resize_mode == "squash"
    assert set(spec.source.files) >= {"image.onnx", "text.onnx", "tokenizer.json"}
    assert not list(tmp_path.glob(".demo.stage.*")), "staging folder left behind"
    m = OnnxModel(out, prefer_cpu=True)
    v = m.encode_texts(["a red object"])
    assert v.shape == (1, spec.embed_dim)
    log = json.loads((out / "train_log.json").read_text())
    assert log["cpu"] and log["settings"]["caption_mix"]  # what the timings were measured on
    assert log["cpu"] in (out / "README.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["attributes"]["by_kind"].keys() == {"colour", "shape", "count", "position"}
    # the default tag threshold is measured and recorded where tagging reads it
    tagging = metrics["tagging"]
    assert spec.tag_threshold == tagging["threshold"] and 0 < spec.tag_threshold < 1
    # the open_clip checkpoint loads back and agrees with the ONNX text tower
    model = pretrain.load_checkpoint(out)
    tok = Tokenizer.from_file(out / "tokenizer.json", spec.tokenizer)
    with torch.no_grad():
        t = torch.nn.functional.normalize(
            model.encode_text(torch.from_numpy(tok.encode(["a red object"]))), dim=-1
        )
    assert float((t.numpy() * v).sum()) > 0.9999


@pytest.mark.parametrize("vision", ["resnet", "vit"])
def test_both_image_towers_build_from_the_config(vision):
    s = replace(pretrain.Settings.smoke(), vision=vision)
    if vision == "vit":
        s = replace(s, vision_width=32)  # one 32-wide head
    cfg = pretrain.model_config(s, 100)
    assert isinstance(cfg["vision_cfg"]["layers"], list) == (vision == "resnet")
    model = pretrain.build_model(cfg).eval()
    with torch.no_grad():
        out = model.encode_image(torch.zeros(2, 3, s.image_size, s.image_size))
    assert out.shape == (2, s.embed_dim)


def test_stage_blocks_and_temperature_reach_the_model():
    s = replace(pretrain.Settings.smoke(), stage_blocks=(1, 2, 3, 1), init_temperature=30.0)
    model = pretrain.build_model(pretrain.model_config(s, 100))
    stages = [model.visual.layer1, model.visual.layer2, model.visual.layer3, model.visual.layer4]
    assert [len(layer) for layer in stages] == [1, 2, 3, 1]
    assert float(model.logit_scale.exp()) == pytest.approx(30.0)
    a = pretrain._parse(["--out", "x", "--stage-blocks", "1,2,2,1", "--init-temperature", "20"])
    assert a.stage_blocks == (1, 2, 2, 1) and a.init_temperature == 20.0
    with pytest.raises(SystemExit):
        pretrain._parse(["--out", "x", "--stage-blocks", "1,2"])


def test_first_query_pool_is_the_stock_attention_pool():
    """Training swaps in a cheaper attention pool: it must compute the same function, and
    the stock one must be back afterwards (export traces it)."""
    s = replace(pretrain.Settings.smoke(), image_size=64, vision_width=16)
    model = pretrain.build_model(pretrain.model_config(s, 100))
    pool = model.visual.attnpool
    x = torch.randn(5, pool.k_proj.in_features, 2, 2, requires_grad=True)
    want = pool(x)
    (g_want,) = torch.autograd.grad(want.square().sum(), x)
    with pretrain._first_query_pool(model):
        got = pool(x)
        (g_got,) = torch.autograd.grad(got.square().sum(), x)
        assert "forward" in vars(pool)
    assert torch.allclose(got, want, atol=1e-5) and torch.allclose(g_got, g_want, atol=1e-5)
    assert "forward" not in vars(pool)


def test_pool_position_scale_scales_only_the_position_table():
    s = pretrain.Settings.smoke()
    base = pretrain.init_model(replace(s, pool_position_scale=1.0), 100)  # open_clip's own
    big = pretrain.init_model(replace(s, pool_position_scale=10.0), 100)
    a, b = base.state_dict(), big.state_dict()
    key = "visual.attnpool.positional_embedding"
    assert torch.allclose(b[key], 10 * a[key])
    assert all(torch.equal(a[k], b[k]) for k in a if k != key)
