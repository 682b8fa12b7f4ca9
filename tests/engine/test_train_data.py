"""Fine-tuning data from the library: stratified split, the too-little-data refusal, and
folder-per-label import from stored vectors (nothing decoded)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.errors import TrainingDataError
from engine.finetune.dataset import (
    MIN_POSITIVES,
    NEGATIVE,
    POSITIVE,
    UNKNOWN,
    TrainingSet,
    stratified_split,
)
from engine.library import DEMO_MODEL, Library
from engine.settings import Settings
from training.demo import world


def _set(targets: np.ndarray) -> TrainingSet:
    n, n_labels = targets.shape
    rng = np.random.default_rng(0)
    v = rng.standard_normal((n, 8)).astype(np.float32)
    return TrainingSet(
        image_ids=np.arange(n), vectors=v / np.linalg.norm(v, axis=1, keepdims=True),
        labels=[f"l{j}" for j in range(n_labels)], texts=[[f"l{j}"] for j in range(n_labels)],
        targets=targets.astype(np.int8), space="s",
    )  # fmt: skip


def test_split_is_stratified_per_label_disjoint_and_deterministic():
    rng = np.random.default_rng(3)
    t = (rng.random((300, 5)) < np.array([0.03, 0.1, 0.3, 0.5, 0.05])).astype(np.int8)
    tr, va = stratified_split(t, 0.3, seed=1)
    assert not set(tr) & set(va) and len(tr) + len(va) == 300
    for j in range(5):
        pos = t[:, j].sum()
        assert abs(t[va, j].sum() - 0.3 * pos) <= 1.5, (j, pos, t[va, j].sum())
        assert t[tr, j].sum() > 0
    tr2, va2 = stratified_split(t, 0.3, seed=1)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert not np.array_equal(va, stratified_split(t, 0.3, seed=2)[1])


def test_refuses_too_little_data_and_says_how_much_is_needed():
    t = np.zeros((40, 2), dtype=np.int8)
    t[:20, 0] = POSITIVE
    t[:4, 1] = POSITIVE
    with pytest.raises(TrainingDataError) as e:
        _set(t).check_enough()
    msg = str(e.value)
    assert "'l1' has 4 photos" in msg and f"needs at least {MIN_POSITIVES}" in msg
    assert "6 more" in msg and "'l0'" not in msg
    t[:12, 1] = POSITIVE
    _set(t).check_enough()  # enough now


def test_fingerprint_follows_the_data():
    t = np.zeros((30, 2), dtype=np.int8)
    t[:12, 0] = POSITIVE
    a = _set(t)
    assert a.fingerprint() == _set(t.copy()).fingerprint()
    t2 = t.copy()
    t2[20, 1] = UNKNOWN
    assert a.fingerprint() != _set(t2).fingerprint()


def test_validate_names_the_problem():
    t = np.zeros((10, 2), dtype=np.int8)
    ts = _set(t)
    ts.targets = t[:, :1]
    with pytest.raises(TrainingDataError, match="targets have shape"):
        ts.validate()


def _label_tree(root, n=14, seed=0):
    """crimson/ (red objects), azure/ (blue objects), _other/ (neither); a photo with
    both lies in both folders (same bytes: one photo, two labels)."""
    red = lambda s: any(o.colour == "red" for o in s.objects)  # noqa: E731
    blue = lambda s: any(o.colour == "blue" for o in s.objects)  # noqa: E731
    for d in ("crimson", "azure", "_other"):
        (root / d).mkdir(parents=True)
    both, counts = [], {"crimson": 0, "azure": 0, "_other": 0}
    for i, s in enumerate(world.scenes("test", 400, seed=seed)):
        dest = [d for d, f in (("crimson", red), ("azure", blue)) if f(s)] or ["_other"]
        if all(counts[d] >= n for d in dest):
            continue
        name = f"scene{i:04d}.png"
        world.render(s, (96, 96)).save(root / dest[0] / name)
        for d in dest[1:]:
            shutil.copyfile(root / dest[0] / name, root / d / name)
        if len(dest) == 2:
            both.append(name)
        for d in dest:
            counts[d] += 1
        if min(counts.values()) >= n and both:
            break
    return both


def test_folder_per_label_import_reads_stored_vectors_only(tmp_path, monkeypatch):
    from engine.finetune.sources import from_folders
    from engine.models.hub import full_registry
    from engine.photos import decode

    root = tmp_path / "labels"
    both = _label_tree(root)
    settings = Settings(data_dir=tmp_path / "data", model=DEMO_MODEL)
    lib = Library(settings)
    lib.add_folder(root)
    lib.scan()
    spec = full_registry(settings).get(DEMO_MODEL)

    def no_decoding(*a, **k):
        raise AssertionError("training data must come from stored vectors, not decoded photos")

    for name in dir(decode):
        if name.startswith(("decode", "load", "open")) and callable(getattr(decode, name)):
            monkeypatch.setattr(decode, name, no_decoding)
    data = from_folders(lib.db, spec, root)
    lib.close()
    data.validate()
    assert data.labels == ["azure", "crimson"]  # "_other" is not a label
    assert data.vectors.shape == (len(data.image_ids), spec.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(data.vectors, axis=1), 1, atol=1e-5)
    c = data.counts()
    assert c["crimson"]["positive"] >= 14 and c["azure"]["positive"] >= 14
    # the "_other" photos are negatives for both labels; nothing is unknown in a folder import
    assert (data.targets == NEGATIVE).all(1).sum() >= 14
    assert not (data.targets == UNKNOWN).any()
    assert both and (data.targets == POSITIVE).all(1).sum() == len(both)  # multi-label rows
    assert data.general is not None and data.general.queries
    assert not any("crimson" in q or "azure" in q for q in data.general.queries)
    assert data.general.gallery.shape[0] == len(data.image_ids)


def test_folder_import_refuses_a_folder_without_label_folders(tmp_path):
    from engine.finetune.sources import label_folders

    (tmp_path / "flat").mkdir()
    with pytest.raises(TrainingDataError, match="no sub-folders"):
        label_folders(tmp_path / "flat")


def test_vocab_import_uses_confirmed_and_rejected_tags_and_leaves_the_rest_unknown(
    tmp_path, monkeypatch
):
    """The adapter over engine.tags.tagging's contract (confirmed_examples, label_texts)."""
    import sys
    import types

    from engine.finetune.sources import from_vocab
    from engine.models.hub import full_registry
    from engine.store.db import LibraryDB, NewPhoto

    spec = full_registry(Settings(data_dir=tmp_path)).get(DEMO_MODEL)
    db = LibraryDB(tmp_path / "library.db")
    fid = db.add_folder(str(tmp_path))
    sid = db.space_id(spec.space, spec.embed_dim)
    rng = np.random.default_rng(0)
    photos = []
    for i in range(6):
        v = rng.standard_normal(spec.embed_dim).astype(np.float32)
        photos.append(NewPhoto(path=f"{tmp_path}/p{i}.jpg", folder_id=fid, size=1, mtime_ns=1,
                               hash=f"h{i}", vector=v / np.linalg.norm(v)))  # fmt: skip
    db.commit_batch(sid, photos)
    ids = [db.image_id_for_hash(f"h{i}") for i in range(6)]
    fake = types.ModuleType("engine.tags.tagging")
    fake.confirmed_examples = lambda db_, vocab: {
        "miso": ([ids[0], ids[1], ids[2]], [ids[3], ids[2]]),  # p2 both: the confirmation wins
        "tofu": ([ids[3]], [ids[0]]),
        "empty": ([], []),
    }
    fake.label_texts = lambda db_, vocab: {"miso": ["a photo of Miso the cat"], "tofu": []}
    monkeypatch.setitem(sys.modules, "engine.tags.tagging", fake)
    data = from_vocab(db, spec, "cats")
    db.close()
    data.validate()
    assert data.labels == ["miso", "tofu"] and data.source == "vocab:cats"
    assert data.texts[0] == ["a photo of Miso the cat"] and data.texts[1] == [
        "tofu",
        "a photo of tofu",
    ]
    row = {int(i): k for k, i in enumerate(data.image_ids)}
    assert set(row) == set(ids[:4])  # only photos someone tagged
    t = data.targets
    assert [t[row[i], 0] for i in ids[:4]] == [POSITIVE, POSITIVE, POSITIVE, NEGATIVE]
    assert [t[row[i], 1] for i in ids[:4]] == [NEGATIVE, UNKNOWN, UNKNOWN, POSITIVE]
    np.testing.assert_array_equal(data.vectors[row[ids[1]]], photos[1].vector)


