"""The tag threshold the bundled demo model records is what it measures, and it tags better
than the SigLIP family default would."""

from __future__ import annotations

from engine.models.registry import load_spec, resources_dir
from training.demo import captions, world
from training.demo import evaluation as demo_eval

DEMO = resources_dir() / "demo"


def test_label_names_mean_what_they_say():
    names = dict(captions.label_names())
    assert {"red", "circle", "one object", "three objects", "something on the left"} <= set(names)
    assert not set(names) & set(world.RESERVE_KINDS)  # only what pretraining named
    sc = world.scenes("test", 200)
    truth = world.match_matrix(sc, list(names.values()))
    for j, (name, meaning) in enumerate(names.items()):
        assert [world.matches(s, meaning) for s in sc] == list(truth[:, j]), name
        assert 0 < truth[:, j].sum() < len(sc), name  # every label is true of some scenes


def test_the_bundled_demo_records_the_threshold_it_measures():
    spec = load_spec(DEMO / "model.json")
    got = demo_eval.tag_threshold_folder(DEMO, n=1000)
    assert got is not None and spec.tag_threshold == got["threshold"]
    assert got["labels"] == len(captions.label_names())
    # on the half the threshold was not fitted on: better than the family default, and good
    fam = got["family_default"]
    assert got["f1"] > fam["f1"] and got["precision"] > fam["precision"], got
    assert got["precision"] >= 0.95 and got["recall"] >= 0.95, got
