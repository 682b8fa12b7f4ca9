"""Tagging through the product path: demo model, files indexed by the engine, tags from stored vectors.

The quality checks would fail if scoring broke (a wrong sign, a missing bias or scale,
thresholds compared on the wrong side), and the rest pins what users rely on: answers
win and survive re-tags and model switches, new photos are tagged as they are indexed,
edits made while tagging runs are not lost, the v1 -> v2 migration keeps everything.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from app.sampledata import world_photos
from engine.errors import QueryError
from engine.library import DEMO_MODEL, Library
from engine.search import Filters, Query
from engine.settings import Settings
from engine.store.db import _SCHEMA_V1, SCHEMA_VERSION, LibraryDB
from engine.tags import tagstore as S
from engine.tags.scoring import FAMILY_THRESHOLD, NONE_PROMPTS
from engine.tags.tagging import Tagger, confirmed_examples, label_texts
from engine.tags.vocab import VocabularyError, make_vocabulary
from training.demo import world

N = 48
COLOURS = ["red", "blue", "green", "yellow", "white"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("tagging")
    world_photos(root / "photos", N)
    lib = Library(Settings(data_dir=root / "data"), model_key=DEMO_MODEL)
    lib.add_folder(root / "photos")
    lib.scan()
    lib.root = root
    yield lib
    lib.close()


def colour_vocab(name="colours"):
    return make_vocabulary(
        name, [{"name": c, "prompts": [f"a {c} object", f"something {c}"]} for c in COLOURS]
    )


def truth(lib, n=N):
    """image id -> set of colours present, from the world's own scene description."""
    scenes = world.scenes("test", n)
    out = {}
    for i, sc in enumerate(scenes):
        o = sc.objects[0]
        path = str(lib.root / "photos" / f"{i:04d}-{o.colour}-{o.kind}.jpg")
        out[lib.db.image_id_for_path(path)] = {ob.colour for ob in sc.objects}
    return out


def effective(lib, tg, vocab, label):
    return S.effective_ids(lib.db, tg.model_id, S.load(lib.db, vocab).label(label).id)


def test_colour_tags_are_right_at_the_default_threshold(lib):
    S.create(lib.db, colour_vocab("q"))
    tg = lib.tagger()
    rep = tg.run("q")
    assert rep.photos == N and rep.labels == len(COLOURS)
    t = truth(lib)
    tp = fp = fn = 0
    for c in COLOURS:
        got = effective(lib, tg, "q", c)
        want = {i for i, cs in t.items() if c in cs}
        tp, fp, fn = tp + len(got & want), fp + len(got - want), fn + len(want - got)
    precision, recall = tp / max(1, tp + fp), tp / max(1, tp + fn)
    # The demo model knows colours (zero-shot accuracy 1.0): a sign error, a missing bias or
    # scale, or a flipped comparison each sends one of these far down.
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    # The probabilities themselves: confident on a true colour, low on an absent one.
    i = next(i for i, cs in t.items() if cs == {"red"})
    tags = {d["label"]: d for d in tg.photo_tags(i, "q", all_labels=True)}
    assert tags["red"]["score"] > 0.5 and tags["red"]["tagged"]
    assert tags["blue"]["score"] < 0.1 and not tags["blue"]["tagged"]
    S.delete(lib.db, "q")


