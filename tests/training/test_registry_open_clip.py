"""The bundled registry entries say what open_clip's own tables say about each model."""

from __future__ import annotations

import pytest

from engine.models.registry import Registry

open_clip = pytest.importorskip("open_clip", reason="open_clip's tables are the reference")


def open_clip_entries():
    return [s for s in Registry.load() if s.source.open_clip_name]


def test_registry_has_the_models():
    keys = {s.key for s in Registry.load()}
    assert {
        "vit-b-32-256-datacomp",
        "mobileclip2-s0",
        "vit-b-16-siglip2-256",
        "siglip2-b-16-naflex",
        "vit-b-32-openai",
        "vit-b-16-siglip2",
        "xlm-roberta-base-vit-b-32",
        "vit-so400m-14-siglip2-378",
    } <= keys


@pytest.mark.parametrize("spec", open_clip_entries(), ids=lambda s: s.key)
def test_entry_matches_open_clip(spec):
    name, tag = spec.source.open_clip_name, spec.source.open_clip_pretrained
    assert tag in open_clip.list_pretrained_tags_by_model(name)
    pc = open_clip.get_pretrained_cfg(name, tag)
    cfg = open_clip.get_model_config(name)
    size = cfg["vision_cfg"]["image_size"]
    p = spec.preprocess
    assert p.size == (size, size)
    assert p.mean == pytest.approx(pc["mean"]) and p.std == pytest.approx(pc["std"])
    assert (p.interpolation, p.resize_mode) == (pc["interpolation"], pc["resize_mode"])
    assert spec.embed_dim == cfg["embed_dim"]
    text = cfg["text_cfg"]
    assert spec.tokenizer.context_length == text.get("context_length", 77)
    assert spec.family == ("siglip" if "init_logit_bias" in cfg else "clip")
    canonical = (text.get("tokenizer_kwargs") or {}).get("clean") == "canonicalize"
    if spec.source.layout != "photosift":
        # A ready export (its publisher's tokenizer files): the cleaning open_clip applies.
        assert (spec.tokenizer.clean == "canonicalize") == canonical
        if spec.tokenizer.kind == "clip_bpe":
            assert "hf_tokenizer_name" not in text
        return
    if "hf_tokenizer_name" in text:  # converted with torch from open_clip's own repo
        assert spec.tokenizer.kind == "hf" and spec.tokenizer.hf_repo == text["hf_tokenizer_name"]
        assert spec.family == "siglip"
    else:
        assert spec.tokenizer.kind == "clip_bpe"
    assert spec.source.hf_repo == pc["hf_hub"].rstrip("/")
