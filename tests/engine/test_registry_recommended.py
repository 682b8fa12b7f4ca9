"""One real model is marked as the one to offer first; the mark is data, validated, and
never spreads to model folders made from that model (exports, fine-tunes). And a model's
own default tag threshold, validated the same way."""

from __future__ import annotations

import json

import pytest

from engine.errors import ModelError
from engine.models.hub import full_registry
from engine.models.registry import Registry, load_spec, save_spec, spec_from_json
from engine.settings import Settings


def test_the_bundled_registry_recommends_one_real_model():
    spec = Registry.load().recommended()
    assert spec is not None and spec.key == "vit-b-32-256-datacomp"
    assert spec.source.bundled is None and spec.size_mb  # a download, and its size is known
    assert sum(s.recommended for s in Registry.load()) == 1


def test_recommended_must_be_a_boolean_and_is_written_only_where_set(tmp_path):
    base = json.loads(json.dumps(Registry.load().get("vit-b-32-256-datacomp").to_json()))
    assert base["recommended"] is True
    with pytest.raises(ModelError, match="'recommended' must be true or false"):
        spec_from_json({**base, "recommended": "yes"}, where="x.json")
    plain = spec_from_json({k: v for k, v in base.items() if k != "recommended"})
    assert plain.recommended is False and "recommended" not in plain.to_json()


def test_two_recommended_models_are_an_error(tmp_path):
    for key in ("a", "b"):
        d = Registry.load().get("vit-b-32-256-datacomp").to_json()
        (tmp_path / f"{key}.json").write_text(json.dumps({**d, "key": key}))
    with pytest.raises(ModelError, match="more than one"):
        Registry.load(tmp_path).recommended()


def test_a_model_folder_made_from_the_recommended_model_is_not_recommended(tmp_path):
    """A fine-tune copies its base's entry (spec.with_): it must not become a second pick."""
    settings = Settings(data_dir=tmp_path / "data")
    base = Registry.load().get("vit-b-32-256-datacomp")
    folder = settings.models_dir / "my-finetune"
    folder.mkdir(parents=True)
    save_spec(base.with_(key="my-finetune", base_model=base.key), folder / "model.json")
    assert load_spec(folder / "model.json").recommended  # the file carries it ...
    reg = full_registry(settings)
    assert "my-finetune" in reg and not reg.get("my-finetune").recommended  # ... it is ignored
    assert reg.recommended().key == base.key


def test_a_models_own_tag_threshold_is_a_probability(tmp_path):
    base = json.loads(json.dumps(Registry.load().get("photosift-demo").to_json()))
    assert 0 < base["tag_threshold"] < 1  # measured when the demo model was made
    for bad in (1.5, 0, "0.3", True):
        with pytest.raises(ModelError, match="x.json: field 'tag_threshold' must be a probability"):
            spec_from_json({**base, "tag_threshold": bad}, where="x.json")
    plain = spec_from_json({k: v for k, v in base.items() if k != "tag_threshold"})
    assert plain.tag_threshold is None and "tag_threshold" not in plain.to_json()
    save_spec(spec_from_json({**base, "tag_threshold": 0.25}), tmp_path / "m.json")
    assert load_spec(tmp_path / "m.json").tag_threshold == 0.25