def test_answers_win_survive_retag_and_model_switch_and_refine(lib):
    S.create(lib.db, colour_vocab("a"))
    tg = lib.tagger()
    tg.run("a")
    t = truth(lib)
    red = sorted(i for i, cs in t.items() if "red" in cs)
    not_red = sorted(i for i, cs in t.items() if "red" not in cs)
    tagged = effective(lib, tg, "a", "red")
    victim = sorted(tagged)[0]
    outsider = next(i for i in not_red if i not in tagged)
    r = tg.answer("a", "red", [victim], "rejected")
    assert victim in r["left"] and victim not in effective(lib, tg, "a", "red")
    r = tg.answer("a", "red", [outsider], "confirmed")
    assert outsider in r["entered"] and r["threshold_source"] == "calibrated"
    tg.run("a")  # a full re-tag: answers still win
    assert victim not in effective(lib, tg, "a", "red") and outsider in effective(
        lib, tg, "a", "red"
    )
    # Another model (same image space, another text side): no automatic tags yet, answers apply.
    other = Tagger(lib.db, _Renamed(lib.model(), "demo-finetuned"), lib.space_id)
    assert other.model_id != tg.model_id
    other.run("a")
    assert outsider in effective(lib, other, "a", "red") and victim not in effective(
        lib, other, "a", "red"
    )
    # The contract fine-tuning codes against.
    ex = confirmed_examples(lib.db, "a")
    assert ex["red"] == ([outsider], [victim]) and ex["blue"] == ([], [])
    texts = label_texts(lib.db, "a")
    assert texts["red"] == ["a red object", "something red"]
    # Confirmed examples refine the label: the photo most like them (the closest to their
    # mean, answered itself by no one) gains. (Any other red photo need not: the demo's
    # vectors also say shapes, places and counts, which the examples pull towards too.)
    examples = red[2:8]
    vecs = lib.db.vectors_for(lib.space_id, red)
    centre = np.mean([vecs[i] for i in examples], axis=0)
    near = max(
        (i for i in red if i not in (*examples, victim, outsider)), key=lambda i: vecs[i] @ centre
    )
    before = {d["label"]: d["score"] for d in tg.photo_tags(near, "a", all_labels=True)}["red"]
    tg.answer("a", "red", examples, "confirmed")
    after = {d["label"]: d["score"] for d in tg.photo_tags(near, "a", all_labels=True)}["red"]
    assert after > before, (before, after)
    tg.answer("a", "red", [victim, outsider, *examples], "none")
    assert confirmed_examples(lib.db, "a")["red"] == ([], [])
    S.delete(lib.db, "a")


class _Renamed:
    """The demo model under another key: what a fine-tuned text side looks like to tagging."""

    def __init__(self, model, key):
        self._m, self.spec = model, model.spec.with_(key=key)

    def encode_texts(self, texts):
        return self._m.encode_texts(texts)


def test_the_models_own_threshold_is_the_default_and_the_familys_without_it(lib):
    """A model.json's tag_threshold (measured for that model) is what labels with no user,
    calibrated or vocabulary threshold use; a model without one gets its family's."""
    S.create(lib.db, colour_vocab("own"))
    demo = lib.model()
    assert demo.spec.tag_threshold is not None  # the bundled demo measured its own
    for key, own, want in (("own-0.3", 0.3, 0.3), ("own-none", None, FAMILY_THRESHOLD["siglip"])):
        m = _Renamed(demo, key)
        m.spec = m.spec.with_(tag_threshold=own)
        tg = Tagger(lib.db, m, lib.space_id)
        assert tg.scoring.default_threshold() == want
        tg.run("own")
        info = tg.vocab_info("own")
        assert info["default_threshold"] == want
        for lab in info["label_list"]:
            assert lab["threshold"] == want and lab["threshold_source"] == "default"
            tagged = effective(lib, tg, "own", lab["name"])
            for i in truth(lib):
                (d,) = [
                    d for d in tg.photo_tags(i, "own", all_labels=True) if d["label"] == lab["name"]
                ]
                assert (i in tagged) == (d["score"] >= want), (key, lab["name"], d)
    S.delete(lib.db, "own")


