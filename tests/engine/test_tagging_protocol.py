"""Vocabularies and tags through the engine process: the methods the app's tag UI calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.sampledata import world_photos
from engine.models.registry import Registry
from engine.service import protocol as P
from engine.service.client import EngineClient, EngineError
from engine.settings import Settings
from tests.engine.modelkit import MODEL_KEY, install_test_model
from tests.helpers import Events

# the test model's own default threshold (measured when it was made; SigLIP's default is 0.1)
DEMO_TAG_THRESHOLD = Registry.load().get(MODEL_KEY).tag_threshold

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("tagproto")
    data = root / "data"
    install_test_model(Settings(data_dir=data))
    photos = world_photos(root / "photos", 24)
    events = Events()
    c = EngineClient(
        data_dir=data, model=MODEL_KEY, on_event=events, extra_args=["--watch-quiet", "0.2"]
    )
    c.events = events
    c.start(timeout=TIMEOUT)
    job = c.request("add_folder", {"path": str(root / "photos")})["job"]
    events.wait("job_done", job, "the scan job finishes")
    c.root, c.photos = root, photos
    yield c
    c.close()


def test_vocabulary_lifecycle_and_tag_queries(engine):
    lst = engine.request("vocab_list")
    assert lst["vocabularies"] == [] and "shapes-world" in lst["starters"]
    # auto off (e.g. imported keywords): created, shown, and no automatic tags; then on
    kw = engine.request("vocab_create", {"name": "kw", "labels": ["red"], "auto": False})
    assert kw["vocab"]["auto"] is False and kw["tagged"]["assigned"] == 0
    on = engine.request("vocab_update", {"name": "kw", "auto": True})
    assert on["vocab"]["auto"] is True and on["tagged"]["assigned"] > 0
    engine.request("vocab_delete", {"name": "kw"})
    res = engine.request("vocab_create", {"name": "world", "starter": "shapes-world"})
    P.check(res, P.VocabChangeResult, "result")
    assert res["tagged"]["photos"] == 24 and res["tagged"]["assigned"] > 0
    info = res["vocab"]
    red = next(lab for lab in info["label_list"] if lab["name"] == "red")
    assert (
        red["threshold_source"] == "default"
        and red["threshold"] == info["default_threshold"] == DEMO_TAG_THRESHOLD
    )

    counts = engine.request("tag_counts", {"vocab": "world"})["counts"]
    for c in counts:
        P.check(c, P.TagCount, "count")
    by = {c["label"]: c["tagged"] for c in counts}
    # Red photos are named after their first object: every one of them is tagged red.
    named_red = [p for p in engine.photos if "-red-" in p.name]
    hits = engine.request("tag_photos", {"vocab": "world", "label": "red", "k": 100})
    P.check(hits, P.TagPhotosResult, "result")
    assert hits["total"] == by["red"] and {str(p) for p in named_red} <= {
        h["path"] for h in hits["hits"]
    }
    scores = [h["score"] for h in hits["hits"]]
    assert scores == sorted(scores, reverse=True) and min(scores) >= DEMO_TAG_THRESHOLD

    # The slider: a preview says who would leave; saving does exactly that.
    prev = engine.request(
        "tag_threshold", {"vocab": "world", "label": "red", "threshold": 0.99, "preview": True}
    )
    P.check(prev, P.TagThresholdResult, "result")
    assert prev["left"] and not prev["entered"] and prev["tagged"] == by["red"] - len(prev["left"])
    assert [h["image_id"] for h in prev["left_hits"]] and prev["left_total"] == len(prev["left"])
    assert {h["image_id"] for h in prev["left_hits"]} == set(prev["left"]) and prev[
        "entered_hits"
    ] == []
    # browsing by tag: search with only filters.tags, hits in search's shape, by tag score
    browse = engine.request(
        "search", {"filters": {"tags": [{"vocab": "world", "label": "red"}]}, "k": 100}
    )
    P.check(browse, P.SearchResult, "result")
    assert {h["path"] for h in browse["hits"]} == {h["path"] for h in hits["hits"]}
    assert [h["score"] for h in browse["hits"]] == scores
    saved = engine.request("tag_threshold", {"vocab": "world", "label": "red", "threshold": 0.99})
    assert saved["left"] == prev["left"] and saved["threshold_source"] == "user"
    engine.request("tag_threshold", {"vocab": "world", "label": "red", "threshold": None})

    # Confirm and reject on a photo: the answer shows on the photo and in the counts.
    photo = str(named_red[0])
    ans = engine.request(
        "tag_answer", {"vocab": "world", "label": "red", "photos": [photo], "state": "rejected"}
    )
    P.check(ans, P.TagAnswerResult, "result")
    tags = engine.request("tag_photo", {"photo": photo, "vocab": "world"})["tags"]
    assert {"vocab": "world", "label": "red", "state": "rejected"}.items() <= next(
        t for t in tags if t["label"] == "red").items()  # fmt: skip
    info = engine.request("photo_info", {"path": photo})
    assert any(t["label"] == "red" and t["state"] == "rejected" for t in info["tags"])
    assert photo not in {
        h["path"] for h in engine.request("tag_photos", {"vocab": "world", "label": "red"})["hits"]
    }
    rejected = engine.request("tag_photos", {"vocab": "world", "label": "red", "state": "rejected"})
    assert [h["path"] for h in rejected["hits"]] == [photo]

    # Search combined with a tag filter: only photos carrying the tag come back.
    red_now = {
        h["path"]
        for h in engine.request("tag_photos", {"vocab": "world", "label": "red", "k": 100})["hits"]
    }
    found = engine.request("search", {"text": "a circle", "k": 50,
                                      "filters": {"tags": [{"vocab": "world", "label": "red"}]}})["hits"]  # fmt: skip
    assert found and {h["path"] for h in found} <= red_now

    # Edit: rename a label (its answers stay), add one, rename the vocabulary.
    upd = engine.request("vocab_update", {"name": "world", "rename": "shapes", "rename_labels": {"red": "crimson"},
                                          "add": [{"name": "something red", "prompts": ["something red"]}]})  # fmt: skip
    names = [lab["name"] for lab in upd["vocab"]["label_list"]]
    assert upd["vocab"]["name"] == "shapes" and "crimson" in names and "something red" in names
    crimson = next(lab for lab in upd["vocab"]["label_list"] if lab["name"] == "crimson")
    assert crimson["rejected"] == 1

    # Export, import under another name, delete.
    out = engine.root / "shapes.csv"
    assert engine.request("vocab_export", {"name": "shapes", "path": str(out)})["labels"] == len(
        names
    )
    imp = engine.request("vocab_import", {"path": str(out), "name": "copy"})
    assert [lab["name"] for lab in imp["vocab"]["label_list"]] == names
    assert engine.request("vocab_delete", {"name": "copy"}) == {"deleted": "copy"}
    assert [v["name"] for v in engine.request("vocab_list")["vocabularies"]] == ["shapes"]


def test_bad_input_gets_clear_errors(engine, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"labels": ["cat", "dog"]}, indent=1).replace('"dog"', '"Cat"'))
    with pytest.raises(EngineError) as e:
        engine.request("vocab_import", {"path": str(bad)})
    assert (
        e.value.code == P.ErrorCode.QUERY_ERROR
        and "line 4" in e.value.message
        and "'Cat'" in e.value.message
    )
    for method, params, needle in (
        ("vocab_create", {"name": "x", "labels": ["a", ""]}, "label 2"),
        ("vocab_create", {"name": "x", "labels": ["a", "A"]}, "already there"),
        ("vocab_get", {"name": "nope"}, "no vocabulary named 'nope'"),
        ("tag_photos", {"vocab": "nope", "label": "x"}, "no vocabulary"),
    ):
        with pytest.raises(EngineError) as e:
            engine.request(method, params)
        assert e.value.code == P.ErrorCode.QUERY_ERROR and needle in e.value.message, (
            method,
            e.value.message,
        )
    with pytest.raises(EngineError) as e:
        engine.request("tag_threshold", {"vocab": "x", "label": "y"})
    assert e.value.code == P.ErrorCode.INVALID_PARAMS
    # Labels in any script, through JSON lines and back.
    res = engine.request("vocab_create", {"name": "多语言", "labels": ["猫", "قطة", "🐱"]})
    assert [lab["name"] for lab in res["vocab"]["label_list"]] == ["猫", "قطة", "🐱"]
    engine.request("vocab_delete", {"name": "多语言"})
    assert Path(bad).is_file()
