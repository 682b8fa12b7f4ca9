"""Each hub layout, made by a re-implementation of its publisher's exporter (training.hub_exports),
imported as a user imports a downloaded folder, and run by the engine: image and text vectors
must match the torch forward of the same weights (open_clip, or transformers for
transformers.js exports) at cosine >= 0.9999, with the very token ids the publisher's own
tokenizer gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from engine.hub import import_model_folder  # noqa: E402
from engine.install import import_folder  # noqa: E402
from engine.registry import Registry, Source  # noqa: E402
from engine.runtime import OnnxModel  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.tokenizer import CLEANERS  # noqa: E402
from training import hub_exports as hx  # noqa: E402
from training.tiny import build_tiny  # noqa: E402

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
def made(tmp_path_factory):
    """Repos in each layout, built once for the module: name -> (repo folder, torch reference)."""
    root = tmp_path_factory.mktemp("hub-layouts")
    out = {}
    clip = build_tiny("vit-b-32-256", root / "work")
    hx.set_pretrained_preprocess(clip)
    out["rclip"] = (hx.export_rclip(clip.model, root / "rclip-models"), ("open_clip", clip.model))
    # rclip's repo describes nothing: photosift knows it by its registry entry, here the tiny's.
    out["rclip-entry"] = clip.spec.with_(
        key="tiny-rclip",
        source=Source(
            layout="rclip", hf_repo="yurijmikhalevich/rclip-models", subfolder=hx.RCLIP_SUBDIR
        ),
    )
    clip_tok = hx.clip_tokenizer_dir(root / "clip-tokenizer")
    out["immich-clip"] = (hx.export_immich(clip.model, hx.open_clip_cfg(clip), clip_tok,
                                           root / "ViT-B-32__openai"), ("open_clip", clip.model))  # fmt: skip
    sig = build_tiny("vit-b-16-siglip2-256", root / "work")
    hx.set_pretrained_preprocess(sig)
    gemma = hx.gemma_tokenizer_dir(root / "gemma-tokenizer")
    out["immich-siglip2"] = (hx.export_immich(sig.model, hx.open_clip_cfg(sig), gemma,
                                              root / "ViT-B-16-SigLIP2__webli"), ("open_clip", sig.model))  # fmt: skip
    out["immich-siglip2-external"] = (
        hx.export_immich(sig.model, hx.open_clip_cfg(sig), gemma, root / "ViT-SO400M-14-SigLIP2-378__webli",
                         external_data="uuid"), ("open_clip", sig.model))  # fmt: skip
    xlmr_tok = hx.xlmr_tokenizer_dir(root / "xlmr-tokenizer")
    xlmr, xlmr_cfg = hx.tiny_open_clip_xlmr(xlmr_tok, root / "work")
    out["immich-xlmr"] = (hx.export_immich(xlmr, xlmr_cfg, xlmr_tok, root / "XLM-Roberta-Base-ViT-B-32__laion5b_s13b_b90k",
                                           external_data="tensors"), ("open_clip", xlmr))  # fmt: skip
    hf_clip = hx.tiny_hf_clip()
    out["tfjs-clip"] = (hx.export_transformersjs(hf_clip, clip_tok, root / "clip-vit-base-patch32"),
                        ("transformers", hf_clip))  # fmt: skip
    from transformers import AutoTokenizer

    hf_sig = hx.tiny_hf_siglip(len(AutoTokenizer.from_pretrained(str(gemma))))
    out["tfjs-siglip"] = (hx.export_transformersjs(hf_sig, gemma, root / "siglip2-base-patch16-256-ONNX",
                                                   external_data=True), ("transformers", hf_sig))  # fmt: skip
    return out


LAYOUT_OF = {"rclip": "rclip", "immich-clip": "immich", "immich-siglip2": "immich",
             "immich-siglip2-external": "immich", "immich-xlmr": "immich", "tfjs-clip": "transformers.js",
             "tfjs-siglip": "transformers.js"}  # fmt: skip


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


@pytest.mark.parametrize("name", sorted(LAYOUT_OF))
def test_layout_matches_torch(made, name, tmp_path):
    repo, ref = made[name]
    settings = Settings(data_dir=tmp_path / "data")
    if name == "rclip":
        entry = made["rclip-entry"]
        spec = import_folder(repo, settings, Registry({entry.key: entry}))
        assert spec.key == entry.key
    else:
        spec = import_model_folder(repo, settings)
    assert spec.source.layout == LAYOUT_OF[name]
    model = OnnxModel(settings.models_dir / spec.key, prefer_cpu=True)
    h, w = model.input_size
    pixels = _pixels(3, h)
    ids = model.tokenizer.encode(TEXTS)
    if name == "rclip":  # open_clip's own SimpleTokenizer, what rclip re-implements
        import open_clip

        np.testing.assert_array_equal(ids, open_clip.tokenize(TEXTS).numpy())
    else:
        files = repo / "textual" if name.startswith("immich") else repo
        np.testing.assert_array_equal(ids, _upstream_ids(files, spec, TEXTS))
    want_img, want_txt = _reference(ref, pixels, ids)
    got_img = model.encode_images(pixels)
    got_txt = model.encode_texts(TEXTS)
    assert _cos(got_img, want_img).min() >= MIN_COS
    assert _cos(got_txt, want_txt).min() >= MIN_COS