def test_threshold_preview_matches_saving(lib):
    S.create(lib.db, colour_vocab("th"))
    tg = lib.tagger()
    tg.run("th")
    before = effective(lib, tg, "th", "blue")
    prev = tg.threshold_change("th", "blue", 0.9, preview=True)
    assert effective(lib, tg, "th", "blue") == before  # a preview saves nothing
    saved = tg.threshold_change("th", "blue", 0.9)
    assert saved["left"] == prev["left"] and saved["entered"] == prev["entered"] == []
    assert saved["threshold_source"] == "user" and effective(lib, tg, "th", "blue") == before - set(
        saved["left"]
    )
    low = tg.threshold_change("th", "blue", 0.001)
    assert set(low["entered"]) >= set(saved["left"])
    # a preview carries the moved photos themselves, so the app needs no second query
    pv = tg.threshold_change("th", "blue", 0.001, preview=True)
    assert pv["entered"] == [] and pv["left"] == [] and pv["entered_hits"] == []
    pv = tg.threshold_change("th", "blue", 0.99, preview=True)
    assert pv["left_total"] == len(pv["left"]) > 0 and pv["entered_total"] == 0
    assert [h["image_id"] for h in pv["left_hits"]] == sorted(
        pv["left"], key=lambda i: -next(h["score"] for h in pv["left_hits"] if h["image_id"] == i)
    )
    scores = {d["image_id"]: d["score"] for d in tg.photos("th", "blue", k=500)[0]}
    for h in pv["left_hits"]:
        assert h["state"] == "auto" and h["online"] and h["path"].endswith(".jpg")
        assert abs(h["score"] - scores[h["image_id"]]) < 1e-5 and h["score"] < 0.99
    from engine.tags import tagging

    capped = tagging.moved_hits(
        lib.db, tg, tg.plan(S.load(lib.db, "th")), 1, pv["left"], "auto", cap=2
    )
    assert [h["image_id"] for h in capped] == [h["image_id"] for h in pv["left_hits"][:2]]
    back = tg.threshold_change("th", "blue", None)
    assert back["threshold_source"] == "default" and effective(lib, tg, "th", "blue") == before
    with pytest.raises(VocabularyError):
        tg.threshold_change("th", "blue", 1.5)
    S.delete(lib.db, "th")


def test_vocabulary_edited_while_tagging_runs(lib, monkeypatch):
    S.create(lib.db, colour_vocab("e"))
    tg = lib.tagger()
    real = Tagger._compute
    calls = []

    def compute_then_edit(self, plan, ids, x, cols=None, scored=None):
        out = real(self, plan, ids, x, cols, scored)
        if not calls:  # the user edits the vocabulary while the first computation runs
            S.update(lib.db, "e", remove=["white"], add=[make_vocabulary("x", ["purple"]).labels[0]],
                     rename_labels={"red": "crimson"})  # fmt: skip
        calls.append(plan.version)
        return out

    monkeypatch.setattr(Tagger, "_compute", compute_then_edit)
    tg.run("e")
    assert len(calls) == 2 and calls[1] == calls[0] + 1  # noticed and recomputed
    sv = S.load(lib.db, "e")
    assert [sl.label.name for sl in sv.labels] == ["crimson", "blue", "green", "yellow", "purple"]
    counts = {c["label"]: c["tagged"] for c in tg.counts("e")}
    assert counts["purple"] > 0 and counts["crimson"] > 0 and "white" not in counts
    stray = lib.db.conn.execute(
        "SELECT COUNT(*) FROM auto_tags WHERE label_id NOT IN (SELECT id FROM labels)"
    )
    assert stray.fetchone()[0] == 0
    S.delete(lib.db, "e")


def test_new_photos_tagged_as_indexed_and_search_by_tag(lib, tmp_path):
    S.create(lib.db, colour_vocab("n"))
    tg = lib.tagger()
    tg.run("n")
    before = tg.counts("n")
    extra = world_photos(lib.root / "photos", 8, start=N)  # 8 more scenes arrive
    lib.scan()
    after = tg.counts("n")
    assert sum(c["tagged"] for c in after) > sum(c["tagged"] for c in before)
    new_ids = {lib.db.image_id_for_path(str(p)) for p in extra}
    assert any(i in effective(lib, tg, "n", c) for c in COLOURS for i in new_ids)
    assert tg.ensure_current("n") is None  # the hook kept it current: nothing to redo
    red = effective(lib, tg, "n", "red")
    hits = lib.search(Query(text="a circle", k=100, filters=Filters(tags=[("n", "red")])))
    assert hits and {h.image_id for h in hits} <= red
    both = lib.search(
        Query(text="a circle", k=100, filters=Filters(tags=[("n", "red"), ("n", "blue")]))
    )
    assert {h.image_id for h in both} <= red & effective(lib, tg, "n", "blue")
    S.delete(lib.db, "n")