def test_a_real_vocabulary_feeds_training_with_the_users_answers(tmp_path):
    """engine.tags.tagging's answers, not a stand-in: what the user confirmed and rejected in a
    vocabulary becomes the targets, and its prompts the label texts."""
    from app.sampledata import colour_folder
    from engine.finetune.dataset import NEGATIVE, POSITIVE, UNKNOWN
    from engine.finetune.sources import from_vocab
    from engine.library import Library
    from engine.tags import tagstore
    from engine.tags.vocab import make_vocabulary

    photos = colour_folder(tmp_path / "photos", colours=("red", "blue", "green"), per_colour=4)
    lib = Library(Settings(data_dir=tmp_path / "data"), model_key=DEMO_MODEL)
    try:
        lib.add_folder(tmp_path / "photos")
        lib.scan()
        db = lib.db
        ids = {c: [db.image_id_for_path(str(p.resolve())) for p in ps] for c, ps in photos.items()}
        tagstore.create(db, make_vocabulary("colours", ["red", "blue"]))
        tg = lib.tagger()
        tg.answer("colours", "red", ids["red"], "confirmed")
        tg.answer("colours", "red", ids["blue"][:2], "rejected")
        tg.answer("colours", "blue", ids["blue"], "confirmed")
        ts = from_vocab(db, lib.spec, "colours")
    finally:
        lib.close()
    assert ts.labels == ["red", "blue"] and all(ts.texts)
    row = {int(i): k for k, i in enumerate(ts.image_ids)}
    assert set(row) == set(ids["red"]) | set(ids["blue"])  # green was never answered
    red, blue = ts.labels.index("red"), ts.labels.index("blue")
    assert all(ts.targets[row[i], red] == POSITIVE for i in ids["red"])
    assert all(ts.targets[row[i], red] == NEGATIVE for i in ids["blue"][:2])
    assert all(ts.targets[row[i], red] == UNKNOWN for i in ids["blue"][2:])
    assert all(ts.targets[row[i], blue] == POSITIVE for i in ids["blue"])
    assert all(ts.targets[row[i], blue] == UNKNOWN for i in ids["red"])
