"""Registry rules for ready exports: a model that has one is fetched in its publisher's layout,
never converted with torch, and says where its SigLIP scale and bias come from."""

from __future__ import annotations

from engine.models.layouts import LAYOUTS
from engine.models.registry import Registry

# Converted with torch because no ready export qualifies; each entry's notes say why.
NO_READY_EXPORT = {"mobileclip2-s0", "siglip2-b-16-naflex", "siglip2-so400m-16-naflex"}


def test_models_with_a_ready_export_need_no_torch():
    for spec in Registry.load():
        if spec.source.bundled:
            continue
        if spec.key in NO_READY_EXPORT:
            assert spec.source.layout == "photosift" and "No ready" in spec.extra.get("notes", ""), spec.key
        else:
            assert spec.source.layout in LAYOUTS and spec.source.layout != "photosift", spec.key
            assert spec.source.hf_repo, spec.key


def test_siglip_entries_carry_their_learned_scale_and_bias_with_a_source():
    for spec in Registry.load():
        if spec.family != "siglip" or spec.source.bundled or spec.key in NO_READY_EXPORT:
            continue
        assert spec.logit_scale and spec.logit_scale > 50, spec.key  # learned, not init (exp(log 10))
        assert spec.logit_bias is not None and spec.logit_bias < -12, spec.key  # not the -10 init
        assert "logit_source" in spec.extra, spec.key


def test_the_required_entries_are_there():
    keys = {s.key: s for s in Registry.load()}
    assert keys["vit-b-32-256-datacomp"].source.layout == "rclip" and keys["vit-b-32-256-datacomp"].recommended
    assert keys["vit-b-32-openai"].source.hf_repo == "immich-app/ViT-B-32__openai"
    assert keys["vit-b-16-siglip2"].source.hf_repo == "immich-app/ViT-B-16-SigLIP2__webli"
    assert keys["xlm-roberta-base-vit-b-32"].source.layout == "immich"
    assert keys["vit-so400m-14-siglip2-378"].embed_dim == 1152