def test_clip_family_scoring_is_per_label_against_none(lib):
    """CLIP family: each label is scored by a two-way softmax against the "none of these"
    prototype, p = sigmoid(100 (cos(x, label) - cos(x, none))), independently per label.

    Checked against that rule on the library's stored vectors, not by tag quality: the demo
    model standing in is sigmoid-trained, and for it the generic prompts are no neutral
    baseline ("a picture of a shape" is true of every image, so it scores high), so whether
    its tags come out right under CLIP scoring says nothing about the scoring."""
    S.create(lib.db, colour_vocab("c"))
    S.create(
        lib.db,
        make_vocabulary("c1", [{"name": "red", "prompts": ["a red object", "something red"]}]),
    )
    clip = _Renamed(lib.model(), "demo-as-clip")
    clip.spec = clip.spec.with_(
        family="clip", logit_scale=None, logit_bias=None, tag_threshold=None
    )
    tg = Tagger(lib.db, clip, lib.space_id)
    assert tg.scoring.scale == 100.0
    none = clip.encode_texts(list(NONE_PROMPTS)).mean(0)
    np.testing.assert_allclose(tg.scoring.none_vec, none / np.linalg.norm(none), atol=1e-6)
    tg.run("c")
    tg.run("c1")
    sv = S.load(lib.db, "c")
    labels = tg.label_vectors(sv)
    ids = sorted(truth(lib))
    vecs = lib.db.vectors_for(lib.space_id, ids)
    tagged_some = 0
    for i in ids:
        x = vecs[i]
        tags = {d["label"]: d for d in tg.photo_tags(i, "c", all_labels=True)}
        for sl, t in zip(sv.labels, labels, strict=True):
            want = 1 / (1 + np.exp(-100.0 * (x @ t - x @ tg.scoring.none_vec)))
            got = tags[sl.label.name]
            assert got["score"] == pytest.approx(want, abs=1e-4), (i, sl.label.name)
            assert got["tagged"] == (want >= 0.5), (i, sl.label.name, want)
            tagged_some += got["tagged"]
        # independent per label: "red" alone in a vocabulary scores exactly as among five
        (alone,) = tg.photo_tags(i, "c1", all_labels=True)
        assert alone["score"] == pytest.approx(tags["red"]["score"], abs=1e-5)
    assert 0 < tagged_some < len(ids) * len(COLOURS)  # the rule decides, both ways
    S.delete(lib.db, "c")
    S.delete(lib.db, "c1")


def test_v1_database_migrates_with_nothing_lost(tmp_path):
    path = tmp_path / "v1.db"
    c = sqlite3.connect(path)
    c.executescript(_SCHEMA_V1)
    c.execute("INSERT INTO meta VALUES('schema_version', '1')")
    c.execute("INSERT INTO folders(id, path, added_at) VALUES(1, '/p', 1.0)")
    c.execute("INSERT INTO images(id, hash, added_at) VALUES(7, 'abc', 1.0)")
    c.execute(
        "INSERT INTO files(path, folder_id, image_id, size, mtime_ns, ext) VALUES('/p/a.jpg', 1, 7, 3, 4, 'jpg')"
    )
    c.execute("INSERT INTO spaces(id, key, dim) VALUES(1, 's', 4)")
    c.execute("INSERT INTO vectors VALUES(1, 7, ?, 1)", (np.ones(4, np.float32).tobytes(),))
    c.commit()
    c.close()
    db = LibraryDB(path)
    assert SCHEMA_VERSION == 4 and db._version() == 4
    assert db.counts()["files"] == 1 and db.vectors_for(1, [7])[7].tolist() == [1, 1, 1, 1]
    S.create(db, make_vocabulary("v", ["cat"]))
    sv = S.load(db, "v")
    S.set_answers(db, sv.labels[0].id, [7], S.CONFIRMED)
    db.conn.execute("INSERT INTO auto_tags VALUES(?, ?, 7)", (sv.labels[0].id, S.model_id(db, "m")))
    db.conn.execute("DELETE FROM files")
    db._mark_orphans()
    db.gc_orphans()  # the photo goes: its automatic tags go with it, its answer stays (by hash)
    assert db.conn.execute("SELECT COUNT(*) FROM auto_tags").fetchone()[0] == 0
    assert db.conn.execute("SELECT COUNT(*) FROM tag_answers").fetchone()[0] == 1
    db.close()


def test_failed_migration_leaves_v1_untouched(tmp_path, monkeypatch):
    from engine.errors import DatabaseError
    from engine.store import db as dbmod

    path = tmp_path / "v1.db"
    c = sqlite3.connect(path)
    c.executescript(_SCHEMA_V1)
    c.execute("INSERT INTO meta VALUES('schema_version', '1')")
    c.execute("INSERT INTO images(id, hash, added_at) VALUES(7, 'abc', 1.0)")
    c.commit()
    c.close()
    monkeypatch.setitem(dbmod.MIGRATIONS, 1, dbmod.MIGRATIONS[1] + ";\nCREATE TABLE labels (x)")
    with pytest.raises(DatabaseError):
        LibraryDB(path)
    c = sqlite3.connect(path)
    assert c.execute("SELECT value FROM meta").fetchone()[0] == "1"
    assert c.execute("SELECT name FROM sqlite_master WHERE name='vocabularies'").fetchone() is None
    assert c.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 1


def test_browse_by_tag_without_text(lib):
    """Tags alone are a search: the photos carrying them, confirmed first, then by the first tag's score."""
    S.create(lib.db, colour_vocab("b"))
    tg = lib.tagger()
    tg.run("b")
    red = effective(lib, tg, "b", "red")
    hits = lib.search(Query(k=500, filters=Filters(tags=[("b", "red")])))
    assert {h.image_id for h in hits} == red and red
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    ranked = {d["image_id"]: d["score"] for d in tg.photos("b", "red", k=500)[0]}
    assert all(abs(h.score - ranked[h.image_id]) < 1e-5 for h in hits)
    assert hits[0].path and hits[0].info["path"] == hits[0].path
    # a confirmed photo comes first, whatever its score
    low = hits[-1].image_id
    tg.answer("b", "red", [low], "confirmed")
    again = lib.search(Query(k=500, filters=Filters(tags=[("b", "red")])))
    assert again[0].image_id == low
    # other filters and the k limit apply; two tags are "all of them"
    assert len(lib.search(Query(k=2, filters=Filters(tags=[("b", "red")])))) == 2
    both = lib.search(Query(k=500, filters=Filters(tags=[("b", "red"), ("b", "blue")])))
    assert {h.image_id for h in both} == effective(lib, tg, "b", "red") & effective(
        lib, tg, "b", "blue"
    )
    assert lib.search(Query(k=500, filters=Filters(tags=[("b", "red")], exts=["png"]))) == []
    with pytest.raises(QueryError):  # no tags and no text: still refused
        lib.search(Query(k=5))
    S.delete(lib.db, "b")


def test_vocabulary_with_auto_off_is_carried_by_answers_only(lib):
    """Imported keywords ("2008", "dublin"): no automatic tags, so nothing spreads to other photos."""
    S.create(lib.db, make_vocabulary("kw", [c for c in COLOURS], auto=False))
    tg = lib.tagger()
    tg.run("kw")
    assert S.load(lib.db, "kw").vocab.auto is False and tg.vocab_info("kw")["auto"] is False
    assert all(c["tagged"] == 0 and c["auto"] == 0 for c in tg.counts("kw"))
    some = sorted(i for i, cs in truth(lib).items() if "red" in cs)[:2]
    tg.answer("kw", "red", some, "confirmed")
    assert effective(lib, tg, "kw", "red") == set(some)
    assert tg.threshold_change("kw", "red", 0.0001, preview=True)["entered"] == []
    assert {
        h.image_id for h in lib.search(Query(k=100, filters=Filters(tags=[("kw", "red")])))
    } == set(some)
    # new photos are not tagged either, and turning it on (then off) tags (then untags) them all
    S.update(lib.db, "kw", auto=True)
    tg.run("kw")
    assert len(effective(lib, tg, "kw", "red")) > len(some)
    S.update(lib.db, "kw", auto=False)
    tg.run("kw")
    assert effective(lib, tg, "kw", "red") == set(some)
    with pytest.raises(VocabularyError):
        make_vocabulary("x", ["a"], auto="no")
    S.delete(lib.db, "kw")


def test_auto_setting_round_trips_through_json():
    from engine.tags.vocab import dumps, parse

    v = make_vocabulary("Keywords", ["2008", "dublin"], auto=False)
    back = parse(dumps(v, "json"), "json")
    assert back.auto is False and back == v
    assert parse(dumps(make_vocabulary("a", ["b"]), "json"), "json").auto is True
    assert '"auto"' not in dumps(make_vocabulary("a", ["b"]), "json")  # old files stay as they were


def test_v2_database_migrates_to_v3_and_keywords_stop_spreading(tmp_path):
    from engine.store.db import _SCHEMA_V2_TAGS, _statements

    path = tmp_path / "v2.db"
    c = sqlite3.connect(path)
    c.executescript(_SCHEMA_V1)
    for stmt in _statements(_SCHEMA_V2_TAGS):
        c.execute(stmt)
    c.execute("INSERT INTO meta VALUES('schema_version', '2')")
    c.execute("INSERT INTO images(id, hash, added_at) VALUES(7, 'abc', 1.0)")
    for vid, name in ((1, "Keywords"), (2, "colours")):
        c.execute(
            "INSERT INTO vocabularies(id, name, templates, created_at, updated_at) VALUES(?,?,'[]',1,1)",
            (vid, name),
        )
        c.execute(
            "INSERT INTO labels(id, vocab_id, name, key, position) VALUES(?,?,'x','x',0)",
            (vid, vid),
        )
        c.execute("INSERT INTO auto_tags VALUES(?, 1, 7)", (vid,))
    c.execute("INSERT INTO tag_answers VALUES(1, 'abc', 1, 1.0)")
    c.commit()
    c.close()
    db = LibraryDB(path)
    assert db._version() == SCHEMA_VERSION  # through v3, and on to the current one
    assert S.load(db, "Keywords").vocab.auto is False and S.load(db, "colours").vocab.auto is True
    assert db.conn.execute("SELECT label_id FROM auto_tags").fetchall() == [(2,)]
    assert db.conn.execute("SELECT COUNT(*) FROM tag_answers").fetchone()[0] == 1  # answers stay
    db.close()


def test_answer_and_its_retag_land_together_or_not_at_all(lib, monkeypatch):
    """A process killed between storing answers and re-tagging their label must not leave the
    old automatic tags marked current (the kill -9 run in tests/reliability found this)."""
    S.create(lib.db, colour_vocab("k"))
    tg = lib.tagger()
    tg.run("k")
    red = sorted(i for i, cs in truth(lib).items() if "red" in cs)
    before = tg.counts("k")
    real = Tagger.run

    def dies_before_retag(self, vocab=None, *, labels=None, progress=None):
        if labels is not None:
            raise KeyboardInterrupt("killed between the answer and the label's re-tag")
        return real(self, vocab, labels=labels, progress=progress)

    monkeypatch.setattr(Tagger, "run", dies_before_retag)
    with pytest.raises(KeyboardInterrupt):
        tg.answer("k", "red", red[:6], "confirmed")
    monkeypatch.undo()
    # The reply never came, so the answers may be gone; what is stored must be consistent.
    assert confirmed_examples(lib.db, "k")["red"] == ([], [])
    assert tg.counts("k") == before
    tg.run("k")
    assert tg.counts("k") == before
    S.delete(lib.db, "k")
